"""Grid commands: ``run`` (N grid jobs, each running the project's whole search) and ``sites``.

``submit_idds --backend panda`` and the grid half of ``tasks`` live with the campaign commands;
they call ``hpogrid.client.backends.panda`` and ``hpogrid.client.grid.monitor``.
"""

from __future__ import annotations

import fnmatch
import json
import tempfile
import time
from pathlib import Path

import click

__all__ = ["commands", "run", "sites"]

SITE_INFO = ("state", "status", "maxinputsize", "maxmemory", "maxtime", "corecount", "corepower")


@click.command("run")
@click.argument("project")
@click.option("-n", "--n_jobs", "n_jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Number of grid jobs; each runs the project's whole search (hpogrid local_run) on its node.")
@click.option("-s", "--site", default=None,
              help="Site(s) to run at, comma-separated (overrides the grid config; ANY = let PanDA choose).")
@click.option("--architecture", default=None, help="CPU/GPU requirement in prun's syntax, e.g. '#&nvidia'.")
@click.option("--gpu", is_flag=True, help="Ask for an NVIDIA GPU (same as --architecture '#&nvidia').")
@click.option("--dry-run", is_flag=True, help="Print the task parameters and the job command; submit nothing.")
def run(project: str, n_jobs: int, site: str | None, architecture: str | None, gpu: bool, dry_run: bool) -> None:
    """Submit N grid jobs of PROJECT as one PanDA task (prun); results come back as job metadata.

    Each job unpacks the project folder, runs `hpogrid local_run` inside the evaluation container
    and leaves its summary (best point, every trial) as PanDA job metadata. The task is a campaign
    of the project: `hpogrid report PROJECT` reads every trial of every job from that metadata.
    """
    from .. import projects
    from ..grid import auth, panda, rucio
    from ..grid.sandbox import make_sandbox
    from ..grid.taskparams import build_run_task

    from ..preflight import plan_run

    data = projects.load(project)
    plan_run(project, backend="run")  # the pre-flight (script, model, space): nothing is sent on failure
    sites = [s.strip() for s in site.split(",") if s.strip()] if site else None
    arch = architecture or ("#&nvidia" if gpu else None)
    if dry_run:
        task = build_run_task(data, n_jobs=n_jobs, nickname=auth.nickname_hint() or "NICKNAME", site=sites,
                              architecture=arch)
        click.echo(json.dumps(task.describe(), indent=2, sort_keys=True))
        return
    credential = auth.check_credential()
    nickname = credential.nickname or _nickname()
    if data["grid_config"].get("inDS"):
        rucio.check_dataset(data["grid_config"]["inDS"])
    task = build_run_task(data, n_jobs=n_jobs, nickname=nickname, site=sites, architecture=arch)
    with tempfile.TemporaryDirectory(prefix="hpogrid-sandbox-") as tmp:
        archive = make_sandbox(projects.path(project), Path(tmp) / task.sandbox)
        uploaded = panda.upload_sandbox(archive)
    if uploaded != task.sandbox:
        for param in task.task_params["jobParameters"]:
            if param.get("value") == f"-a {task.sandbox}":
                param["value"] = f"-a {uploaded}"
    task_id = panda.submit_task(task.task_params)
    from .. import campaigns

    hpo = data["hpo_config"]
    with campaigns.new(project, "panda", remote_id=str(task_id), status="running", algorithm=hpo["algorithm"],
                       metric=hpo["metric"], mode=hpo["mode"], max_points=n_jobs * hpo["num_trials"],
                       max_concurrent=n_jobs, started=time.time(),
                       settings={"kind": "run", "jediTaskID": task_id, "n_jobs": n_jobs, "outDS": task.out_ds,
                                 "exec": task.evaluation_exec}) as store:
        cid = store.campaign().id
    click.echo(f"submitted jediTaskID={task_id}: {n_jobs} job(s) of {project} (outDS {task.out_ds}); "
               f"campaign {cid}: follow it with `hpogrid tasks show`, results with `hpogrid report {project}`")


def _nickname() -> str:
    from ..backends.panda import _voms_nickname

    return _voms_nickname()


@click.command("sites")
@click.option("-n", "--name", default=None, help="Only sites whose name matches this pattern (wildcards).")
@click.option("--gpu_sites/--all_sites", "gpu_only", default=True, show_default=True, help="GPU sites only, or all.")
@click.option("--active/--all_status", "active_only", default=True, show_default=True,
              help="Only sites that are online.")
@click.option("-t", "--site_type", default="analysis,unified", show_default=True,
              help="Site types to show, comma-separated.")
@click.option("-i", "--info", default=",".join(SITE_INFO), show_default=True,
              help="Columns to show, comma-separated.")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
def sites(name: str | None, gpu_only: bool, active_only: bool, site_type: str, info: str, as_json: bool) -> None:
    """List grid sites (GPU sites by default) from PanDA's site information."""
    from ..grid import auth, panda

    auth.check_credential()
    table = panda.site_info()
    types = {t.strip() for t in site_type.split(",") if t.strip()}
    columns = [c.strip() for c in info.split(",") if c.strip()]
    rows = []
    for queue, row in sorted(table.items()):
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
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no sites match")
        return
    headers = ["site", *columns]
    widths = [max(len(h), *(len(str(r.get(h))) for r in rows)) for h in headers]
    click.echo("  ".join(h.ljust(w) for h, w in zip(headers, widths)))
    for r in rows:
        click.echo("  ".join(str(r.get(h)).ljust(w) for h, w in zip(headers, widths)))


commands = [run, sites]
