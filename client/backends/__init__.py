"""Backends by name: where ``submit_idds`` runs a campaign. Imported lazily, on first use.

``embedded`` (this machine), ``ray`` (jobs as Ray tasks), ``panda`` (PanDA + iDDS, the grid),
``idds`` (rounds in a real iDDS, jobs here or on Ray).
A backend may also list the tasks it knows remotely (``list_tasks``, used by ``hpogrid tasks show``).
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from ..errors import UsageError
from .base import BaseBackend, SubmitOptions

__all__ = ["BACKENDS", "get_backend", "available", "BaseBackend", "SubmitOptions"]

#: name -> "module:Class" (imported only when the backend is used)
BACKENDS = {
    "embedded": "hpogrid.client.backends.embedded:EmbeddedBackend",
    "ray": "hpogrid.client.backends.ray:RayBackend",
    "panda": "hpogrid.client.backends.panda:PandaBackend",
    "idds": "hpogrid.client.backends.idds:IddsBackend",
}


def available() -> list[str]:
    return list(BACKENDS)


def get_backend(name: str) -> BaseBackend:
    """An instance of the backend ``name``; an unknown name lists the valid ones."""
    if name not in BACKENDS:
        raise UsageError(f"unknown backend {name!r}; valid: {', '.join(BACKENDS)}")
    module_name, _, class_name = BACKENDS[name].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise UsageError(f"the {name} backend is not available in this installation ({module_name} is missing)") from exc
        raise
    cls: Any = getattr(module, class_name, None)
    if cls is None:  # the module names its class otherwise: take its BaseBackend with this name
        found = [c for _, c in inspect.getmembers(module, inspect.isclass)
                 if issubclass(c, BaseBackend) and c is not BaseBackend and getattr(c, "name", None) == name]
        if not found:
            raise UsageError(f"the {name} backend module {module_name} defines no backend named {name!r}")
        cls = found[0]
    return cls()
