"""``hpogrid-idds-local start|stop|status --workdir DIR``: a local iDDS 2.6.21 from a shell."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .errors import IddsLocalError
from .server import start, status, stop

WORKDIR = click.option("--workdir", required=True, type=click.Path(file_okay=False, path_type=Path),
                       help="Folder that holds the server's database, configuration, logs and pids.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """A real iDDS 2.6.21 (REST app + agents on PostgreSQL) on 127.0.0.1, for tests and for users
    without an iDDS server. The first start builds its environment from PyPI (see
    docs/IDDS-LOCAL.md)."""


@main.command("start")
@WORKDIR
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="REST port (default: a free one).")
@click.option("--steering-bin", type=click.Path(file_okay=False, exists=True, path_type=Path), default=None,
              help="Folder with the hpogrid-steering the steering jobs run (default: this python's bin).")
def start_command(workdir: Path, port: int | None, steering_bin: Path | None) -> None:
    """Start PostgreSQL, the REST app and the agents; print the exports a client needs."""
    try:
        idds = start(workdir, port=port, steering_bin=steering_bin)
    except IddsLocalError as exc:
        raise click.ClickException(str(exc)) from exc
    for key, value in idds.environment().items():
        click.echo(f"export {key}={value}")


@main.command("stop")
@WORKDIR
@click.option("--purge", is_flag=True, help="Also remove the database (iDDS's requests and points).")
def stop_command(workdir: Path, purge: bool) -> None:
    """Stop everything ``start`` started in DIR (PostgreSQL included)."""
    stopped = stop(workdir, purge=purge)
    click.echo(f"stopped: {', '.join(c.value for c in stopped)}" if stopped else f"nothing running in {workdir}")


@main.command("status")
@WORKDIR
def status_command(workdir: Path) -> None:
    """Say whether the local iDDS in DIR runs and answers; exit 1 when it does not."""
    current = status(workdir)
    for line in current.lines():
        click.echo(line)
    if not current.up:
        sys.exit(1)
