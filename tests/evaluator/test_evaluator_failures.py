"""Every failure kind leaves a result for the grid: output.json with its own status and a message
(or, when the process itself dies, no output.json and a non-zero exit)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.evaluator._evalkit import Case, installed, make_job, run_cases, write_project

RAISES = """
def f(config):
    raise ValueError("bad value %d" % config["x"])
"""
RAISES_AFTER_REPORTS = """
from ray import tune

def f(config):
    tune.report({"loss": 1.0})
    tune.report({"loss": 0.5})
    raise RuntimeError("diverged at step 3")
"""
RAISES_AT_IMPORT = """
import no_such_module_anywhere

def f(config):
    return {"loss": 1.0}
"""
TRAINABLE_RAISES = """
from ray import tune

class T(tune.Trainable):
    def setup(self, config):
        self.n = 0

    def step(self):
        self.n += 1
        if self.n == 2:
            raise ZeroDivisionError("division by zero in step 2")
        return {"loss": 1.0}
"""
WRONG_METRIC = """
def f(config):
    return {"accuracy": 0.9, "epochs": 3}
"""
NO_RESULT = """
def f(config):
    pass
"""
NOT_A_NUMBER = """
def f(config):
    return {"loss": "low"}
"""
NAN = """
def f(config):
    return {"loss": float("nan")}
"""
INF = """
import numpy as np

def f(config, reporter):
    reporter(loss=np.float64(-np.inf))
"""
SYS_EXIT = """
import sys

def f(config):
    sys.exit(3)
"""
NOT_TRAINABLE = """
class Model:
    pass
"""

F = {"script": "train.py", "model": "f"}

CASES = {
    "exception": Case({**F, "source": RAISES}, {"x": 42}),
    "exception_after_reports": Case({**F, "source": RAISES_AFTER_REPORTS, "stop": {"training_iteration": 10}}, {"x": 1}),
    "exception_at_import": Case({**F, "source": RAISES_AT_IMPORT}, {"x": 1}),
    "exception_in_trainable": Case({"script": "train.py", "model": "T", "source": TRAINABLE_RAISES, "stop": {"training_iteration": 5}}, {"x": 1}),
    "sys_exit": Case({**F, "source": SYS_EXIT}, {"x": 1}),
    "missing_metric": Case({**F, "source": WRONG_METRIC}, {"x": 1}),
    "no_result": Case({**F, "source": NO_RESULT}, {"x": 1}),
    "not_a_number": Case({**F, "source": NOT_A_NUMBER}, {"x": 1}),
    "nan": Case({**F, "source": NAN}, {"x": 1}),
    "inf": Case({**F, "source": INF}, {"x": 1}),
    # input problems: one line on stderr, exit 1, output.json with status 7
    "no_input": Case({**F, "source": NAN}, None),
    "bad_json": Case({**F, "source": NAN}, raw_input='{"x": 1,'),
    "not_an_object": Case({**F, "source": NAN}, raw_input="[1, 2]"),
    "bad_input_ds": Case({**F, "source": NAN}, {"x": 1}, files={"input_ds.json": b'{"a": 1}'}),
    "unknown_project": Case({}, {"x": 1}, args=("--project", "/nonexistent/hpogrid/project")),
    "missing_function": Case({"script": "train.py", "model": "g", "source": RAISES}, {"x": 1}),
    "not_trainable_class": Case({"script": "train.py", "model": "Model", "source": NOT_TRAINABLE}, {"x": 1}),
    "corrupt_archive": Case({**F, "source": NAN}, {"x": 1}, files={"data.tar.gz": b"not a tar file"}),
}

# every failure kind once through the installed command too (timeout, SIGTERM, os._exit: below)
COMMAND_CASES = ("exception", "missing_metric", "nan", "inf", "missing_function", "no_input", "bad_json")

# name -> (status, text the message must contain)
EXPECTED = {
    "exception": (1, "ValueError: bad value 42"),
    "exception_after_reports": (1, "RuntimeError: diverged at step 3"),
    "exception_at_import": (1, "ModuleNotFoundError: No module named 'no_such_module_anywhere'"),
    "exception_in_trainable": (1, "ZeroDivisionError: division by zero in step 2"),
    "sys_exit": (2, "the training called sys.exit(3) before reporting the metric 'loss'"),
    "missing_metric": (2, "no reported result holds the metric 'loss'; reported: accuracy, epochs"),
    "no_result": (2, "reported no result"),
    "not_a_number": (2, "not a number: 'low'"),
    "nan": (3, "the metric 'loss' is NaN"),
    "inf": (4, "the metric 'loss' is -inf"),
    "no_input": (7, "no input.json"),
    "bad_json": (7, "input.json is not valid JSON"),
    "not_an_object": (7, "must hold one point"),
    "bad_input_ds": (7, "input_ds.json must hold a JSON list"),
    "unknown_project": (7, "project directory /nonexistent/hpogrid/project does not exist"),
    "missing_function": (7, "has no function or class named 'g'; it defines: f"),
    "not_trainable_class": (7, "not a ray.tune.Trainable subclass"),
    "corrupt_archive": (7, "cannot unpack training file data.tar.gz"),
}


@pytest.fixture(scope="module")
def evaluations(tmp_path_factory: pytest.TempPathFactory) -> dict:
    env = dict(os.environ)
    env["HPOGRID_HOME"] = str(tmp_path_factory.mktemp("home"))
    env.pop("HPOGRID_PROJECT_DIR", None)
    return run_cases(tmp_path_factory.mktemp("failures"), CASES, env, via="fork")


@pytest.fixture(scope="module")
def command_evaluations(tmp_path_factory: pytest.TempPathFactory) -> dict:
    env = dict(os.environ)
    env["HPOGRID_HOME"] = str(tmp_path_factory.mktemp("home"))
    env.pop("HPOGRID_PROJECT_DIR", None)
    names = COMMAND_CASES
    return run_cases(tmp_path_factory.mktemp("failures_cmd"), {n: CASES[n] for n in names}, env)


@pytest.mark.parametrize("name", list(CASES))
def test_failure_leaves_a_result(evaluations: dict, name: str) -> None:
    """In children forked after preload() (the fork server's path)."""
    _check(evaluations[name], name)


@pytest.mark.parametrize("name", COMMAND_CASES)
def test_failure_through_the_installed_command(command_evaluations: dict, name: str) -> None:
    _check(command_evaluations[name], name)


def _check(ev, name: str) -> None:
    status, text = EXPECTED[name]
    out = ev.output
    assert out is not None, ev.stderr
    assert out["status"] == status, (out, ev.stderr)
    assert out["loss"] is None
    assert text in out["message"], out["message"]
    assert "\n" not in out["message"]
    meta = ev.meta
    assert meta["status"] == status and meta["message"] == out["message"]
    if status == 7:
        assert ev.rc == 1
        lines = [line for line in ev.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("hpogrid-evaluate: "), ev.stderr
        assert "Traceback" not in ev.stderr
    else:
        assert ev.rc == 0, ev.stderr
    if status == 1:
        assert "Traceback (most recent call last)" in ev.stderr  # the log keeps the traceback


def test_results_before_an_exception_are_kept(evaluations: dict) -> None:
    meta = evaluations["exception_after_reports"].meta
    assert [r["metrics"]["loss"] for r in meta["results"]] == [1.0, 0.5]
    assert meta["best"]["value"] == 0.5


def test_nan_is_kept_readable_in_meta(evaluations: dict) -> None:
    meta = evaluations["nan"].meta
    assert meta["results"][0]["metrics"]["loss"] == "nan"


SLEEPER = """
import pathlib
import time

from ray import tune

def f(config):
    tune.report({"loss": 3.0})
    pathlib.Path("started").write_text("yes")
    time.sleep(120)
    tune.report({"loss": 2.0})
"""

DIES = """
import os

def f(config):
    os._exit(1)
"""


def _start(tmp_path: Path, source: str, *args: str, env: dict) -> tuple[subprocess.Popen, Path]:
    project = write_project(tmp_path / "project", script="train.py", model="f", source=source,
                            stop={"training_iteration": 5})
    job = make_job(tmp_path / "job", {"x": 1})
    proc = subprocess.Popen([installed("hpogrid-evaluate"), "--project", str(project), *args], cwd=job, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, job


def test_timeout(tmp_path: Path, env: dict) -> None:
    t0 = time.time()
    proc, job = _start(tmp_path, SLEEPER, "--timeout", "15", env=env)  # room for the imports on a loaded machine
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert time.time() - t0 < 50  # the 120 s sleep was not waited for
    out = json.loads((job / "output.json").read_text())
    assert out == {"status": 5, "loss": None, "message": "time limit of 15 s exceeded"}
    meta = json.loads((job / "meta.json").read_text())
    assert [r["metrics"]["loss"] for r in meta["results"]] == [3.0]  # what was reported is kept


def test_sigterm(tmp_path: Path, env: dict) -> None:
    proc, job = _start(tmp_path, SLEEPER, env=env)
    deadline = time.time() + 60
    while not (job / "started").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, "the training never started"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    out = json.loads((job / "output.json").read_text())
    assert out == {"status": 6, "loss": None, "message": "terminated by SIGTERM"}
    assert json.loads((job / "meta.json").read_text())["results"][0]["metrics"]["loss"] == 3.0


def test_process_death_leaves_no_output(tmp_path: Path, env: dict) -> None:
    """os._exit in user code: no output.json (PanDA then sees an execution failure and retries),
    a non-zero exit, and no stale output.json from an earlier attempt either."""
    job = make_job(tmp_path / "job", {"x": 1})
    (job / "output.json").write_text('{"status": 0, "loss": 1.0, "message": "stale"}')
    proc, job = _start(tmp_path, DIES, env=env)
    proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert not (job / "output.json").exists()


def test_usage_error_writes_nothing(tmp_path: Path, env: dict) -> None:
    job = make_job(tmp_path / "job", {"x": 1})
    proc = subprocess.run([installed("hpogrid-evaluate"), "--timeout", "-3"], cwd=job, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "--timeout" in proc.stderr
    assert not (job / "output.json").exists()
