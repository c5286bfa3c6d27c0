"""The engine as a library (what the grid sandbox uses): Engine(store, project_dir, runner=..., steering=...).

Real processes, real SQLite, real job folders. The evaluation here is a custom command (a tiny Python
program that honours the evaluator's contract: input.json in, output.json out), so these tests stay
fast; the e2e tests run the real `hpogrid-evaluate`.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path

import pytest

from hpogrid.client import campaigns, projects
from hpogrid.client.engine import (CommandSteering, Engine, EngineSettings, ForkServerRunner, Job, JobExit,
                                   ProcessRunner, WarmSteering, judge)
from hpogrid.client.store import Store

PY = sys.executable

# A stand-in evaluation program: loss = (x - 3)^2; x < 0 fails (status 1); x == 99 crashes (no output).
EVAL = r'''
import json, os, sys
p = json.load(open("input.json"))
x = p["x"]
if x == 99:
    os._exit(4)
out = {"status": 0, "loss": (x - 3) ** 2, "message": ""} if x >= 0 else {"status": 1, "loss": None, "message": f"negative x={x}"}
json.dump(out, open("output.json", "w"))
'''

# A steering command: points x = len(points), len+1, ... ; stops (returns []) at STOP_AT points.
STEER = r'''
import json, sys
inp, out, n, m, stop = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
pts = json.load(open(inp))["points"]
k = max(0, min(n, m - len(pts), stop - len(pts)))
json.dump([{"x": len(pts) + i} for i in range(k)], open(out, "w"))
'''


@pytest.fixture
def project(tmp_path: Path) -> str:
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "f.py").write_text("def f(config, reporter):\n    reporter(loss=(config['x'] - 3) ** 2)\n")
    projects.create("lib", scripts_path=scripts / "f.py",
                    model_config={"script": "f.py", "model": "f"},
                    search_space={"x": {"method": "uniform", "dimension": {"low": 0, "high": 10}}},
                    hpo_config={"algorithm": "random", "metric": "loss", "mode": "min", "num_trials": 6,
                                "max_concurrent": 2},
                    grid_config={})
    return "lib"


def new_store(project: str, tmp_path: Path, **fields) -> Store:
    row = {"max_points": 6, "max_concurrent": 2, "points_per_round": 2, "min_unevaluated": 0, "max_attempts": 2,
           "metric": "loss", "mode": "min", "settings": {}}
    row.update(fields)
    return campaigns.new(project, "embedded", **row)


def steering(tmp_path: Path, stop: int = 1000) -> CommandSteering:
    (tmp_path / "steer.py").write_text(STEER)
    return CommandSteering(f"{PY} {tmp_path / 'steer.py'} %IN %OUT %NUM_POINTS %MAX_POINTS {stop}")


def settings_for(store: Store, tmp_path: Path) -> EngineSettings:
    (tmp_path / "eval.py").write_text(EVAL)
    s = EngineSettings.from_campaign(store.campaign())
    s.evaluation_command = [PY, str(tmp_path / "eval.py")]
    return s


def test_library_engine_runs_a_campaign_with_pluggable_parts(project, tmp_path) -> None:
    store = new_store(project, tmp_path, max_points=7, max_concurrent=3, points_per_round=1)
    seen = []
    engine = Engine(store, projects.path(project), runner=ProcessRunner(), steering=steering(tmp_path),
                    settings=settings_for(store, tmp_path), on_progress=lambda p: seen.append((p.done, p.running)),
                    handle_signals=False)
    progress = engine.run()
    assert (progress.status, progress.finished, progress.failed) == ("finished", 7, 0)
    pts = store.points()
    assert [p["params"]["x"] for p in pts] == list(range(7))
    assert [p["loss"] for p in pts] == [(x - 3) ** 2 for x in range(7)]
    assert progress.best["params"] == {"x": 3} and progress.best["loss"] == 0
    rounds = store.rounds()
    # slots never stand idle: with 3 free slots the first round asks for 3, although points_per_round is 1
    assert rounds[0]["n_requested"] == 3
    assert all(r["status"] == "finished" for r in rounds)
    assert store.campaign()["status"] == "finished"
    assert seen and max(r for _, r in seen) <= 3 and seen[-1][0] == 7


def test_steering_end_of_search_and_failures(project, tmp_path) -> None:
    store = new_store(project, tmp_path, max_points=10, max_concurrent=2, max_attempts=3)
    (tmp_path / "steer2.py").write_text(
        "import json, sys\npts = json.load(open(sys.argv[1]))['points']\n"
        "plan = [{'x': 1}, {'x': -2}, {'x': 99}, {'x': 5}]\n"
        "json.dump(plan[len(pts):len(pts) + int(sys.argv[3])], open(sys.argv[2], 'w'))\n")
    engine = Engine(store, projects.path(project), runner=ProcessRunner(),
                    steering=CommandSteering(f"{PY} {tmp_path / 'steer2.py'} %IN %OUT %NUM_POINTS"),
                    settings=settings_for(store, tmp_path), handle_signals=False)
    progress = engine.run()
    assert progress.status == "finished" and "the steering ended the search" in progress.message
    pts = {p["params"]["x"]: p for p in store.points()}
    assert len(pts) == 4  # the steering returned [] before the budget of 10
    assert pts[1]["state"] == "finished" and pts[5]["state"] == "finished"
    # a job's own failure status: retried (max_attempts=3), then failed with its message
    assert (pts[-2]["state"], pts[-2]["attempts"]) == ("failed", 3) and "negative x=-2" in pts[-2]["message"]
    # a crash without output.json: retried, then failed with the reason
    assert (pts[99]["state"], pts[99]["attempts"]) == ("failed", 3)
    assert "exited with status 4 without writing output.json" in pts[99]["message"]
    # the steering saw both failures as 1e5 in a later round's %IN
    assert store.history()[1][1] == 1e5 and store.history()[2][1] == 1e5
    # %IN is built from the stored text; it says what Store.history() says
    assert json.loads(engine._history_text())["points"] == store.history()
    last = max((store.path.parent / "rounds").iterdir(), key=lambda p: int(p.name))
    losses = [loss for _, loss in json.loads((last / "idds_input.json").read_text())["points"]]
    assert 1e5 in losses


def test_min_unevaluated_points_asks_ahead(project, tmp_path) -> None:
    store = new_store(project, tmp_path, max_points=8, max_concurrent=1, points_per_round=2, min_unevaluated=5)
    Engine(store, projects.path(project), runner=ProcessRunner(), steering=steering(tmp_path),
           settings=settings_for(store, tmp_path), handle_signals=False).run()
    rounds = store.rounds()
    assert rounds[0]["n_requested"] == 5  # max(points_per_round, min_unevaluated - waiting)
    assert sum(r["n_proposed"] for r in rounds) == 8 and len(store.points()) == 8


def test_warm_steering_runs_the_real_run_step(project, tmp_path) -> None:
    folder = tmp_path / "round"
    folder.mkdir()
    (folder / "idds_input.json").write_text(json.dumps({"points": [[{"x": 2.0}, 1.0], [{"x": 4.0}, None]],
                                                        "opt_space": None}))
    warm = WarmSteering(projects.path(project) / "project.json", log=tmp_path / "steering.log")
    try:
        for attempt in range(2):  # the same worker serves round after round
            (folder / "output.json").unlink(missing_ok=True)
            warm.begin(folder, 3, 6)
            deadline = time.monotonic() + 120
            end = None
            while end is None and time.monotonic() < deadline:
                end = warm.poll()
                time.sleep(0.01)
            assert end is not None and end.ok, end
            new = json.loads((folder / "output.json").read_text())
            assert len(new) == 3 and all(0 <= p["x"] <= 10 for p in new)
        # a bad %IN fails the round with the steering's reason, and the worker survives it
        (folder / "idds_input.json").write_text("{not json")
        warm.begin(folder, 1, 6)
        end = None
        while end is None:
            end = warm.poll()
            time.sleep(0.01)
        assert not end.ok and end.error
    finally:
        warm.close()


def test_fork_server_runs_isolated_jobs_and_kills_on_request(tmp_path) -> None:
    runner = ForkServerRunner(log=tmp_path / "fs.log", preload=False)
    runner.open()
    try:
        jobs = {}
        for key, code in (("ok", "open('output.json','w').write('{}')"), ("exit", "import os; os._exit(3)"),
                          ("sleep", "import time; time.sleep(60)")):
            d = tmp_path / key
            d.mkdir()
            jobs[key] = Job(key, 1, 1, d, argv=[PY, "-c", code], env={"HPOGRID_X": key})
            runner.start(jobs[key])
        exits: dict[str, JobExit] = {}
        deadline = time.monotonic() + 30
        while len(exits) < 2 and time.monotonic() < deadline:
            exits.update({e.key: e for e in runner.poll()})
            time.sleep(0.02)
        assert exits["ok"].rc == 0 and (tmp_path / "ok" / "output.json").exists()
        assert exits["exit"].rc == 3
        runner.kill("sleep", signal.SIGTERM)
        while "sleep" not in exits and time.monotonic() < deadline:
            exits.update({e.key: e for e in runner.poll()})
            time.sleep(0.02)
        assert exits["sleep"].signal == signal.SIGTERM
    finally:
        runner.close()


@pytest.mark.parametrize("output, exit, kw, kind, retry, needle", [
    ({"status": 0, "loss": 0.0, "message": ""}, JobExit("k", rc=0), {}, "finished", True, ""),  # 0.0 is a result
    ({"status": 0, "loss": None}, JobExit("k", rc=0), {}, "failed", True, "without a finite loss"),
    ({"status": 1, "loss": None, "message": "ValueError: x"}, JobExit("k", rc=0), {}, "failed", True, "USER_ERROR"),
    ({"status": 3, "loss": None, "message": "nan"}, JobExit("k", rc=0), {}, "failed", False, "METRIC_NAN"),
    ({"status": 7, "loss": None, "message": "no script"}, JobExit("k", rc=1), {}, "failed", False, "INPUT_ERROR"),
    ({"status": 5, "loss": None, "message": "t"}, JobExit("k", rc=0), {"timed_out": True, "timeout": 2}, "failed", True, "timeout"),
    ({"status": 6, "loss": None, "message": "SIGTERM"}, JobExit("k", rc=0), {"stopping": True}, "interrupted", True, ""),
    ({"status": 6, "loss": None, "message": "SIGTERM"}, None, {}, "interrupted", True, ""),
    (None, JobExit("k", rc=1), {}, "failed", True, "exited with status 1 without writing output.json"),
    (None, JobExit("k", signal=11), {}, "failed", True, "SIGSEGV"),
    (None, JobExit("k", signal=9), {"timed_out": True, "timeout": 3}, "failed", True, "timeout"),
    (None, JobExit("k", signal=15), {"stopping": True}, "interrupted", True, ""),
    (None, None, {}, "interrupted", True, ""),
    ("{broken", JobExit("k", rc=0), {}, "failed", True, "not a valid result"),
])
def test_judge(tmp_path, output, exit, kw, kind, retry, needle) -> None:
    if output is not None:
        (tmp_path / "output.json").write_text(output if isinstance(output, str) else json.dumps(output))
    outcome = judge(tmp_path, exit, **kw)
    assert outcome.kind == kind
    assert outcome.retryable == retry
    assert needle in outcome.message
    if kind == "finished":
        assert outcome.loss == 0.0
