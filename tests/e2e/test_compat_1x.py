"""hpogrid 1.x's README Examples 1 and 2 paste and run.

Their command lines are copied verbatim into ``data/reference_readme_examples.txt`` and run by bash
as a user pastes them, through the installed ``hpogrid``: with ``HPOGRID_BASE_PATH`` set the way
1.x's ``setupenv.sh`` set it (``source examples/1.x/setupenv.sh``), every line succeeds and each
``hpogrid run ... --n_jobs 3`` submits a 3-job PanDA task (to the local grid sandbox; the tasks are
killed right after submission: each job would run a 200-trial search); without it, the project line
is refused in one line that says how to set it.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO, installed
from tests.grid.conftest import grid_env, gridsim, wait_task  # noqa: F401  (fixtures)

DATA = Path(__file__).with_name("data") / "reference_readme_examples.txt"


def examples() -> dict[int, list[str]]:
    """``{1: [command lines], 2: [...]}`` from the data file (comments and blank lines dropped)."""
    out: dict[int, list[str]] = {}
    current = None
    for line in DATA.read_text(encoding="utf-8").splitlines():
        head = re.match(r"## Example (\d+)", line)
        if head:
            current = int(head.group(1))
            out[current] = []
        elif current is not None and line.strip() and not line.startswith("#"):
            out[current].append(line)
    return out


def paste(lines: list[str], env: dict[str, str], cwd: Path, *, setup: bool) -> subprocess.CompletedProcess:
    """The lines as a user pastes them into bash (stopping at the first failure)."""
    script = "set -e\n"
    if setup:
        script += f"source {REPO / 'examples' / '1.x' / 'setupenv.sh'}\n"
    script += "\n".join(lines) + "\n"
    return subprocess.run(["bash", "-c", script], env=env, cwd=cwd, capture_output=True, text=True, timeout=600)


def test_the_data_file_holds_both_examples() -> None:
    ex = examples()
    assert sorted(ex) == [1, 2] and len(ex[1]) == len(ex[2]) == 6
    assert all(line.startswith("hpogrid ") for lines in ex.values() for line in lines)
    assert "${HPOGRID_BASE_PATH}/example/scripts/simple_objective.py" in ex[1][4]
    assert ex[1][5] == "hpogrid run simple_objective --n_jobs 3"


def test_without_hpogrid_base_path_the_project_line_says_how_to_set_it(cli_env, tmp_path: Path,
                                                                        hpogrid_home: Path) -> None:
    env = {k: v for k, v in cli_env.items() if k != "HPOGRID_BASE_PATH"}
    done = paste(examples()[1], env, tmp_path, setup=False)
    assert done.returncode == 2
    assert len([ln for ln in done.stderr.splitlines() if ln.startswith("hpogrid: error")]) == 1
    assert done.stderr.strip().splitlines()[-1:] == [
        "hpogrid: error: '/example/scripts/simple_objective.py' does not exist: HPOGRID_BASE_PATH is not set "
        "(the setupenv.sh of hpogrid 1.x set it); run "
        f"`export HPOGRID_BASE_PATH={REPO / 'examples' / '1.x'}` and paste again, or give the path of the "
        "script itself"]
    assert sorted(p.stem for p in (hpogrid_home / "configs").rglob("*.json")) == [
        "manc_standard", "random_search_min_loss", "simple_objective_model", "simple_objective_space"]
    assert not (hpogrid_home / "projects").exists() or not list((hpogrid_home / "projects").iterdir())
    where = subprocess.run([installed("hpogrid"), "--where"], env=env, capture_output=True, text=True, timeout=60)
    assert f"HPOGRID_BASE_PATH  {REPO / 'examples' / '1.x'}" in where.stdout


@pytest.mark.slow
def test_examples_1_and_2_paste_and_run(grid_env, gridsim, tmp_path: Path, hpogrid_home: Path) -> None:  # noqa: F811
    env = {k: v for k, v in grid_env.items() if k != "HPOGRID_BASE_PATH"}
    for n, project, model in ((1, "simple_objective", "simple_objective"), (2, "simple_trainable", "MyTrainableClass")):
        done = paste(examples()[n], env, tmp_path, setup=True)
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
        submitted = re.search(r"submitted jediTaskID=(\d+): 3 job\(s\) of (\w+) .*campaign (\d+)", done.stdout)
        assert submitted and submitted.group(2) == project, done.stdout
        tid, cid = int(submitted.group(1)), submitted.group(3)
        killed = subprocess.run([installed("hpogrid"), "tasks", "kill", cid], env=env, capture_output=True,
                                text=True, timeout=120)
        assert killed.returncode == 0, killed.stderr
        wait_task(gridsim, tid, ("aborted", "finished", "done", "failed"), timeout=120)

        shown = json.loads(subprocess.run([installed("hpogrid"), "project", "show", project, "--json"], env=env,
                                          capture_output=True, text=True, timeout=60, check=True).stdout)
        assert shown["model_config"]["model"] == model and shown["hpo_config"]["num_trials"] == 200
        assert shown["grid_config"]["site"] == ["ANALY_MANC_GPU_TEST"]
        script = hpogrid_home / "projects" / project / "scripts" / f"{project}.py"
        assert script.is_file() and not script.is_symlink()  # the script itself, copied into the project
        assert script.read_text() == (REPO / "examples" / "scripts" / f"{project}.py").read_text()
