"""``random``: independent draws from each dimension's law (inverse CDF of uniform draws)."""

from __future__ import annotations

from typing import Any, Sequence

from ..space import SearchSpace
from ._params import check_params
from .base import BaseAlgorithm, Evaluated


class RandomSearch(BaseAlgorithm):
    """Needs no history; pending points matter only for de-duplication (done by the base)."""

    def __init__(self, space: SearchSpace, seed: int | None = None, **params: Any):
        super().__init__(space, seed)
        check_params("random", params, {})

    def rebuild(self, evaluated: Sequence[Evaluated]) -> None:
        pass

    def suggest(self, n: int, pending: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        return [self.space.from_unit(u) for u in self.rng.random((n, len(self.space)))]
