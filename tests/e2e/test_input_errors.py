"""Bad search-space files and values, as a user meets them through the installed `hpogrid`:
one line on stderr that names the user's file (line and column for JSON errors), never the file's
content, a staging path or a huge value; a non-zero exit; nothing written."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from hpogrid.steering.errors import SHOWN_CHARS, shorten, shown
from tests.conftest import REPO, installed

GOOD_SPACE = '{"x": {"method": "uniform", "dimension": {"low": 0, "high": 1}}}'


def hpogrid(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([installed("hpogrid"), *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("hpogrid: error: ")
    return lines[0]


def test_trailing_comma_says_line_and_column_not_the_file(cli_env, tmp_path: Path, hpogrid_home: Path) -> None:
    (tmp_path / "space.json").write_text('{\n  "x": {"method": "uniform", "dimension": {"low": 0, "high": 1}},\n}\n')
    line = one_error_line(hpogrid(["search_space", "create", "s", "space.json"], cli_env, tmp_path))
    assert line == ("hpogrid: error: search space file 'space.json': not valid JSON: "
                    "Expecting property name enclosed in double quotes at line 3 column 1")
    assert not (hpogrid_home / "configs" / "search_space" / "s.json").exists()


def test_inline_json_error_has_line_and_column(cli_env, tmp_path: Path) -> None:
    line = one_error_line(hpogrid(["search_space", "create", "s", '{"x": 1,}'], cli_env, tmp_path))
    assert line.endswith("not valid JSON: Expecting property name enclosed in double quotes at line 1 column 9")


def test_misspelled_file_name_says_no_such_file(cli_env, tmp_path: Path) -> None:
    (tmp_path / "space.json").write_text(GOOD_SPACE)
    line = one_error_line(hpogrid(["search_space", "create", "s", "spcae.json"], cli_env, tmp_path))
    assert line == "hpogrid: error: search space: no such file: 'spcae.json'"


def test_project_names_the_users_files_never_a_staging_folder(cli_env, tmp_path: Path, hpogrid_home: Path) -> None:
    for args in (["model_config", "create", "m", "--script", "missing.py", "--model", "f"],
                 ["hpo_config", "create", "h"], ["grid_config", "create", "g"]):
        assert hpogrid(args, cli_env, tmp_path).returncode == 0
    (tmp_path / "bad2.json").write_text('{"x": {"method": "uniform", "dimension": {"low": 0, "high": 1}},}')
    (tmp_path / "good.json").write_text(GOOD_SPACE)
    script = REPO / "examples" / "scripts" / "simple_objective.py"
    base = ["project", "create", "p", "--scripts_path", str(script), "--model_config", "m",
            "--hpo_config", "h", "--grid_config", "g", "--search_space"]
    bad = one_error_line(hpogrid([*base, "bad2.json"], cli_env, tmp_path))
    assert bad == ("hpogrid: error: search_space config file 'bad2.json': not valid JSON: "
                   "Expecting property name enclosed in double quotes at line 1 column 65")
    missing = one_error_line(hpogrid([*base, "bda2.json"], cli_env, tmp_path))
    assert missing == "hpogrid: error: search_space config: no such file: 'bda2.json'"
    no_script = one_error_line(hpogrid([*base, "good.json"], cli_env, tmp_path))
    assert no_script == f"hpogrid: error: the model script 'missing.py' is not in the scripts path ({script})"
    assert ".new." not in no_script
    assert not list((hpogrid_home / "projects").iterdir())  # no project, no staging folder left behind


@pytest.mark.parametrize("where", ["space_value", "click_choice", "config_value"])
def test_a_2mb_value_is_never_echoed_in_full(cli_env, tmp_path: Path, where: str) -> None:
    huge = "a" * 2_000_000
    if where == "space_value":
        (tmp_path / "big.json").write_text('{"x": "%s"}' % huge)
        args = ["search_space", "create", "s", "big.json"]
    elif where == "click_choice":
        args = ["hpo_config", "create", "h", "--algorithm", huge[:100_000]]  # argv is limited to 128 kB a value
    else:
        args = ["hpo_config", "create", "h", "--num_trials", huge[:100_000]]
    line = one_error_line(hpogrid(args, cli_env, tmp_path))
    assert len(line) < 6 * SHOWN_CHARS  # the value cut to SHOWN_CHARS; click also lists the valid choices
    assert "characters)" in line and "aaaa" in line


def test_the_one_rule_for_echoed_values() -> None:
    assert shown("abc") == "'abc'"
    long = shown("b" * 1000)
    assert len(long) == SHOWN_CHARS + len(" (1002 characters)")
    assert long.startswith("'bbbb") and long.endswith("… (1002 characters)")
    assert shorten("x" * SHOWN_CHARS) == "x" * SHOWN_CHARS
