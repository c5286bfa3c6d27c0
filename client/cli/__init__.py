"""The ``hpogrid`` command: a thin click layer over the library (parse, call, format).

User errors become one line on stderr and a non-zero status (2 for usage errors); bugs keep their
tracebacks.
"""

from __future__ import annotations

import importlib
import re
import sys
from typing import Sequence

import click

from hpogrid.evaluator.errors import EvaluatorError
from hpogrid.steering.errors import SHOWN_CHARS, SteeringError, shorten

from ..errors import HpogridError
from ..home import base_path, home
from ..store import storage_error
from .examples import add_examples

__all__ = ["cli", "main"]

# Modules that contribute commands; each exposes ``commands``, a list of click commands.
COMMAND_MODULES = ("configs", "local_run", "campaigns", "grid", "report")


def _where(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    root = home()
    click.echo(f"HPOGRID_HOME  {root}")
    click.echo(f"configs       {root / 'configs'}/{{hpo,grid,model,search_space}}/<name>.json")
    click.echo(f"projects      {root / 'projects'}/<project>/{{project.json,scripts/}}")
    click.echo(f"campaigns     {root / 'projects'}/<project>/campaigns/<id>/{{store.db,jobs/}}")
    click.echo(f"registry      {root / 'campaigns.db'}")
    base = base_path()
    if base is not None:  # hpogrid 1.x's variable: its README's examples name ${HPOGRID_BASE_PATH}/example/...
        click.echo(f"HPOGRID_BASE_PATH  {base}  (hpogrid 1.x examples: export HPOGRID_BASE_PATH={base})")
    ctx.exit(0)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="hpogrid", prog_name="hpogrid")
@click.option("--where", is_flag=True, expose_value=False, is_eager=True, callback=_where,
              help="Print where hpogrid keeps configs, projects and campaigns, then exit.")
def cli() -> None:
    """hpogrid: hyperparameter optimisation on this machine, on Ray, and on the ATLAS grid.

    Describe a campaign with four configs (hpo_config, search_space, model_config, grid_config),
    bundle them as a project, then run it: `local_run` (Ray Tune here), `submit_idds` (an
    iDDS-style campaign: embedded by default, on Ray or on PanDA/iDDS), or `run` (grid jobs).
    """


def _register() -> None:
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        for command in module.commands:
            cli.add_command(command)


_register()
add_examples(cli)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    try:
        result = cli.main(args=list(argv) if argv is not None else None, prog_name="hpogrid", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("hpogrid: aborted", err=True)
        return 130
    except click.ClickException as exc:
        click.echo(f"hpogrid: error: {_one_line(exc.format_message())}", err=True)
        return exc.exit_code
    except HpogridError as exc:
        click.echo(f"hpogrid: error: {_one_line(str(exc))}", err=True)
        return exc.exit_code
    except (SteeringError, EvaluatorError) as exc:
        click.echo(f"hpogrid: error: {_one_line(str(exc))}", err=True)
        return 2
    except KeyboardInterrupt:
        click.echo("hpogrid: interrupted", err=True)
        return 130
    except OSError as exc:  # a full, read-only or failing disk anywhere: one line naming the file
        error = storage_error(exc)
        if error is None:
            raise
        click.echo(f"hpogrid: error: {_one_line(str(error))}", err=True)
        return error.exit_code
    return result if isinstance(result, int) else 0


# A quoted value in an error message (as click echoes a bad option value back).
_QUOTED = re.compile(r"'[^'\s]{%d,}'" % SHOWN_CHARS)


def _one_line(message: str) -> str:
    """An error as one line; a long quoted value in it (click's echo of a bad value) is shortened as
    :func:`~hpogrid.steering.errors.shown` shortens ours, and the line itself is capped."""
    line = _QUOTED.sub(lambda m: shorten(m.group(0)), " ".join(message.split()))
    return shorten(line, 16 * SHOWN_CHARS)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
