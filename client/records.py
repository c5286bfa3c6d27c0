"""The campaign store's records: typed, frozen rows and their state enums.

The states are ``enum.StrEnum`` members whose values are the strings the store has always
written, so ``store.db`` and every JSON output are unchanged (``PointState.FINISHED == "finished"``).
The rules about states live here, in one place: which are final, which move a point back.

Point states (docs/CONTRACTS.md): ``proposed -> running -> finished | failed``, and ``stopped``
for a ``local_run`` trial cut short by Ray Tune's scheduler. Finished, failed and stopped are
final: only :meth:`Store.reopen_failed` and the ``requeue_*`` methods move a point back.
Campaign states: ``created -> running -> finished | failed | killed | interrupted``; finished,
failed and killed are final until ``tasks retry`` reopens the campaign.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from typing import Any, Iterator

from .errors import CampaignError

__all__ = [
    "PointState",
    "CampaignState",
    "RoundState",
    "Point",
    "Campaign",
    "Round",
    "Registered",
    "TransitionError",
    "as_dict",
]


class TransitionError(CampaignError):
    """A state change the store's rules forbid (e.g. finishing a point that is already final)."""


class PointState(enum.StrEnum):
    PROPOSED = "proposed"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    STOPPED = "stopped"

    @property
    def final(self) -> bool:
        """Finished, failed and stopped points keep their result (only reopen/requeue move them)."""
        return self in POINT_FINAL

    @property
    def evaluated(self) -> bool:
        """A result the steering learns from: finished or stopped (with their loss) and failed."""
        return self.final


POINT_FINAL = frozenset({PointState.FINISHED, PointState.FAILED, PointState.STOPPED})
#: From which states a point may enter each state (the store checks it on every write).
POINT_MOVES: dict[PointState, frozenset[PointState]] = {
    PointState.RUNNING: frozenset({PointState.PROPOSED, PointState.RUNNING}),
    PointState.FINISHED: frozenset({PointState.PROPOSED, PointState.RUNNING}),
    PointState.FAILED: frozenset({PointState.PROPOSED, PointState.RUNNING}),
    PointState.STOPPED: frozenset({PointState.PROPOSED, PointState.RUNNING}),
}


class CampaignState(enum.StrEnum):
    CREATED = "created"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    KILLED = "killed"
    INTERRUPTED = "interrupted"

    @property
    def final(self) -> bool:
        """Finished, failed and killed: nothing runs again until ``tasks retry`` reopens it."""
        return self in CAMPAIGN_FINAL

    @property
    def active(self) -> bool:
        """A driver is (or should be) at work: created or running."""
        return self in (CampaignState.CREATED, CampaignState.RUNNING)


CAMPAIGN_FINAL = frozenset({CampaignState.FINISHED, CampaignState.FAILED, CampaignState.KILLED})


class RoundState(enum.StrEnum):
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    LOST = "lost"

    @classmethod
    def of(cls, value: str) -> "RoundState | str":
        """The member for ``value``; a status another writer chose (a library user) stays a string."""
        try:
            return cls(value)
        except ValueError:
            return value


class _Row:
    """Read access by key as well as by attribute (``point["loss"] == point.loss``), for callers
    written against the dict rows of hpogrid 2.x; new code uses the attributes."""

    def __getitem__(self, key: str) -> Any:
        if key not in self._names():
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key) if key in self._names() else default

    def keys(self) -> list[str]:
        return list(self._names())

    def __contains__(self, key: object) -> bool:
        return key in self._names()

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    @classmethod
    def _names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]


@dataclass(frozen=True)
class Point(_Row):
    id: int
    round: int | None
    params: dict[str, Any]
    state: PointState
    loss: float | None = None
    metric: float | None = None
    attempts: int = 0
    created: float | None = None
    started: float | None = None
    ended: float | None = None
    host: str | None = None
    site: str | None = None
    message: str | None = None
    reports: list[Any] = field(default_factory=list)
    job_dir: str | None = None


@dataclass(frozen=True)
class Campaign(_Row):
    id: str
    project: str
    backend: str
    status: CampaignState
    algorithm: str | None = None
    metric: str | None = None
    mode: str | None = None
    max_points: int | None = None
    max_concurrent: int | None = None
    points_per_round: int | None = None
    min_unevaluated: int | None = None
    max_attempts: int | None = None
    created: float | None = None
    started: float | None = None
    ended: float | None = None
    pid: int | None = None
    remote_id: str | None = None
    message: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Round(_Row):
    id: int
    started: float | None
    ended: float | None
    n_requested: int | None
    n_proposed: int | None
    attempts: int
    status: RoundState | str
    seconds: float | None = None
    message: str | None = None


@dataclass(frozen=True)
class Registered(_Row):
    """A registry entry: a campaign id, its project and backend, and its folder on this home."""

    id: int
    project: str
    backend: str
    path: str
    created: float
    remote_id: str | None = None


def as_dict(record: Point | Campaign | Round | Registered) -> dict[str, Any]:
    """The record as the plain dict the store's row always was (states as their strings): the one
    serialisation for JSON output."""
    out = dataclasses.asdict(record)
    for key, value in out.items():
        if isinstance(value, enum.Enum):
            out[key] = value.value
    return out
