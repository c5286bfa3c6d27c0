"""The backend contract: where a campaign's rounds and jobs run.

Every way of running a campaign (``embedded``, ``ray``, ``local_run``, ``panda``, ``idds``) is a
:class:`Backend`. A backend's public methods keep the books in the campaign store
(``hpogrid.client.store``); the API and the CLI call only the methods below, never a backend's own
extras. ``submit_idds`` picks a backend by name (``--backend`` or the grid config's ``backend``);
``tasks`` and ``report`` act on a campaign through the backend that ran it.

=================  ====================================================================
method             what it does (default, where the contract gives one)
=================  ====================================================================
submit             start a new campaign of a project; returns its (registered) store
plan               the dry run: what ``submit`` would run, as a :class:`Plan`; starts nothing
resume             continue a campaign to its budget, re-running only what had not finished
kill               stop a campaign (running jobs ended and recorded)
retry              reopen the failed points of an ended campaign, then ``resume``
refresh            bring the store up to date with the remote side (default: nothing, local)
list_tasks         the backend side's own tasks (grid), as :class:`RemoteTask` (default: none)
task_metadata      a grid task's per-job metadata (default: :class:`UsageError`)
kill_remote        kill a grid task that is no local campaign: its answer, or None (not ours)
retry_remote       retry such a task, likewise
results            the campaign's points (default: ``store.points()``)
run                drive a campaign in this process to its end (``driven_here`` backends; default: UsageError)
=================  ====================================================================

``runs_here`` is the one place that says which backends run on this machine (their store is
written as they go: nothing to refresh, no remote task list); ``driven_here`` says which have a
driver process here (a dead driver: the campaign is interrupted).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, ClassVar

from ..errors import UsageError
from ..store import Store

__all__ = ["SubmitOptions", "GridOptions", "Plan", "RemoteTask", "Backend", "BaseBackend", "ENDED_STATES"]

#: Campaign states after which nothing runs: ``retry`` reopens the failed points of these.
ENDED_STATES = ("finished", "failed", "killed")


@dataclass
class GridOptions:
    """The grid flags of ``submit_idds`` (phpo's options; the idds backend's server and image)."""

    gpu: bool = False  # evaluation jobs on GPUs (architecture #&nvidia)
    architecture: str | None = None  # phpo --architecture
    checkpoint_save: str | None = None  # phpo --checkPointToSave
    checkpoint_load: str | None = None  # phpo --checkPointToLoad
    checkpoint_interval: int | None = None  # phpo --checkPointInterval, minutes
    max_evaluation_jobs: int | None = None  # phpo --maxEvaluationJobs
    steering_container: str | None = None  # the steering image iDDS runs
    idds_host: str | None = None  # backend idds: the iDDS server URL


@dataclass
class SubmitOptions:
    """What ``submit_idds`` (and ``local_run``) let a user set beside the project's configs."""

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
    grid: GridOptions = field(default_factory=GridOptions)
    #: hpo_config fields for this run only (``--algorithm``, ``--num_trials``, ...)
    overrides: dict[str, Any] | None = None
    #: the pre-flight's :class:`~hpogrid.client.preflight.RunPlan`, when the caller ran it already
    run_plan: Any = None
    #: while attached: a callback taking the engine's ``Progress``, or ``"plain"``/``"live"``
    progress: Callable[..., Any] | str | None = None
    #: ``local_run`` only: Ray Tune's resources and output
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    num_cpus: int | None = None
    verbose: bool | None = None
    echo: Callable[[str], None] | None = None  # where a backend's own lines go (default: print)


@dataclass(frozen=True)
class Plan:
    """What ``submit`` would run, nothing started or written: the dry run of every backend.

    ``details`` is what ``submit_idds --dry-run`` prints (JSON): the campaign row and commands
    (local backends), the PanDA task parameters and phpo commands (panda), the iDDS work (idds).
    """

    backend: str
    project: str
    max_points: int  # the points budget
    details: dict[str, Any] = field(default_factory=dict)
    commands: dict[str, str] = field(default_factory=dict)  # e.g. steering_exec, evaluation_exec
    task: Any = None  # panda: the ``GridTask``; idds: the work spec
    sort_keys: bool = False  # the JSON's keys sorted (panda prints its task parameters so)

    def describe(self) -> dict[str, Any]:
        """What ``--dry-run`` prints."""
        return self.details

    def as_json(self) -> str:
        """``--dry-run``'s output: :meth:`describe` as indented JSON."""
        return json.dumps(self.details, indent=2, sort_keys=self.sort_keys)


@dataclass(frozen=True)
class RemoteTask:
    """One task a backend knows remotely (a PanDA task), as ``hpogrid tasks show`` lists it."""

    jeditaskid: int | str
    taskname: str
    status: str
    progress: float = 0.0
    remote_id: str | None = None
    message: str | None = None

    def as_row(self) -> dict[str, Any]:
        """The ``tasks show`` row (columns a local campaign has and a remote task lacks are None)."""
        row = asdict(self)
        row.update(done=None, failed=None, total=None, best_metric=None, metric=None, start=None, end=None,
                   path=None)
        return row


class Backend(ABC):
    """One way of running campaigns. Instances are cheap; state lives in the store."""

    name: ClassVar[str] = ""
    #: True: the campaign runs on this machine and its store is written as it goes (nothing to
    #: refresh, no remote tasks); False: the store mirrors a remote side (``refresh`` reads it)
    runs_here: ClassVar[bool] = True
    #: True: a process on this machine drives the campaign (its pid in the store); when that
    #: process is gone, the campaign is interrupted and ``retry`` continues it
    driven_here: ClassVar[bool] = True

    @abstractmethod
    def submit(self, project_name: str, options: SubmitOptions) -> Store:
        """Start a new campaign of the project; returns its (registered) store.

        Attached backends run to the end before returning; with ``options.detach`` they return as
        soon as the campaign runs in the background.
        """

    @abstractmethod
    def plan(self, project_name: str, options: SubmitOptions) -> Plan:
        """What ``submit`` would run (the same pre-flight); nothing is started, written or contacted."""

    @abstractmethod
    def resume(self, store: Store, options: SubmitOptions) -> Store:
        """Continue a campaign to its budget, re-running only what had not finished."""

    @abstractmethod
    def kill(self, store: Store) -> None:
        """Stop a campaign: running jobs are ended and recorded, the campaign is marked killed."""

    def retry(self, store: Store, options: SubmitOptions) -> Store:
        """Continue a campaign; on an ended one, its failed points run again as new attempts first.

        A finished campaign without failed points is returned as it is (nothing to retry).
        """
        from ..engine import check_resumable

        campaign = store.campaign()
        if campaign["status"] in ENDED_STATES:
            check_resumable(store)
            reopened = store.reopen_failed("waiting for a new attempt (`hpogrid tasks retry`)")
            if campaign["status"] == "finished" and not reopened:
                return store
        return self.resume(store, options)

    def refresh(self, store: Store) -> None:
        """Bring the store up to date with the remote side (grid backends); local ones have nothing to do."""

    def list_tasks(self, **filters: Any) -> list[RemoteTask]:
        """The tasks this backend knows remotely (``tasks show``); a local backend has none."""
        return []

    def task_metadata(self, task_id: int | str) -> list[dict[str, Any]]:
        """Per-job metadata of a grid task (``[{"PandaID": ..., "metaData": {...}}, ...]``)."""
        raise UsageError(f"the {self.name} backend has no grid tasks (task {str(task_id)[:40]})")

    def kill_remote(self, task_id: int | str) -> str | None:
        """Kill a grid task that is no local campaign: the grid's answer, or None (not this backend's)."""
        return None

    def retry_remote(self, task_id: int | str) -> str | None:
        """Retry a grid task that is no local campaign: the grid's answer, or None (not this backend's)."""
        return None

    def results(self, store: Store) -> list[Any]:
        """The campaign's points, as the store holds them (after :meth:`refresh` for grid backends)."""
        return store.points()

    def run(self, store: Store, options: SubmitOptions) -> Store:
        """Drive the campaign in this process until it ends (the background driver of ``--detach``);
        only backends ``driven_here`` have a driver."""
        raise UsageError(f"the {self.name} backend has no background driver")


#: The old name, kept for one release.
BaseBackend = Backend

