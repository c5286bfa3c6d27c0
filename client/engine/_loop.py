"""The campaign loop: rounds of the steering propose points, jobs evaluate them, the store keeps the books.

The loop is ask -> run -> tell, iDDS-style:

- a **round** starts (one at a time) when fewer points wait for a job than
  ``max(min_unevaluated, free job slots)`` and the budget (``max_points``) is not spent; it asks for
  ``max(points_per_round, points needed to fill the free slots)``. ``[]`` from the steering ends the
  search; a failed round is retried (``steering_attempts`` in all, iDDS: 1 + 3 retries), then the
  campaign fails with the reason once the jobs already running have ended;
- a **job** evaluates one point in ``jobs/<point>/<attempt>/``; a failed attempt is retried up to
  ``max_attempts`` (PanDA: 5) unless its failure is deterministic (see :func:`judge`); after the
  last, the point is ``failed`` with its reason and the steering sees the grid's failure loss (1e5);
- every transition is committed to the store before the next action, so a driver killed at any
  moment loses nothing: :meth:`Engine.run` on the same store resumes (harvesting a job that wrote
  its ``output.json`` while the driver was dead, re-running only what had not finished).
"""

from __future__ import annotations

import json
import math
import os
import selectors
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from hpogrid.common import metric_of, read_json_or_none
from hpogrid.evaluator.status import Status
from hpogrid.steering.program import MAX_POINTS_PER_ROUND

from ..errors import CampaignError
from ..home import atomic_write_json, atomic_write_text
from ..records import Campaign, CampaignState, Point, PointState, RoundState
from ..store import StorageError, translated
from ._jobs import BaseJobRunner, ForkServerRunner, Job, JobExit, clean_dir
from ._lock import driving
from ._steering import IN_FILE, OUT_FILE, BaseSteering, CommandSteering, WarmSteering

__all__ = ["Engine", "EngineSettings", "Progress", "Outcome", "judge", "DEFAULTS", "NOT_RETRIED"]

#: phpo's, PanDA's and iDDS's defaults (docs/PROTOCOL.md §4, §3, §2).
DEFAULTS = {"points_per_round": 2, "min_unevaluated": 0, "max_attempts": 5, "steering_attempts": 4}
#: Per-job time limit when none is given (seconds; ``--timeout`` overrides it per campaign).
DEFAULT_TIMEOUT = 24 * 3600.0
#: Evaluation statuses that are the same on every attempt for a point: failed at once, not retried.
NOT_RETRIED = frozenset({Status.METRIC_MISSING, Status.METRIC_NAN, Status.METRIC_INF, Status.INPUT_ERROR})


@dataclass
class EngineSettings:
    max_points: int
    max_concurrent: int
    points_per_round: int = DEFAULTS["points_per_round"]
    min_unevaluated: int = DEFAULTS["min_unevaluated"]
    max_attempts: int = DEFAULTS["max_attempts"]
    timeout: float | None = DEFAULT_TIMEOUT  # per job, seconds (the evaluator's --timeout; killed 5 s later)
    steering_attempts: int = DEFAULTS["steering_attempts"]
    steering_timeout: float = 900.0
    kill_grace: float = 5.0
    evaluation_command: list[str] | None = None  # instead of hpogrid-evaluate (argv, run in the job folder)
    max_failures: int = 0  # stop (failed) after this many points failed in a row in one run; 0: never

    @classmethod
    def from_campaign(cls, campaign: Campaign) -> "EngineSettings":
        s = campaign.settings
        return cls(
            max_points=int(campaign.max_points or 0),
            max_concurrent=int(campaign.max_concurrent or 0),
            points_per_round=int(campaign.points_per_round or DEFAULTS["points_per_round"]),
            min_unevaluated=int(campaign.min_unevaluated or 0),
            max_attempts=int(campaign.max_attempts or DEFAULTS["max_attempts"]),
            timeout=s.get("timeout") or DEFAULT_TIMEOUT,
            steering_attempts=int(s.get("steering_attempts") or DEFAULTS["steering_attempts"]),
            steering_timeout=float(s.get("steering_timeout") or 900.0),
            evaluation_command=s.get("evaluation_command"),
            max_failures=int(s.get("max_failures") or 0),
        )


@dataclass
class Progress:
    """What a display shows; handed to ``on_progress`` after every change."""

    campaign_id: str
    total: int
    finished: int = 0
    failed: int = 0
    running: int = 0
    waiting: int = 0
    generated: int = 0
    rounds: int = 0
    best: dict[str, Any] | None = None
    metric_name: str = "loss"
    started: float = field(default_factory=time.time)
    done_at_start: int = 0
    status: CampaignState = CampaignState.RUNNING
    message: str | None = None
    last_failure: str | None = None  # the latest failed point's reason
    failure_reasons: dict[str, int] = field(default_factory=dict)  # reason -> failed points
    seed: int | None = None  # the steering's seed (drawn fresh when none was given)

    @property
    def done(self) -> int:
        return self.finished + self.failed

    def count_failure(self, message: str | None) -> None:
        """One more failed point under its reason (the summary groups failures by reason)."""
        reason = " ".join(str(message or "no reason recorded").split())[:200]
        self.failure_reasons[reason] = self.failure_reasons.get(reason, 0) + 1

    @property
    def elapsed(self) -> float:
        return time.time() - self.started

    @property
    def eta(self) -> float | None:
        new = self.done - self.done_at_start
        if new <= 0:
            return None
        return self.elapsed / new * max(0, self.total - self.done)


@dataclass
class Outcome:
    kind: str  # finished | failed | interrupted
    message: str = ""
    loss: float | None = None
    retryable: bool = True
    status: int | None = None


@dataclass
class _Running:
    job: Job
    started: float
    deadline: float | None
    timed_out: bool = False
    stopping: bool = False


def judge(workdir: Path, exit: JobExit | None, *, timed_out: bool = False, stopping: bool = False,
          timeout: float | None = None) -> Outcome:
    """What one attempt came to, from its ``output.json`` and how its process ended.

    Retry policy: every failure is retried as PanDA does (crash, signal, ``os._exit``, missing
    output.json, timeout, user exception, hpogrid error), except failures that a new attempt at the
    same point would repeat: no metric, NaN or infinite metric, unusable input (statuses 2, 3, 4, 7).
    """
    out = read_json_or_none(workdir / "output.json")
    status = out.get("status") if isinstance(out, dict) else None
    if isinstance(status, int):
        loss = out.get("loss")
        if status == 0 and isinstance(loss, (int, float)) and not isinstance(loss, bool) and math.isfinite(loss):
            return Outcome("finished", str(out.get("message") or ""), float(loss), status=0)
        message = " ".join(str(out.get("message") or "").split())
        try:
            name = Status(status).name
        except ValueError:
            name = "UNKNOWN"
        if status == 0:
            message = f"status 0 without a finite loss (loss={loss!r})"
            name = "BAD_LOSS"
        if timed_out:
            return Outcome("failed", f"timeout: no result within {timeout:g} s ({name}: {message})", status=status)
        if status == Status.TERMINATED and (stopping or exit is None):
            return Outcome("interrupted", message or "terminated", status=status)
        return Outcome("failed", f"{name} (status {status}): {message}".rstrip(": "),
                       retryable=status not in NOT_RETRIED, status=status)
    if stopping:
        return Outcome("interrupted", "stopped")
    if timed_out:
        return Outcome("failed", f"timeout: no result within {timeout:g} s (job killed)")
    if exit is None:
        return Outcome("interrupted", "no output.json")
    if exit.not_started:
        return Outcome("interrupted", exit.error or "the job never started")
    if exit.error:
        return Outcome("failed", exit.error)
    if exit.signal:
        try:
            sig = signal.Signals(exit.signal).name
        except ValueError:
            sig = str(exit.signal)
        return Outcome("failed", f"job killed by signal {sig} without writing output.json")
    if out is not None or (workdir / "output.json").exists():
        return Outcome("failed", f"job exited with status {exit.rc}; output.json is not a valid result")
    return Outcome("failed", f"job exited with status {exit.rc} without writing output.json")


class Engine:
    """Runs one campaign (a store) to its budget.

    ``Engine(store, project_dir).run()`` is the whole API; ``runner`` (how jobs run) and
    ``steering`` (how rounds run) are pluggable, by default a fork server and a warm steering
    worker (or the campaign's own steering command). Usable without the CLI: the grid sandbox
    runs submitted tasks with it. ``run()`` on a store that was interrupted resumes it.
    """

    def __init__(self, store: Any, project_dir: str | Path, *, runner: BaseJobRunner | None = None,
                 steering: BaseSteering | None = None, settings: EngineSettings | None = None,
                 config_path: str | Path | None = None, on_progress: Callable[[Progress], None] | None = None,
                 handle_signals: bool = True, job_env: dict[str, str] | None = None):
        self.store = store
        self.project_dir = Path(project_dir).resolve()
        self.folder = Path(store.path).parent.resolve()
        campaign = store.campaign()
        self.campaign_id = str(campaign.id)
        self.settings = settings or EngineSettings.from_campaign(campaign)
        if config_path is None:
            own = self.folder / "project.json"
            config_path = own if own.is_file() else self.project_dir / "project.json"
        self.config_path = Path(config_path)
        config = read_json_or_none(self.config_path) or {}
        self.opt_space = config.get("search_space")
        hpo = config.get("hpo_config") or {}
        self.mode = hpo.get("mode", campaign.mode or "min")
        self.metric_name = hpo.get("metric", campaign.metric or "loss")
        self.runner = runner or ForkServerRunner(log=self.folder / "forkserver.log", project_dir=self.project_dir)
        command = campaign.settings.get("steering_command")
        self.steering = steering or (CommandSteering(command, env={"HPOGRID_PROJECT_DIR": str(self.project_dir)})
                                     if command else WarmSteering(self.config_path, log=self.folder / "steering.log"))
        self.on_progress = on_progress
        self.handle_signals = handle_signals
        self.job_env = {"HPOGRID_PROJECT_DIR": str(self.project_dir), **(job_env or {})}
        self._stop: tuple[CampaignState, str] | None = None  # (campaign status, message)
        self._force = False
        self._running: dict[str, _Running] = {}
        self._queue: list[int] = []  # proposed points, in launch order
        self._attempts: dict[int, int] = {}
        self._failures: dict[int, int] = {}
        self._params: dict[int, dict[str, Any]] = {}
        self._round: tuple[int, int, int, float] | None = None  # (round id, attempt, n, started)
        self._exhausted = False
        self._steering_error: str | None = None
        self._failed_in_a_row = 0  # points failed one after the other in this run (max_failures)
        self.progress = Progress(self.campaign_id, self.settings.max_points, metric_name=self.metric_name,
                                 seed=campaign.settings.get("seed"))

    # ---- public ------------------------------------------------------------------------
    def request_stop(self, message: str = "interrupted",
                     status: CampaignState | str = CampaignState.INTERRUPTED) -> None:
        """Stop soon: running jobs are terminated and go back to proposed (safe from a signal handler)."""
        if self._stop is not None:
            self._force = True
        self._stop = (CampaignState(status), message)

    def run(self) -> Progress:
        """Run (or resume) the campaign until its budget is spent, the search ends, or a stop.
        One driver per campaign: raises CampaignError when another process drives it (``_lock``)."""
        with driving(self.folder, self.campaign_id):
            return self._run()

    def _run(self) -> Progress:
        previous = self._install_signals()
        status, message = CampaignState.FAILED, "the engine stopped on an error"
        try:
            self._begin()
            self._loop()
            status, message = self._final_status()
        except BaseException as exc:
            status, message = CampaignState.FAILED, f"engine error: {type(exc).__name__}: {exc}"
            if isinstance(exc, KeyboardInterrupt):
                status, message = CampaignState.INTERRUPTED, "interrupted"
            raise
        finally:
            self._shutdown(status, message)
            self._restore_signals(previous)
        return self.progress

    # ---- start / resume ----------------------------------------------------------------
    def _begin(self) -> None:
        campaign = self.store.campaign()
        now = time.time()
        self.store.update_campaign(status=CampaignState.RUNNING, pid=os.getpid(), started=campaign.started or now,
                                   ended=None, message=None)
        self.store.keep_reserve()  # a full disk later: the campaign's end can still be recorded
        for r in self.store.rounds():
            if r.status is RoundState.RUNNING:
                self.store.end_round(r.id, RoundState.LOST, n_proposed=r.n_proposed or 0, attempts=r.attempts or 0,
                                     message="the driver stopped during this round")
            elif r.status is RoundState.FINISHED and (r.n_proposed or 0) == 0:
                self._exhausted = True
        self.runner.open()  # (a fork server first waits for the one of a dead driver to be gone)
        points = self.store.points()
        for p in points:
            if p.state not in (PointState.FINISHED, PointState.FAILED):
                self._attempts[p.id] = p.attempts
            if p.state is PointState.RUNNING:
                self._recover(p)
        del points
        for p in self.store.points([PointState.PROPOSED]):
            self._queue.append(p.id)
            self._params[p.id] = p.params
            if p.attempts:
                self._failures[p.id] = self._count_failures(p.id)
        c = self.store.counts()
        self.progress.finished, self.progress.failed = c[PointState.FINISHED], c[PointState.FAILED]
        self.progress.generated = sum(c.values())
        self.progress.done_at_start = self.progress.done
        self.progress.rounds = len(self.store.rounds())
        best = self.store.best()
        self.progress.best = _best_view(best, self.mode) if best else None
        for p in self.store.points([PointState.FAILED]):
            self.progress.count_failure(p.message)
        self._publish()

    def _recover(self, p: Point) -> None:
        """A point left running by a driver that died: follow its job if it still runs (jobs outlive
        their driver), else harvest its result, or requeue it."""
        attempt = p.attempts
        workdir = Path(p.job_dir) if p.job_dir else self._job_dir(p.id, attempt)
        self._params[p.id] = p.params
        self._failures[p.id] = self._count_failures(p.id, exclude=attempt)
        job = self._job(p.id, attempt, workdir)
        if self.runner.adopt(job):
            started = p.started or time.time()
            deadline = (time.monotonic() + started - time.time() + self.settings.timeout + self.settings.kill_grace
                        if self.settings.timeout else None)
            self._running[job.key] = _Running(job, started, deadline)
            return
        outcome = judge(workdir, None)
        if outcome.kind == "interrupted" and not (workdir / "output.json").exists():
            outcome.message = "the driver stopped while the job ran; no output.json"
        self._record(p.id, attempt, workdir, outcome, recovered=True)

    def _count_failures(self, point_id: int, exclude: int | None = None) -> int:
        n = 0
        folder = self.folder / "jobs" / str(point_id)
        if folder.is_dir():
            attempts = sorted((sub for sub in folder.iterdir() if sub.name.isdigit()), key=lambda sub: int(sub.name))
            for sub in attempts:
                if sub.name == str(exclude):
                    continue
                marker = read_json_or_none(sub / "outcome.json")
                if isinstance(marker, dict) and marker.get("outcome") == "failed":
                    # a final failure ends a series of attempts: `tasks retry` starts a new one
                    n = 0 if marker.get("final") else n + 1
        return n

    # ---- the loop ----------------------------------------------------------------------
    def _loop(self) -> None:
        sel = selectors.DefaultSelector()
        registered: dict[int, str] = {}
        try:
            while True:
                for ex in self.runner.poll():
                    self._on_exit(ex)
                self._check_deadlines()
                self._poll_round()
                if self._stop is not None:
                    return
                self._maybe_start_round()
                self._launch()
                if self._finished():
                    return
                self._wait(sel, registered)
        finally:
            sel.close()

    def _wait(self, sel: selectors.BaseSelector, registered: dict[int, str]) -> None:
        wanted = {}
        timeout = 0.25
        fd = self.runner.fileno()
        if fd is not None:
            wanted[fd] = "runner"
        elif self._running:
            timeout = 0.01
        if self._round is not None:
            fd = self.steering.fileno()
            if fd is not None:
                wanted[fd] = "steering"
            else:
                timeout = min(timeout, 0.01)
        for fd in list(registered):
            if fd not in wanted:
                try:
                    sel.unregister(fd)
                except (KeyError, ValueError, OSError):
                    pass
                del registered[fd]
        for fd, what in wanted.items():
            if fd not in registered:
                sel.register(fd, selectors.EVENT_READ, what)
                registered[fd] = what
        deadlines = [r.deadline for r in self._running.values() if r.deadline is not None and not r.timed_out]
        if deadlines:
            timeout = max(0.0, min(timeout, min(deadlines) - time.monotonic()))
        if registered:
            sel.select(timeout)
        else:
            time.sleep(timeout)

    def _finished(self) -> bool:
        if self._running or self._round is not None or self._queue:
            return False
        if self._steering_error is not None or self._exhausted:
            return True
        return self.progress.generated >= self.settings.max_points

    def _final_status(self) -> tuple[CampaignState, str | None]:
        if self._stop is not None:
            return self._stop
        if self._steering_error is not None:
            return CampaignState.FAILED, self._steering_error
        p = self.progress
        message = f"{p.finished} finished, {p.failed} failed of {p.generated} points"
        if self._exhausted and p.generated < self.settings.max_points:
            message += " (the steering ended the search)"
        return CampaignState.FINISHED, message

    # ---- rounds ------------------------------------------------------------------------
    def _maybe_start_round(self) -> None:
        if self._round is not None or self._exhausted or self._steering_error is not None:
            return
        left = self.settings.max_points - self.progress.generated
        if left <= 0:
            return
        free = self.settings.max_concurrent - len(self._running)
        waiting = len(self._queue)
        if waiting >= max(self.settings.min_unevaluated, free, 1 if not self._running else 0):
            return
        want = max(self.settings.points_per_round, free - waiting, self.settings.min_unevaluated - waiting)
        want = min(want, MAX_POINTS_PER_ROUND)  # the steering's own cap on one round (docs/CONTRACTS.md)
        self._start_round(self.store.start_round(min(want, left)), 1, min(want, left))

    def _start_round(self, round_id: int, attempt: int, n: int) -> None:
        folder = self.folder / "rounds" / str(round_id)
        folder.mkdir(parents=True, exist_ok=True)
        for name in (OUT_FILE,):
            try:
                (folder / name).unlink()
            except FileNotFoundError:
                pass
        atomic_write_text(folder / IN_FILE, self._history_text())
        self._round = (round_id, attempt, n, time.monotonic())
        self.progress.rounds = round_id
        self.steering.begin(folder, n, self.settings.max_points)

    def _poll_round(self) -> None:
        if self._round is None:
            return
        round_id, attempt, n, t0 = self._round
        end = self.steering.poll()
        if end is None:
            if time.monotonic() - t0 < self.settings.steering_timeout:
                return
            self.steering.cancel()
            error = f"the steering did not answer within {self.settings.steering_timeout:g} s"
        else:
            error = end.error if not end.ok else None
        folder = self.folder / "rounds" / str(round_id)
        points: list[dict[str, Any]] = []
        if error is None:
            points, error = self._read_out(folder / OUT_FILE, n)
        if error is not None:
            self._round = None
            if attempt < self.settings.steering_attempts and self._stop is None:
                with open(folder / "errors", "a", encoding="utf-8") as f:
                    f.write(f"attempt {attempt}: {error}\n")
                self._start_round(round_id, attempt + 1, n)
                return
            self.store.end_round(round_id, RoundState.FAILED, attempts=attempt, message=error)
            self._steering_error = f"the steering failed {attempt} times in round {round_id}: {error}"
            return
        ids = self.store.add_points(points, round_id=round_id) if points else []
        self.store.end_round(round_id, RoundState.FINISHED, n_proposed=len(ids), attempts=attempt,
                             message=None if ids else "the steering returned [] (search over)")
        self.store.checkpoint()  # a safe point: the WAL goes into store.db (docs/CONTRACTS.md)
        self._round = None
        if not ids:
            self._exhausted = True
        for pid, params in zip(ids, points):
            self._queue.append(pid)
            self._params[pid] = params
            self._attempts[pid] = 0
        self.progress.generated += len(ids)
        if self.progress.generated > 1000:
            try:
                (folder / IN_FILE).unlink()  # large and rebuilt from the store; %OUT is kept
            except FileNotFoundError:
                pass
        self._publish()

    def _history_text(self) -> str:
        """%IN as iDDS writes it: every point so far, ``[params, loss]`` (null = pending; a failed point
        without a loss = 1e5), from ``Store.history_json()``."""
        return '{"points": ' + self.store.history_json() + ', "opt_space": ' + json.dumps(self.opt_space) + "}\n"

    def _read_out(self, path: Path, n: int) -> tuple[list[dict[str, Any]], str | None]:
        if not path.exists():
            return [], f"the steering wrote no {OUT_FILE}"
        data = read_json_or_none(path)
        if not isinstance(data, list) or not all(isinstance(p, dict) for p in data):
            return [], f"{OUT_FILE} is not a JSON list of point objects"
        return data[:n], None

    # ---- jobs --------------------------------------------------------------------------
    def _job_dir(self, point_id: int, attempt: int) -> Path:
        return self.folder / "jobs" / str(point_id) / str(attempt)

    def _launch(self) -> None:
        launched = False
        while self._queue and len(self._running) < self.settings.max_concurrent and self._stop is None:
            pid = self._queue.pop(0)
            attempt = self._attempts.get(pid, 0) + 1
            workdir = self._job_dir(pid, attempt)
            clean_dir(workdir)  # never recorded as started: whatever is there is stale
            with translated(workdir / "input.json"), open(workdir / "input.json", "w", encoding="utf-8") as f:
                json.dump(self._params[pid], f)  # a full disk: one line naming the file
            recorded = self.store.start_point(pid, host=self.runner.host if self.runner.local else None,
                                              job_dir=str(workdir))
            self._attempts[pid] = recorded
            if recorded != attempt:  # another driver touched this point: a bug, not a user error
                raise CampaignError(f"point {pid}: expected attempt {attempt}, the store says {recorded}")
            job = self._job(pid, attempt, workdir)
            self.runner.start(job)  # (the first job waits for the fork server's imports: not the job's time)
            deadline = time.monotonic() + self.settings.timeout + self.settings.kill_grace if self.settings.timeout else None
            self._running[job.key] = _Running(job, time.time(), deadline)
            launched = True
        if launched:
            self._publish()

    def _job(self, pid: int, attempt: int, workdir: Path) -> Job:
        evaluate = ["--project", str(self.project_dir), "--meta", "meta.json"]
        if self.settings.timeout:
            evaluate += ["--timeout", f"{self.settings.timeout:g}"]
        return Job(f"{pid}/{attempt}", pid, attempt, workdir, evaluate=evaluate,
                   argv=list(self.settings.evaluation_command) if self.settings.evaluation_command else None,
                   env={**self.job_env, "HPOGRID_POINT_ID": str(pid), "HPOGRID_ATTEMPT": str(attempt)})

    def _check_deadlines(self) -> None:
        now = time.monotonic()
        for key, r in self._running.items():
            if r.deadline is not None and not r.timed_out and now >= r.deadline:
                r.timed_out = True
                self.runner.kill(key, signal.SIGKILL)

    def _on_exit(self, ex: JobExit) -> None:
        r = self._running.pop(ex.key, None)
        if r is None:
            return
        outcome = judge(r.job.workdir, ex, timed_out=r.timed_out, stopping=r.stopping, timeout=self.settings.timeout)
        self._record(r.job.point_id, r.job.attempt, r.job.workdir, outcome, started=r.started, host=ex.host)
        self.progress.running = len(self._running)

    def _record(self, point_id: int, attempt: int, workdir: Path, outcome: Outcome, *, started: float | None = None,
                host: str | None = None, recovered: bool = False) -> None:
        """One attempt's outcome into the store (marker file first, then the committed transition)."""
        failures = self._failures.get(point_id, 0) + (1 if outcome.kind == "failed" else 0)
        final = outcome.kind == "finished" or (outcome.kind == "failed" and (
            not outcome.retryable or failures >= self.settings.max_attempts))
        try:
            atomic_write_json(workdir / "outcome.json", {"outcome": outcome.kind, "message": outcome.message,
                                                         "final": final, "recovered": recovered})
        except OSError:
            pass
        if outcome.kind == "finished":
            meta = read_json_or_none(workdir / "meta.json")
            reports = meta.get("results") if isinstance(meta, dict) and isinstance(meta.get("results"), list) else None
            if reports is not None and len(reports) > 200:
                reports = reports[-200:]
            metric = metric_of(outcome.loss, self.mode)
            self.store.finish_point(point_id, loss=outcome.loss, metric=metric, reports=reports,
                                    message=outcome.message, host=host, started=started)
            self.progress.finished += 1
            self._failed_in_a_row = 0
            best = self.progress.best
            if best is None or outcome.loss < best["loss"]:
                self.progress.best = {"id": point_id, "loss": outcome.loss, "metric": metric,
                                      "params": self._params.get(point_id) or self.store.point(point_id).params}
            self._forget(point_id)
        elif outcome.kind == "failed" and final:
            why = outcome.message if not outcome.retryable or self.settings.max_attempts == 1 else \
                f"{outcome.message} (failed {failures} of {self.settings.max_attempts} attempts)"
            self.store.fail_point(point_id, why, host=host, started=started)
            self.progress.failed += 1
            self.progress.last_failure = why
            self.progress.count_failure(why)
            self._forget(point_id)
            self._failed_in_a_row += 1
            limit = self.settings.max_failures
            if limit and self._failed_in_a_row >= limit and self._stop is None:
                self.request_stop(f"stopped after {self._failed_in_a_row} points failed in a row (max_failures "
                                  f"{limit}); last reason: {why}", status=CampaignState.FAILED)
        else:
            if outcome.kind == "failed":
                self._failures[point_id] = failures
                why = f"attempt {attempt} failed: {outcome.message}; retrying"
            else:
                why = f"attempt {attempt} interrupted: {outcome.message}"
            self.store.requeue_point(point_id, why)
            if not recovered:  # at resume the queue is rebuilt from the store
                self._queue.insert(0, point_id)
        self._publish()

    def _forget(self, point_id: int) -> None:
        """A final point needs no state in the driver (memory stays flat over 10,000s of points)."""
        self._params.pop(point_id, None)
        self._attempts.pop(point_id, None)
        self._failures.pop(point_id, None)

    # ---- stop --------------------------------------------------------------------------
    def _shutdown(self, status: str, message: str | None) -> None:
        try:
            if self._running:
                for key, r in self._running.items():
                    r.stopping = True
                    self.runner.kill(key, signal.SIGKILL if self._force else signal.SIGTERM)
                deadline = time.monotonic() + self.settings.kill_grace + 3
                while self._running and time.monotonic() < deadline:
                    for ex in self.runner.poll():
                        self._on_exit(ex)
                    time.sleep(0.02)
                for key, r in list(self._running.items()):
                    self._record(r.job.point_id, r.job.attempt, r.job.workdir,
                                 Outcome("interrupted", "the job did not stop in time"))
                self._running.clear()
        finally:
            try:
                self.runner.close()
            finally:
                self.steering.close()
                if self._round is not None:
                    try:
                        self.store.end_round(self._round[0], RoundState.INTERRUPTED, attempts=self._round[1], message=message)
                    except StorageError:  # a full disk: the campaign's status below comes first
                        pass
                    self._round = None
                if status != CampaignState.FINISHED and self._stop is not None:
                    if self.store.campaign().settings.get("kill_requested"):
                        status, message = CampaignState.KILLED, "killed by `hpogrid tasks kill`"
                self.store.update_campaign(status=status, ended=time.time(), message=message)
                self.store.release_reserve()
                self.store.checkpoint()
                self.progress.status, self.progress.message = status, message
                self.progress.running = 0
                self.progress.waiting = len(self._queue)
                self._publish(force=True)

    def _install_signals(self) -> dict[int, Any] | None:
        if not self.handle_signals or threading.current_thread() is not threading.main_thread():
            return None
        previous = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, self._on_signal)
        return previous

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self.request_stop(f"interrupted by {signal.Signals(signum).name}")

    @staticmethod
    def _restore_signals(previous: dict[int, Any] | None) -> None:
        for sig, handler in (previous or {}).items():
            signal.signal(sig, handler)

    def _publish(self, force: bool = False) -> None:
        self.progress.running = len(self._running)
        self.progress.waiting = len(self._queue)
        if self.on_progress is not None:
            self.on_progress(self.progress)


def _best_view(point: Point, mode: str) -> dict[str, Any]:
    metric = point.metric
    if metric is None and point.loss is not None:
        metric = metric_of(point.loss, mode)
    return {"id": point.id, "loss": point.loss, "metric": metric, "params": point.params}
