"""Help pages and the README agree.

Every command's ``--help`` ends with one example and gives every option a line of help; every
option a command has is named in the README section about that command; every option the README
names (in a command synopsis, a config table, or the Reports section) exists in that command.
The click tree is walked in-process (fast); a few pages go through the installed ``hpogrid``.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path
from typing import Iterator

import click
import pytest
from click.testing import CliRunner

from hpogrid.client.cli import cli
from tests.conftest import REPO, installed

README = (REPO / "README.md").read_text(encoding="utf-8")

# README sections (by heading) that document each command (first word of its path)
SECTIONS = {
    "": ["## Where things live"],
    "hpo_config": ["## Configs"], "grid_config": ["## Configs"], "model_config": ["## Configs"],
    "search_space": ["## Configs"], "project": ["## Configs"],
    "local_run": ["## The whole search here"],
    "submit_idds": ["## Campaigns", "## On the grid"],
    "tasks": ["## Campaigns", "## On the grid"],
    "steering_exec": ["## Search algorithms"],
    "evaluation_exec": ["### One point"],
    "run": ["## On the grid"],
    "sites": ["## On the grid"],
    "report": ["## Reports"],
}


def commands(group: click.Command = cli, path: tuple[str, ...] = ()) -> Iterator[tuple[str, click.Command]]:
    yield " ".join(path), group
    if isinstance(group, click.Group):
        for name, sub in group.commands.items():
            yield from commands(sub, (*path, name))


ALL = dict(commands())
LEAVES = {path: cmd for path, cmd in ALL.items() if not isinstance(cmd, click.Group)}


def options(cmd: click.Command) -> list[click.Option]:
    return [p for p in cmd.params if isinstance(p, click.Option) and p.name not in ("help",)]


def names(opt: click.Option) -> list[str]:
    return [*opt.opts, *opt.secondary_opts]


def section(heading: str) -> str:
    """The README text from ``heading`` to the next heading of the same or a higher level."""
    level = heading.split()[0]
    start = README.index(heading)
    nxt = re.compile(rf"^#{{1,{len(level)}}} ", re.M)
    match = nxt.search(README, start + len(heading))
    return README[start:match.start() if match else len(README)]


def mentioned(name: str, text: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text) is not None


def help_text(path: str) -> str:
    result = CliRunner().invoke(cli, [*path.split(), "--help"], prog_name="hpogrid", terminal_width=100)
    assert result.exit_code == 0, result.output
    return result.output


# ---- help pages --------------------------------------------------------------------------------
@pytest.mark.parametrize("path", sorted(ALL))
def test_every_help_page_has_one_example(path: str) -> None:
    text = help_text(path)
    example = text.split("Example:", 1)
    assert len(example) == 2, f"`hpogrid {path} --help` has no example"
    assert text.count("Example:") == 1
    assert example[1].strip().startswith("hpogrid")


@pytest.mark.parametrize("path", sorted(ALL))
def test_every_option_has_a_line_of_help(path: str) -> None:
    missing = [opt.opts[0] for opt in options(ALL[path]) if not (opt.help or "").strip()]
    assert not missing, f"`hpogrid {path}`: options without help: {missing}"


def test_examples_name_real_commands_and_options() -> None:
    """Each example parses: its command exists and each of its options is one of the command's."""
    from hpogrid.client.cli.examples import EXAMPLES

    for path, example in EXAMPLES.items():
        words = shlex.split(example)
        assert words[0] == "hpogrid"
        cmd_path = path.split()
        cmd = ALL[" ".join(cmd_path)] if path else cli
        if isinstance(cmd, click.Group) and path:  # a group's example uses one of its commands
            cmd = cmd.commands[words[1 + len(cmd_path)]]
        known = {n for opt in options(cmd) for n in names(opt)} | {"--where"}
        used = [w.split("=")[0] for w in words if w.startswith("-")]
        assert set(used) <= known, f"{example!r}: unknown {set(used) - known}"


def test_installed_help_pages(cli_env) -> None:
    """As a user types them: the JSON form of a search space, hpo_config's -v, report's --rows."""
    def page(*args: str) -> str:
        done = subprocess.run([installed("hpogrid"), *args, "--help"], env=cli_env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    space = page("search_space", "create")
    assert '{"<name>": {"method": "<method>", "dimension": {"<dimension>": <value>, ...}}, ...}' in space
    assert "loguniform   low, high, base=10" in space and "Example:" in space
    assert "-v, --verbose / --no-verbose" in page("hpo_config", "create")
    assert "--rows INTEGER RANGE" in page("report")


# ---- README <-> help -----------------------------------------------------------------------------
@pytest.mark.parametrize("path", sorted(ALL))
def test_every_option_is_in_the_readme(path: str) -> None:
    text = "".join(section(h) for h in SECTIONS[path.split(" ")[0] if path else ""])
    missing = [opt.opts[-1] for opt in options(ALL[path])
               if opt.name not in ("version", "as_json", "expr")  # --version; show --json, list -e as in 1.x
               and not any(mentioned(n, text) for n in names(opt) if n.startswith("--"))]
    assert not missing, f"`hpogrid {path}` options missing from README {SECTIONS[path.split(' ')[0] if path else '']}: {missing}"


def resolve(words: list[str]) -> click.Command | None:
    """The command a README synopsis names (``hpogrid tasks show [...]`` -> tasks show)."""
    cmd: click.Command = cli
    for word in words:
        if isinstance(cmd, click.Group) and word in cmd.commands:
            cmd = cmd.commands[word]
        else:
            break
    return None if cmd is cli else cmd


def option_names(cmd: click.Command) -> set[str]:
    if isinstance(cmd, click.Group):  # `hpogrid project <create|...> NAME --scripts_path P`: any action's
        return set().union(*(option_names(sub) for sub in cmd.commands.values()))
    return {n for opt in options(cmd) for n in names(opt)}


def synopses() -> Iterator[tuple[str, str]]:
    """``(command words, options text)`` of every README line that shows a command: code-block lines
    ``hpogrid CMD ...`` (with their indented ``--option`` continuation lines) and inline code spans."""
    in_code, current = False, None
    legacy = section("## Coming from hpogrid 1.x")  # names 1.x's commands on purpose
    for line in README.replace(legacy, "").splitlines():
        if line.startswith("```"):
            in_code, current = not in_code, None
            continue
        if in_code:
            body = line.split("#")[0] if not line.lstrip().startswith("-") else line
            if body.startswith("hpogrid "):
                current = body
                yield body, body
            elif current and re.match(r"^\s+-", line):
                yield current, line
            else:
                current = None
        else:
            for span in re.findall(r"`(hpogrid [^`]+)`", line):
                yield span, span


@pytest.mark.parametrize("line", sorted({s for s, _ in synopses()}))
def test_every_readme_synopsis_option_exists(line: str) -> None:
    cmd = resolve(line.split()[1:])
    if cmd is None:
        pytest.skip(f"not one command: {line}")
    known = option_names(cmd)
    used = {o for synopsis, text in synopses() if synopsis == line for o in re.findall(r"(?<![\w-])--?[A-Za-z][\w-]*", text)}
    used -= {"-h", "--help"}
    assert used <= known, f"README `{line}` names options the command lacks: {sorted(used - known)}"


def test_every_config_table_option_exists() -> None:
    """The Configs section's tables and lists (``-a/--algorithm``) name options of `<kind> create`."""
    text = section("## Configs")
    checked = 0
    for block in re.split(r"\n(?=\*\*)", text):
        head = re.match(r"\*\*(\w+)\*\*", block)
        if not head or head.group(1) not in ALL:
            continue
        group = ALL[head.group(1)]
        cmd = group.commands["create"] if isinstance(group, click.Group) else group
        by_name = {n: opt for opt in options(cmd) for n in names(opt)}
        for short, long in re.findall(r"`(-\w)/(--[\w-]+)`", block):
            assert long in by_name and short in by_name, f"{head.group(1)}: `{short}/{long}` is not an option"
            assert by_name[short] is by_name[long], f"{head.group(1)}: {short} and {long} are different options"
            checked += 1
    assert checked == 18  # hpo_config 8, grid_config 6, model_config 3, search_space 1


def test_every_option_in_the_reports_section_exists() -> None:
    known = option_names(ALL["report"])
    used = set(re.findall(r"(?<![\w-])--[A-Za-z][\w-]*", section("## Reports")))
    assert used and used <= known, sorted(used - known)


def test_hpo_config_accepts_v_as_the_readme_lists_it(cli_env, tmp_path: Path) -> None:
    for args, verbose in ((["-v"], True), (["--verbose"], True), (["--no-verbose"], False), ([], False)):
        done = subprocess.run([installed("hpogrid"), "hpo_config", "recreate", "h", *args], env=cli_env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert '"verbose": %s' % str(verbose).lower() in done.stdout
