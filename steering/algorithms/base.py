"""The one contract every search algorithm honours: rebuild from history, then suggest.

The steering is stateless between rounds (an iDDS steering run is a fresh process), so an
algorithm never keeps results between calls: each step it is handed the whole history, rebuilds
its library's state from it, and proposes new points. Modelled on optuna's ``BaseSampler``.

Losses are always minimised here. ``mode: max`` is converted in one place only,
:func:`metric_to_loss`, by whoever holds metric values (the searcher adapter, the evaluator).
"""

from __future__ import annotations

import contextlib
import itertools
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from hpogrid.common import FAILURE_LOSS, loss_of

from ..errors import InputError, SpaceError
from ..space import SearchSpace, point_key

__all__ = [
    "BaseAlgorithm",
    "best_and_sample",
    "Evaluated",
    "FAILED",
    "FAILURE_LOSS",
    "Record",
    "metric_to_loss",
    "split_history",
]

#: Marks a failed evaluation in a history record (a string so it survives JSON).
FAILED = "failed"
#: Above this many points a finite space is enumerated to fill a batch instead of sampled.
_ENUMERATE_LIMIT = 20_000

#: A history record: the point and its loss; ``None`` = pending, :data:`FAILED` = failed.
Record = tuple[Mapping[str, Any], Any]


def metric_to_loss(value: float | None, mode: str) -> float | None:
    """The one place where ``mode`` matters: a metric value to the loss algorithms minimise."""
    try:
        return loss_of(None if value is None else float(value), mode)
    except ValueError as exc:  # the mode
        raise InputError(str(exc)) from None


@dataclass(frozen=True)
class Evaluated:
    """A point with a finite loss to learn from; ``failed`` ones carry a substituted loss."""

    point: dict[str, Any]
    loss: float
    failed: bool = False


def _is_failure(loss: Any) -> bool:
    if isinstance(loss, str):
        if loss == FAILED:
            return True
        raise InputError(f"a loss must be a number, null (pending) or {FAILED!r}, got {loss!r}")
    if isinstance(loss, bool) or not isinstance(loss, (int, float, np.floating, np.integer)):
        raise InputError(f"a loss must be a number, null (pending) or {FAILED!r}, got {loss!r}")
    value = float(loss)
    return not math.isfinite(value) or value == FAILURE_LOSS


def split_history(
    space: SearchSpace, history: Iterable[Record]
) -> tuple[list[Evaluated], list[dict[str, Any]]]:
    """Canonical evaluated points (failures replaced by the worst finite loss) and pending ones.

    A failed, NaN, infinite or ``1e5`` result counts as evaluated and bad: it takes the worst
    finite loss seen (0.0 when nothing has a finite loss yet), so it is neither re-proposed nor
    allowed to crash a library that needs finite values.
    """
    done: list[tuple[dict[str, Any], float | None]] = []
    pending: list[dict[str, Any]] = []
    for record in history:
        if not isinstance(record, (tuple, list)) or len(record) != 2:
            raise InputError(f"a history record must be [point, loss], got {record!r}")
        point, loss = record
        try:
            point = space.canonical(point)
        except SpaceError as exc:
            raise InputError(f"history point does not fit the search space: {exc}") from None
        if loss is None:
            pending.append(point)
        elif _is_failure(loss):
            done.append((point, None))
        else:
            done.append((point, float(loss)))
    finite = [loss for _, loss in done if loss is not None]
    worst = max(finite) if finite else 0.0
    evaluated = [Evaluated(p, worst if loss is None else loss, loss is None) for p, loss in done]
    return evaluated, pending


def best_and_sample(losses: np.ndarray, cap: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of at most ``cap`` results to model, in their original order: the best third of
    ``cap`` by loss, plus a seeded uniform sample of the rest (the good region stays sharp, the
    rest of the space stays represented). All indices when there are no more than ``cap``."""
    n = len(losses)
    if n <= cap:
        return np.arange(n)
    order = np.argsort(losses, kind="stable")
    best, rest = order[: cap // 3], order[cap // 3:]
    return np.sort(np.concatenate([best, rng.choice(rest, cap - len(best), replace=False)]))


@contextlib.contextmanager
def _one_blas_thread() -> Any:
    """Run numerics on one BLAS thread: the matrices here are small, and on a busy 2-core
    machine OpenBLAS's threads contend so badly that a 200x200 Cholesky takes 100x longer."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # threadpoolctl comes with scikit-learn; without it, run as is
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


class BaseAlgorithm(ABC):
    """An ask/tell search algorithm, rebuilt from the history at every step.

    One step is one call of :meth:`propose`, which calls, in this order:

    1. :meth:`rebuild` once, with every evaluated point (failures already given a finite bad
       loss). Build the library's state here from scratch; keep nothing from earlier steps.
    2. :meth:`suggest` once, with the number of points wanted and the pending points (proposed
       earlier, not evaluated yet, or proposed earlier in this batch). Return up to ``n`` raw
       points; pending points must steer the proposals away (constant liar, kriging believer
       or the library's own mechanism) so a batch is diverse.

    :meth:`propose` then canonicalises the points (bounds, ints, ``q``, original categories),
    drops duplicates of the history, the pending points and each other, and tops the batch up
    with :meth:`fill` (random unseen points by default), so subclasses need not worry about
    duplicates. Randomness comes only from :attr:`rng` / :attr:`step_seed`, derived from the
    seed and the history length, so the same seed and history give the same points in any
    process.
    """

    #: Registered name, set by the registry.
    name: str = ""
    #: The most evaluated points :meth:`rebuild` is given, so a step's time and memory stay
    #: bounded at any history size (docs/CONTRACTS.md, "Steering cost"); past it the history is
    #: subsampled with :func:`best_and_sample` and the step says so in :attr:`notes`. ``None``:
    #: the algorithm models no history (its cost is linear in it).
    history_limit: int | None = None
    #: The most pending points :meth:`suggest` is given (the latest ones); all of them still
    #: count as seen, so none is proposed again.
    pending_limit: int | None = 1000

    def __init__(self, space: SearchSpace, seed: int | None = None, **params: Any):
        """Called once per step by the steering (or once per campaign by a warm searcher).

        ``params`` are the user's ``algorithm_param``; unknown keys must raise
        :class:`~hpogrid.steering.errors.InputError` naming the valid ones.
        """
        self.space = space
        self.seed = 0 if seed is None else int(seed)
        self.step_seed = self.seed
        self.rng = np.random.default_rng(self.seed)
        self.max_points: int | None = None
        #: What the last step did to stay within its bounds, one sentence each (the steering
        #: prints them on stderr, into the round's log).
        self.notes: list[str] = []

    # ---- hooks ----------------------------------------------------------------------------
    @abstractmethod
    def rebuild(self, evaluated: Sequence[Evaluated]) -> None:
        """Called first in every step, with the whole evaluated history (possibly empty)."""

    @abstractmethod
    def suggest(self, n: int, pending: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Called after :meth:`rebuild`; returns up to ``n`` raw points, ``n >= 1``."""

    def fill(self, n: int, seen: set[str]) -> list[dict[str, Any]]:
        """Called when :meth:`suggest` left the batch short (duplicates, exhausted library).

        The default draws random unseen points; in a small finite space it enumerates what is
        left, so it returns fewer than ``n`` only when the space is exhausted.
        """
        out: list[dict[str, Any]] = []
        for _ in range(50 * n):
            if len(out) == n:
                return out
            point = self.space.from_unit(self.rng.random(len(self.space)))
            key = point_key(point)
            if key not in seen:
                seen.add(key)
                out.append(point)
        size = self.space.cardinality()
        if size is not None and size <= _ENUMERATE_LIMIT:
            for combo in itertools.product(*(_values(d) for d in self.space)):
                if len(out) == n:
                    break
                point = dict(zip(self.space.names, combo))
                key = point_key(point)
                if key not in seen:
                    seen.add(key)
                    out.append(point)
        return out

    # ---- the step ---------------------------------------------------------------------------
    def propose(
        self,
        history: Iterable[Record],
        n: int,
        pending: Iterable[Mapping[str, Any]] = (),
        max_points: int | None = None,
    ) -> list[dict[str, Any]]:
        """Run one step: up to ``n`` new distinct points (fewer only when the space is exhausted).

        ``history`` records with a ``None`` loss count as pending too. ``max_points`` is the
        campaign's total budget, for algorithms that plan with it (nevergrad).
        """
        if n < 0:
            raise InputError(f"the number of points must be >= 0, got {n}")
        history = list(history)
        evaluated, pending_points = split_history(self.space, history)
        pending_points += [self.space.canonical(p) for p in pending]
        if n == 0:
            return []
        self.max_points = max_points
        self.step_seed = int(
            np.random.SeedSequence([self.seed, len(evaluated), len(pending_points)]).generate_state(1)[0]
        )
        self.rng = np.random.default_rng(self.step_seed)
        seen = {point_key(e.point) for e in evaluated} | {point_key(p) for p in pending_points}
        evaluated, pending_points = self._bounded(evaluated, pending_points)
        with _one_blas_thread():
            self.rebuild(evaluated)
            raws = self.suggest(n, list(pending_points))[:n]
        out: list[dict[str, Any]] = []
        for raw in raws:
            point = self.space.canonical(raw)
            key = point_key(point)
            if key not in seen:
                seen.add(key)
                out.append(point)
        if len(out) < n:
            out += [self.space.canonical(p) for p in self.fill(n - len(out), seen)]
        return out


    def _bounded(self, evaluated: list[Evaluated],
                 pending: list[dict[str, Any]]) -> tuple[list[Evaluated], list[dict[str, Any]]]:
        """The history and pending points the model sees, within :attr:`history_limit` and
        :attr:`pending_limit`; each cut is noted in :attr:`notes`."""
        self.notes = []
        limit = self.history_limit
        if limit is not None and len(evaluated) > limit:
            keep = best_and_sample(np.array([e.loss for e in evaluated]), limit, self.rng)
            self.notes.append(
                f"{self.name or type(self).__name__}: modelling {limit} of {len(evaluated)} evaluated points "
                f"(the best {limit // 3} and {limit - limit // 3} sampled at random) to bound the step's time and memory"
            )
            evaluated = [evaluated[i] for i in keep]
        if self.pending_limit is not None and len(pending) > self.pending_limit:
            self.notes.append(
                f"{self.name or type(self).__name__}: steering away from the latest {self.pending_limit} of "
                f"{len(pending)} pending points (all are still never proposed again)"
            )
            pending = pending[-self.pending_limit:]
        return evaluated, pending


def _values(dim: Any) -> list[Any]:
    """Every value of a finite dimension, in order."""
    if dim.is_categorical:
        return dim.categories
    lo, hi = dim.bounds
    if dim.method == "uniformint":
        return list(range(int(lo), int(hi) + 1))
    return [dim.canonical(lo + k * dim.q) for k in range(dim.cardinality())]
