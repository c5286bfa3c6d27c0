"""Optional dependencies of the reports fail at first use with the command that fixes them."""

from __future__ import annotations

import importlib
from types import ModuleType

from ..errors import HpogridError

__all__ = ["MissingDependencyError", "require"]


class MissingDependencyError(HpogridError):
    """A report needs a package that is not installed."""


def require(module: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        raise MissingDependencyError(
            f"reports need the Python package {top!r} ({exc}); install it with: pip install 'hpogrid[report]'"
        ) from exc
