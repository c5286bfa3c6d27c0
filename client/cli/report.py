"""``hpogrid report PROJECT [options]``: a project's results as a table, files, plots or MLflow runs."""

from __future__ import annotations

from typing import Any, Sequence

import click

from .. import api
from .. import report as _report

__all__ = ["commands"]

_EXTRA_CHOICES = (*_report.EXTRA_COLUMNS, *_report.EXTRA_ALIASES)


def _split_extra(_ctx: click.Context, _param: click.Parameter, value: Sequence[str]) -> list[str]:
    out = []
    for item in value:
        for name in item.replace(",", " ").split():
            if name not in _EXTRA_CHOICES:
                raise click.BadParameter(f"{name!r} is not one of {', '.join(_EXTRA_CHOICES)}")
            out.append(name)
    return out


def _flag(name: str, help_: str) -> Any:
    return click.option(f"--{name}", f"--{name.replace('_', '-')}", name, is_flag=True, help=help_)


@click.command(name="report")
@click.argument("project")
@click.option("-c", "--campaign", "campaign", default=None, metavar="ID",
              help="Report this campaign (default: the project's latest, unless a filter below is given).")
@click.option("-l", "--limit", type=int, default=None,
              help="With filters: at most this many campaigns (the most recent ones) [default: all that match].")
@click.option("-d", "--days", type=float, default=None,
              help="Combine the campaigns created within the last N days.")
@click.option("-n", "--taskname", default=None, metavar="GLOB",
              help="Combine the campaigns whose grid task name (outDS), PanDA task id or campaign id matches the glob.")
@click.option("-r", "--range", "id_range", default=None, metavar="A-B",
              help="Combine the campaigns with ids in A-B (also A-, -B).")
@click.option("-e", "--extra", multiple=True, callback=_split_extra, metavar="COLUMN[,COLUMN]",
              help=f"Extra columns in the terminal table: {', '.join(_report.EXTRA_COLUMNS)} "
                   f"(1.x names {', '.join(_report.EXTRA_ALIASES)} also work). Files always have every column.")
@click.option("--rows", type=click.IntRange(min=0), default=_report.DEFAULT_ROWS, show_default=True,
              help="Rows of the terminal table (best first); it says how many more there are. 0 shows all.")
@click.option("-o", "--outname", default="hpo_result", show_default=True,
              help="Base name of the output files (without extension); may include a folder.")
@_flag("to_json", "Write OUTNAME.json: one record per point.")
@_flag("to_csv", "Write OUTNAME.csv: one row per point (the same columns as the JSON).")
@_flag("to_html", "Write OUTNAME.html: table and plots in one self-contained file (opens offline).")
@_flag("to_pcp", "Write OUTNAME_parallel_coordinate_plot.html: the parallel-coordinates plot alone.")
@_flag("to_mlflow", "Export to MLflow: experiment = project, one run per point (re-running adds no duplicates).")
@click.option("--refresh/--no-refresh", default=True, show_default=True,
              help="Bring unsettled grid campaigns up to date from PanDA/iDDS before reporting.")
@click.option("--mlflow-uri", "--mlflow_uri", "mlflow_uri", default=None, metavar="URI",
              help="MLflow tracking URI [default: ./mlruns, an SQLite store: sqlite:///mlruns/mlflow.db].")
def report(project: str, campaign: str | None, limit: int | None, days: float | None, taskname: str | None,
           id_range: str | None, extra: list[str], rows: int, outname: str, to_json: bool, to_csv: bool, to_html: bool,
           to_pcp: bool, to_mlflow: bool, refresh: bool, mlflow_uri: str | None) -> None:
    """Show the results of PROJECT: a table sorted by the metric (best first), the failed points
    with their reasons, a summary, and hyperparameter importances (8 or more finished points).

    Reads whatever the project ran (local_run, embedded or grid campaigns). Without --campaign or a
    filter (--days, --taskname, --range, --limit) it reports the latest campaign; with filters it
    combines the matching campaigns into one table.

    Plots (--to_html, --to_pcp) need at least one finished point; no file is written when a
    requested output cannot be made.
    """
    if mlflow_uri is not None and not to_mlflow:
        raise click.UsageError("--mlflow-uri needs --to_mlflow")
    data = api.load_report(project, campaign=campaign, limit=limit, days=days, taskname=taskname,
                           id_range=id_range, refresh=refresh)
    for note in data.results.notes:
        click.echo(f"hpogrid: warning: {note}", err=True)
    _report.render(data.results, extra=extra, importance=data.importance, importance_note=data.importance_note,
                   rows=rows)
    outputs = api.ReportOutputs(outname=outname, to_json=to_json, to_csv=to_csv, to_html=to_html, to_pcp=to_pcp)
    for path in api.save_report(data, outputs):
        click.echo(f"wrote {path}", err=True)
    if to_mlflow:
        done = api.export_report(data, mlflow_uri)
        click.echo(f"mlflow: experiment {done['experiment']!r} at {done['tracking_uri']}: {done['created']} run(s) "
                   f"created, {done['skipped']} already there, {done['unfinished']} unfinished point(s) not exported",
                   err=True)
        if mlflow_uri is None:
            click.echo(f"mlflow: view with `mlflow ui --backend-store-uri {done['tracking_uri']}`", err=True)

commands = [report]
