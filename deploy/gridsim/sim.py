"""What the sandbox runs: PanDA tasks, their iDDS requests, their jobs. HTTP lives in ``server``.

An HPO task (``hpoWorkflow``) becomes an iDDS request (workload_id = jediTaskID) whose rounds
and jobs are run by hpogrid's embedded engine (``hpogrid.client.engine.Engine``) on a campaign
store in the task's folder: the steering command with iDDS's rules (``commands.local_steering``),
each point in a job that follows runHPO's contract (``wrapper``), PanDA's retry rule (5 attempts,
then loss 1e5). A ``run`` task (prun) runs its N jobs with the engine's job runner. Kill stops the
engine (task ``aborted``), retry runs it again on the same store (``running``).
"""

from __future__ import annotations

import datetime as _dt
import json
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hpogrid.client.engine import CommandSteering, Engine, EngineSettings, Job, ProcessRunner
from hpogrid.client.store import Store, idds_loss

from .commands import JobSpec, job_spec, local_steering

__all__ = ["Simulation", "TaskError", "DEFAULT_SITES"]

GRID_ATTEMPTS = 5
FIRST_TASK_ID = 500001

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


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0, tzinfo=None)


@dataclass
class Task:
    task_id: int
    params: dict[str, Any]
    user: str
    folder: Path
    kind: str  # hpo | run
    status: str = "registered"
    created: _dt.datetime = field(default_factory=_now)
    modified: _dt.datetime = field(default_factory=_now)
    request_id: int | None = None
    engine: Engine | None = None
    thread: threading.Thread | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    error: str | None = None
    jobs: list[dict[str, Any]] = field(default_factory=list)  # run tasks

    def touch(self, status: str | None = None) -> None:
        if status is not None:
            self.status = status
        self.modified = _now()


class Simulation:
    """Every task of the sandbox; thread-safe (HTTP threads call in, engine threads run tasks)."""

    def __init__(self, state_dir: Path, *, nickname: str = "tester", datasets: dict[str, list[str]] | None = None,
                 sites: dict[str, dict[str, Any]] | None = None):
        self.state = Path(state_dir)
        self.cache = self.state / "cache"
        self.cache.mkdir(parents=True, exist_ok=True)
        (self.state / "tasks").mkdir(exist_ok=True)
        self.nickname = nickname
        self.datasets = dict(datasets or {})
        self.sites = site_table(sites)
        self.tasks: dict[int, Task] = {}
        self.requests: dict[int, int] = {}  # iDDS request_id -> workload_id (jediTaskID)
        self.external: dict[int, Task] = {}  # requests posted to /idds/request directly (no PanDA task)
        self.lock = threading.RLock()
        self._next_task = FIRST_TASK_ID
        self._next_request = 1

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
        if spec.training_ds and spec.training_ds.rstrip("/") not in self.datasets:
            raise TaskError(f"input dataset {spec.training_ds} does not exist", code=4)
        if hpo:
            try:
                local_steering(params["hpoRequestData"].get("arguments") or "",
                               params["hpoRequestData"].get("executable") or "docker")
            except ValueError as exc:
                raise TaskError(f"hpoRequestData: {exc}", code=4) from None
        with self.lock:
            if params.get("uniqueTaskName") and any(t.params.get("taskName") == params["taskName"]
                                                    for t in self.tasks.values()):
                raise TaskError(f"task name {params['taskName']} is already used", code=2)
            tid = self._next_task
            self._next_task += 1
            folder = self.state / "tasks" / str(tid)
            folder.mkdir(parents=True)
            (folder / "task_parameters.json").write_text(json.dumps(params, indent=1))
            task = Task(tid, params, user or self.nickname, folder, "hpo" if hpo else "run")
            if hpo:
                task.request_id = self._next_request
                self.requests[self._next_request] = tid
                self._next_request += 1
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
            if task.status in ("done", "finished", "failed", "broken", "aborted"):
                raise TaskError(f"jediTaskID={task.task_id} is {task.status}; nothing to kill", code=4)
            task.touch("aborting")
            task.stop.set()
            if task.engine is not None:
                task.engine.request_stop("killed by the user", status="killed")
        return f"jediTaskID={task.task_id} kill command is registered"

    def retry(self, task_id: Any) -> str:
        task = self.task(task_id)
        with self.lock:
            if task.status not in ("finished", "failed", "aborted", "broken", "exhausted"):
                raise TaskError(f"jediTaskID={task.task_id} is {task.status}; only finished, failed or aborted "
                                "tasks can be retried", code=4)
            if task.thread is not None and task.thread.is_alive():
                raise TaskError(f"jediTaskID={task.task_id} is still stopping; retry in a moment", code=4)
            task.stop = threading.Event()
            task.touch("ready")
        self._start(task)
        return f"jediTaskID={task.task_id} retry command is registered"

    def describe(self, task: Task) -> dict[str, Any]:
        """A JediTaskSpec-like dict (``get_tasks_detailed_info_since``, ``get_details``)."""
        p = task.params
        site = p.get("site") or (",".join(p["includedSite"]) if p.get("includedSite") else None)
        counts = self.counts(task)
        total = counts.get("total") or 0
        done = counts.get("finished", 0) + counts.get("failed", 0)
        return {
            "jediTaskID": task.task_id, "taskName": p.get("taskName"), "status": task.status,
            "superStatus": task.status, "userName": task.user, "creationDate": task.created.isoformat(sep=" "),
            "modificationTime": task.modified.isoformat(sep=" "), "site": site, "cloud": None,
            "processingType": p.get("processingType"), "prodSourceLabel": p.get("prodSourceLabel", "user"),
            "taskType": "anal", "vo": p.get("vo", "atlas"), "architecture": p.get("architecture"),
            "container_name": p.get("container_name"), "errorDialog": task.error,
            "nFiles": total, "nFilesFinished": counts.get("finished", 0), "nFilesFailed": counts.get("failed", 0),
            "pctFinished": int(100 * done / total) if total else 0, "reqID": task.request_id,
            "hpo": task.kind == "hpo",
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
        """``{PandaID: metadata}`` of the task's jobs (what the payload left as job metadata)."""
        task = self.task(task_id)
        out: dict[str, Any] = {}
        if task.kind == "run":
            for job in task.jobs:
                meta = _read_json(Path(job["workdir"]) / "userJobMetadata.json") if job["workdir"] else None
                if meta is not None:
                    out[str(job["PandaID"])] = meta
            return out
        spec = job_spec(task.params)
        if not spec.meta_file:
            return out
        jobs = task.folder / "jobs"
        seq = 0
        for point_dir in sorted(jobs.iterdir() if jobs.is_dir() else [], key=lambda p: int(p.name)):
            for attempt_dir in sorted(point_dir.iterdir(), key=lambda p: int(p.name)):
                seq += 1
                meta = _read_json(attempt_dir / spec.meta_file)
                if meta is not None:
                    out[str(task.task_id * 1000 + seq)] = meta
        return out

    def counts(self, task: Task) -> dict[str, int]:
        if task.kind == "run":
            c = {"total": len(task.jobs)}
            for job in task.jobs:
                c[job["status"]] = c.get(job["status"], 0) + 1
            return c
        store = self._store(task) if task.kind == "hpo" else None
        if store is None:
            return {"total": 0}
        with store:
            c = store.counts()
        c["total"] = sum(c.values())
        return c

    # ---- iDDS -------------------------------------------------------------------------
    def add_request(self, data: dict[str, Any], user: str | None) -> int:
        """``POST /request`` as JEDI sends it: the request is recorded (it runs only with its PanDA task)."""
        meta = data.get("request_metadata") or {}
        workload = meta.get("workload_id", data.get("workload_id"))
        with self.lock:
            rid = self._next_request
            self._next_request += 1
            folder = self.state / "requests" / str(rid)
            folder.mkdir(parents=True, exist_ok=True)
            ext = Task(int(workload) if workload is not None else -rid, {"hpoRequestData": meta}, user or self.nickname,
                       folder, "external", request_id=rid)
            self.external[rid] = ext
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
        if task.kind == "external":
            task.touch({"abort": "aborted", "close": "finished", "retry": "ready"}[command])
        elif command == "retry":
            self.retry(task.task_id)
        else:
            self.kill(task.task_id)

    def hyperparameters(self, task: Task, point_id: str | None, status: str | None,
                        limit: int | None) -> list[dict[str, Any]]:
        store = self._store(task)
        if store is None:
            return []
        with store:
            points = store.points()
        out = []
        for p in points:
            if point_id is not None and str(p["id"]) != str(point_id):
                continue
            loss = idds_loss(p)
            if status is not None and status.lower() in ("new", "0") and loss is not None:
                continue
            out.append({"id": str(p["id"]), "parameters": p["params"], "loss": loss})
        return out[:limit] if limit else out

    def update_loss(self, task: Task, point_id: str, loss: float) -> None:
        store = self._store(task)
        if store is None:
            raise IndexError("list index out of range")
        with store:
            ids = {str(p["id"]) for p in store.points()}
            if str(point_id) not in ids:
                raise IndexError("list index out of range")
            store.finish_point(int(point_id), loss=loss, metric=loss, message="loss set through iDDS")

    def request_status(self, task: Task) -> str:
        return {"registered": "New", "ready": "Transforming", "running": "Transforming", "aborting": "ToCancel",
                "aborted": "Cancelled", "done": "Finished", "finished": "SubFinished",
                "failed": "Failed"}.get(task.status, "Transforming")

    # ---- running ----------------------------------------------------------------------
    def _store(self, task: Task) -> Store | None:
        path = task.folder / "store.db"
        return Store(path) if path.exists() else None

    def _sandbox(self, task: Task) -> tuple[JobSpec, Path]:
        spec = job_spec(task.params)
        return spec, (self.cache / str(spec.sandbox)).resolve()

    def _start(self, task: Task) -> None:
        target = self._run_hpo if task.kind == "hpo" else self._run_jobs
        task.thread = threading.Thread(target=self._guard, args=(task, target), name=f"task-{task.task_id}",
                                       daemon=True)
        task.thread.start()

    def _guard(self, task: Task, target: Any) -> None:
        try:
            target(task)
        except Exception as exc:  # the sandbox reports a task's crash as PanDA does: a broken task
            task.error = f"{type(exc).__name__}: {exc}"
            task.touch("broken")

    def _run_hpo(self, task: Task) -> None:
        hrd = task.params["hpoRequestData"]
        spec, sandbox = self._sandbox(task)
        steering = local_steering(hrd.get("arguments") or "", hrd.get("executable") or "docker")
        store_path = task.folder / "store.db"
        n_parallel = int(task.params.get("nEvents") or 1)
        if not store_path.exists():
            config = {"search_space": hrd.get("opt_space"), "hpo_config": {"metric": "loss", "mode": "min"}}
            (task.folder / "project.json").write_text(json.dumps(config))
            Store.create(store_path, id=str(task.task_id), project=str(task.params["taskName"]), backend="gridsim",
                         max_points=int(hrd.get("max_points") or 10), max_concurrent=n_parallel,
                         # iDDS 2.6.21's rules: num_points_per_iteration (default 10) per round;
                         # phpo's num_points_per_generation and min_unevaluated_points are not read.
                         points_per_round=int(hrd.get("num_points_per_iteration") or 10), min_unevaluated=0,
                         max_attempts=GRID_ATTEMPTS, metric="loss", mode="min").close()
        wrapper = [sys.executable, "-m", "hpogrid.gridsim.wrapper", "--sandbox", str(sandbox),
                   "--payload", spec.payload, "--output", spec.output_file]
        if spec.training_file:
            files = self.datasets.get(str(spec.training_ds).rstrip("/"), [])
            wrapper += ["--training-file", spec.training_file, "--training-files", json.dumps(files)]
        store = Store(store_path)
        try:
            campaign = store.campaign()
            settings = EngineSettings.from_campaign(campaign)
            settings.evaluation_command = wrapper
            engine = Engine(store, task.folder, runner=ProcessRunner(),
                            steering=CommandSteering(steering.template, env=steering.env), settings=settings,
                            config_path=task.folder / "project.json", handle_signals=False)
            with self.lock:
                task.engine = engine
                if task.stop.is_set():
                    engine.request_stop("killed by the user", status="killed")
                task.touch("running")
            progress = engine.run()
        finally:
            store.close()
            with self.lock:
                task.engine = None
        with self.lock:
            if progress.status == "killed" or task.stop.is_set():
                task.touch("aborted")
            elif progress.status == "finished":
                task.touch("done" if progress.failed == 0 else "finished")
            else:
                task.error = progress.message
                task.touch("failed")

    def _run_jobs(self, task: Task) -> None:
        """A prun task: nEvents jobs (one per event, no input), each the payload in its own folder."""
        spec, sandbox = self._sandbox(task)
        n_jobs = int(task.params.get("nEvents") or 1)
        retries = 0 if task.params.get("disableAutoRetry") else GRID_ATTEMPTS - 1
        if not task.jobs:
            task.jobs = [{"PandaID": task.task_id * 1000 + i + 1, "status": "defined", "attempt": 0,
                          "base": str(task.folder / "jobs" / str(i + 1)), "workdir": None} for i in range(n_jobs)]
        runner = ProcessRunner()
        runner.open()
        task.touch("running")
        pending = [j for j in task.jobs if j["status"] not in ("finished",)]
        running: dict[str, dict[str, Any]] = {}
        try:
            while pending or running:
                if task.stop.is_set():
                    for key in running:
                        runner.kill(key)
                while pending and not task.stop.is_set():
                    job = pending.pop(0)
                    job["attempt"] += 1
                    workdir = Path(job["base"]) / str(job["attempt"])
                    workdir.mkdir(parents=True, exist_ok=True)
                    job["workdir"] = str(workdir)
                    job["status"] = "running"
                    key = f"{job['PandaID']}/{job['attempt']}"
                    running[key] = job
                    runner.start(Job(key, job["PandaID"], job["attempt"], workdir,
                                     argv=[sys.executable, "-m", "hpogrid.gridsim.wrapper", "--sandbox", str(sandbox),
                                           "--payload", spec.payload]))
                if task.stop.is_set() and not running:
                    break
                for ex in runner.poll():
                    job = running.pop(ex.key)
                    ok = ex.rc == 0 and ex.error is None
                    if ok:
                        job["status"] = "finished"
                    elif not task.stop.is_set() and job["attempt"] <= retries:
                        job["status"] = "defined"
                        pending.append(job)
                    else:
                        job["status"] = "cancelled" if task.stop.is_set() else "failed"
                    task.touch()
                time.sleep(0.1)
        finally:
            runner.close()
        with self.lock:
            if task.stop.is_set():
                task.touch("aborted")
            elif all(j["status"] == "finished" for j in task.jobs):
                task.touch("done")
            elif any(j["status"] == "finished" for j in task.jobs):
                task.touch("finished")
            else:
                task.touch("failed")

    def shutdown(self) -> None:
        with self.lock:
            tasks = list(self.tasks.values())
        for task in tasks:
            task.stop.set()
            if task.engine is not None:
                task.engine.request_stop("the sandbox stopped", status="interrupted")
        for task in tasks:
            if task.thread is not None:
                task.thread.join(timeout=15)


def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def parse_dataset(text: str) -> tuple[str, list[str]]:
    """``NAME`` or ``NAME=file1,file2`` (the files the jobs list in input_ds.json)."""
    name, _, files = text.partition("=")
    return name.strip().rstrip("/"), [f for f in files.split(",") if f]


