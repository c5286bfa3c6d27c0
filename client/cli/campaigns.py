"""``hpogrid submit_idds``, ``hpogrid tasks show|kill|retry``, ``hpogrid steering_exec``, ``hpogrid evaluation_exec``."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

import click

from .. import api
from ..api import TASK_COLUMNS
from ..backends import available
from ..backends.base import GridOptions, Plan, SubmitOptions
from ..engine import make_display
from ..errors import CampaignError, UsageError

__all__ = ["commands", "TASK_COLUMNS", "override_options"]

DEFAULT_OUTCOL = ("jeditaskid", "taskname", "backend", "status", "progress", "best_metric", "start", "end")


def _options(**kw: Any) -> SubmitOptions:
    return SubmitOptions(**{k: v for k, v in kw.items() if v is not None})


def _display(detach: bool, progress: str) -> Any:
    """The progress display of an attached run (``--progress``); none when detached."""
    return None if detach or progress == "none" else make_display(None if progress == "auto" else progress)


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
    options = _options(n_points_per_iteration=n_points_per_iteration, min_unevaluated_points=min_unevaluated_points,
                       max_attempts=max_attempts, timeout=timeout, steering_command=steering_command,
                       ray_address=ray_address, seed=seed, detach=detach,
                       site=[x.strip() for x in site.split(",") if x.strip()] if site else None)
    options.progress = _display(detach or dry_run, progress)
    options.grid = GridOptions(gpu=gpu, architecture=architecture, checkpoint_save=checkpoint_save,
                               checkpoint_load=checkpoint_load, checkpoint_interval=checkpoint_interval,
                               max_evaluation_jobs=max_evaluation_jobs, steering_container=steering_container,
                               idds_host=idds_host)
    overrides = dict(algorithm=algorithm, num_trials=num_trials, max_concurrent=max_concurrent, stop=stop,
                     max_failures=max_failures)
    done = api.submit(project, options, backend=backend, resume=resume, overrides=overrides, dry_run=dry_run)
    if isinstance(done, Plan):  # a dry run: what would run, nothing started
        click.echo(done.as_json())
        return
    _report_end(done)


def _report_end(done: api.Outcome) -> None:
    if done.detached:
        click.echo(f"campaign {done.campaign_id} of {done.project} runs in the background (pid {done.pid}); "
                   f"log: {done.log}; watch with `hpogrid tasks show`", err=True)
        click.echo(done.campaign_id)
        return
    for line in done.summary:
        click.echo(line)
    error = done.error()
    if error is not None:
        raise CampaignError(error)
    if done.status in ("interrupted", "killed"):
        click.echo(f"campaign {done.campaign_id} {done.status}; continue it with `hpogrid tasks retry "
                   f"{done.campaign_id}`", err=True)
        raise click.exceptions.Exit(130 if done.status == "interrupted" else 1)


# ---- tasks -------------------------------------------------------------------------------------
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
    filters = api.TaskFilter(limit=limit, days=days, taskname=taskname, jeditaskid=jeditaskid, id_range=id_range,
                             status=statuses)
    listing = api.show_tasks(filters, local_only=local_only, metadata=metadata)
    for w in listing.warnings:
        click.echo(f"hpogrid: warning: {w}", err=True)
    rows = listing.rows
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in rows], indent=2))
    else:
        _print_table(rows)
    for detail in listing.details:
        if isinstance(detail, api.PointsOf):
            _print_points(detail)
        else:
            _print_grid_metadata(detail)
    if output:
        _save(rows, columns, Path(output))
        click.echo(f"saved {len(rows)} task(s) to {output}", err=True)
    damaged = [r for r in rows if r.status == "damaged"]
    for r in damaged:
        click.echo(f"hpogrid: error: campaign {r.jeditaskid} {r.message}", err=True)
    if damaged:
        raise click.exceptions.Exit(1)


_TABLE = (("id", "jeditaskid"), ("project", "taskname"), ("backend", "backend"), ("status", "status"),
          ("progress", "progress"), ("best", "best_metric"), ("seed", "seed"), ("start", "start"), ("end", "end"))
_COLOUR = {"finished": "green", "failed": "red", "running": "cyan", "killed": "magenta", "interrupted": "yellow"}


def _cells(row: api.TaskRow) -> list[str]:
    values = row.as_dict()
    return [f"{row.progress or 0:.0f}%" if key == "progress" else _fmt(values[key]) for _, key in _TABLE]


def _print_table(rows: list[api.TaskRow]) -> None:
    headers = [h for h, _ in _TABLE]
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table(show_header=True, header_style="bold")
        for h in headers:
            table.add_column(h)
        for r in rows:
            cells = _cells(r)
            cells[3] = f"[{_COLOUR.get(r.status, 'white')}]{r.status}[/]"
            table.add_row(*cells)
        Console().print(table)
        _print_notes(rows)
        return
    data = [headers] + [_cells(r) for r in rows]
    widths = [max(len(row[i]) for row in data) for i in range(len(headers))]
    for row in data:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    _print_notes(rows)


def _print_notes(rows: list[api.TaskRow]) -> None:
    """Under the table: why a campaign did not finish, and what was changed for that run only."""
    for r in rows:
        notes = []
        if r.status in ("failed", "killed", "interrupted") and r.message:
            notes.append(str(r.message))
        if r.overrides:
            notes.append("run with " + " ".join(f"--{k} {json.dumps(v)}" for k, v in r.overrides.items()))
        if notes:
            click.echo(f"  {r.jeditaskid}: " + "; ".join(" ".join(n.split())[:300] for n in notes))


def _print_points(detail: api.PointsOf) -> None:
    row = detail.row
    limit = f", job time limit {row.timeout:g} s" if row.timeout else ""
    click.echo(f"\ncampaign {row.jeditaskid} ({row.taskname}, {row.status}{limit}):")
    for p in detail.points or []:
        metric = _fmt(p["metric"] if p["metric"] is not None else p["loss"])
        click.echo(f"  point {p['id']:>5}  {p['state']:<9} attempts {p['attempts']}  {row.metric or 'loss'}="
                   f"{metric}  {json.dumps(p['params'])}" + (f"  [{p['message']}]" if p["message"] else ""))


def _print_grid_metadata(detail: api.JobsOf) -> None:
    row = detail.row
    click.echo(f"\ngrid task {row.jeditaskid} ({row.taskname}, {row.status}):")
    for job in detail.jobs:
        click.echo(f"  PandaID {job['PandaID']}: {json.dumps(job['metaData'])}")


def _save(rows: list[api.TaskRow], columns: list[str], path: Path) -> None:
    data = [{c: r.as_dict()[c] for c in columns} for r in rows]
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
    click.echo(api.kill(campaign_id).line)


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
    options = _options(max_attempts=max_attempts, timeout=timeout, detach=detach)
    options.progress = _display(detach, progress)
    done = api.retry(campaign_id, options, note=lambda line: click.echo(line, err=True))
    if isinstance(done, api.Said):
        click.echo(done.line)
    else:
        _report_end(done)


# ---- the exec strings --------------------------------------------------------------------------
@click.command("steering_exec")
@click.argument("project")
@click.option("--local", is_flag=True, help="the form that runs on this machine, from any working directory")
def steering_exec_cmd(project: str, local: bool) -> None:
    """Print the steeringExec of PROJECT (placeholders %IN %OUT %NUM_POINTS %MAX_POINTS left in)."""
    click.echo(api.steering_exec(project, local=local))


@click.command("evaluation_exec")
@click.argument("project")
@click.option("--local", is_flag=True, help="the form that runs on this machine, from any job folder")
def evaluation_exec_cmd(project: str, local: bool) -> None:
    """Print the evaluationExec of PROJECT (run in a job folder holding input.json)."""
    click.echo(api.evaluation_exec(project, local=local))


commands = [submit_idds, tasks, steering_exec_cmd, evaluation_exec_cmd]
