"""Limits a job lives within, as a user meets them: the per-job time limit (default 24 h, shown by
``tasks show``), the process group ended with the job, the capped log, and ``sys.exit`` in training."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import installed
from tests.evaluator._evalkit import make_job, write_project
from tests.faults._kit import books, hpogrid, make_project, marked_env, no_orphans

LIMITS = '''
import subprocess, sys, time

from ray import tune


def objective(config):
    kind = config["kind"]
    if kind == "chatty":  # 100 MB of stdout
        block = ("x" * 1023 + "\\n") * 1024
        sys.stdout.write("FIRST LINE\\n")
        for _ in range(100):
            sys.stdout.write(block)
        sys.stdout.write("LAST LINE\\n")
        sys.stdout.flush()
    elif kind == "hang":
        subprocess.Popen(["sleep", "300"])
        time.sleep(600)
    elif kind == "exit0":
        sys.exit(0)
    elif kind == "exit3":
        sys.exit(3)
    tune.report({"loss": float(config["x"])})
'''

STEER = '''
import json, sys
inp, out, n, m, plan = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
done = len(json.load(open(inp))["points"])
json.dump(json.load(open(plan))[done:done + max(0, min(n, m - done))], open(out, "w"))
'''

PLAN = [{"x": 1, "kind": "chatty"}, {"x": 2, "kind": "hang"}, {"x": 3, "kind": "exit0"}, {"x": 4, "kind": "exit3"}]
SPACE = {"x": {"method": "uniform", "dimension": {"low": 0, "high": 10}},
         "kind": {"method": "categorical", "dimension": {"categories": ["chatty", "hang", "exit0", "exit3"]}}}


def test_default_time_limit_is_24h(cli_env, tmp_path) -> None:
    make_project(cli_env, tmp_path, "lim0", num_trials=2, concurrent=1, script=LIMITS, model="objective", space=SPACE)
    fields = json.loads(hpogrid(["submit_idds", "lim0", "--dry-run"], cli_env).stdout)
    assert fields["settings"]["timeout"] == 86400.0


@pytest.mark.slow
def test_time_limit_process_group_log_cap_and_sys_exit(cli_env, tmp_path) -> None:
    env = marked_env(cli_env, tmp_path)
    project = make_project(env, tmp_path, "lim", num_trials=len(PLAN), concurrent=2, script=LIMITS,
                           model="objective", space=SPACE)
    (tmp_path / "steer.py").write_text(STEER)
    (tmp_path / "plan.json").write_text(json.dumps(PLAN))
    steer = f"{sys.executable} {tmp_path / 'steer.py'} %IN %OUT %NUM_POINTS %MAX_POINTS {tmp_path / 'plan.json'}"
    hpogrid(["submit_idds", "lim", "--steering-command", steer, "--timeout", "15", "--max_attempts", "2",
             "--progress", "none"], env, timeout=600)
    b = books(project, 1, tmp_path / "ledger.txt")
    by_kind = {json.loads(p["params"])["kind"]: p for p in b.points.values()}
    chatty, hang, exit0, exit3 = (by_kind[k] for k in ("chatty", "hang", "exit0", "exit3"))

    # 100 MB of output: a 10 MB log, its first and last lines kept, the cut said in between
    assert (chatty["state"], chatty["attempts"], chatty["loss"]) == ("finished", 1, 1.0)
    log = (b.job(chatty["id"], 1) / "log").read_bytes()
    assert 10 * 2**20 <= len(log) <= 10 * 2**20 + 200, len(log)
    assert b"FIRST LINE\n" in log[: 5 * 2**20] and b"LAST LINE\n" in log[-5 * 2**20:]
    (marker,) = [line for line in log.splitlines() if line.startswith(b"[hpogrid:")]
    cut = int(marker.split()[1])
    assert 90 * 2**20 <= cut <= 100 * 2**20 + 2**16

    # a hanging training: ended at the limit, recorded as timed out, retried (as PanDA does)
    assert (hang["state"], hang["attempts"]) == ("failed", 2)
    assert "timeout" in hang["message"].lower() and "15 s" in hang["message"], hang["message"]

    # sys.exit before the metric: said as such, deterministic, not retried
    assert (exit0["state"], exit0["attempts"]) == ("failed", 1)
    assert exit0["message"].startswith("METRIC_MISSING (status 2): the training called sys.exit(0) before reporting "
                                       "the metric 'loss'"), exit0["message"]
    assert (exit3["state"], exit3["attempts"]) == ("failed", 1)
    assert "the training called sys.exit(3) before reporting the metric 'loss'" in exit3["message"]

    # what the trainings started (sleep 300) ended with their jobs
    assert no_orphans(env) == []

    # the limit is shown by tasks show
    (row,) = json.loads(hpogrid(["tasks", "show", "--json", "--local"], env).stdout)
    assert row["timeout"] == 15.0
    shown = hpogrid(["tasks", "show", "--local", "--metadata"], env).stdout
    assert "job time limit 15 s" in shown
    assert Path(b.job(hang["id"], 2) / "output.json").exists()


SLOW_CLEANUP = '''
import pathlib, time

from ray import tune


class T(tune.Trainable):
    def step(self):
        return {"loss": 2.5}

    def cleanup(self):
        pathlib.Path("cleanup").write_text("yes")
        time.sleep(60)
'''


def test_sigterm_during_cleanup_keeps_the_final_metric(cli_env, tmp_path) -> None:
    """A job stopped after its training ended (cleanup running) keeps its result: status 0, its loss."""
    project = write_project(tmp_path / "proj", script="train.py", model="T", source=SLOW_CLEANUP)
    job = make_job(tmp_path / "job", {"x": 0.5})
    proc = subprocess.Popen([installed("hpogrid-evaluate"), "--project", str(project)], cwd=job, env=cli_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (job / "cleanup").exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert json.loads((job / "output.json").read_text()) == {"status": 0, "loss": 2.5, "message": ""}
    assert "after the training ended; its result is kept" in err
