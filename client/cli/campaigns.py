"""``hpogrid submit_idds``, ``hpogrid tasks show|kill|retry``, ``hpogrid steering_exec``, ``hpogrid evaluation_exec``."""

from __future__ import annotations

import csv
import datetime as _dt
import fnmatch
import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from .. import campaigns, projects
from ..campaigns import parse_range
from ..backends import available, get_backend
from ..backends.base import SubmitOptions
from ..errors import CampaignError, HpogridError, NotFoundError, UsageError
from ..engine import DEFAULT_TIMEOUT
from ..engine._campaign import check_resumable, driver_alive
from ..records import CampaignState, PointState, Registered
from ..store import Store, StorageError

__all__ = ["commands", "task_rows", "TASK_COLUMNS", "override_options"]

TASK_COLUMNS = ("jeditaskid", "taskname", "backend", "status", "progress", "done", "failed", "total",
                "best_metric", "metric", "start", "end", "remote_id", "message", "seed", "overrides", "timeout")
DEFAULT_OUTCOL = ("jeditaskid", "taskname", "backend", "status", "progress", "best_metric", "start", "end")


def _stamp(t: float | None) -> str:
    if not t:
        return "-"
    return _dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")


def _options(**kw: Any) -> SubmitOptions:
    return SubmitOptions(**{k: v for k, v in kw.items() if v is not None})


def _seconds(_ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    """A time limit option: finite and > 0 (``inf``, ``nan``, 0 and negatives refused in one line)."""
    from ..preflight import PreflightError, check_seconds

    try:
        return check_seconds(value, f"--{param.name}")
    except PreflightError as exc:
        raise click.BadParameter(str(exc)) from None


def override_options(fn: Any) -> Any:
    """The per-run overrides of hpo_config fields (``submit_idds`` and ``local_run``), checked by the
    hpo_config field rules (:mod:`hpogrid.client.configs`) and recorded with the campaign."""
    from ..configs import ALGORITHMS, STOP_PRESETS

    for decl, kw in reversed([
        (("--algorithm", "-a"), dict(default=None, metavar="NAME",
                                     help=f"for this run: the search algorithm ({', '.join(ALGORITHMS)})")),
        (("--num_trials", "--num-trials", "-n"), dict(default=None, type=int, help="for this run: the number of points")),
        (("--max_concurrent", "--max-concurrent", "-c"), dict(default=None, type=int,
                                                                help="for this run: evaluations at once")),
        (("--stop",), dict(default=None, metavar="JSON|NAME",
                           help="for this run: stopping criteria, JSON like '{\"training_iteration\": 5}' or "
                                f"{' / '.join(STOP_PRESETS)} [default: the hpo_config's; none = run until the training returns]")),
        (("--max_failures", "--max-failures"), dict(default=None, type=int,
                                                      help="for this run: stop after this many points failed in a row "
                                                           "(0: never) [default: the hpo_config's, 10]")),
    ]):
        fn = click.option(*decl, **kw)(fn)
    return fn


def _overrides(**kw: Any) -> dict[str, Any]:
    return {k: v for k, v in kw.items() if v is not None}


# ---- submit_idds -------------------------------------------------------------------------------
@click.command("submit_idds")
@click.argument("project")
@click.option("--backend", "-b", default=None, metavar="NAME",
              help=f"where the campaign runs: {', '.join(available())} [default: the grid config's backend]")
@click.option("--n_points_per_iteration", "--n-points-per-iteration", type=click.IntRange(min=1), default=None,
              help="points the steering proposes per round, at least (phpo nPointsPerIteration) [default: 2]")
@click.option("--min_unevaluated_points", "--min-unevaluated-points", type=click.IntRange(min=0), default=None,
              help="start a round when fewer points wait for a job (phpo minUnevaluatedPoints) [default: 0; "
                   "a round also starts whenever a job slot would stand idle]")
@click.option("--max_attempts", "--max-attempts", type=click.IntRange(min=1), default=None,
              help="attempts per point before it is recorded failed (PanDA: 5) [default: 5]")
@click.option("--timeout", type=float, default=None, callback=_seconds,
              help="time limit of one evaluation job, seconds (finite, > 0) [default: 86400 = 24 h]")
@click.option("--steering-command", "--steering_command", default=None, metavar="CMD",
              help="your own steeringExec, e.g. 'python my_steer.py %IN %OUT %NUM_POINTS %MAX_POINTS' "
                   "(run per round in the round folder, no shell)")
@click.option("--resume", is_flag=False, flag_value="latest", default=None, metavar="[ID]",
              help="continue campaign ID (default: the project's latest) to its budget")
@click.option("--detach", is_flag=True, help="run in the background; print the campaign id and return")
@click.option("--ray-address", "--ray_address", default=None, metavar="ADDR", help="Ray cluster (backend ray)")
@click.option("--seed", type=int, default=None,
              help="seed of the steering (overrides the hpo config's) [default: the hpo config's, else a fresh one, "
                   "stored with the campaign and shown]")
@override_options
@click.option("--dry-run", "--dry_run", is_flag=True, help="print what would run (grid: the PanDA task) and start nothing")
@click.option("--progress", type=click.Choice(["auto", "live", "plain", "none"]), default="auto", show_default=True,
              help="how to show progress while attached")
@click.option("--site", "-s", default=None, metavar="SITES", help="grid: site(s), comma-separated (overrides the grid config)")
@click.option("--gpu", is_flag=True, default=False, help="grid: run evaluation jobs on GPUs (architecture #&nvidia)")
@click.option("--architecture", default=None, metavar="SPEC", help="grid: phpo --architecture, e.g. '#&nvidia'")
@click.option("--checkpoint-save", "--checkpoint_save", default=None, metavar="PATH",
              help="grid: file/folder the training saves checkpoints to (phpo --checkPointToSave)")
@click.option("--checkpoint-load", "--checkpoint_load", default=None, metavar="PATH",
              help="grid: where a retried job finds the checkpoint (phpo --checkPointToLoad)")
@click.option("--checkpoint-interval", "--checkpoint_interval", type=click.IntRange(min=1), default=None,
              metavar="MINUTES", help="grid: minutes between checkpoint uploads (phpo --checkPointInterval)")
@click.option("--max_evaluation_jobs", "--max-evaluation-jobs", type=click.IntRange(min=1), default=None,
              help="grid: cap on evaluation jobs (phpo maxEvaluationJobs) [default: 2 x num_trials]")
@click.option("--idds-host", "--idds_host", default=None, metavar="URL",
              help="backend idds: the iDDS server, e.g. http://127.0.0.1:8080/idds [default: $HPOGRID_IDDS_HOST]")
@click.option("--steering-container", "--steering_container", default=None, metavar="IMAGE",
              help="grid: the steering image iDDS runs [default: hpogrid's steering image]")
def submit_idds(project: str, backend: str | None, n_points_per_iteration: int | None,
                min_unevaluated_points: int | None, max_attempts: int | None, timeout: float | None,
                steering_command: str | None, resume: str | None, detach: bool, ray_address: str | None,
                seed: int | None, dry_run: bool, progress: str, site: str | None, gpu: bool,
                architecture: str | None, checkpoint_save: str | None, checkpoint_load: str | None,
                checkpoint_interval: int | None, max_evaluation_jobs: int | None,
                steering_container: str | None, algorithm: str | None, num_trials: int | None,
                max_concurrent: int | None, stop: str | None, max_failures: int | None,
                idds_host: str | None = None) -> None:
    """Run an iDDS-style HPO campaign of PROJECT: rounds of the steering propose points, one job per point.

    With the grid config's default backend (embedded) it all runs on this machine, with the grid's
    semantics (retries, failure loss 1e5, %IN/%OUT rounds); `--backend ray` runs each job as a Ray
    task; `--backend panda` submits a PanDA task with iDDS steering. Ctrl-C stops cleanly; continue
    later with `--resume` (or `hpogrid tasks retry ID`).

    Before anything starts, a pre-flight checks the project (the script imports, the model has a
    supported signature, the search space parses, options are sane); a failure is one line, exit 1.
    --algorithm, --num_trials, --max_concurrent, --seed, --stop and --max_failures change the
    hpo_config for this run only (recorded with the campaign).
    """
    data = projects.load(project)
    overrides = _overrides(algorithm=algorithm, num_trials=num_trials, max_concurrent=max_concurrent, stop=stop,
                           max_failures=max_failures)
    if steering_command is not None and not steering_command.strip():
        raise UsageError("--steering-command must not be empty")
    display = None
    if not detach and progress != "none":
        from ..engine._progress import make_display

        display = make_display(None if progress == "auto" else progress)
    options = _options(n_points_per_iteration=n_points_per_iteration, min_unevaluated_points=min_unevaluated_points,
                       max_attempts=max_attempts, timeout=timeout, steering_command=steering_command,
                       ray_address=ray_address, seed=seed, detach=detach, dry_run=dry_run,
                       site=[x.strip() for x in site.split(",") if x.strip()] if site else None)
    options.extra["progress"] = display
    grid_extra = {"gpu": gpu or None, "architecture": architecture, "checkpoint_save": checkpoint_save,
                  "checkpoint_load": checkpoint_load, "checkpoint_interval": checkpoint_interval,
                  "max_evaluation_jobs": max_evaluation_jobs, "steering_container": steering_container,
                  "idds_host": idds_host}
    options.extra.update({k: v for k, v in grid_extra.items() if v is not None})
    if resume is not None:
        if overrides:
            raise UsageError(f"--resume continues a campaign as it was started; {', '.join(sorted(overrides))} "
                             f"apply to new campaigns only")
        store = _campaign_to_resume(project, resume)
        name = store.campaign().backend
        if backend is not None and backend != name:
            raise UsageError(f"campaign {store.campaign().id} ran on backend {name!r}, not {backend!r}")
        impl = get_backend(name)
        store = impl.resume(store, options)
    else:
        name = backend or data["grid_config"].get("backend", "embedded")
        impl = get_backend(name)
        options.extra["plan"] = _preflight(project, name, overrides, options)
        store = impl.submit(project, options)
    if store is None:  # dry run
        return
    _report_end(store, detach)


def _preflight(project: str, backend: str, overrides: dict[str, Any], options: SubmitOptions) -> Any:
    """The pre-flight of a new campaign (every backend, --dry-run included): nothing is written on failure."""
    from ..preflight import PreflightError, plan_run

    plan = plan_run(project, overrides, backend=backend, timeout=options.timeout, seed=options.seed)
    if backend not in ("embedded", "ray") and overrides:
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
    owner = store.campaign().project
    if owner != project:
        raise UsageError(f"campaign {resume} belongs to project {owner!r}, not {project!r}")
    return store


def _report_end(store: Store, detach: bool) -> None:
    c = store.campaign()
    if detach:
        click.echo(f"campaign {c.id} of {c.project} runs in the background (pid {c.pid}); "
                   f"log: {store.path.parent / 'driver.log'}; watch with `hpogrid tasks show`", err=True)
        click.echo(c.id)
        return
    progress = None
    from ..engine._progress import summary_lines
    from ..engine._loop import Progress

    counts = store.counts()
    best = store.best()
    progress = Progress(c.id, c.max_points or 0, finished=counts[PointState.FINISHED], failed=counts[PointState.FAILED],
                        metric_name=c.metric or "loss", started=c.started or time.time(),
                        status=c.status, message=c.message, seed=c.settings.get("seed"))
    for p in store.points([PointState.FAILED]):
        progress.count_failure(p.message)
    if best is not None:
        metric = best.metric if best.metric is not None else best.loss
        progress.best = {"id": best.id, "loss": best.loss, "metric": metric, "params": best.params}
    for line in summary_lines(progress):
        click.echo(line)
    if c.status is CampaignState.FAILED:
        raise CampaignError(f"campaign {c.id} failed: {c.message}")
    if c.status is CampaignState.FINISHED and counts[PointState.FAILED] and not counts[PointState.FINISHED]:
        raise CampaignError(f"campaign {c.id}: all {counts[PointState.FAILED]} points failed "
                            f"(see the reasons above, or `hpogrid tasks show -i {c.id} -m`)")
    if c.status in (CampaignState.INTERRUPTED, CampaignState.KILLED):
        click.echo(f"campaign {c.id} {c.status}; continue it with `hpogrid tasks retry {c.id}`", err=True)
        raise click.exceptions.Exit(130 if c.status is CampaignState.INTERRUPTED else 1)


# ---- tasks -------------------------------------------------------------------------------------
def task_rows(limit: int = 1000, days: float | None = 30, taskname: str | None = None,
              jeditaskid: str | None = None, id_range: str | None = None,
              status: list[str] | None = None) -> list[dict[str, Any]]:
    """Local campaigns (every backend's, from the registry) as rows, newest first, filtered."""
    low, high = parse_range(id_range)
    since = time.time() - days * 86400 if days is not None else None
    rows = []
    for entry in reversed(campaigns.for_project(None)):
        cid = int(entry.id)
        if jeditaskid is not None and str(cid) != str(jeditaskid) and str(entry.remote_id) != str(jeditaskid):
            continue
        if (low is not None and cid < low) or (high is not None and cid > high):
            continue
        if taskname and not fnmatch.fnmatchcase(entry.project, taskname):
            continue
        if since is not None and entry.created < since:
            continue
        try:
            with campaigns.open_entry(entry, readonly=True) as store:
                c = store.campaign()
                counts = store.counts()
                best = store.best()
        except StorageError as exc:  # one bad store never hides the others
            if not status or "damaged" in status:
                rows.append(_damaged_row(entry, exc))
            if len(rows) >= limit:
                break
            continue
        state, message = c.status, c.message
        if state.active and c.backend in ("embedded", "ray", "idds") and not driver_alive(c.pid):
            state, message = CampaignState.INTERRUPTED, f"the driver (pid {c.pid}) is gone; continue with `hpogrid tasks retry {cid}`"
        total = c.max_points or 0
        done = sum(n for s, n in counts.items() if s.final)  # stopped: cut short by a scheduler
        metric = None if best is None else (best.metric if best.metric is not None else best.loss)
        if status and state not in status:
            continue
        rows.append({
            "jeditaskid": cid, "taskname": c.project, "backend": c.backend, "status": state.value,
            "progress": round(100.0 * done / total, 1) if total else 0.0, "done": done, "failed": counts[PointState.FAILED],
            "total": total, "best_metric": metric, "metric": c.metric, "start": _stamp(c.started),
            "end": _stamp(c.ended), "remote_id": c.remote_id, "message": message,
            "seed": c.settings.get("seed"), "overrides": c.settings.get("overrides") or None,
            "timeout": c.settings.get("timeout") or DEFAULT_TIMEOUT,  # per-job time limit, s
            "path": entry.path,
        })
        if len(rows) >= limit:
            break
    return rows


def _damaged_row(entry: Registered, exc: StorageError) -> dict[str, Any]:
    """A campaign whose store cannot be read: listed as ``damaged``, with the file and what to do."""
    return {"jeditaskid": int(entry.id), "taskname": entry.project, "backend": entry.backend,
            "status": "damaged", "progress": 0.0, "done": None, "failed": None, "total": None,
            "best_metric": None, "metric": None, "start": _stamp(entry.created), "end": "-",
            "remote_id": entry.remote_id, "message": f"damaged: {exc.path}: {exc.advice}",
            "path": entry.path}


def remote_rows(local: list[dict[str, Any]], **filters: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """Tasks that backends list remotely (hook: a backend's ``list_tasks(**filters) -> rows``), minus
    those already listed as local campaigns (same ``remote_id``). Returns rows and warnings."""
    known = {str(r["remote_id"]) for r in local if r.get("remote_id")}
    rows, warnings = [], []
    for name in available():
        if name in ("embedded", "ray"):
            continue
        try:
            backend = get_backend(name)
        except HpogridError:
            continue
        lister = getattr(backend, "list_tasks", None)
        if lister is None:
            continue
        try:
            for row in lister(**filters) or []:
                if str(row.get("jeditaskid")) not in known:
                    rows.append({"backend": name, **row})
        except HpogridError as exc:
            warnings.append(f"{name}: {exc}")
    return rows, warnings


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


@click.group("tasks")
def tasks() -> None:
    """List, kill and retry campaigns (local ones, and the grid's when a grid backend is set up)."""


@tasks.command("show")
@click.option("--limit", "-l", type=click.IntRange(min=1), default=1000, show_default=True, help="at most this many tasks")
@click.option("--days", "-d", type=click.FloatRange(min=0), default=30, show_default=True, help="created in the last N days")
@click.option("--taskname", "-n", default=None, help="project name (wildcards allowed)")
@click.option("--jeditaskid", "-i", default=None, help="only this campaign id (or grid task id)")
@click.option("--range", "-r", "id_range", default=None, help="id range A-B, A- or -B")
@click.option("--status", "-s", default=None, help="comma-separated statuses (running,finished,failed,killed,interrupted)")
@click.option("--metadata", "-m", is_flag=True, help="also print each point of the listed tasks")
@click.option("--output", "-o", default=None, help="also save the rows to FILE (.json or .csv)")
@click.option("--outcol", "-c", default=None, help=f"columns to save [default: {','.join(DEFAULT_OUTCOL)}]")
@click.option("--local", "local_only", is_flag=True, help="only this machine's campaigns (do not ask grid backends)")
@click.option("--json", "as_json", is_flag=True, help="print JSON rows")
def show(limit: int, days: float, taskname: str | None, jeditaskid: str | None, id_range: str | None,
         status: str | None, metadata: bool, output: str | None, outcol: str | None, local_only: bool,
         as_json: bool) -> None:
    """List campaigns the way grid tasks are listed: id, project, backend, status, progress, best metric, times."""
    statuses = [s.strip() for s in status.split(",") if s.strip()] if status else None
    columns = [c.strip() for c in outcol.split(",") if c.strip()] if outcol else list(DEFAULT_OUTCOL)
    unknown = [c for c in columns if c not in TASK_COLUMNS]
    if unknown:
        raise UsageError(f"unknown --outcol column(s) {unknown}; valid: {', '.join(TASK_COLUMNS)}")
    if not local_only:  # --- grid hook (added by the grid backend, see _grid_refresh) ---
        for w in _grid_refresh():
            click.echo(f"hpogrid: warning: {w}", err=True)
    rows = task_rows(limit, days, taskname, jeditaskid, id_range, statuses)
    if not local_only:
        extra, warnings = remote_rows(rows, limit=limit, days=days, taskname=taskname, jeditaskid=jeditaskid,
                                      status=statuses)
        for w in warnings:
            click.echo(f"hpogrid: warning: {w}", err=True)
        rows = (rows + extra)[:limit]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    else:
        _print_table(rows)
    if metadata:
        for row in rows:
            if row.get("path"):
                _print_points(row)
            else:  # --- grid hook: per-job metadata of a grid task that is not a local campaign ---
                _print_grid_metadata(row)
    if output:
        _save(rows, columns, Path(output))
        click.echo(f"saved {len(rows)} task(s) to {output}", err=True)
    damaged = [r for r in rows if r["status"] == "damaged"]
    for r in damaged:
        click.echo(f"hpogrid: error: campaign {r['jeditaskid']} {r['message']}", err=True)
    if damaged:
        raise click.exceptions.Exit(1)


def _print_table(rows: list[dict[str, Any]]) -> None:
    headers = ["id", "project", "backend", "status", "progress", "best", "seed", "start", "end"]
    keys = ["jeditaskid", "taskname", "backend", "status", "progress", "best_metric", "seed", "start", "end"]
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        colour = {"finished": "green", "failed": "red", "running": "cyan", "killed": "magenta", "interrupted": "yellow"}
        table = Table(show_header=True, header_style="bold")
        for h in headers:
            table.add_column(h)
        for r in rows:
            cells = [_fmt(r.get(k)) for k in keys]
            cells[4] = f"{r.get('progress', 0):.0f}%"
            cells[3] = f"[{colour.get(r['status'], 'white')}]{r['status']}[/]"
            table.add_row(*cells)
        Console().print(table)
        _print_notes(rows)
        return
    data = [headers] + [[_fmt(r.get(k)) if k != "progress" else f"{r.get('progress', 0):.0f}%" for k in keys] for r in rows]
    widths = [max(len(row[i]) for row in data) for i in range(len(headers))]
    for row in data:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    _print_notes(rows)


def _print_notes(rows: list[dict[str, Any]]) -> None:
    """Under the table: why a campaign did not finish, and what was changed for that run only."""
    for r in rows:
        notes = []
        if r.get("status") in ("failed", "killed", "interrupted") and r.get("message"):
            notes.append(str(r["message"]))
        if r.get("overrides"):
            notes.append("run with " + " ".join(f"--{k} {json.dumps(v)}" for k, v in r["overrides"].items()))
        if notes:
            click.echo(f"  {r['jeditaskid']}: " + "; ".join(" ".join(n.split())[:300] for n in notes))


def _print_points(row: dict[str, Any]) -> None:
    limit = f", job time limit {row['timeout']:g} s" if row.get("timeout") else ""
    click.echo(f"\ncampaign {row['jeditaskid']} ({row['taskname']}, {row['status']}{limit}):")
    if row["status"] == "damaged":
        return
    with campaigns.open_entry(row, readonly=True) as store:
        for p in store.points():
            metric = _fmt(p.metric if p.metric is not None else p.loss)
            click.echo(f"  point {p.id:>5}  {p.state:<9} attempts {p.attempts}  {row.get('metric') or 'loss'}="
                       f"{metric}  {json.dumps(p.params)}" + (f"  [{p.message}]" if p.message else ""))


def _save(rows: list[dict[str, Any]], columns: list[str], path: Path) -> None:
    data = [{c: r.get(c) for c in columns} for r in rows]
    if path.suffix.lower() == ".csv":
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(data)
    else:
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


@tasks.command("kill")
@click.argument("campaign_id")
def kill(campaign_id: str) -> None:
    """Stop campaign CAMPAIGN_ID: running jobs are ended and recorded; continue it with `tasks retry`."""
    if _grid_task_command("kill", campaign_id):  # --- grid hook: a grid task id, not a local campaign ---
        return
    with campaigns.open_campaign(campaign_id) as store:
        get_backend(store.campaign().backend).kill(store)
        c = store.campaign()
        click.echo(f"campaign {c.id} {c.status}")


@tasks.command("retry")
@click.argument("campaign_id")
@click.option("--detach", is_flag=True, help="continue in the background")
@click.option("--max_attempts", "--max-attempts", type=click.IntRange(min=1), default=None,
              help="attempts per point before it is recorded failed (PanDA: 5)")
@click.option("--timeout", type=float, default=None, callback=_seconds,
              help="time limit of one evaluation job, seconds (finite, > 0)")
@click.option("--progress", type=click.Choice(["auto", "live", "plain", "none"]), default="auto",
              show_default=True, help="how to show progress while attached")
def retry(campaign_id: str, detach: bool, max_attempts: int | None, timeout: float | None, progress: str) -> None:
    """Continue campaign CAMPAIGN_ID to its budget (re-running only what had not finished); on an
    ended campaign (finished, failed, killed) its failed points are run again as new attempts of
    the same points, then the campaign ends again."""
    if _grid_task_command("retry", campaign_id):  # --- grid hook: a grid task id, not a local campaign ---
        return
    store = campaigns.open_campaign(campaign_id)
    c = store.campaign()
    if c.backend == "local_run":
        raise CampaignError(f"campaign {campaign_id} is a local_run (Ray Tune ran it); run `hpogrid local_run "
                            f"{c.project}` again")
    backend = get_backend(c.backend)
    own_retry = getattr(backend, "retry", None)
    if own_retry is not None and backend.name not in ("embedded", "ray"):
        own_retry(store)
        click.echo(f"campaign {campaign_id} retried on {backend.name}")
        return
    display = None
    if not detach and progress != "none":
        from ..engine._progress import make_display

        display = make_display(None if progress == "auto" else progress)
    options = _options(max_attempts=max_attempts, timeout=timeout, detach=detach)
    options.extra["progress"] = display
    if c.status.final:
        check_resumable(store)
        reopened = store.reopen_failed("waiting for a new attempt (`hpogrid tasks retry`)")
        if c.status is CampaignState.FINISHED and not reopened:
            click.echo(f"campaign {campaign_id} finished with no failed point; nothing to retry")
            return
        click.echo(f"campaign {campaign_id}: retrying {len(reopened)} failed point(s)", err=True)
    store = backend.resume(store, options)
    _report_end(store, detach)


# ---- grid hook ---------------------------------------------------------------------------------
# Added by the grid backend's owner (issue 6) as the minimal hook `tasks` needed for grid tasks;
# the campaign commands' owner may fold it into their own design. A backend takes part by having
# ``refresh(store)``, ``task_metadata(task_id)``, ``kill_task(task_id)`` and ``retry_task(task_id)``.
_LOCAL_BACKENDS = ("embedded", "ray", "local_run")


def _grid_refresh() -> list[str]:
    """Bring unfinished grid campaigns up to date (as ``report`` does); returns warnings."""
    warnings = []
    for entry in campaigns.for_project(None):
        if entry.backend in _LOCAL_BACKENDS:
            continue
        try:
            with campaigns.open_entry(entry, readonly=True) as store:
                if not store.campaign().status.active:
                    continue
            with campaigns.open_entry(entry) as store:
                get_backend(entry.backend).refresh(store)
        except HpogridError as exc:  # a damaged or read-only store is listed as it is
            warnings.append(f"campaign {entry.id} not refreshed ({exc})")
    return warnings


def _print_grid_metadata(row: dict[str, Any]) -> None:
    backend = get_backend(row["backend"]) if row.get("backend") in available() else None
    fetch = getattr(backend, "task_metadata", None)
    if fetch is None:
        return
    click.echo(f"\ngrid task {row['jeditaskid']} ({row['taskname']}, {row['status']}):")
    for job in fetch(row["jeditaskid"]):
        click.echo(f"  PandaID {job['PandaID']}: {json.dumps(job['metaData'])}")


def _grid_task_command(command: str, task_id: str) -> bool:
    """``tasks kill|retry ID`` where ID is no local campaign but a grid task: ask the grid backends."""
    if not str(task_id).isdigit():
        return False
    try:
        campaigns.registered(task_id)
        return False
    except NotFoundError:
        pass
    for name in available():
        if name in _LOCAL_BACKENDS:
            continue
        backend = get_backend(name)
        act = getattr(backend, f"{command}_task", None)
        said = act(task_id) if act is not None else None  # None: this backend is not set up here
        if said is not None:
            click.echo(said)
            return True
    return False


# ---- the exec strings --------------------------------------------------------------------------
@click.command("steering_exec")
@click.argument("project")
@click.option("--local", is_flag=True, help="the form that runs on this machine, from any working directory")
def steering_exec_cmd(project: str, local: bool) -> None:
    """Print the steeringExec of PROJECT (placeholders %IN %OUT %NUM_POINTS %MAX_POINTS left in)."""
    from ..engine._commands import steering_exec

    click.echo(steering_exec(project, local=local))


@click.command("evaluation_exec")
@click.argument("project")
@click.option("--local", is_flag=True, help="the form that runs on this machine, from any job folder")
def evaluation_exec_cmd(project: str, local: bool) -> None:
    """Print the evaluationExec of PROJECT (run in a job folder holding input.json)."""
    from ..engine._commands import evaluation_exec

    click.echo(evaluation_exec(project, local=local))


commands = [submit_idds, tasks, steering_exec_cmd, evaluation_exec_cmd]
