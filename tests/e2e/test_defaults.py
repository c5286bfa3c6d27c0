"""Correct by default (issue 12): what a user gets without reading the manual, through the installed
`hpogrid` as a user types it. Real subprocesses, real stores, real job folders; nothing mocked.

- stop: with none set, a training runs until it returns (5 reported iterations -> 5 iterations);
- seeds: unseeded campaigns draw different seeds (and points), `--seed 7` twice gives the same points;
- pre-flight: a misspelled model, a script that fails at import, a bad time limit -> one line,
  exit 1 (2 for a bad option), nothing submitted, no campaign folder, on every backend;
- failures: the summary groups them by reason; all failed -> exit 1; `max_failures` stops a campaign;
- `tasks retry` of an ended campaign runs its failed points again (same points, new attempts);
- per-run overrides, recorded with the campaign and shown by `tasks show`.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import installed

FIVE = '''
import os

def train(config, reporter):
    if os.path.exists(os.environ.get("FAIL_FLAG", "/nonexistent")):
        raise RuntimeError("the flag file says fail")
    for i in range(5):
        reporter(loss=(config["x"] - 1.0) ** 2 + 1.0 / (i + 1))
'''

SPACE = {"x": {"method": "uniform", "dimension": {"low": -3, "high": 3}}}


def hpogrid(args: list[str], env: dict[str, str], timeout: float = 300, rc: int | None = 0) -> subprocess.CompletedProcess:
    proc = subprocess.run([installed("hpogrid"), *args], env=env, capture_output=True, text=True, timeout=timeout)
    if rc is not None:
        assert proc.returncode == rc, f"{args}: rc={proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def make_project(env: dict[str, str], tmp: Path, *, name: str = "p", script: str = FIVE, model: str = "train",
                 hpo: list[str] = (), space: dict | None = None) -> Path:
    scripts = tmp / f"{name}_scripts"
    scripts.mkdir(exist_ok=True)
    (scripts / "train.py").write_text(script)
    hpogrid(["model_config", "recreate", f"{name}_m", "--script", "train.py", "--model", model], env)
    hpogrid(["search_space", "recreate", f"{name}_s", json.dumps(space or SPACE)], env)
    hpogrid(["hpo_config", "recreate", f"{name}_h", "--metric", "loss", "--mode", "min", "--num_trials", "2",
             "--max_concurrent", "2", *hpo], env)
    hpogrid(["grid_config", "recreate", f"{name}_g"], env)
    hpogrid(["project", "recreate", name, "--scripts_path", str(scripts / "train.py"), "--model_config", f"{name}_m",
             "--search_space", f"{name}_s", "--hpo_config", f"{name}_h", "--grid_config", f"{name}_g"], env)
    return Path(env["HPOGRID_HOME"]) / "projects" / name


def store(project: Path, cid: int | str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    with sqlite3.connect(project / "campaigns" / str(cid) / "store.db") as conn:
        conn.row_factory = sqlite3.Row
        c = dict(conn.execute("SELECT * FROM campaign").fetchone())
        c["settings"] = json.loads(c["settings"])
        pts = [{**dict(r), "params": json.loads(r["params"]), "reports": json.loads(r["reports"] or "[]")}
               for r in conn.execute("SELECT * FROM points ORDER BY id")]
    return c, pts


def campaign_ids(project: Path) -> list[str]:
    folder = project / "campaigns"
    return sorted((p.name for p in folder.iterdir()), key=int) if folder.is_dir() else []


# ---- stop, seeds and overrides on submit_idds -------------------------------------------------------
def test_no_stop_runs_to_the_end_and_seeds_differ_unless_given(cli_env, tmp_path) -> None:
    env = cli_env
    project = make_project(env, tmp_path)
    # 1. nothing set: the training runs its 5 iterations; a fresh seed is drawn, stored and shown
    first = hpogrid(["submit_idds", "p", "--progress", "none"], env)
    c1, p1 = store(project, 1)
    assert [len(p["reports"]) for p in p1] == [5, 5]
    assert [p["loss"] for p in p1] == pytest.approx([(p["params"]["x"] - 1) ** 2 + 0.2 for p in p1])
    for p in p1:  # the evaluator's own record agrees
        meta = json.loads((project / "campaigns" / "1" / "jobs" / str(p["id"]) / "1" / "meta.json").read_text())
        assert meta["n_results"] == 5
    seed1 = c1["settings"]["seed"]
    assert isinstance(seed1, int) and c1["settings"]["seed_drawn"] is True
    assert f"seed {seed1}" in first.stdout
    # 2. per-run overrides: stop after 2 iterations, 3 points, another algorithm; recorded and shown
    hpogrid(["submit_idds", "p", "--progress", "none", "--stop", '{"training_iteration": 2}', "--num-trials", "3",
             "--algorithm", "hyperopt", "--max_concurrent", "1"], env)
    c2, p2 = store(project, 2)
    assert (c2["max_points"], c2["algorithm"], c2["max_concurrent"]) == (3, "hyperopt", 1)
    assert [len(p["reports"]) for p in p2] == [2, 2, 2]
    assert c2["settings"]["overrides"] == {"stop": {"training_iteration": 2}, "num_trials": 3,
                                           "algorithm": "hyperopt", "max_concurrent": 1}
    assert c2["settings"]["seed"] != seed1 and p2[0]["params"] != p1[0]["params"]
    # 3. the 1.x default by name
    hpogrid(["submit_idds", "p", "--progress", "none", "--stop", "1.x"], env)
    assert [len(p["reports"]) for p in store(project, 3)[1]] == [1, 1]
    # 4. --seed 7 twice: the same points
    hpogrid(["submit_idds", "p", "--progress", "none", "--seed", "7"], env)
    hpogrid(["submit_idds", "p", "--progress", "none", "--seed", "7"], env)
    (c4, p4), (c5, p5) = store(project, 4), store(project, 5)
    assert [p["params"] for p in p4] == [p["params"] for p in p5]
    assert c4["settings"]["seed"] == c5["settings"]["seed"] == 7 and c4["settings"]["seed_drawn"] is False
    assert [p["params"] for p in p4] != [p["params"] for p in p1]
    # tasks show: the seed of each campaign and what was overridden
    shown = {r["jeditaskid"]: r for r in json.loads(hpogrid(["tasks", "show", "--json", "--local"], env).stdout)}
    assert [shown[i]["seed"] for i in (1, 4, 5)] == [seed1, 7, 7]
    assert shown[2]["overrides"]["num_trials"] == 3
    table = hpogrid(["tasks", "show", "--local"], env).stdout
    assert "seed" in table.splitlines()[0] and str(seed1) in table and '--num_trials 3' in table


@pytest.mark.slow
def test_local_run_without_stop_runs_every_iteration_with_the_steering(cli_env, tmp_path) -> None:
    env = cli_env
    project = make_project(env, tmp_path, hpo=["--scheduler", "fifo", "--algorithm", "hyperopt"])
    proc = hpogrid(["local_run", "p", "--num-cpus", "2", "--num_trials", "3", "--seed", "11"], env, timeout=600)
    assert "stop none" in proc.stdout and "seed 11" in proc.stdout
    (cid,) = campaign_ids(project)
    c, pts = store(project, cid)
    assert len(pts) == 3 and all(p["state"] == "finished" for p in pts)
    assert [len(p["reports"]) for p in pts] == [5, 5, 5]
    assert c["settings"]["seed"] == 11 and c["settings"]["overrides"] == {"num_trials": 3, "seed": 11}
    # hpogrid's steering proposed them: the same TPE with the same seed asked one point at a time
    from hpogrid.steering.api import Searcher

    steering = Searcher(SPACE, "hyperopt", None, 11, "min", 3)
    first = steering.ask(1)[0]
    assert any(p["params"]["x"] == pytest.approx(first["x"]) for p in pts), (first, pts)


# ---- pre-flight -------------------------------------------------------------------------------------
PREFLIGHT_CASES = {
    "misspelled model": (dict(model="trian"), "has no function or class named 'trian'; it defines: train"),
    "import error": (dict(script="import not_a_module_xyz\n" + FIVE), "No module named 'not_a_module_xyz'"),
    "exit at import": (dict(script="import sys\nsys.exit(3)\n"), "importing training script train.py failed: SystemExit"),
    "bad signature": (dict(script="def train():\n    pass\n"), "must take the config dict as first argument"),
}


COMMANDS = {"embedded": ["submit_idds"], "ray": ["submit_idds", "--backend", "ray"],
            "panda-dry-run": ["submit_idds", "--backend", "panda", "--dry-run"],
            "embedded-dry-run": ["submit_idds", "--dry-run"], "local_run": ["local_run"]}


@pytest.fixture(scope="module")
def refusing(tmp_path_factory) -> dict[str, str]:
    """One home with a project per bad case (built once through the library: these tests only run
    commands that must refuse, so they write nothing and can share it)."""
    import os

    from hpogrid.client import configs, projects

    home = tmp_path_factory.mktemp("refusing_home")
    saved = os.environ.get("HPOGRID_HOME")
    os.environ["HPOGRID_HOME"] = str(home)
    try:
        for i, (name, (kw, _)) in enumerate([("p", ({}, "")), *PREFLIGHT_CASES.items()]):
            folder = home.parent / f"scripts_{i}"
            folder.mkdir(exist_ok=True)
            (folder / "train.py").write_text(kw.get("script", FIVE))
            projects.create(f"case{i}", scripts_path=folder / "train.py",
                            model_config={"script": "train.py", "model": kw.get("model", "train")},
                            search_space=SPACE, hpo_config={"metric": "loss", "mode": "min", "num_trials": 2},
                            grid_config={})
    finally:
        if saved is None:
            os.environ.pop("HPOGRID_HOME")
        else:
            os.environ["HPOGRID_HOME"] = saved
    return {**os.environ, "HPOGRID_HOME": str(home)}


def _case_project(case: str | None) -> str:
    return "case0" if case is None else f"case{list(PREFLIGHT_CASES).index(case) + 1}"


def _nothing_written(env: dict[str, str]) -> bool:
    return not list(Path(env["HPOGRID_HOME"]).glob("projects/*/campaigns/*"))


@pytest.mark.parametrize("case, backend", [(case, "embedded") for case in PREFLIGHT_CASES]
                         + [("misspelled model", b) for b in COMMANDS if b != "embedded"])
def test_preflight_refuses_before_anything_is_written(refusing, case, backend) -> None:
    expected = PREFLIGHT_CASES[case][1]
    proc = hpogrid([*COMMANDS[backend], _case_project(case)], refusing, rc=1)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hpogrid: error: pre-flight: ") and expected in lines[0], proc.stderr
    assert proc.stdout == "" and _nothing_written(refusing)


@pytest.mark.parametrize("value", ["inf", "0", "-5", "nan"])
def test_timeout_must_be_finite_and_positive(refusing, value) -> None:
    proc = hpogrid(["submit_idds", "case0", f"--timeout={value}"], refusing, rc=2)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--timeout must be a finite number of seconds > 0" in lines[0], proc.stderr
    assert _nothing_written(refusing)


@pytest.mark.parametrize("args, expected", [
    (["--num_trials", "0"], "num_trials >= 1 must hold"),
    (["--algorithm", "tpe"], "unknown algorithm 'tpe'"),
    (["--stop", "forever"], "stop must be a JSON object"),
    (["--algorithm", "ray:hyperopt"], "for `hpogrid local_run` only"),
])
def test_overrides_follow_the_hpo_config_rules(refusing, args, expected) -> None:
    proc = hpogrid(["submit_idds", "case0", *args], refusing, rc=None)
    assert proc.returncode in (1, 2)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], proc.stderr
    assert _nothing_written(refusing)


# ---- failures, max_failures, retry -----------------------------------------------------------------
def test_missing_metric_stops_at_max_failures_with_the_reason(cli_env, tmp_path) -> None:
    env = cli_env
    project = make_project(env, tmp_path, hpo=["--metric", "accuracy", "--num_trials", "20", "--max_concurrent", "1"])
    proc = hpogrid(["submit_idds", "p", "--progress", "plain", "--max_failures", "3"], env, rc=1)
    c, pts = store(project, 1)
    failed = [p for p in pts if p["state"] == "failed"]
    assert len(failed) == 3 and not [p for p in pts if p["state"] == "finished"]
    assert c["status"] == "failed" and "3 points failed in a row (max_failures 3)" in c["message"]
    assert "no reported result holds the metric 'accuracy'; reported: loss" in c["message"]
    # the live lines name the latest failure; the summary groups by reason; the exit line says why
    assert "last failure: METRIC_MISSING" in proc.stderr
    assert "failures by reason (3 failed points):" in proc.stdout
    assert "     3 x METRIC_MISSING (status 2): no reported result holds the metric 'accuracy'" in proc.stdout
    assert proc.stderr.strip().splitlines()[-1].startswith("hpogrid: error: campaign 1 failed: stopped after 3 points")
    table = hpogrid(["tasks", "show", "--local"], env).stdout
    assert "1: stopped after 3 points failed in a row (max_failures 3)" in table


def test_all_failed_exits_non_zero_and_tasks_retry_reruns_the_same_points(cli_env, tmp_path) -> None:
    env = dict(cli_env, FAIL_FLAG=str(tmp_path / "fail"))
    (tmp_path / "fail").write_text("1")
    project = make_project(env, tmp_path, hpo=["--num_trials", "3"])
    proc = hpogrid(["submit_idds", "p", "--progress", "none", "--max_attempts", "1"], env, rc=1)
    assert "hpogrid: error: campaign 1: all 3 points failed" in proc.stderr
    assert "     3 x USER_ERROR (status 1): RuntimeError: the flag file says fail" in proc.stdout
    c, before = store(project, 1)
    assert c["status"] == "finished" and [p["state"] for p in before] == ["failed"] * 3
    (tmp_path / "fail").unlink()
    proc = hpogrid(["tasks", "retry", "1", "--progress", "none"], env)
    assert "retrying 3 failed point(s)" in proc.stderr
    c, after = store(project, 1)
    assert c["status"] == "finished"
    assert [p["params"] for p in after] == [p["params"] for p in before]  # the same points, no new ones
    assert [(p["state"], p["attempts"]) for p in after] == [("finished", 2)] * 3
    for p in after:  # a new attempt, in its own job folder
        jobs = project / "campaigns" / "1" / "jobs" / str(p["id"])
        assert sorted(d.name for d in jobs.iterdir()) == ["1", "2"]
    again = hpogrid(["tasks", "retry", "1"], env)
    assert "nothing to retry" in again.stdout
