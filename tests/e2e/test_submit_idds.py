"""`hpogrid submit_idds`, `tasks`, `steering_exec`, `evaluation_exec` as a user types them.

Real subprocesses (the installed `hpogrid`), real SQLite stores, real job folders; nothing mocked.
Small budgets and trivial objectives keep the whole file around a minute or two on 2 cores.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import installed, stop_group

PY = sys.executable

OBJECTIVE = '''
import math, os, signal, time

def objective(config, reporter):
    kind = config.get("kind", "ok")
    x = float(config["x"])
    if kind == "raise":
        raise ValueError(f"bad point x={x}")
    if kind == "nan":
        reporter(loss=float("nan"))
        return
    if kind == "exit":
        os._exit(1)
    if kind == "segv":
        os.kill(os.getpid(), signal.SIGSEGV)
    if kind == "sleep":
        time.sleep(60)
    if kind == "flaky" and os.environ.get("HPOGRID_ATTEMPT") == "1":
        raise RuntimeError("transient failure on the first attempt")
    if kind == "slow":
        time.sleep(float(os.environ.get("SLOW_SECONDS", "0.4")))
    reporter(loss=(x - 3.0) ** 2)
'''

# A user's own steeringExec: the next points of a fixed plan (argv: %IN %OUT %NUM_POINTS %MAX_POINTS PLAN).
STEER = '''
import json, sys
inp, out, n, m, plan = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
points = json.load(open(inp))["points"]
todo = json.load(open(plan))[len(points):]
k = max(0, min(n, m - len(points)))
with open("argv.json", "w") as f:
    json.dump(sys.argv[1:], f)
json.dump(todo[:k], open(out, "w"))
'''

SPACE = {"x": {"method": "uniform", "dimension": {"low": 0, "high": 10}},
         "kind": {"method": "categorical",
                  "dimension": {"categories": ["ok", "raise", "nan", "exit", "segv", "sleep", "flaky", "slow"]}}}


def hpogrid(args: list[str], env: dict[str, str], timeout: float = 180, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([installed("hpogrid"), *args], env=env, capture_output=True, text=True, timeout=timeout)
    if check:
        assert proc.returncode == 0, f"{args}: rc={proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def make_project(env: dict[str, str], tmp: Path, name: str = "obj", *, num_trials: int = 8, concurrent: int = 2,
                 algorithm: str = "random", space: dict | None = None, script: str = OBJECTIVE) -> Path:
    """Configs and project created with the CLI, as a user does."""
    scripts = tmp / f"{name}_scripts"
    scripts.mkdir(exist_ok=True)
    (scripts / "objective.py").write_text(script)
    hpogrid(["model_config", "recreate", f"{name}_model", "--script", "objective.py", "--model", "objective"], env)
    hpogrid(["search_space", "recreate", f"{name}_space", json.dumps(space or SPACE)], env)
    hpogrid(["hpo_config", "recreate", f"{name}_hpo", "--algorithm", algorithm, "--metric", "loss", "--mode", "min",
             "--num_trials", str(num_trials), "--max_concurrent", str(concurrent), "--seed", "3"], env)
    hpogrid(["grid_config", "recreate", f"{name}_grid"], env)
    hpogrid(["project", "recreate", name, "--scripts_path", str(scripts / "objective.py"), "--model_config",
             f"{name}_model", "--search_space", f"{name}_space", "--hpo_config", f"{name}_hpo", "--grid_config",
             f"{name}_grid"], env)
    return Path(env["HPOGRID_HOME"]) / "projects" / name


def plan_steering(tmp: Path, plan: list[dict[str, Any]]) -> str:
    (tmp / "steer.py").write_text(STEER)
    (tmp / "plan.json").write_text(json.dumps(plan))
    return f"{PY} {tmp / 'steer.py'} %IN %OUT %NUM_POINTS %MAX_POINTS {tmp / 'plan.json'}"


def db(project: Path, cid: str | int) -> sqlite3.Connection:
    conn = sqlite3.connect(project / "campaigns" / str(cid) / "store.db")
    conn.row_factory = sqlite3.Row
    return conn


def points(project: Path, cid: str | int) -> dict[int, dict[str, Any]]:
    with db(project, cid) as conn:
        return {r["id"]: {**dict(r), "params": json.loads(r["params"])} for r in conn.execute("SELECT * FROM points")}


def campaign(project: Path, cid: str | int) -> dict[str, Any]:
    with db(project, cid) as conn:
        return dict(conn.execute("SELECT * FROM campaign").fetchone())


def attempt_dirs(project: Path, cid: str | int, point: int) -> list[str]:
    folder = project / "campaigns" / str(cid) / "jobs" / str(point)
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


# ---- a whole campaign, as a user types it --------------------------------------------------------
def test_full_campaign_embedded_example1(cli_env, tmp_path, examples) -> None:
    """Example 1 through the real steering (hyperopt) and evaluator: every point has a result."""
    env = cli_env
    hpogrid(["model_config", "create", "m", "--script", "simple_objective.py", "--model", "simple_objective"], env)
    hpogrid(["search_space", "create", "s", '{"height":{"method":"uniform","dimension":{"low":-100,"high":100}}, '
                                            '"width":{"method":"uniform","dimension":{"low":0,"high":20}}}'], env)
    hpogrid(["hpo_config", "create", "h", "--algorithm", "hyperopt", "--metric", "loss", "--mode", "min",
             "--num_trials", "12", "--max_concurrent", "2", "--seed", "1"], env)
    hpogrid(["grid_config", "create", "g"], env)
    hpogrid(["project", "create", "simple_objective", "--scripts_path", str(examples / "scripts" / "simple_objective.py"),
             "-m", "m", "-s", "s", "-o", "h", "-g", "g"], env)
    proc = hpogrid(["submit_idds", "simple_objective"], env)
    project = Path(env["HPOGRID_HOME"]) / "projects" / "simple_objective"
    pts = points(project, 1)
    assert len(pts) == 12 and all(p["state"] == "finished" for p in pts.values())
    for p in pts.values():  # the loss is the objective's value at the point, computed by the evaluator
        h, w = p["params"]["height"], p["params"]["width"]
        assert p["loss"] == pytest.approx((h - 14) ** 2 - abs(w - 3))
        assert p["attempts"] == 1 and attempt_dirs(project, 1, p["id"]) == ["1"]
        job = project / "campaigns" / "1" / "jobs" / str(p["id"]) / "1"
        assert {"input.json", "output.json", "meta.json", "log"} <= {f.name for f in job.iterdir()}
        assert json.loads((job / "input.json").read_text()) == p["params"]
    best = min(pts.values(), key=lambda p: p["loss"])
    assert f"best point: {best['id']}" in proc.stdout
    assert json.dumps(best["params"]) in proc.stdout
    c = campaign(project, 1)
    assert (c["status"], c["backend"], c["max_points"], c["max_concurrent"]) == ("finished", "embedded", 12, 2)
    # every round went through real %IN/%OUT files; %IN lists all points so far with losses or null
    rounds = sorted((project / "campaigns" / "1" / "rounds").iterdir(), key=lambda p: int(p.name))
    last_in = json.loads((rounds[-1] / "idds_input.json").read_text())
    assert last_in["opt_space"]["height"]["method"] == "uniform"
    assert 0 < len(last_in["points"]) < 12
    # tasks show lists it like a grid task
    shown = json.loads(hpogrid(["tasks", "show", "--json", "--local"], env).stdout)
    assert [(r["jeditaskid"], r["taskname"], r["status"], r["progress"]) for r in shown] == [(1, "simple_objective", "finished", 100.0)]
    assert shown[0]["best_metric"] == pytest.approx(best["loss"])


# ---- failures --------------------------------------------------------------------------------------
def test_failing_points_are_recorded_with_reasons(cli_env, tmp_path) -> None:
    plan = [{"x": 1, "kind": "raise"}, {"x": 2, "kind": "nan"}, {"x": 3, "kind": "exit"}, {"x": 4, "kind": "sleep"},
            {"x": 5, "kind": "segv"}, {"x": 6, "kind": "flaky"}, {"x": 3.5, "kind": "ok"}, {"x": 7, "kind": "ok"}]
    project = make_project(cli_env, tmp_path, num_trials=len(plan))
    steer = plan_steering(tmp_path, plan)
    hpogrid(["submit_idds", "obj", "--steering-command", steer, "--max_attempts", "2", "--timeout", "2",
             "--progress", "plain"], cli_env)
    pts = points(project, 1)
    by_kind = {p["params"]["kind"]: p for p in pts.values() if p["params"]["kind"] != "ok"}
    assert campaign(project, 1)["status"] == "finished"
    # user exception: retried (as PanDA does), then failed with the exception's message
    assert by_kind["raise"]["state"] == "failed" and by_kind["raise"]["attempts"] == 2
    assert "bad point x=1.0" in by_kind["raise"]["message"]
    # NaN: deterministic, failed at once
    assert by_kind["nan"]["state"] == "failed" and by_kind["nan"]["attempts"] == 1
    assert "METRIC_NAN" in by_kind["nan"]["message"]
    # os._exit(1) in the user's code: no output.json
    assert by_kind["exit"]["state"] == "failed" and by_kind["exit"]["attempts"] == 2
    assert "without writing output.json" in by_kind["exit"]["message"]
    # timeout
    assert by_kind["sleep"]["state"] == "failed" and by_kind["sleep"]["attempts"] == 2
    assert "timeout" in by_kind["sleep"]["message"].lower()
    # segfault
    assert by_kind["segv"]["state"] == "failed" and "SIGSEGV" in by_kind["segv"]["message"]
    # a transient failure is retried and then succeeds
    assert by_kind["flaky"]["state"] == "finished" and by_kind["flaky"]["attempts"] == 2
    assert by_kind["flaky"]["loss"] == pytest.approx(9.0)
    ok = [p for p in pts.values() if p["params"]["kind"] == "ok"]
    assert all(p["state"] == "finished" for p in ok) and {p["loss"] for p in ok} == {0.25, 16.0}
    for p in pts.values():  # one job folder per attempt, nothing else
        assert attempt_dirs(project, 1, p["id"]) == [str(i) for i in range(1, p["attempts"] + 1)]
    # the steering saw failed points as the grid reports them: loss 1e5
    failed_ids = {p["id"] for p in pts.values() if p["state"] == "failed"}
    seen = set()
    for rnd in (project / "campaigns" / "1" / "rounds").iterdir():
        data = json.loads((rnd / "idds_input.json").read_text())
        seen |= {i + 1 for i, (_, loss) in enumerate(data["points"]) if loss == 1e5}
    assert seen and seen <= failed_ids
    # placeholders were substituted as plain text (iDDS's file names, the round's counts)
    argv = json.loads(next((project / "campaigns" / "1" / "rounds").glob("1/argv.json")).read_text())
    assert argv[:2] == ["idds_input.json", "output.json"] and argv[3] == str(len(plan))


def test_failing_steering_fails_the_campaign_after_retries(cli_env, tmp_path) -> None:
    make_project(cli_env, tmp_path)
    (tmp_path / "bad.py").write_text("import sys\nprint('no points today', file=sys.stderr)\nsys.exit(3)\n")
    proc = hpogrid(["submit_idds", "obj", "--steering-command", f"{PY} {tmp_path / 'bad.py'} %IN %OUT",
                    "--progress", "none"], cli_env, check=False)
    assert proc.returncode == 1
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hpogrid: error: campaign 1 failed")
    assert "failed 4 times" in err[0] and "status 3" in err[0]
    project = Path(cli_env["HPOGRID_HOME"]) / "projects" / "obj"
    with db(project, 1) as conn:
        rounds = [dict(r) for r in conn.execute("SELECT * FROM rounds")]
    assert [(r["status"], r["attempts"]) for r in rounds] == [("failed", 4)]
    assert "no points today" in (project / "campaigns" / "1" / "rounds" / "1" / "log").read_text()


# ---- kill -9 and resume ----------------------------------------------------------------------------
def test_kill9_then_resume_loses_and_duplicates_nothing(cli_env, tmp_path) -> None:
    n = 14
    plan = [{"x": i % 10, "kind": "slow"} for i in range(n)]
    project = make_project(cli_env, tmp_path, num_trials=n)
    env = {**cli_env, "SLOW_SECONDS": "0.6"}
    steer = plan_steering(tmp_path, plan)
    driver = subprocess.Popen([installed("hpogrid"), "submit_idds", "obj", "--steering-command", steer,
                               "--progress", "none"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: (project / "campaigns" / "1" / "store.db").exists()
                 and sum(p["state"] == "finished" for p in points(project, 1).values()) >= 4
                 and any(p["state"] == "running" for p in points(project, 1).values()), 90, "4 finished points")
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    before = points(project, 1)
    assert campaign(project, 1)["status"] == "running"  # nobody recorded the crash
    shown = json.loads(hpogrid(["tasks", "show", "--json", "--local"], cli_env).stdout)
    assert shown[0]["status"] == "interrupted" and "is gone" in shown[0]["message"]
    finished_before = {i: p for i, p in before.items() if p["state"] == "finished"}
    running = sorted(i for i, p in before.items() if p["state"] == "running")
    assert running
    # the jobs outlive their driver (docs: README "Retries, kill -9 and time limits"): they finish,
    # write output.json while the driver is dead, and are harvested at resume, not re-run
    jobs = [Path(before[i]["job_dir"]) for i in running]
    wait_for(lambda: all((job / "output.json").exists() for job in jobs), 90, "the orphaned jobs' results")

    proc = hpogrid(["submit_idds", "obj", "--resume", "--progress", "none"], env)
    assert "campaign 1 finished" in proc.stdout
    after = points(project, 1)
    assert len(after) == n  # the budget, not more
    assert all(p["state"] == "finished" for p in after.values())
    for i, p in finished_before.items():  # finished results untouched, never evaluated twice
        assert (after[i]["loss"], after[i]["attempts"]) == (p["loss"], p["attempts"])
        assert attempt_dirs(project, 1, i) == [str(a) for a in range(1, p["attempts"] + 1)]
    for i in running:  # harvested: the attempt that ran while the driver was dead counts
        assert after[i]["attempts"] == before[i]["attempts"]
        assert after[i]["loss"] == pytest.approx((plan[i - 1]["x"] - 3.0) ** 2)
    for i, p in after.items():
        dirs = attempt_dirs(project, 1, i)
        assert dirs == [str(a) for a in range(1, p["attempts"] + 1)]
        ok = [d for d in dirs if (json.loads((project / "campaigns/1/jobs" / str(i) / d / "output.json").read_text())
                                   if (project / "campaigns/1/jobs" / str(i) / d / "output.json").exists() else {}).get("status") == 0]
        assert len(ok) == 1, (i, dirs)  # exactly one evaluation with a result per point
        assert p["params"] == plan[i - 1]
    assert campaign(project, 1)["status"] == "finished"


# ---- detach, tasks show / kill / retry -------------------------------------------------------------
def test_detach_show_kill_retry(cli_env, tmp_path) -> None:
    n = 10
    plan = [{"x": i, "kind": "slow"} for i in range(n)]
    project = make_project(cli_env, tmp_path, num_trials=n)
    env = {**cli_env, "SLOW_SECONDS": "1.0"}
    t0 = time.monotonic()
    proc = hpogrid(["submit_idds", "obj", "--detach", "--steering-command", plan_steering(tmp_path, plan)], env)
    assert time.monotonic() - t0 < 10
    cid = proc.stdout.strip()
    assert cid == "1"
    wait_for(lambda: any(p["state"] == "running" for p in points(project, 1).values()), 60, "a running job")
    shown = json.loads(hpogrid(["tasks", "show", "--json", "--local"], env).stdout)
    assert shown[0]["jeditaskid"] == 1 and shown[0]["status"] == "running" and shown[0]["backend"] == "embedded"
    table = hpogrid(["tasks", "show", "--local", "--status", "running"], env).stdout
    assert "obj" in table and "running" in table
    pid = campaign(project, 1)["pid"]
    killed = hpogrid(["tasks", "kill", cid], env)
    assert "killed" in killed.stdout
    wait_for(lambda: not Path(f"/proc/{pid}").exists(), 20, "the driver to exit")
    c = campaign(project, 1)
    assert c["status"] == "killed"
    pts = points(project, 1)
    assert not any(p["state"] == "running" for p in pts.values())
    interrupted = [p for p in pts.values() if p["state"] == "proposed" and p["attempts"] > 0]
    assert interrupted and all("interrupted" in p["message"] for p in interrupted)
    assert "killed" in (project / "campaigns" / "1" / "driver.log").read_text()
    # a killed campaign cannot be killed again; retry continues it to its budget
    again = hpogrid(["tasks", "kill", cid], env, check=False)
    assert again.returncode == 1 and "already ended" in again.stderr
    hpogrid(["tasks", "retry", cid, "--progress", "none"], env)
    pts = points(project, 1)
    assert len(pts) == n and all(p["state"] == "finished" for p in pts.values())
    assert campaign(project, 1)["status"] == "finished"
    shown = json.loads(hpogrid(["tasks", "show", "--json", "--local", "--jeditaskid", "1"], env).stdout)
    assert shown[0]["status"] == "finished" and shown[0]["progress"] == 100.0
    out = tmp_path / "tasks.csv"
    hpogrid(["tasks", "show", "--local", "--output", str(out), "--outcol", "jeditaskid,status,progress"], env)
    assert out.read_text().splitlines() == ["jeditaskid,status,progress", "1,finished,100.0"]


def test_sigint_stops_cleanly_and_resume_finishes(cli_env, tmp_path) -> None:
    n = 8
    plan = [{"x": i, "kind": "slow"} for i in range(n)]
    project = make_project(cli_env, tmp_path, num_trials=n)
    env = {**cli_env, "SLOW_SECONDS": "2"}
    driver = subprocess.Popen([installed("hpogrid"), "submit_idds", "obj", "--steering-command",
                               plan_steering(tmp_path, plan), "--progress", "plain"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: (project / "campaigns/1/store.db").exists()
                 and sum(p["state"] == "running" for p in points(project, 1).values()) == 2, 60, "2 running jobs")
        time.sleep(0.3)
        driver.send_signal(signal.SIGINT)
        out, err = driver.communicate(timeout=30)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 130
    c = campaign(project, 1)
    assert c["status"] == "interrupted" and "SIGINT" in c["message"]
    pts = points(project, 1)
    assert not any(p["state"] == "running" for p in pts.values())
    stopped = [p for p in pts.values() if p["attempts"] == 1 and p["state"] == "proposed"]
    assert len(stopped) == 2 and all(p["message"].startswith("attempt 1 interrupted") for p in stopped)
    hpogrid(["tasks", "retry", "1", "--progress", "none"], {**env, "SLOW_SECONDS": "0"})
    pts = points(project, 1)
    assert all(p["state"] == "finished" for p in pts.values()) and len(pts) == n
    assert {p["attempts"] for p in stopped for p in [pts[p["id"]]]} == {2}


# ---- the exec strings ------------------------------------------------------------------------------
def test_steering_and_evaluation_exec_strings_run(cli_env, tmp_path) -> None:
    project = make_project(cli_env, tmp_path, space={"x": {"method": "uniform", "dimension": {"low": 0, "high": 10}}})
    plan = json.loads(hpogrid(["submit_idds", "obj", "--dry-run", "--max_attempts", "3"], cli_env).stdout)
    assert (plan["max_points"], plan["max_attempts"], plan["backend"]) == (8, 3, "embedded")
    assert not (project / "campaigns").exists()
    grid = hpogrid(["steering_exec", "obj"], cli_env).stdout.strip()
    assert "hpogrid-steering" in grid and "%IN" in grid and "%OUT" in grid and "%NUM_POINTS" in grid
    local = hpogrid(["steering_exec", "obj", "--local"], cli_env).stdout.strip()
    rounds = tmp_path / "round"
    rounds.mkdir()
    (rounds / "idds_input.json").write_text(json.dumps({"points": [[{"x": 1.0}, 4.0]], "opt_space": None}))
    argv = (local.replace("%IN", "idds_input.json").replace("%OUT", "output.json")
            .replace("%NUM_POINTS", "3").replace("%MAX_POINTS", "10"))
    import shlex

    subprocess.run(shlex.split(argv), cwd=rounds, env=cli_env, check=True, timeout=120)
    new = json.loads((rounds / "output.json").read_text())
    assert len(new) == 3 and all(0 <= p["x"] <= 10 for p in new)
    assert hpogrid(["evaluation_exec", "obj"], cli_env).stdout.strip() == "hpogrid-evaluate --meta meta.json"
    submitted = json.loads(hpogrid(["submit_idds", "obj", "--backend", "panda", "--dry-run"], cli_env).stdout)
    assert submitted["steeringExec"] == grid  # the printed form is the one the grid gets
    job = tmp_path / "job"
    job.mkdir()
    (job / "input.json").write_text(json.dumps({"x": 5.0}))
    subprocess.run(shlex.split(hpogrid(["evaluation_exec", "obj", "--local"], cli_env).stdout), cwd=job,
                   env=cli_env, check=True, timeout=120)
    assert json.loads((job / "output.json").read_text())["loss"] == pytest.approx(4.0)


# ---- bad input -------------------------------------------------------------------------------------
BAD_INPUTS = [
    (["submit_idds", "nope"], "no project named 'nope'"),
    (["submit_idds", "obj", "--backend", "slurm"], "unknown backend 'slurm'; valid: embedded, ray, panda"),
    (["submit_idds", "obj", "--resume", "99"], "no campaign with id 99"),
    (["submit_idds", "obj", "--max_attempts", "0"], "--max_attempts"),
    (["submit_idds", "obj", "--timeout", "-1"], "--timeout"),
    (["submit_idds", "obj", "--n_points_per_iteration", "two"], "--n_points_per_iteration"),
    (["submit_idds", "obj", "--resume"], "no campaign to resume"),
    (["submit_idds", "obj", "--backend", "ray", "--ray-address", "127.0.0.1:1"], "no Ray cluster answers at 127.0.0.1:1"),
    (["submit_idds", "obj", "--steering-command", "python 'unclosed"], "cannot be split"),
    (["tasks", "kill", "7"], "no campaign with id 7"),
    (["tasks", "retry", "abc"], "campaign id must be a number"),
    (["tasks", "show", "--range", "x-y"], "--range must look like"),
    (["steering_exec", "nope"], "no project named 'nope'"),
]


def test_bad_input_one_line_nothing_written(cli_env, tmp_path) -> None:
    project = make_project(cli_env, tmp_path)
    for args, needle in BAD_INPUTS:
        proc = hpogrid(args, cli_env, check=False)
        assert proc.returncode != 0, args
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("hpogrid: error:"), (args, proc.stderr)
        assert needle in lines[0], (args, lines[0])
    assert not (project / "campaigns").exists()
    registry = Path(cli_env["HPOGRID_HOME"]) / "campaigns.db"
    if registry.exists():
        with sqlite3.connect(registry) as conn:
            assert conn.execute("SELECT COUNT(*) FROM campaigns").fetchone()[0] == 0


# ---- Ray ---------------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_ray_backend_runs_the_campaign_on_a_ray_head(cli_env, tmp_path) -> None:
    ray = Path(sys.executable).parent / "ray"
    if not ray.exists():
        pytest.skip("ray is not installed")
    plan = [{"x": 1, "kind": "ok"}, {"x": 2, "kind": "raise"}, {"x": 4, "kind": "ok"}, {"x": 5, "kind": "flaky"}]
    project = make_project(cli_env, tmp_path, num_trials=len(plan))
    port = _free_port()
    # a private head on loopback: no token authentication; a short temp dir (unix socket paths are
    # limited to 107 characters, pytest's tmp_path is too long)
    env = {**cli_env, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    temp = tempfile.mkdtemp(prefix="hr", dir="/tmp")
    # `ray start --block` in its own session, ended by its process group: `ray stop` would also stop
    # Ray processes this test did not start.
    head = subprocess.Popen([str(ray), "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
                             "--num-cpus", "2", "--block",
                             "--include-dashboard=false", "--disable-usage-stats", "--temp-dir", temp],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        def head_up() -> bool:
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0

        wait_for(head_up, 90, "the Ray head")
        proc = hpogrid(["submit_idds", "obj", "--backend", "ray", "--ray-address", f"127.0.0.1:{port}",
                        "--steering-command", plan_steering(tmp_path, plan), "--max_attempts", "2",
                        "--progress", "none"], env, timeout=240)
        assert "campaign 1 finished" in proc.stdout
    finally:
        stop_group(head, grace=5)
        shutil.rmtree(temp, ignore_errors=True)
    c = campaign(project, 1)
    assert (c["backend"], c["status"]) == ("ray", "finished")
    pts = points(project, 1)
    state = {p["params"]["x"]: (p["state"], p["attempts"]) for p in pts.values()}
    assert state == {1: ("finished", 1), 2: ("failed", 2), 4: ("finished", 1), 5: ("finished", 2)}
    for p in pts.values():
        for a in range(1, p["attempts"] + 1):
            job = project / "campaigns" / "1" / "jobs" / str(p["id"]) / str(a)
            assert (job / "output.json").exists() and (job / "meta.json").exists() and (job / "log").exists()
    assert pts[1]["loss"] == pytest.approx(4.0)
