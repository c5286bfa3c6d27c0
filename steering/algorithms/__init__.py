"""The registry of search algorithms: name -> lazy import, so a missing library fails at first use.

Every algorithm implements :class:`BaseAlgorithm`. Optional libraries are imported only when
their algorithm is created; a missing one raises :class:`MissingDependencyError` with the pip
command that installs it.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from typing import Any, Mapping

from ..errors import InputError, MissingDependencyError, UnknownAlgorithmError
from ..space import SearchSpace
from .base import FAILED, FAILURE_LOSS, BaseAlgorithm, Evaluated, Record, metric_to_loss, split_history

__all__ = [
    "ALGORITHMS",
    "BaseAlgorithm",
    "Evaluated",
    "FAILED",
    "FAILURE_LOSS",
    "Record",
    "create_algorithm",
    "get_algorithm_class",
    "metric_to_loss",
    "split_history",
]


@dataclass(frozen=True)
class _Entry:
    module: str
    cls: str
    requires: tuple[str, ...] = ()  # importable top-level modules
    extra: str = "steering"  # the hpogrid extra that installs them
    note: str = ""


_REGISTRY: dict[str, _Entry] = {
    "random": _Entry("._random", "RandomSearch"),
    "grid": _Entry("._grid", "GridSearch"),
    "tune": _Entry("._grid", "TuneSearch"),
    "hyperopt": _Entry("._hyperopt", "HyperoptSearch", ("hyperopt",)),
    "bayesian": _Entry("._bayesian", "BayesianSearch", ("sklearn", "scipy")),
    "skopt": _Entry("._skopt", "SkoptSearch", ("skopt", "sklearn")),
    "optuna": _Entry("._optuna", "OptunaSearch", ("optuna",)),
    "nevergrad": _Entry("._nevergrad", "NevergradSearch", ("nevergrad",)),
    "bohb": _Entry("._bohb", "BohbSearch", ("hpbandster", "ConfigSpace", "statsmodels"), "bohb"),
    "ax": _Entry(
        "._ax",
        "AxSearch",
        ("ax", "torch"),
        "ax",
        " (Ax needs PyTorch: install a CPU build of torch first, e.g. from "
        "https://download.pytorch.org/whl/cpu, or pip pulls several GB of CUDA libraries)",
    ),
}

#: The registered algorithm names, in the order the docs list them.
ALGORITHMS: tuple[str, ...] = tuple(_REGISTRY)


def get_algorithm_class(name: str) -> type[BaseAlgorithm]:
    """The class of a registered algorithm, importing its library now."""
    entry = _REGISTRY.get(name) if isinstance(name, str) else None
    if entry is None:
        raise UnknownAlgorithmError(f"unknown algorithm {name!r}; valid algorithms: {', '.join(ALGORITHMS)}")
    missing = [m for m in entry.requires if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingDependencyError(
            f"algorithm '{name}' needs {', '.join(missing)}, which is not installed: "
            f"pip install 'hpogrid[{entry.extra}]'{entry.note}"
        )
    try:
        module = importlib.import_module(entry.module, __name__)
    except ImportError as exc:  # a library that is present but broken
        raise MissingDependencyError(
            f"algorithm '{name}' cannot import its library ({exc}); reinstall it: pip install 'hpogrid[{entry.extra}]'"
        ) from exc
    cls: type[BaseAlgorithm] = getattr(module, entry.cls)
    return cls


def create_algorithm(
    name: str,
    space: SearchSpace,
    seed: int | None = None,
    params: Mapping[str, Any] | None = None,
) -> BaseAlgorithm:
    """A ready algorithm: ``params`` is the user's ``algorithm_param`` (checked by the algorithm)."""
    if params is not None and not isinstance(params, Mapping):
        raise InputError(f"algorithm_param must be an object, got {params!r}")
    cls = get_algorithm_class(name)
    algorithm = cls(space, seed, **dict(params or {}))
    algorithm.name = name
    return algorithm
