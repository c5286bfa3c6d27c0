"""``ax``: reserved for Ax (Meta's adaptive experimentation platform), not provided yet.

Ax pulls PyTorch, BoTorch and GPyTorch. From PyPI, ``pip install ax-platform`` on Linux brings
torch with several GB of CUDA libraries (checked: ax-platform 1.3.1 -> torch 2.15 + nvidia-*),
which no steering container should carry; a CPU build of torch comes only from PyTorch's own
index. The registry refuses ``ax`` with the pip command when Ax or torch is missing; with both
installed this class still refuses, naming the algorithms that cover the same ground, because
no adapter has been written and tested against an installed Ax.
"""

from __future__ import annotations

from typing import Any, Sequence

from ..errors import MissingDependencyError
from ..space import SearchSpace
from .base import BaseAlgorithm, Evaluated


class AxSearch(BaseAlgorithm):
    def __init__(self, space: SearchSpace, seed: int | None = None, **params: Any):
        raise MissingDependencyError(
            "algorithm 'ax' is not available in this hpogrid release (no Ax adapter is shipped); "
            "use 'bayesian' (Gaussian process) or optuna with algorithm_param {\"sampler\": \"gp\"}"
        )

    def rebuild(self, evaluated: Sequence[Evaluated]) -> None:  # pragma: no cover - never built
        raise NotImplementedError

    def suggest(self, n: int, pending: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:  # pragma: no cover
        raise NotImplementedError
