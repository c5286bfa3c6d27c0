"""Backends by name: where a campaign runs. Imported lazily, on first use.

``embedded`` (this machine), ``ray`` (jobs as Ray tasks), ``local_run`` (Ray Tune's own loop here),
``panda`` (PanDA + iDDS, the grid), ``idds`` (rounds in a real iDDS, jobs here or on Ray).
Each is a :class:`~hpogrid.client.backends.base.Backend` (the contract: docs/CONTRACTS.md).
"""

from __future__ import annotations

import importlib
from typing import Any

from ..errors import UsageError
from .base import Backend, BaseBackend, GridOptions, Plan, RemoteTask, SubmitOptions

__all__ = ["BACKENDS", "get_backend", "available", "runs_here", "driven_here", "Backend", "BaseBackend", "SubmitOptions",
           "GridOptions", "Plan", "RemoteTask"]

#: name -> "module:Class" (imported only when the backend is used)
BACKENDS = {
    "embedded": "hpogrid.client.backends.embedded:EmbeddedBackend",
    "ray": "hpogrid.client.backends.ray:RayBackend",
    "panda": "hpogrid.client.backends.panda:PandaBackend",
    "idds": "hpogrid.client.backends.idds:IddsBackend",
    "local_run": "hpogrid.client.backends.local_run:LocalRunBackend",
}


def available() -> list[str]:
    return list(BACKENDS)


def _backend_class(name: str) -> Any:
    if name not in BACKENDS:
        raise UsageError(f"unknown backend {name!r}; valid: {', '.join(BACKENDS)}")
    module_name, _, class_name = BACKENDS[name].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise UsageError(f"the {name} backend is not available in this installation ({module_name} is missing)") from exc
        raise
    return getattr(module, class_name)


def get_backend(name: str) -> Backend:
    """An instance of the backend ``name``; an unknown name lists the valid ones."""
    return _backend_class(name)()


def runs_here(name: str) -> bool:
    """Does the backend ``name`` run its campaigns on this machine (``Backend.runs_here``)?

    An unknown name (a campaign of a backend this installation lacks) does not.
    """
    return name in BACKENDS and bool(_backend_class(name).runs_here)


def driven_here(name: str) -> bool:
    """Is a campaign of backend ``name`` driven by a process on this machine (``Backend.driven_here``)?"""
    return name in BACKENDS and bool(_backend_class(name).driven_here)
