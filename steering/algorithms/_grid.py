"""``grid`` and ``tune``: hpogrid's own enumerations of ``grid_search`` categories.

``grid`` proposes each combination of the grid categories once (the other dimensions sampled)
and stops when all are taken. ``tune`` reproduces Ray Tune's default search
(``BasicVariantGenerator``): every sample repeats the grid, other dimensions are random, so it
cycles through the combinations for as long as the budget lasts. Neither imports Ray.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

from ..errors import SpaceError
from ..space import SearchSpace, point_key
from ._params import check_params
from .base import BaseAlgorithm, Evaluated


class _GridBase(BaseAlgorithm):
    algorithm = ""

    def __init__(self, space: SearchSpace, seed: int | None = None, **params: Any):
        super().__init__(space, seed)
        check_params(self.algorithm, params, {})
        self.grid_names = [d.name for d in space.grid_dims]
        self.combos = space.grid_combinations()
        self.used: Counter[str] = Counter()

    def rebuild(self, evaluated: Sequence[Evaluated]) -> None:
        self.used = Counter(self._combo_key(e.point) for e in evaluated)

    def _combo_key(self, point: dict[str, Any]) -> str:
        return point_key({name: point[name] for name in self.grid_names})

    def _complete(self, combo: dict[str, Any]) -> dict[str, Any]:
        """A point with the grid values of ``combo`` and every other dimension sampled."""
        point = self.space.from_unit(self.rng.random(len(self.space)))
        point.update(combo)
        return point


class GridSearch(_GridBase):
    """Each grid combination once, in :meth:`SearchSpace.grid_combinations` order."""

    algorithm = "grid"

    def __init__(self, space: SearchSpace, seed: int | None = None, **params: Any):
        super().__init__(space, seed, **params)
        if not self.grid_names:
            raise SpaceError(
                "algorithm 'grid' needs at least one categorical hyperparameter with grid_search: 1, "
                f"got none among {', '.join(space.names)}"
            )

    def suggest(self, n: int, pending: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        taken = set(self.used) | {self._combo_key(p) for p in pending}
        free = [c for c in self.combos if point_key(c) not in taken]
        return [self._complete(c) for c in free[:n]]

    def fill(self, n: int, seen: set[str]) -> list[dict[str, Any]]:
        """A grid is exhausted when every combination is taken: no random top-up."""
        return []


class TuneSearch(_GridBase):
    """Ray Tune's default: random sampling, the grid repeated; least-used combination first."""

    algorithm = "tune"

    def suggest(self, n: int, pending: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        used = Counter(self.used)
        used.update(self._combo_key(p) for p in pending)
        out = []
        for _ in range(n):
            combo = min(self.combos, key=lambda c: used[point_key(c)])  # stable: first of the least used
            used[point_key(combo)] += 1
            out.append(self._complete(combo))
        return out
