"""What the sandbox runs: PanDA tasks, their iDDS requests, their jobs. HTTP lives in ``server``.

The sandbox has its own small scheduler, written from the real services' rules (docs/GRIDSIM.md),
and shares nothing with hpogrid's engine, so it can catch the engine's mistakes:

- iDDS (an HPO task's request, ``atlashpowork`` 2.6.21): a steering round runs only when no point
  of the request is still New (unevaluated); it asks for ``num_points_per_iteration`` points (10 by
  default), fewer when ``max_points - finished`` is smaller, where finished = points with a loss;
  when that is 0 the request is Finished. A steering run that fails, writes no/unparsable output or
  an empty list is retried 3 times, then the request Failed.
- PanDA (JEDI + the pilot): up to ``nEvents`` (phpo's nParallelEvaluation) evaluation jobs at once,
  one New point each, handed to the job as an event range (``getEventRanges``); the job wrapper
  (``wrapper``, runHPO's flow) fetches the point from iDDS and PUTs its loss over HTTP. A job that
  ends without finishing its event is a failed attempt; after 5, PanDA gives iDDS loss 1e5.
- prun tasks: the jobs JEDI makes from ``nEvents``/``nEventsPerJob`` or from the input dataset's
  files (``nFilesPerJob``), each running the wrapper's runGen flow, PanDA's 5 attempts unless
  ``disableAutoRetry``.
"""

from __future__ import annotations

import datetime as _dt
import enum
import json
import math
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hpogrid.common import FAILURE_LOSS, read_json_or_none

from .commands import JobSlot, input_streams, job_parameters, job_spec, local_steering
from .contents import ContentStatus, Contents, Point

__all__ = ["Simulation", "TaskError", "DEFAULT_SITES", "FIRST_TASK_ID", "GRID_ATTEMPTS", "FAILURE_LOSS"]

GRID_ATTEMPTS = 5  # PanDA's attempts per point / job
STEERING_RETRIES = 3  # iDDS retries a failed steering run this many times
FIRST_TASK_ID = 10**7 + 1  # pbook reads ids below 10**7 as request ids
FIRST_PANDA_ID = 6 * 10**9
PANDA_CACHE = "https://pandacache.cern.ch"  # phpo writes it as the jobs' --sourceURL; the sandbox is every cache
POLL = 0.1

DEFAULT_SITES: dict[str, dict[str, Any]] = {
    "ANALY_MANC_GPU_TEST": {"resource_type": "GPU", "corecount": 8, "maxmemory": 32000},
    "ANALY_MWT2_GPU": {"resource_type": "GPU", "corecount": 8, "maxmemory": 64000},
    "ANALY_BNL_GPU_ARC": {"resource_type": "GPU", "corecount": 16, "maxmemory": 64000},
    "ANALY_QMUL_GPU_TEST": {"resource_type": "GPU", "corecount": 4, "maxmemory": 16000, "status": "test"},
    "ANALY_CERN": {"resource_type": "SCORE", "corecount": 1, "maxmemory": 2000},
    "ANALY_LOCAL_SANDBOX": {"resource_type": "SCORE", "corecount": 2, "maxmemory": 4000},
}


def site_table(overrides: dict[str, dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """schedconfig-like rows (the fields ``hpogrid sites`` shows)."""
    out = {}
    for name, row in (overrides or DEFAULT_SITES).items():
        base = {"panda_queue": name, "nickname": name, "siteid": name, "type": "analysis", "state": "ACTIVE",
                "status": "online", "maxinputsize": 14336, "maxtime": 172800, "corepower": 10.0,
                "catchall": "", "resource_type": "SCORE", "corecount": 1, "maxmemory": 2000}
        base.update(row)
        out[name] = base
    return out


class TaskError(Exception):
    """A request the sandbox refuses: ``code`` is PanDA's return code, ``message`` its text."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


class TaskKind(str, enum.Enum):
    HPO = "hpo"  # phpo: hpoWorkflow
    RUN = "run"  # prun
    EXTERNAL = "external"  # a request POSTed to /idds/request without a PanDA task


class TaskStatus(str, enum.Enum):
    """JEDI task states the sandbox uses."""

    REGISTERED = "registered"
    READY = "ready"
    RUNNING = "running"
    ABORTING = "aborting"
    ABORTED = "aborted"
    DONE = "done"
    FINISHED = "finished"
    FAILED = "failed"
    BROKEN = "broken"


FINAL = {TaskStatus.ABORTED, TaskStatus.DONE, TaskStatus.FINISHED, TaskStatus.FAILED, TaskStatus.BROKEN}
RETRIABLE = {TaskStatus.ABORTED, TaskStatus.FINISHED, TaskStatus.FAILED, TaskStatus.BROKEN}


class RequestState(str, enum.Enum):
    """iDDS's side of an HPO task."""

    RUNNING = "running"
    FINISHED = "finished"  # no more points to generate
    FAILED = "failed"  # the steering failed 1 + STEERING_RETRIES times


class JobStatus(str, enum.Enum):
    DEFINED = "defined"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0, tzinfo=None)


@dataclass
class PandaJob:
    panda_id: int
    serial: int
    attempt: int
    workdir: Path
    point_id: int | None = None  # HPO: the event range's point
    segment_id: int | None = None
    files: dict[str, list[str]] = field(default_factory=dict)
    status: JobStatus = JobStatus.DEFINED
    proc: subprocess.Popen | None = None
    event_given: bool = False
    event_status: str | None = None

    @property
    def event_id(self) -> str:
        # runHPO reads the point id as the 4th field (its dry-run id has this shape)
        return f"{self.task_id}-{self.panda_id}-0-{self.point_id}-{self.attempt}"

    task_id: int = 0


@dataclass
class Steering:
    """iDDS's bookkeeping of one request (ATLASHPOWork)."""

    state: RequestState = RequestState.RUNNING
    points_to_generate: int = 10
    retries: int = 0
    rounds: int = 0
    proc: subprocess.Popen | None = None
    round_dir: Path | None = None
    error: str | None = None


@dataclass
class Task:
    task_id: int
    params: dict[str, Any]
    user: str
    folder: Path
    kind: TaskKind
    req_id: int
    status: TaskStatus = TaskStatus.REGISTERED
    created: _dt.datetime = field(default_factory=_now)
    modified: _dt.datetime = field(default_factory=_now)
    request_id: int | None = None
    thread: threading.Thread | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    error: str | None = None
    contents: Contents | None = None  # HPO: iDDS's points
    steering: Steering | None = None
    jobs: list[PandaJob] = field(default_factory=list)

    def touch(self, status: TaskStatus | None = None) -> None:
        if status is not None:
            self.status = status
        self.modified = _now()

    @property
    def segmented(self) -> bool:
        return bool(self.params.get("segmentedWork"))


class Simulation:
    """Every task of the sandbox; thread-safe (HTTP threads call in, one thread runs each task)."""

    def __init__(self, state_dir: Path, *, nickname: str = "tester", datasets: dict[str, list[str]] | None = None,
                 sites: dict[str, dict[str, Any]] | None = None, base_url: str = ""):
        self.state = Path(state_dir)
        self.cache = self.state / "cache"
        self.cache.mkdir(parents=True, exist_ok=True)
        (self.state / "tasks").mkdir(exist_ok=True)
        self.nickname = nickname
        self.datasets = dict(datasets or {})
        self.sites = site_table(sites)
        self.base_url = base_url  # set by the server once it has its port
        self.tasks: dict[int, Task] = {}
        self.requests: dict[int, int] = {}  # iDDS request_id -> workload_id (jediTaskID)
        self.external: dict[int, Task] = {}  # requests posted to /idds/request directly (no PanDA task)
        self.lock = threading.RLock()
        self._next_task = FIRST_TASK_ID
        self._next_request = 1
        self._next_req_id = 1
        self._next_panda = FIRST_PANDA_ID

    # ---- PanDA ------------------------------------------------------------------------
    def submit(self, params: dict[str, Any], user: str | None) -> int:
        if not isinstance(params, dict) or not params.get("taskName") or not params.get("jobParameters"):
            raise TaskError("task parameters need taskName and jobParameters", code=4)
        hpo = bool(params.get("hpoWorkflow"))
        if hpo and not isinstance(params.get("hpoRequestData"), dict):
            raise TaskError("an hpoWorkflow task needs hpoRequestData", code=4)
        try:
            spec = job_spec(params)
        except ValueError as exc:
            raise TaskError(str(exc), code=4) from None
        if not spec.sandbox or not (self.cache / spec.sandbox).is_file():
            raise TaskError(f"sandbox {spec.sandbox} is not in the cache; upload it first", code=4)
        for dataset in input_streams(params["jobParameters"]).values():
            if dataset.rstrip("/") not in self.datasets:
                raise TaskError(f"input dataset {dataset} does not exist", code=4)
        with self.lock:
            if params.get("uniqueTaskName") and any(t.params.get("taskName") == params["taskName"]
                                                    for t in self.tasks.values()):
                raise TaskError(f"task name {params['taskName']} is already used", code=2)
            tid = self._next_task
            self._next_task += 1
            folder = self.state / "tasks" / str(tid)
            folder.mkdir(parents=True)
            (folder / "task_parameters.json").write_text(json.dumps(params, indent=1))
            task = Task(tid, params, user or self.nickname, folder, TaskKind.HPO if hpo else TaskKind.RUN,
                        req_id=self._next_req_id)
            self._next_req_id += 1
            if hpo:
                task.request_id = self._next_request
                self.requests[self._next_request] = tid
                self._next_request += 1
                task.contents = Contents(folder / "contents.db")
                hrd = params["hpoRequestData"]
                task.steering = Steering(points_to_generate=int(hrd.get("num_points_per_iteration") or 10))
            else:
                task.jobs = self._run_jobs_of(task)
            self.tasks[tid] = task
        self._start(task)
        return tid

    def task(self, task_id: Any) -> Task:
        try:
            tid = int(task_id)
        except (TypeError, ValueError):
            raise TaskError(f"jediTaskID={task_id!r} is not a number", code=101) from None
        with self.lock:
            task = self.tasks.get(tid)
        if task is None:
            raise TaskError(f"jediTaskID={tid} not found", code=2)
        return task

    def kill(self, task_id: Any) -> str:
        task = self.task(task_id)
        with self.lock:
            if task.status in FINAL:
                raise TaskError(f"Command rejected: the kill command is not accepted if the task is in "
                                f"{task.status.value} status", code=4)
            task.touch(TaskStatus.ABORTING)
            task.stop.set()
        return f"command=kill is registered for task ID {task.task_id}. will be executed in a few minutes"

    def retry(self, task_id: Any) -> str:
        task = self.task(task_id)
        with self.lock:
            if task.status not in RETRIABLE:
                if task.status in (TaskStatus.RUNNING, TaskStatus.READY, TaskStatus.REGISTERED):
                    raise TaskError(task.status.value, code=5)  # JEDI's answer for a user task still running
                raise TaskError(f"Command rejected: the retry command is not accepted if the task is in "
                                f"{task.status.value} status", code=4)
            if task.thread is not None and task.thread.is_alive():
                raise TaskError(f"jediTaskID={task.task_id} is still stopping; retry in a moment", code=4)
            task.stop = threading.Event()
            task.error = None
            if task.steering is not None and task.steering.state is RequestState.FAILED:
                task.steering.state, task.steering.retries, task.steering.error = RequestState.RUNNING, 0, None
            for job in _latest(task.jobs):  # prun: the jobs not finished get a new attempt
                if job.status in (JobStatus.FAILED, JobStatus.CANCELLED):
                    task.jobs.append(PandaJob(0, serial=job.serial, attempt=job.attempt, workdir=job.workdir,
                                              files=job.files, task_id=task.task_id))
            task.touch(TaskStatus.READY)
        self._start(task)
        return f"command=retry is registered for task ID {task.task_id}. will be executed in a few minutes"

    def describe(self, task: Task) -> dict[str, Any]:
        """A JediTaskSpec-like dict (``get_tasks_detailed_info_since``, ``get_details``)."""
        p = task.params
        site = p.get("site") or (",".join(p["includedSite"]) if p.get("includedSite") else None)
        counts = self.counts(task)
        total = counts.get("total") or 0
        return {
            "jediTaskID": task.task_id, "taskName": p.get("taskName"), "status": task.status.value,
            "superStatus": task.status.value, "userName": task.user,
            "creationDate": task.created.isoformat(sep=" "), "modificationTime": task.modified.isoformat(sep=" "),
            "site": site, "cloud": None, "processingType": p.get("processingType"),
            "prodSourceLabel": p.get("prodSourceLabel", "user"), "taskType": "anal", "vo": p.get("vo", "atlas"),
            "architecture": p.get("architecture"), "container_name": p.get("container_name"),
            "errorDialog": task.error, "nFiles": total, "nFilesFinished": counts.get("finished", 0),
            "nFilesFailed": counts.get("failed", 0),
            "pctFinished": int(100 * counts.get("finished", 0) / total) if total else 0,
            "pctFailed": int(100 * counts.get("failed", 0) / total) if total else 0,
            "reqID": task.req_id, "hpo": task.kind is TaskKind.HPO,
        }

    def list_tasks(self, user: str | None, since: _dt.datetime | None, filters: dict[str, Any],
                   n_tasks: int) -> list[dict[str, Any]]:
        with self.lock:
            tasks = sorted(self.tasks.values(), key=lambda t: t.task_id, reverse=True)
        out = []
        for t in tasks:
            if user and t.user != user:
                continue
            if since is not None and t.modified < since:
                continue
            row = self.describe(t)
            if any(str(row.get(k)) != str(v) for k, v in filters.items()):
                continue
            out.append(row)
            if len(out) >= n_tasks:
                break
        return out

    def metadata(self, task_id: Any) -> dict[str, Any]:
        """``{PandaID: metadata}``: what each job's wrapper put in its job report (runHPO/runGen's
        ``add_user_job_metadata``), one entry per job, retried attempts included."""
        task = self.task(task_id)
        out: dict[str, Any] = {}
        with self.lock:
            jobs = list(task.jobs)
        for job in jobs:
            report = read_json_or_none(job.workdir / "jobReport.json")
            if isinstance(report, dict) and "user_job_metadata" in report:
                out[str(job.panda_id)] = report["user_job_metadata"]
        return out

    def counts(self, task: Task) -> dict[str, int]:
        if task.kind is TaskKind.RUN:
            c: dict[str, int] = {"total": len(_latest(task.jobs))}
            for job in _latest(task.jobs):
                c[job.status.value] = c.get(job.status.value, 0) + 1
            return c
        if task.contents is None:
            return {"total": 0}
        points = task.contents.points()
        failed = sum(1 for p in points if p.given_up)
        done = sum(1 for p in points if p.status is ContentStatus.AVAILABLE)
        return {"total": len(points), "finished": done - failed, "failed": failed, "proposed": len(points) - done,
                "running": sum(1 for j in task.jobs if j.status is JobStatus.RUNNING)}

    # ---- the job's PanDA calls (getEventRanges / updateEventRanges) ----------------------------------
    def _job(self, panda_id: Any) -> tuple[Task, PandaJob] | None:
        try:
            pid = int(panda_id)
        except (TypeError, ValueError):
            return None
        with self.lock:
            for task in self.tasks.values():
                for job in task.jobs:
                    if job.panda_id == pid:
                        return task, job
        return None

    def event_ranges(self, panda_id: Any, n_ranges: int = 1) -> list[dict[str, Any]]:
        """The event range (one point) PanDA dispatched to this job; nothing once it was given."""
        found = self._job(panda_id)
        if found is None:
            return []
        task, job = found
        with self.lock:
            if job.point_id is None or job.event_given or n_ranges < 1:
                return []
            job.event_given = True
        return [{"eventRangeID": job.event_id, "startEvent": 0, "lastEvent": 0, "LFN": f"hpo.{task.task_id}.json",
                 "GUID": f"{task.task_id}-{job.point_id}", "scope": "HPO"}]

    def update_event(self, event_id: str, status: str) -> bool:
        parts = str(event_id).split("-")
        if len(parts) != 5:
            return False
        found = self._job(parts[1])
        if found is None or found[1].event_id != event_id:
            return False
        with self.lock:
            found[1].event_status = status
        return True

    # ---- iDDS -------------------------------------------------------------------------
    def add_request(self, data: dict[str, Any], user: str | None) -> int:
        """``POST /request`` as JEDI (or any iDDS client) sends it. An HPO request runs its rounds
        at once with the sandbox's own iDDS round rule (``_steer``), with no PanDA jobs: the client
        takes the points (``GET /hpo``) and PUTs the losses itself, as against the real iDDS."""
        meta = data.get("request_metadata") or {}
        workload = meta.get("workload_id", data.get("workload_id"))
        with self.lock:
            rid = self._next_request
            self._next_request += 1
            folder = self.state / "requests" / str(rid)
            folder.mkdir(parents=True, exist_ok=True)
            ext = Task(int(workload) if workload is not None else -rid, {"hpoRequestData": meta}, user or self.nickname,
                       folder, TaskKind.EXTERNAL, req_id=0, request_id=rid)
            if _is_hpo_request(data):
                ext.contents = Contents(folder / "contents.db")
                ext.steering = Steering(points_to_generate=int(meta.get("num_points_per_iteration") or 10))
            self.external[rid] = ext
        if ext.steering is not None:
            self._start(ext)
        return rid

    def request_for(self, request_id: Any, workload_id: Any) -> Task | None:
        with self.lock:
            if request_id not in (None, "null"):
                rid = int(request_id)
                if rid in self.external:
                    return self.external[rid]
                tid = self.requests.get(rid)
                return self.tasks.get(tid) if tid is not None else None
            if workload_id not in (None, "null"):
                wid = int(workload_id)
                task = self.tasks.get(wid)
                if task is not None and task.request_id is not None:
                    return task
                for ext in self.external.values():
                    if ext.task_id == wid:
                        return ext
        return None

    def command(self, task: Task, command: str) -> None:
        """abort / close / retry of an iDDS request: the PanDA task's kill or retry."""
        if task.kind is TaskKind.EXTERNAL:
            if command != "retry":
                task.stop.set()
            task.touch({"abort": TaskStatus.ABORTED, "close": TaskStatus.FINISHED, "retry": TaskStatus.READY}[command])
        elif command == "retry":
            self.retry(task.task_id)
        else:
            self.kill(task.task_id)

    def hyperparameters(self, task: Task, point_id: str | None, status: str | None,
                        limit: int | None) -> list[dict[str, Any]]:
        if task.contents is None:
            return []
        out = []
        for p in task.contents.points():
            if point_id is not None and str(p.id) != str(point_id):
                continue
            if status is not None and status.lower() in ("new", "0") and p.status is not ContentStatus.NEW:
                continue
            out.append({"id": str(p.id), "parameters": p.parameters, "loss": p.loss})
        return out[:limit] if limit else out

    def update_loss(self, task: Task, point_id: str, loss: float) -> None:
        if task.contents is None:
            raise IndexError("list index out of range")
        try:
            pid = int(point_id)
        except ValueError:
            raise IndexError("list index out of range") from None
        task.contents.set_loss(pid, loss)
        task.touch()

    def request_status(self, task: Task) -> str:
        if task.steering is not None and task.steering.state is RequestState.FAILED:
            return "Failed"
        return {TaskStatus.REGISTERED: "New", TaskStatus.READY: "Transforming", TaskStatus.RUNNING: "Transforming",
                TaskStatus.ABORTING: "ToCancel", TaskStatus.ABORTED: "Cancelled", TaskStatus.DONE: "Finished",
                TaskStatus.FINISHED: "SubFinished", TaskStatus.FAILED: "Failed"}.get(task.status, "Transforming")

    # ---- running ----------------------------------------------------------------------
    def _start(self, task: Task) -> None:
        target = {TaskKind.HPO: self._run_hpo, TaskKind.EXTERNAL: self._run_request}.get(task.kind, self._run_prun)
        task.thread = threading.Thread(target=self._guard, args=(task, target), name=f"task-{task.task_id}",
                                       daemon=True)
        task.thread.start()

    def _guard(self, task: Task, target: Any) -> None:
        try:
            target(task)
        except Exception as exc:  # the sandbox reports a task's crash as PanDA does: a broken task
            task.error = f"{type(exc).__name__}: {exc}"
            task.touch(TaskStatus.BROKEN)
            raise

    def _new_panda_id(self) -> int:
        with self.lock:
            self._next_panda += 1
            return self._next_panda

    # HPO ---------------------------------------------------------------------------------
    def _run_hpo(self, task: Task) -> None:
        assert task.contents is not None and task.steering is not None
        n_parallel = max(1, int(task.params.get("nEvents") or 1))
        with self.lock:
            task.touch(TaskStatus.RUNNING)
        try:
            while not task.stop.is_set():
                self._steer(task)
                self._reap(task)
                running = [j for j in task.jobs if j.status is JobStatus.RUNNING]
                busy = {j.point_id for j in running}
                waiting = [p for p in task.contents.points() if p.status is ContentStatus.NEW and p.id not in busy]
                for point in waiting[:max(0, n_parallel - len(running))]:
                    self._start_hpo_job(task, point)
                steering = task.steering
                if steering.proc is None and steering.state is not RequestState.RUNNING and not running and (
                        steering.state is RequestState.FAILED or not waiting):
                    break
                time.sleep(POLL)
        finally:
            self._stop_all(task)
        points = task.contents.points()
        with self.lock:
            if task.stop.is_set():
                task.touch(TaskStatus.ABORTED)
            elif task.steering.state is RequestState.FAILED:
                task.error = task.steering.error
                task.touch(TaskStatus.FINISHED if any(p.loss is not None for p in points) else TaskStatus.FAILED)
            elif any(p.given_up for p in points):
                task.touch(TaskStatus.FINISHED)
            else:
                task.touch(TaskStatus.DONE)

    def _run_request(self, task: Task) -> None:
        """A standalone HPO request: rounds only (``_steer``), the client evaluates the points.
        The request stays New until its first steering run ends (the real iDDS's agents take a few
        polls to pick it up: a reply right after the POST says New)."""
        assert task.contents is not None and task.steering is not None
        st = task.steering
        while not task.stop.is_set():
            self._steer(task)
            if st.proc is None and st.state is not RequestState.RUNNING:
                break
            if task.status is TaskStatus.REGISTERED and st.proc is None and task.contents.points():
                with self.lock:
                    task.touch(TaskStatus.RUNNING)
            time.sleep(POLL)
        self._stop_all(task)
        with self.lock:
            if task.stop.is_set():
                return  # the request's command (abort / close) set its status
            if st.state is RequestState.FAILED:
                task.error = st.error
                task.touch(TaskStatus.FAILED)
            else:
                task.touch(TaskStatus.DONE)

    def _steer(self, task: Task) -> None:
        """iDDS's ATLASHPOWork.poll_processing_updates, once."""
        st, contents = task.steering, task.contents
        assert st is not None and contents is not None
        hrd = task.params["hpoRequestData"]
        if st.proc is not None:
            if st.proc.poll() is None:
                return
            points, error = self._steering_output(st, hrd)
            st.proc = None
            if points:
                contents.add(points, st.rounds)
                task.touch()
                return
            st.retries += 1
            st.rounds -= 1  # the retry is the same round again
            st.error = error
            _append(st.round_dir / "steering.log", f"=== iDDS: {error} (failure {st.retries})\n")
            if st.retries > STEERING_RETRIES:
                st.state = RequestState.FAILED
            return
        if st.state is not RequestState.RUNNING:
            return
        points = contents.points()
        if any(p.status is ContentStatus.NEW for p in points):
            return
        finished = sum(1 for p in points if p.status is ContentStatus.AVAILABLE)
        max_points = hrd.get("max_points")
        if max_points and int(max_points) - finished < int(hrd.get("num_points_per_iteration") or 10):
            st.points_to_generate = int(max_points) - finished
        if st.points_to_generate <= 0:
            st.state = RequestState.FINISHED
            return
        self._start_steering(task, points)

    def _start_steering(self, task: Task, points: list[Point]) -> None:
        from idds.common.utils import replace_parameters_with_values  # iDDS's own placeholder substitution

        st = task.steering
        assert st is not None
        hrd = task.params["hpoRequestData"]
        st.rounds += 1
        st.round_dir = task.folder / "rounds" / f"{st.rounds}.{st.retries}"
        st.round_dir.mkdir(parents=True, exist_ok=True)
        input_json = "idds_input.json"
        (st.round_dir / input_json).write_text(json.dumps(
            {"points": [[p.parameters, p.loss] for p in points], "opt_space": hrd.get("opt_space")}))
        values = {"MAX_POINTS": hrd.get("max_points"), "NUM_POINTS": st.points_to_generate, "IN": input_json,
                  "OUT": hrd.get("output_json") or "output.json"}
        arguments = replace_parameters_with_values(str(hrd.get("arguments") or ""), values)
        executable = str(hrd.get("executable") or "")
        log = open(st.round_dir / "steering.log", "ab")
        try:
            if hrd.get("sandbox") and "docker" in executable:
                # iDDS prepends its own docker options and the image (atlashpowork's container script)
                workdir = hrd.get("workdir")
                arguments = (f"run --rm -v $(pwd):{workdir} -v /cvmfs:/cvmfs -e X509_USER_PROXY={workdir}/x509up "
                             f"{hrd['sandbox']} {arguments}")
            command = local_steering(arguments, executable or "docker")
            env = {**os.environ, **command.env}
            env.pop("HPOGRID_PROJECT_DIR", None)
            env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
            log.write(f"=== {executable} {arguments}\n=== runs here as: {command.template}\n".encode())
            log.flush()
            st.proc = subprocess.Popen(shlex.split(command.template), cwd=st.round_dir, env=env, stdout=log,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        except (ValueError, OSError) as exc:
            log.write(f"{exc}\n".encode())
            st.proc = _Exited(125)
        finally:
            log.close()

    @staticmethod
    def _steering_output(st: Steering, hrd: dict[str, Any]) -> tuple[list[Any], str]:
        """iDDS's parse_processing_outputs: the new points, or why there are none."""
        path = st.round_dir / (hrd.get("output_json") or "output.json")
        rc = st.proc.returncode if st.proc is not None else None
        if rc:
            tail = (st.round_dir / "steering.log").read_text(errors="replace").strip().splitlines()[-1:] or [""]
            return [], f"the steering exited with status {rc}: {tail[0][:300]}"
        if not path.exists():
            return [], f"{path.name} is not created"
        try:
            outputs = json.loads(path.read_text())
        except ValueError as exc:
            return [], f"Failed to load the content of {path.name}: {exc}"
        if not outputs:
            return [], "No points generated: the outputs is empty"
        if not isinstance(outputs, list):
            return [], f"{path.name} is not a JSON list"
        return outputs, ""

    def _start_hpo_job(self, task: Task, point: Point) -> None:
        attempt = point.attempts + 1  # PanDA's attempt number: a killed job does not count
        job_no = 1 + sum(1 for j in task.jobs if j.point_id == point.id)  # each job has its own folder
        job = PandaJob(self._new_panda_id(), serial=point.id, attempt=attempt,
                       workdir=task.folder / "jobs" / str(point.id) / str(job_no), point_id=point.id,
                       segment_id=point.model_id if task.segmented else None, task_id=task.task_id)
        for stream, dataset in input_streams(task.params["jobParameters"]).items():
            files = self.datasets.get(dataset.rstrip("/"), [])
            if job.segment_id is not None:
                seg = next((s for s in task.params.get("segmentSpecs") or [] if s.get("id") == job.segment_id), {})
                files = [f for f in files if _lfn(f) in set(seg.get("files") or [])] or list(seg.get("files") or [])
            job.files[stream] = files
        self._launch(task, job, "runHPO")

    def _reap(self, task: Task) -> None:
        for job in task.jobs:
            if job.status is not JobStatus.RUNNING or job.proc is None or job.proc.poll() is None:
                continue
            ok = job.event_status == "finished"
            job.status = JobStatus.FINISHED if ok else JobStatus.FAILED
            job.proc = None
            if not ok and job.point_id is not None and task.contents is not None:
                point = task.contents.get(job.point_id)
                if point is not None and point.status is ContentStatus.NEW:
                    if task.contents.count_attempt(job.point_id) >= GRID_ATTEMPTS:
                        task.contents.set_loss(job.point_id, FAILURE_LOSS, given_up=True)
            task.touch()

    # prun ----------------------------------------------------------------------------------
    def _run_jobs_of(self, task: Task) -> list[PandaJob]:
        """The jobs JEDI makes of a prun task: per input files, or nEvents / nEventsPerJob without input."""
        p = task.params
        streams = input_streams(p["jobParameters"])
        chunks: list[dict[str, list[str]]] = []
        if streams:
            primary, dataset = next(iter(streams.items()))
            files = list(self.datasets.get(dataset.rstrip("/"), []))
            if p.get("nFiles"):
                files = files[:int(p["nFiles"])]
            per_job = int(p.get("nFilesPerJob") or p.get("nMaxFilesPerJob") or 200)
            chunks = [{primary: files[i:i + per_job]} for i in range(0, len(files), per_job)] or [{primary: []}]
        else:
            n = math.ceil(int(p.get("nEvents") or 1) / int(p.get("nEventsPerJob") or 1))
            chunks = [{} for _ in range(max(1, n))]
        return [PandaJob(0, serial=i + 1, attempt=0, workdir=task.folder / "jobs" / str(i + 1), files=files,
                         task_id=task.task_id) for i, files in enumerate(chunks)]

    def _run_prun(self, task: Task) -> None:
        auto_retry = not task.params.get("disableAutoRetry")
        with self.lock:
            task.touch(TaskStatus.RUNNING)

        def settled(job: PandaJob) -> bool:
            return job.status is JobStatus.FINISHED or (job.status is JobStatus.FAILED and not (
                auto_retry and job.attempt < GRID_ATTEMPTS))

        try:
            while not task.stop.is_set():
                for job in task.jobs:
                    if job.status is JobStatus.RUNNING and job.proc is not None and job.proc.poll() is not None:
                        job.status = JobStatus.FINISHED if job.proc.returncode == 0 else JobStatus.FAILED
                        job.proc = None
                        task.touch()
                latest = _latest(task.jobs)
                for job in latest:
                    if job.status is JobStatus.DEFINED or (job.status is JobStatus.FAILED and not settled(job)):
                        self._relaunch(task, job)
                if all(settled(j) for j in _latest(task.jobs)):
                    break
                time.sleep(POLL)
        finally:
            self._stop_all(task)
        latest = _latest(task.jobs)
        with self.lock:
            if task.stop.is_set():
                task.touch(TaskStatus.ABORTED)
            elif all(j.status is JobStatus.FINISHED for j in latest):
                task.touch(TaskStatus.DONE)
            elif any(j.status is JobStatus.FINISHED for j in latest):
                task.touch(TaskStatus.FINISHED)
            else:
                task.touch(TaskStatus.FAILED)

    def _relaunch(self, task: Task, old: PandaJob) -> None:
        """A prun job's next attempt: a new PanDA job of the same serial number and files."""
        attempt = old.attempt + 1
        job = PandaJob(self._new_panda_id(), serial=old.serial, attempt=attempt,
                       workdir=task.folder / "jobs" / str(old.serial) / str(attempt), files=old.files,
                       task_id=task.task_id)
        with self.lock:
            if old.panda_id == 0:  # a placeholder: made at submission or by a retry
                task.jobs.remove(old)
        self._launch(task, job, "runGen")

    # both ----------------------------------------------------------------------------------
    def _launch(self, task: Task, job: PandaJob, flavour: str) -> None:
        """What the pilot does: stage the job's input files in, run the job wrapper with the job's parameters."""
        job.workdir.mkdir(parents=True, exist_ok=True)
        for lfns in job.files.values():
            for f in lfns:
                self._stage(f, job.workdir)
        lfns = {k: [_lfn(f) for f in v] for k, v in job.files.items()}
        slot = JobSlot(task.task_id, job.serial, self.base_url, lfns, job.segment_id)
        params = job_parameters(task.params, slot).replace(PANDA_CACHE, self.base_url)
        argv = [sys.executable, "-m", "hpogrid.gridsim.wrapper", flavour, *shlex.split(params)]
        if flavour == "runHPO":  # the site's pilot settings: where PanDA and iDDS are
            argv += ["--pandaURL", self.base_url, "--iddsURL", self.base_url]
        env = {k: v for k, v in os.environ.items() if k != "HPOGRID_PROJECT_DIR"}
        env.update({"PandaID": str(job.panda_id), "PanDA_TaskID": str(task.task_id),
                    "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"})
        (job.workdir / "job_parameters.txt").write_text(params + "\n")
        with open(job.workdir / "pilot.log", "ab") as log:
            job.proc = subprocess.Popen(argv, cwd=job.workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
        with self.lock:
            job.status = JobStatus.RUNNING
            if job not in task.jobs:
                task.jobs.append(job)
        task.touch()

    def _stage(self, name: str, workdir: Path) -> None:
        """Stage-in of one input file: a local file given with ``--dataset`` is copied, a bare name
        is created empty (the sandbox has no storage)."""
        source = Path(name)
        target = workdir / source.name
        if source.is_absolute() and source.is_file():
            shutil.copyfile(source, target)
        elif not target.exists():
            target.touch()

    def _stop_all(self, task: Task) -> None:
        """Kill the task's running jobs and steering (a killed job's point waits for the next attempt)."""
        procs = [j.proc for j in task.jobs if j.proc is not None]
        if task.steering is not None and isinstance(task.steering.proc, subprocess.Popen):
            procs.append(task.steering.proc)
        for proc in procs:
            _kill_group(proc)
        for job in task.jobs:
            if job.proc is not None:
                job.proc = None
                job.status = JobStatus.CANCELLED
        if task.steering is not None and task.steering.proc is not None:
            task.steering.proc = None
            task.steering.rounds -= 1

    def shutdown(self) -> None:
        with self.lock:
            tasks = [*self.tasks.values(), *self.external.values()]
        for task in tasks:
            task.stop.set()
        for task in tasks:
            if task.thread is not None:
                task.thread.join(timeout=15)


class _Exited:
    """A steering run that could not start (docker would have refused it): exited with ``code``."""

    def __init__(self, code: int):
        self.returncode = code

    def poll(self) -> int:
        return self.returncode


def _is_hpo_request(data: dict[str, Any]) -> bool:
    """An iDDS HyperParameterOpt request, whether idds-client's enum arrives decoded or as its JSON form."""
    kind = data.get("request_type")
    name = getattr(kind, "name", None) or (kind.get("attributes", {}).get("_name_") if isinstance(kind, dict) else kind)
    return str(name) == "HyperParameterOpt" or kind == 4


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


def _latest(jobs: list[PandaJob]) -> list[PandaJob]:
    """The last attempt of each serial number (prun's jobs)."""
    last: dict[int, PandaJob] = {}
    for job in jobs:
        if job.serial not in last or job.attempt >= last[job.serial].attempt:
            last[job.serial] = job
    return [last[k] for k in sorted(last)]


def _lfn(name: str) -> str:
    return Path(name).name


def _append(path: Path, text: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)


def parse_dataset(text: str) -> tuple[str, list[str]]:
    """``NAME`` or ``NAME=file1,file2`` (the dataset's files: names, or local paths to stage from)."""
    name, _, files = text.partition("=")
    return name.strip().rstrip("/"), [f for f in files.split(",") if f]
