"""Grid commands: ``run`` (N grid jobs, each running the project's whole search) and ``sites``.

``submit_idds --backend panda`` and the grid half of ``tasks`` live with the campaign commands;
they call ``hpogrid.client.backends.panda`` and ``hpogrid.client.grid.monitor``.
"""

from __future__ import annotations

import json

import click

from .. import api

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
    sites = [s.strip() for s in site.split(",") if s.strip()] if site else None
    done = api.run_on_grid(project, n_jobs, sites=sites, architecture=architecture or ("#&nvidia" if gpu else None),
                           dry_run=dry_run)
    if done.described is not None:
        click.echo(json.dumps(done.described, indent=2, sort_keys=True))
        return
    click.echo(f"submitted jediTaskID={done.task_id}: {n_jobs} job(s) of {project} (outDS {done.out_ds}); "
               f"campaign {done.campaign_id}: follow it with `hpogrid tasks show`, results with `hpogrid report {project}`")


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
    columns = [c.strip() for c in info.split(",") if c.strip()]
    rows = api.grid_sites(columns, name=name, gpu_only=gpu_only, active_only=active_only,
                          types={t.strip() for t in site_type.split(",") if t.strip()})
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
