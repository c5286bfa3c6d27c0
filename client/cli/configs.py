"""``hpogrid <hpo_config|grid_config|model_config|search_space|project> <action> NAME [options]``."""

from __future__ import annotations

import json
import sys
from typing import Any, Callable

import click

from hpogrid.steering.space import METHODS

from .. import configs, projects
from ..home import base_path_hint

__all__ = ["commands"]

ACTIONS = ("create", "recreate", "update", "remove", "list", "show")


def _emit(data: Any, as_json: bool) -> None:
    """JSON for pipes and scripts; a readable table on a terminal."""
    if as_json or not sys.stdout.isatty():
        click.echo(json.dumps(data, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(show_header=True, header_style="bold")
    table.add_column("key")
    table.add_column("value", overflow="fold")
    for key, value in data.items():
        table.add_row(str(key), value if isinstance(value, str) else json.dumps(value))
    Console().print(table)


def _options(kind: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """click options for a config kind, one per field (``--num_trials`` and ``--num-trials``)."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        for field in reversed(configs.FIELDS[kind]):
            names = [f"--{field.name}"]
            if "_" in field.name:
                names.append(f"--{field.name.replace('_', '-')}")
            if field.short:
                names.append(field.short)
            default = "" if field.default is None else f" [default: {json.dumps(field.default)}]"
            if field.flag:
                flags = [f"--{field.name}/--no-{field.name}", *([field.short] if field.short else [])]
                fn = click.option(*flags, field.name, default=None, help=field.help + default)(fn)
            elif field.choices:
                fn = click.option(*names, field.name, type=click.Choice(field.choices), default=None,
                                  help=field.help + default)(fn)
            else:
                fn = click.option(*names, field.name, default=None, metavar="VALUE", help=field.help + default)(fn)
        return fn

    return decorate


def _config_group(kind: str) -> click.Group:
    cli_name = f"{kind}_config"

    @click.group(name=cli_name, help=f"Manage {kind} configurations: {', '.join(ACTIONS)}.")
    def group() -> None:
        pass

    for action in ("create", "recreate", "update"):

        def make(action: str) -> click.Command:
            @click.command(name=action, help=f"{action.capitalize()} the {kind} configuration NAME.")
            @click.argument("name")
            @_options(kind)
            def command(name: str, **values: Any) -> None:
                if action == "update":
                    config = configs.update(kind, name, values)
                else:
                    config = configs.create(kind, name, values, replace=action == "recreate")
                click.echo(f"{kind} config {name!r} {action}d: {configs.path_of(kind, name)}", err=True)
                _emit(config, as_json=True)

            return command

        group.add_command(make(action))
    _common(group, kind)
    return group


def _common(group: click.Group, kind: str) -> None:
    @group.command(name="remove", help=f"Remove the {kind} configuration NAME.")
    @click.argument("name")
    def remove(name: str) -> None:
        configs.remove(kind, name)
        click.echo(f"{kind} config {name!r} removed", err=True)

    @group.command(name="list", help=f"List {kind} configurations (optionally matching a glob).")
    @click.argument("pattern", required=False, default="*")
    @click.option("-e", "--expr", default=None, help="glob filter (same as PATTERN)")
    def list_(pattern: str, expr: str | None) -> None:
        for name in configs.list_names(kind, expr or pattern):
            click.echo(name)

    @group.command(name="show", help=f"Show the {kind} configuration NAME.")
    @click.argument("name")
    @click.option("--json", "as_json", is_flag=True, help="print JSON even on a terminal")
    def show(name: str, as_json: bool) -> None:
        _emit(configs.load(kind, name), as_json)


def _space_argument(value: str | None) -> Any:
    """The search space: JSON text (it starts with ``{``) or the path of a JSON file."""
    if value is None:
        raise click.UsageError("a search space is needed, as JSON text or a path to a JSON file")
    if value.lstrip().startswith("{"):
        return configs.parse_json(value, "the search space")
    return configs.read_json_file(value, "search space")


def _methods() -> str:
    out = []
    for method, (required, optional) in METHODS.items():
        dims = [*required, *(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in optional.items())]
        out.append(f"  {method:<12} {', '.join(dims)}")
    return "\n".join(out)


_SPACE_HELP = """{action} the search space NAME from SEARCH_SPACE: JSON text, or the path of a JSON file.

\b
The JSON form (one entry per hyperparameter):
  '{{"<name>": {{"method": "<method>", "dimension": {{"<dimension>": <value>, ...}}}}, ...}}'
e.g.
  '{{"lr": {{"method": "loguniform", "dimension": {{"low": 1e-5, "high": 1e-2}}}},
    "batch": {{"method": "categorical", "dimension": {{"categories": [32, 64, 128]}}}}}}'

\b
Methods and their dimensions (optional ones with their default):
""" + _methods().replace("{", "{{").replace("}", "}}")


def _search_space_group() -> click.Group:
    @click.group(name="search_space", help=f"Manage search spaces: {', '.join(ACTIONS)}.")
    def group() -> None:
        pass

    for action in ("create", "recreate", "update"):

        def make(action: str) -> click.Command:
            @click.command(name=action, help=_SPACE_HELP.format(action=action.capitalize()))
            @click.argument("name")
            @click.argument("search_space", required=False)
            @click.option("-s", "--search_space", "search_space_opt", default=None, metavar="JSON|FILE",
                          help="the search space (the same as SEARCH_SPACE)")
            def command(name: str, search_space: str | None, search_space_opt: str | None) -> None:
                text = _space_argument(search_space if search_space is not None else search_space_opt)
                if action == "update":
                    config = configs.update("search_space", name, text)
                else:
                    config = configs.create("search_space", name, text, replace=action == "recreate")
                click.echo(f"search space {name!r} {action}d: {configs.path_of('search_space', name)}", err=True)
                _emit(config, as_json=True)

            return command

        group.add_command(make(action))
    _common(group, "search_space")
    return group


def _project_group() -> click.Group:
    @click.group(name="project", help=f"Manage projects: {', '.join(ACTIONS)}.")
    def group() -> None:
        pass

    def part_options(fn: Callable[..., Any]) -> Callable[..., Any]:
        opts = [
            ("scripts_path", "-p", "training script, or folder of scripts, copied into the project"),
            ("model_config", "-m", "model config: stored name or path to a JSON file"),
            ("search_space", "-s", "search space: stored name or path to a JSON file"),
            ("hpo_config", "-o", "hpo config: stored name or path to a JSON file"),
            ("grid_config", "-g", "grid config: stored name or path to a JSON file"),
        ]
        for name, short, help_ in reversed(opts):
            fn = click.option(f"--{name}", f"--{name.replace('_', '-')}", short, name, default=None, help=help_)(fn)
        return fn

    for action in ("create", "recreate", "update"):

        def make(action: str) -> click.Command:
            @click.command(name=action, help=f"{action.capitalize()} the project NAME.")
            @click.argument("name")
            @part_options
            def command(name: str, scripts_path: str | None, **refs: str | None) -> None:
                hint = base_path_hint(scripts_path) if scripts_path else None
                if hint is not None:  # a path pasted from hpogrid 1.x's README
                    raise click.UsageError(hint)
                if action == "update":
                    project = projects.update(name, scripts_path=scripts_path, **refs)
                else:
                    project = projects.create(name, scripts_path=scripts_path, replace=action == "recreate", **refs)
                click.echo(f"project {name!r} {action}d: {projects.path(name)}", err=True)
                _emit(project, as_json=True)

            return command

        group.add_command(make(action))

    @group.command(name="remove", help="Remove the project NAME (with its campaigns).")
    @click.argument("name")
    def remove(name: str) -> None:
        projects.remove(name)
        click.echo(f"project {name!r} removed", err=True)

    @group.command(name="list", help="List projects (optionally matching a glob).")
    @click.argument("pattern", required=False, default="*")
    @click.option("-e", "--expr", default=None, help="glob filter (same as PATTERN)")
    def list_(pattern: str, expr: str | None) -> None:
        for name in projects.list_names(expr or pattern):
            click.echo(name)

    @group.command(name="show", help="Show the project NAME.")
    @click.argument("name")
    @click.option("--json", "as_json", is_flag=True, help="print JSON even on a terminal")
    def show(name: str, as_json: bool) -> None:
        _emit(projects.load(name), as_json)

    @group.command(name="where", help="Print the folder of the project NAME.")
    @click.argument("name")
    def where(name: str) -> None:
        projects.load(name)
        click.echo(str(projects.path(name)))

    return group


commands = [
    _config_group("hpo"),
    _config_group("grid"),
    _config_group("model"),
    _search_space_group(),
    _project_group(),
]

