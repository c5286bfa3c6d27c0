"""The backend contract: where a campaign's rounds and jobs run.

A backend's public methods keep the books in the campaign store (``hpogrid.client.store``);
subclasses fill small hooks. ``submit_idds`` picks a backend by name (``--backend`` or the grid
config's ``backend``); ``tasks`` and ``report`` act on a campaign through the backend that ran it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..store import Store

__all__ = ["SubmitOptions", "BaseBackend"]


@dataclass
class SubmitOptions:
    """What ``submit_idds`` lets a user set beside the project's configs (phpo's knobs)."""

    n_points_per_iteration: int | None = None  # points per steering round (phpo: nPointsPerIteration)
    min_unevaluated_points: int | None = None  # start a round when fewer are waiting (minUnevaluatedPoints)
    max_attempts: int | None = None  # attempts per point before it is failed (PanDA: 5)
    timeout: float | None = None  # per-job time limit, seconds
    site: list[str] | None = None
    steering_command: str | None = None  # a user's own steeringExec (placeholders %IN %OUT ...)
    ray_address: str | None = None
    seed: int | None = None
    detach: bool = False
    dry_run: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class BaseBackend(ABC):
    """One way of running campaigns. Instances are cheap; state lives in the store."""

    name: str = ""
    runs_here: ClassVar[bool] = True  # the store is written here as it goes (False: it mirrors a remote side)
    driven_here: ClassVar[bool] = True  # a process here drives the campaign (its pid in the store)

    @abstractmethod
    def submit(self, project_name: str, options: SubmitOptions) -> Store:
        """Start a new campaign of the project; returns its (registered) store.

        Called once per ``submit_idds``. Attached backends run to the end before returning;
        with ``options.detach`` they return as soon as the campaign runs in the background.
        """

    @abstractmethod
    def resume(self, store: Store, options: SubmitOptions) -> Store:
        """Continue a campaign to its budget, re-running only what had not finished."""

    @abstractmethod
    def kill(self, store: Store) -> None:
        """Stop a campaign: running jobs are ended and recorded, the campaign is marked killed."""

    def refresh(self, store: Store) -> None:
        """Bring the store up to date with the remote side (grid backends); local ones have nothing to do."""

    # ---- defaults of the contract (the backends' own versions replace these) -------------------
    def retry(self, store: Store, options: SubmitOptions) -> Store:
        """Run an ended campaign's failed points again (new attempts of the same points), then resume."""
        store.reopen_failed("waiting for a new attempt (`hpogrid tasks retry`)")
        return self.resume(store, options)

    def list_tasks(self, **filters: Any) -> list[Any]:
        """The backend side's own tasks (grid) as ``tasks show`` rows; a local backend has none."""
        return []

    def task_metadata(self, task_id: int | str) -> list[dict[str, Any]]:
        """Per-job metadata of a grid task that is no local campaign."""
        from ..errors import UsageError

        raise UsageError(f"the {self.name} backend has no per-job metadata (task {task_id})")

    def kill_remote(self, task_id: int | str) -> str | None:
        """Kill a grid task that is no local campaign: the grid's answer, or None (not this backend's)."""
        return None

    def retry_remote(self, task_id: int | str) -> str | None:
        """Retry a grid task that is no local campaign: the grid's answer, or None (not this backend's)."""
        return None
