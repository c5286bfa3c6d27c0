"""The steering's Python API: one call per round, and a searcher object for ask/tell loops.

``propose`` is what a round needs (history in, new points out). :class:`Searcher` keeps the
history for a caller that learns results one by one (the client's ``local_run`` wraps it as a
Ray Tune ``Searcher``): it converts metric values to losses with ``mode`` and asks the
algorithm, rebuilt from the whole history, for new points.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from .algorithms import FAILED, Record, create_algorithm, metric_to_loss
from .errors import InputError
from .space import SearchSpace

__all__ = ["propose", "Searcher"]


def _space(space: SearchSpace | Mapping[str, Any] | str) -> SearchSpace:
    return space if isinstance(space, SearchSpace) else SearchSpace.parse(space)


def propose(
    space: SearchSpace | Mapping[str, Any] | str,
    history: Iterable[Record] = (),
    n: int = 1,
    *,
    algorithm: str = "random",
    algorithm_param: Mapping[str, Any] | None = None,
    seed: int | None = None,
    pending: Iterable[Mapping[str, Any]] = (),
    max_points: int | None = None,
) -> list[dict[str, Any]]:
    """Up to ``n`` new points (fewer only when a finite space is exhausted).

    ``history`` holds ``(point, loss)`` records: a float (minimised), ``None`` (pending) or
    :data:`FAILED`; NaN, inf and ``1e5`` count as failures. ``pending`` adds points proposed
    but not in ``history``. The same arguments give the same points in any process.
    """
    algo = create_algorithm(algorithm, _space(space), seed, algorithm_param)
    return algo.propose(history, n, pending, max_points=max_points)


class Searcher:
    """Ask/tell over a growing history, for a loop that evaluates points itself.

    ``ask(n)`` rebuilds the algorithm from the history told so far (plus ``history`` and
    ``pending`` if given), so the object holds no library state and can be pickled or dropped.
    ``tell(point, metric)`` takes the metric as the user reports it; ``mode`` turns it into a
    loss. ``None`` for the metric marks a failed evaluation.
    """

    def __init__(
        self,
        space: SearchSpace | Mapping[str, Any] | str,
        algorithm: str = "random",
        algorithm_param: Mapping[str, Any] | None = None,
        seed: int | None = None,
        mode: str = "min",
        max_points: int | None = None,
    ):
        metric_to_loss(0.0, mode)  # validates mode now
        self.space = _space(space)
        self.mode = mode
        self.max_points = max_points
        self.history: list[tuple[dict[str, Any], Any]] = []
        # created once so a bad name or algorithm_param fails here, not at the first ask
        self.algorithm = create_algorithm(algorithm, self.space, seed, algorithm_param)

    def loss(self, metric: float | None) -> float | None:
        """The loss the algorithms minimise for a metric value (``mode: max`` negates)."""
        return metric_to_loss(metric, self.mode)

    def ask(
        self,
        n: int = 1,
        history: Iterable[Record] | None = None,
        pending: Iterable[Mapping[str, Any]] = (),
    ) -> list[dict[str, Any]]:
        """New points given the told history (or ``history``, losses already) and ``pending``."""
        records = self.history if history is None else list(history)
        return self.algorithm.propose(records, n, pending, max_points=self.max_points)

    def tell(self, point: Mapping[str, Any], metric: float | None) -> None:
        """Record a result: the metric as reported, or ``None`` when the evaluation failed."""
        if not isinstance(point, Mapping):
            raise InputError(f"a point must be an object of hyperparameter values, got {point!r}")
        loss = self.loss(metric)
        self.history.append((self.space.canonical(point), FAILED if loss is None else loss))
