"""What the ``hpogrid`` commands do, as functions: typed arguments in, typed results out.

The CLI (:mod:`hpogrid.client.cli`) parses, calls one function here and formats its result; a
script can call the same functions. Campaigns are reached through the backend contract
(:mod:`hpogrid.client.backends.base`) only: ``submit``, ``resume``, ``retry``, ``kill``,
``refresh``, ``list_tasks``, ``task_metadata``, ``kill_remote``, ``retry_remote``, ``runs_here``.
"""

from __future__ import annotations

import datetime as _dt
import fnmatch
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from . import campaigns, projects
from .backends import available, get_backend
from .backends.base import Backend, Plan, RemoteTask, SubmitOptions
from .campaigns import parse_range
from .engine import DEFAULT_TIMEOUT, Progress, check_resumable, driver_alive, summary_lines
from .errors import CampaignError, HpogridError, NotFoundError, UsageError
from .store import StorageError, Store

__all__ = [
    "TASK_COLUMNS", "UNFINISHED", "ENDED", "Outcome", "Said", "TaskFilter", "TaskRow", "TaskListing", "PointsOf",
    "JobsOf", "Note", "submit", "retry", "kill", "show_tasks", "task_rows", "remote_rows", "refresh_unfinished",
    "steering_exec", "evaluation_exec", "ReportOutputs", "ReportData", "load_report", "save_report", "export_report", "GridRun", "run_on_grid", "grid_sites", "outcome", "progress_of",
]

#: the columns of a ``tasks show`` row (``--outcol``), in the order of its JSON
TASK_COLUMNS = ("jeditaskid", "taskname", "backend", "status", "progress", "done", "failed", "total",
                "best_metric", "metric", "start", "end", "remote_id", "message", "seed", "overrides", "timeout")
UNFINISHED = ("running", "created")  # a campaign a driver (or the grid) still works on
ENDED = ("finished", "failed", "killed")  # `tasks retry` runs their failed points again
#: backends whose campaigns take per-run hpo_config overrides (--algorithm, --num_trials, ...)
OVERRIDE_BACKENDS = ("embedded", "ray")

Note = Callable[[str], None]  # where a function says what it is doing (the CLI: one line on stderr)


def _quiet(_line: str) -> None:
    pass


def _stamp(t: float | None) -> str:
    if not t:
        return "-"
    return _dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")


# ---- results -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    """A campaign after ``submit``/``retry`` returned: detached, or run to its end (``summary``)."""

    campaign_id: str
    project: str
    status: str
    detached: bool
    pid: int | None
    log: Path
    finished: int
    failed: int
    message: str | None
    summary: list[str] = field(default_factory=list)  # the engine's end-of-run lines

    def error(self) -> str | None:
        """The one-line error of a campaign that failed or whose every point failed, else None."""
        if self.status == "failed":
            return f"campaign {self.campaign_id} failed: {self.message}"
        if self.status == "finished" and self.failed and not self.finished:
            return (f"campaign {self.campaign_id}: all {self.failed} points failed "
                    f"(see the reasons above, or `hpogrid tasks show -i {self.campaign_id} -m`)")
        return None


@dataclass(frozen=True)
class Said:
    """A command that ends with one line on stdout and exit status 0."""

    line: str


@dataclass(frozen=True)
class TaskFilter:
    """``tasks show``'s filters."""

    limit: int = 1000
    days: float | None = 30
    taskname: str | None = None
    jeditaskid: str | None = None
    id_range: str | None = None
    status: list[str] | None = None


@dataclass(frozen=True)
class TaskRow:
    """One campaign (or a grid task that is no local campaign) as ``tasks show`` lists it."""

    jeditaskid: int | str
    taskname: str
    backend: str
    status: str
    progress: float = 0.0
    done: int | None = None
    failed: int | None = None
    total: int | None = None
    best_metric: float | None = None
    metric: str | None = None
    start: str | None = None
    end: str | None = None
    remote_id: str | None = None
    message: str | None = None
    seed: int | None = None
    overrides: dict[str, Any] | None = None
    timeout: float | None = None
    path: str | None = None  # the campaign's folder; None for a grid task that is no local campaign

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PointsOf:
    """``--metadata`` of a local campaign: its points (``None`` for a damaged store)."""

    row: TaskRow
    points: list[dict[str, Any]] | None


@dataclass(frozen=True)
class JobsOf:
    """``--metadata`` of a grid task that is no local campaign: its jobs' metadata."""

    row: TaskRow
    jobs: list[dict[str, Any]]


@dataclass(frozen=True)
class TaskListing:
    rows: list[TaskRow]
    warnings: list[str]
    details: list[PointsOf | JobsOf] = field(default_factory=list)


# ---- submit_idds, tasks retry, tasks kill ------------------------------------------------------
def submit(project: str, options: SubmitOptions, *, backend: str | None = None, resume: str | None = None,
           overrides: Mapping[str, Any] | None = None, dry_run: bool = False) -> Outcome | Plan:
    """Start a new campaign of ``project`` (after its pre-flight), or continue one (``resume``: an id
    or ``"latest"``). A dry run returns the backend's :class:`Plan` (what would run) and starts nothing."""
    data = projects.load(project)
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    if options.steering_command is not None and not options.steering_command.strip():
        raise UsageError("--steering-command must not be empty")
    if resume is not None:
        if overrides:
            raise UsageError(f"--resume continues a campaign as it was started; {', '.join(sorted(overrides))} "
                             f"apply to new campaigns only")
        store = _campaign_to_resume(project, resume)
        name = store.campaign()["backend"]
        if backend is not None and backend != name:
            raise UsageError(f"campaign {store.campaign()['id']} ran on backend {name!r}, not {backend!r}")
        store = get_backend(name).resume(store, options)
    else:
        name = backend or data["grid_config"].get("backend", "embedded")
        impl = get_backend(name)
        options.run_plan = _preflight(project, name, overrides, options)
        if dry_run:
            return impl.plan(project, options)
        store = impl.submit(project, options)
    return outcome(store, options.detach)


def _preflight(project: str, backend: str, overrides: dict[str, Any], options: SubmitOptions) -> Any:
    """The pre-flight of a new campaign (every backend, --dry-run included): nothing is written on failure."""
    from .preflight import PreflightError, plan_run

    plan = plan_run(project, overrides, backend=backend, timeout=options.timeout, seed=options.seed)
    if backend not in OVERRIDE_BACKENDS and overrides:
        raise PreflightError(f"per-run {', '.join('--' + k for k in sorted(overrides))} apply to the embedded and ray "
                             f"backends; for {backend}, change the project's hpo_config (`hpogrid project update`)")
    options.seed = plan.seed  # a drawn seed reaches every backend's steering
    return plan


def _campaign_to_resume(project: str, resume: str) -> Store:
    if resume == "latest":
        store = campaigns.latest(project)
        if store is None:
            raise NotFoundError(f"project {project!r} has no campaign to resume")
        return store
    store = campaigns.open_campaign(resume)
    owner = store.campaign()["project"]
    if owner != project:
        raise UsageError(f"campaign {resume} belongs to project {owner!r}, not {project!r}")
    return store


def outcome(store: Store, detached: bool) -> Outcome:
    """The campaign of ``store`` as it stands: counts, and (attached) the engine's summary lines."""
    c = store.campaign()
    counts = store.counts()
    summary = [] if detached else summary_lines(progress_of(store))
    return Outcome(campaign_id=str(c["id"]), project=c["project"], status=c["status"], detached=detached,
                   pid=c.get("pid"), log=store.path.parent / "driver.log", finished=counts["finished"],
                   failed=counts["failed"], message=c.get("message"), summary=summary)


def progress_of(store: Store) -> Progress:
    """The engine's :class:`Progress` of a campaign from its store (for the summary of a run that ended)."""
    c = store.campaign()
    counts = store.counts()
    progress = Progress(c["id"], c["max_points"] or 0, finished=counts["finished"], failed=counts["failed"],
                        metric_name=c.get("metric") or "loss", started=c.get("started") or time.time(),
                        status=c["status"], message=c.get("message"), seed=(c.get("settings") or {}).get("seed"))
    for p in store.points(["failed"]):
        progress.count_failure(p["message"])
    best = store.best()
    if best is not None:
        metric = best["metric"] if best["metric"] is not None else best["loss"]
        progress.best = {"id": best["id"], "loss": best["loss"], "metric": metric, "params": best["params"]}
    return progress


def retry(campaign_id: str, options: SubmitOptions, note: Note = _quiet) -> Outcome | Said:
    """``tasks retry``: continue a campaign to its budget; on an ended one, run its failed points again.

    ``campaign_id`` may also be a grid task id that is no local campaign: the grid backend that
    knows it retries it (its answer is said).
    """
    said = _remote_task("retry", campaign_id)
    if said is not None:
        return Said(said)
    store = campaigns.open_campaign(campaign_id)
    c = store.campaign()
    backend = get_backend(c["backend"])
    if not backend.driven_here:  # the grid retries its own task (local_run: run it again, one line)
        backend.retry(store, options)
        return Said(f"campaign {campaign_id} retried on {backend.name}")
    if c["status"] in ENDED:
        check_resumable(store)
        reopened = store.reopen_failed("waiting for a new attempt (`hpogrid tasks retry`)")
        if c["status"] == "finished" and not reopened:
            return Said(f"campaign {campaign_id} finished with no failed point; nothing to retry")
        if reopened:  # a campaign that failed for its storage has pending points, no failed ones: say nothing
            note(f"campaign {campaign_id}: retrying {len(reopened)} failed point(s)")
    return outcome(backend.resume(store, options), options.detach)


def kill(campaign_id: str) -> Said:
    """``tasks kill``: stop a campaign (running jobs are ended and recorded), or a grid task by its id
    (the grid's answer is said)."""
    said = _remote_task("kill", campaign_id)
    if said is not None:
        return Said(said)
    with campaigns.open_campaign(campaign_id) as store:
        get_backend(store.campaign()["backend"]).kill(store)
        c = store.campaign()
        return Said(f"campaign {c['id']} {c['status']}")


def _remote_task(command: str, task_id: str) -> str | None:
    """``tasks kill|retry ID`` where ID is no local campaign but a grid task: the answer of the
    backend that knows it; None when ID is a local campaign or no backend knows it."""
    if not str(task_id).isdigit():
        return None
    try:
        campaigns.registered(task_id)
        return None
    except NotFoundError:
        pass
    for backend in _remote_backends():
        act = backend.kill_remote if command == "kill" else backend.retry_remote
        said = act(task_id)  # None: not this backend's task, or it is not set up here
        if said is not None:
            return said
    return None


def _remote_backends() -> Iterator[Backend]:
    """The backends of this installation whose campaigns run elsewhere (``runs_here`` False: a grid
    side with tasks of its own)."""
    for name in available():
        try:
            backend = get_backend(name)
        except HpogridError:
            continue
        if not backend.runs_here:
            yield backend


def _known_backend(name: str) -> Backend | None:
    try:
        return get_backend(name) if name in available() else None
    except HpogridError:
        return None


# ---- tasks show ----------------------------------------------------------------------------------
def show_tasks(filters: TaskFilter, *, local_only: bool = False, metadata: bool = False) -> TaskListing:
    """``tasks show``: unfinished grid campaigns refreshed first, then the local campaigns (newest
    first) and, unless ``local_only``, the tasks grid backends list that are no local campaign."""
    warnings = [] if local_only else refresh_unfinished()
    rows = task_rows(filters)
    if not local_only:
        extra, more = remote_rows(rows, filters)
        warnings += more
        rows = (rows + extra)[:filters.limit]
    details = [_details_of(row) for row in rows] if metadata else []
    return TaskListing(rows=rows, warnings=warnings, details=[d for d in details if d is not None])


def _details_of(row: TaskRow) -> PointsOf | JobsOf | None:
    if row.path:
        if row.status == "damaged":
            return PointsOf(row, None)
        with campaigns.open_folder(row.path, readonly=True) as store:
            return PointsOf(row, store.points())
    backend = _known_backend(row.backend)
    if backend is None or backend.runs_here:
        return None
    return JobsOf(row, backend.task_metadata(row.jeditaskid))


def task_rows(filters: TaskFilter = TaskFilter()) -> list[TaskRow]:
    """Local campaigns (every backend's, from the registry) as rows, newest first, filtered."""
    low, high = parse_range(filters.id_range)
    since = time.time() - filters.days * 86400 if filters.days is not None else None
    rows: list[TaskRow] = []
    for entry in reversed(campaigns.for_project(None)):
        cid = int(entry["id"])
        wanted = filters.jeditaskid
        if wanted is not None and str(cid) != str(wanted) and str(entry.get("remote_id")) != str(wanted):
            continue
        if (low is not None and cid < low) or (high is not None and cid > high):
            continue
        if filters.taskname and not fnmatch.fnmatchcase(entry["project"], filters.taskname):
            continue
        if since is not None and entry["created"] < since:
            continue
        try:
            row = _campaign_row(entry)
        except StorageError as exc:  # one bad store never hides the others
            row = _damaged_row(entry, exc)
        if not filters.status or row.status in filters.status:
            rows.append(row)
        if len(rows) >= filters.limit:
            break
    return rows


def _campaign_row(entry: Mapping[str, Any]) -> TaskRow:
    with campaigns.open_folder(entry["path"], readonly=True) as store:
        c = store.campaign()
        counts = store.counts()
        best = store.best()
    state, message = c["status"], c.get("message")
    if _driver_gone(c):
        state = "interrupted"
        message = f"the driver (pid {c.get('pid')}) is gone; continue with `hpogrid tasks retry {c['id']}`"
    total = c.get("max_points") or 0
    done = counts["finished"] + counts["failed"] + counts.get("stopped", 0)  # stopped: cut short by a scheduler
    metric = None if best is None else (best["metric"] if best["metric"] is not None else best["loss"])
    settings = c.get("settings") or {}
    return TaskRow(
        jeditaskid=int(entry["id"]), taskname=c["project"], backend=c["backend"], status=state,
        progress=round(100.0 * done / total, 1) if total else 0.0, done=done, failed=counts["failed"],
        total=total, best_metric=metric, metric=c.get("metric"), start=_stamp(c.get("started")),
        end=_stamp(c.get("ended")), remote_id=c.get("remote_id"), message=message, seed=settings.get("seed"),
        overrides=settings.get("overrides") or None,
        timeout=settings.get("timeout") or DEFAULT_TIMEOUT,  # per-job time limit, s
        path=entry["path"])


def _driver_gone(c: Mapping[str, Any]) -> bool:
    """An unfinished campaign of a backend that drives it from this machine, whose driver is dead."""
    if c["status"] not in UNFINISHED:
        return False
    backend = _known_backend(c["backend"])
    return backend is not None and backend.driven_here and not driver_alive(c.get("pid"))


def _damaged_row(entry: Mapping[str, Any], exc: StorageError) -> TaskRow:
    """A campaign whose store cannot be read: listed as ``damaged``, with the file and what to do."""
    return TaskRow(jeditaskid=int(entry["id"]), taskname=entry["project"], backend=entry["backend"],
                   status="damaged", start=_stamp(entry.get("created")), end="-", remote_id=entry.get("remote_id"),
                   message=f"damaged: {exc.path}: {exc.advice}", path=entry["path"])


def remote_rows(local: list[TaskRow], filters: TaskFilter) -> tuple[list[TaskRow], list[str]]:
    """Tasks that backends list remotely (``list_tasks``), minus those already listed as local
    campaigns (same ``remote_id``). Returns rows and warnings."""
    known = {str(r.remote_id) for r in local if r.remote_id}
    rows, warnings = [], []
    for backend in _remote_backends():
        try:
            listed = backend.list_tasks(limit=filters.limit, days=filters.days, taskname=filters.taskname,
                                        jeditaskid=filters.jeditaskid, status=filters.status)
            for task in listed:
                row = _remote_row(backend.name, task)
                if str(row.jeditaskid) not in known:
                    rows.append(row)
        except HpogridError as exc:
            warnings.append(f"{backend.name}: {exc}")
    return rows, warnings


def _remote_row(backend: str, task: RemoteTask) -> TaskRow:
    """A backend's :class:`RemoteTask` as a ``tasks show`` row."""
    fields = task.as_row()
    known = {k: v for k, v in fields.items() if k in TaskRow.__dataclass_fields__}
    return TaskRow(**{**known, "backend": backend})


def refresh_unfinished() -> list[str]:
    """Bring unfinished campaigns whose store mirrors a remote side (``runs_here`` False) up to date,
    as ``report`` does; returns warnings."""
    warnings = []
    for entry in campaigns.for_project(None):
        backend = _known_backend(entry["backend"])
        if backend is None or backend.runs_here:
            continue
        try:
            with campaigns.open_entry(entry, readonly=True) as store:
                if store.campaign()["status"] not in UNFINISHED:
                    continue
            with campaigns.open_entry(entry) as store:
                backend.refresh(store)
        except HpogridError as exc:  # a damaged or read-only store is listed as it is
            warnings.append(f"campaign {entry['id']} not refreshed ({exc})")
    return warnings


# ---- the exec strings ----------------------------------------------------------------------------
def steering_exec(project: str, local: bool = False) -> str:
    """PROJECT's steeringExec (placeholders %IN %OUT %NUM_POINTS %MAX_POINTS left in)."""
    from .execs import steering_exec as build

    return build(project, local=local)


def evaluation_exec(project: str, local: bool = False) -> str:
    """PROJECT's evaluationExec (run in a job folder holding input.json)."""
    from .execs import evaluation_exec as build

    return build(project, local=local)


# ---- hpogrid run, hpogrid sites ------------------------------------------------------------------
@dataclass(frozen=True)
class GridRun:
    """``hpogrid run``: the task submitted (or, with ``dry_run``, the task it would submit)."""

    project: str
    n_jobs: int
    task_id: int | None = None
    out_ds: str | None = None
    campaign_id: str | None = None
    described: dict[str, Any] | None = None  # a dry run: the task parameters and the job command


def run_on_grid(project: str, n_jobs: int, sites: list[str] | None = None, architecture: str | None = None,
                dry_run: bool = False) -> GridRun:
    """Submit N grid jobs of PROJECT as one PanDA task (prun), registered as a campaign of the project."""
    from .grid.auth import voms_nickname
    from .grid import auth, panda, rucio
    from .grid.sandbox import make_sandbox
    from .grid.taskparams import build_run_task
    from .preflight import plan_run

    data = projects.load(project)
    plan_run(project, backend="run")  # the pre-flight (script, model, space): nothing is sent on failure
    if dry_run:
        task = build_run_task(data, n_jobs=n_jobs, nickname=auth.nickname_hint() or "NICKNAME", site=sites,
                              architecture=architecture)
        return GridRun(project, n_jobs, described=task.describe())
    credential = auth.check_credential()
    nickname = credential.nickname or voms_nickname()
    if data["grid_config"].get("inDS"):
        rucio.check_dataset(data["grid_config"]["inDS"])
    task = build_run_task(data, n_jobs=n_jobs, nickname=nickname, site=sites, architecture=architecture)
    with tempfile.TemporaryDirectory(prefix="hpogrid-sandbox-") as tmp:
        archive = make_sandbox(projects.path(project), Path(tmp) / task.sandbox)
        uploaded = panda.upload_sandbox(archive)
    if uploaded != task.sandbox:
        for param in task.task_params["jobParameters"]:
            if param.get("value") == f"-a {task.sandbox}":
                param["value"] = f"-a {uploaded}"
    task_id = panda.submit_task(task.task_params)
    hpo = data["hpo_config"]
    with campaigns.new(project, "panda", remote_id=str(task_id), status="running", algorithm=hpo["algorithm"],
                       metric=hpo["metric"], mode=hpo["mode"], max_points=n_jobs * hpo["num_trials"],
                       max_concurrent=n_jobs, started=time.time(),
                       settings={"kind": "run", "jediTaskID": task_id, "n_jobs": n_jobs, "outDS": task.out_ds,
                                 "exec": task.evaluation_exec}) as store:
        cid = str(store.campaign()["id"])
    return GridRun(project, n_jobs, task_id=task_id, out_ds=task.out_ds, campaign_id=cid)


def grid_sites(columns: list[str], name: str | None = None, gpu_only: bool = True, active_only: bool = True,
               types: set[str] | None = None) -> list[dict[str, Any]]:
    """PanDA's sites that match, each as ``{"site": queue, <column>: value, ...}``, sorted by name."""
    from .grid import auth, panda

    auth.check_credential()
    rows = []
    for queue, row in sorted(panda.site_info().items()):
        if name and not fnmatch.fnmatchcase(queue, name):
            continue
        is_gpu = str(row.get("resource_type", "")).upper() == "GPU" or "GPU" in queue.upper()
        if gpu_only and not is_gpu:
            continue
        if active_only and str(row.get("status", "")).lower() != "online":
            continue
        if types and row.get("type") and str(row.get("type")) not in types:
            continue
        rows.append({"site": queue, **{c: row.get(c) for c in columns}})
    return rows


# ---- hpogrid local_run ---------------------------------------------------------------------------
def local_run(project: str, *, ray_address: str | None = None, verbose: bool | None = None,
              cpus_per_trial: float = 1.0, gpus_per_trial: float = 0.0, num_cpus: int | None = None,
              overrides: Mapping[str, Any] | None = None, echo: Note = print) -> Outcome:
    """Run PROJECT's search here with Ray Tune (a ``local_run`` campaign); returns its outcome.

    Raises :class:`CampaignError` when the campaign failed or every trial failed (after ``echo``
    printed the trials)."""
    options = SubmitOptions(ray_address=ray_address or None, verbose=verbose, cpus_per_trial=cpus_per_trial,
                            gpus_per_trial=gpus_per_trial, num_cpus=num_cpus, echo=echo,
                            overrides=dict(overrides or {}))
    with get_backend("local_run").submit(project, options) as store:
        done = outcome(store, False)
    if done.status == "failed":
        raise CampaignError(f"campaign {done.campaign_id} failed: {done.message}")
    if done.failed and not done.finished:
        raise CampaignError(f"campaign {done.campaign_id}: all {done.failed} trials failed (see the reasons above)")
    return done


# ---- hpogrid report ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReportOutputs:
    """The files ``report`` writes beside its table."""

    outname: str = "hpo_result"  # base name; a .json/.csv/.html suffix is dropped
    to_json: bool = False
    to_csv: bool = False
    to_html: bool = False
    to_pcp: bool = False


@dataclass(frozen=True)
class ReportData:
    """A project's results as ``report`` shows them: the points, and the importances when computed."""

    results: Any
    importance: Any
    importance_note: str | None


def load_report(project: str, *, campaign: str | None = None, limit: int | None = None, days: float | None = None,
                taskname: str | None = None, id_range: str | None = None, refresh: bool = True) -> ReportData:
    """The results of PROJECT (the latest campaign, or those the filters match) with their importances."""
    from . import report

    results = report.load(project, campaign=campaign, limit=limit, days=days, taskname=taskname, id_range=id_range,
                          refresh=refresh)
    imp, note = report.importance(results, min_points=report.MIN_POINTS_FOR_IMPORTANCE)
    if imp is None and results.rated.empty:
        note = None  # nothing finished: the summary says so already
    return ReportData(results, imp, note)


def save_report(data: ReportData, outputs: ReportOutputs) -> list[str]:
    """Write the files asked for (nothing when a plot is asked for and no point finished); returns
    their paths. The MLflow export is :func:`export_report`."""
    from . import report

    results = data.results
    base = Path(outputs.outname)
    if base.suffix.lower() in (".json", ".csv", ".html"):
        base = base.with_suffix("")
    if (outputs.to_html or outputs.to_pcp) and results.rated.empty:
        c = results.counts()
        raise report.NoResultsError(
            f"no finished point to plot in {results.label()} ({c['failed']} failed, {c['running']} running, "
            f"{c['proposed']} waiting); no file written")
    written: list[str] = []
    if outputs.to_json:
        written.append(str(report.write_json(results, base.parent / f"{base.name}.json")))
    if outputs.to_csv:
        written.append(str(report.write_csv(results, base.parent / f"{base.name}.csv")))
    if outputs.to_html:
        written.append(str(report.write_html(results, base.parent / f"{base.name}.html",
                                             importance=data.importance, importance_note=data.importance_note)))
    if outputs.to_pcp:
        written.append(str(report.write_pcp(results, base.parent / f"{base.name}_parallel_coordinate_plot.html")))
    return written


def export_report(data: ReportData, mlflow_uri: str | None = None) -> dict[str, Any]:
    """The points to MLflow (experiment = project, one run per point); returns what was created."""
    from . import report

    return dict(report.export_mlflow(data.results, mlflow_uri))
