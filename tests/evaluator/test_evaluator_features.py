"""Model parameters, helper modules, input data, project location, checkpoints for retried jobs,
the metadata size limit, and the fork-server entry points (``preload`` + ``main``)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.evaluator._evalkit import Case, installed, make_job, run_cases, write_project

PARAM = """
def f(config):
    return {"loss": config["x"] + config["offset"], "keys": ",".join(sorted(config))}
"""
HELPER_USER = """
from helper_mod import double

def f(config, reporter):
    reporter(loss=double(config["x"]))
"""
HELPER = """
def double(v):
    return 2 * v
"""
DATA_USER = """
import os

def f(config):
    listed = open("data/values.txt").read().split()
    extra = open("extra.txt").read().strip()
    return {"loss": sum(map(float, listed)) + float(extra), "cwd": os.getcwd()}
"""
CHATTY = """
from ray import tune

def f(config):
    for i in range(6000):
        tune.report({"loss": 1.0 / (i + 1), "note": "x" * 150})
"""


def _tar(members: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


F = {"script": "train.py", "model": "f"}
CASES = {
    "param_merge": Case({**F, "source": PARAM, "param": {"x": 100, "offset": 10}}, {"x": 1}),
    "helper_module": Case({**F, "source": HELPER_USER, "helpers": {"helper_mod.py": HELPER}}, {"x": 4}),
    "input_data": Case(
        {**F, "source": DATA_USER}, {"x": 1},
        files={
            "user.me.data.tar.gz": _tar({"data/values.txt": "1 2 3"}),
            "input_ds.json": json.dumps(["user.me:user.me.data.tar.gz", "other.root"]).encode(),
            "extra.tgz": _tar({"extra.txt": "0.5"}),
        },
    ),
    "function_checkpoint": Case(
        {"script": "tune_report.py", "model": "quadratic", "stop": {"training_iteration": 3}, "param": {"epochs": 6}},
        {"x": 1.0, "y": -2.0}, args=("--checkpoint-save", "ckpt"),
    ),
    "legacy_checkpoint": Case(
        {"script": "simple_trainable.py", "model": "MyTrainableClass", "stop": {"training_iteration": 2}},
        {"alpha": 2.0, "beta": 3}, args=("--checkpoint-save", "ckpt"),
    ),
    "chatty": Case({**F, "source": CHATTY, "stop": {}}, {"x": 1}),
}


@pytest.fixture(scope="module")
def runenv(tmp_path_factory: pytest.TempPathFactory) -> dict:
    env = dict(os.environ)
    env["HPOGRID_HOME"] = str(tmp_path_factory.mktemp("home"))
    env.pop("HPOGRID_PROJECT_DIR", None)
    return env


@pytest.fixture(scope="module")
def evaluations(tmp_path_factory: pytest.TempPathFactory, runenv: dict) -> dict:
    return run_cases(tmp_path_factory.mktemp("features"), CASES, runenv, via="fork")


@pytest.fixture(scope="module")
def resumed(tmp_path_factory: pytest.TempPathFactory, runenv: dict, evaluations: dict) -> dict:
    """Second attempts: the same points, a later stop, resumed from the first attempts' checkpoints."""
    first_f = evaluations["function_checkpoint"].job / "ckpt"
    first_l = evaluations["legacy_checkpoint"].job / "ckpt"
    cases = {
        "function_checkpoint": Case(
            {"script": "tune_report.py", "model": "quadratic", "stop": {"training_iteration": 5}, "param": {"epochs": 6}},
            {"x": 1.0, "y": -2.0}, args=("--checkpoint-load", str(first_f), "--checkpoint-save", "ckpt"),
        ),
        "legacy_checkpoint": Case(
            {"script": "simple_trainable.py", "model": "MyTrainableClass", "stop": {"training_iteration": 4}},
            {"alpha": 2.0, "beta": 3}, args=("--checkpoint-load", str(first_l)),
        ),
        "other_point": Case(
            {"script": "simple_trainable.py", "model": "MyTrainableClass", "stop": {"training_iteration": 1}},
            {"alpha": 2.0, "beta": 4}, args=("--checkpoint-load", str(first_l)),
        ),
        "first_attempt": Case(
            {"script": "simple_trainable.py", "model": "MyTrainableClass", "stop": {"training_iteration": 1}},
            {"alpha": 2.0, "beta": 4}, args=("--checkpoint-load", "no-such-checkpoint"),
        ),
    }
    return run_cases(tmp_path_factory.mktemp("resumed"), cases, runenv, via="fork")


def _ok(ev) -> dict:
    assert ev.rc == 0, ev.stderr
    assert ev.output["status"] == 0, (ev.output, ev.stderr)
    return ev.meta


def test_param_merged_into_config_point_wins(evaluations: dict) -> None:
    ev = evaluations["param_merge"]
    meta = _ok(ev)
    assert ev.output["loss"] == 11  # x from the point (1), offset from model_config.param (10)
    assert meta["results"][0]["metrics"]["keys"] == "offset,x"
    assert "override model_config.param" in ev.stderr


def test_helper_module_beside_the_script_imports(evaluations: dict) -> None:
    ev = evaluations["helper_module"]
    _ok(ev)
    assert ev.output["loss"] == 8


def test_training_archives_unpacked_in_the_job_folder(evaluations: dict) -> None:
    ev = evaluations["input_data"]
    meta = _ok(ev)
    assert ev.output["loss"] == 6.5
    assert meta["results"][0]["metrics"]["cwd"] == str(ev.job)
    assert meta["unpacked"] == ["user.me.data.tar.gz", "extra.tgz"]
    assert "other.root" in ev.stderr  # listed but absent: a warning, not a failure


def test_checkpoint_saved(evaluations: dict) -> None:
    for name in ("function_checkpoint", "legacy_checkpoint"):
        ev = evaluations[name]
        _ok(ev)
        state = json.loads((ev.job / "ckpt" / "hpogrid_checkpoint.json").read_text())
        assert state["point"] == ev.meta["point"]
        assert state["training_iteration"] == ev.meta["n_results"]
        assert (ev.job / "ckpt" / "checkpoint").is_dir()


def test_function_resumes_from_checkpoint(resumed: dict) -> None:
    ev = resumed["function_checkpoint"]
    meta = _ok(ev)
    new = [r for r in meta["results"] if "attempt" not in r]
    assert [r["training_iteration"] for r in new] == [4, 5]
    assert [r["metrics"]["epoch"] for r in new] == [4, 5]  # tune.get_checkpoint() gave the saved state
    assert meta["restored"]["training_iteration"] == 3
    assert [r["training_iteration"] for r in meta["results"] if r.get("attempt") == "previous"] == [1, 2, 3]
    assert ev.output["loss"] == pytest.approx(1 / 5)
    assert json.loads((ev.job / "ckpt" / "hpogrid_checkpoint.json").read_text())["training_iteration"] == 5


def test_legacy_trainable_resumes_through_save_and_restore(resumed: dict) -> None:
    ev = resumed["legacy_checkpoint"]
    meta = _ok(ev)
    new = [r for r in meta["results"] if "attempt" not in r]
    assert [r["metrics"]["timestep"] for r in new] == [3, 4]  # _restore read the file _save wrote
    import math

    assert ev.output["loss"] == pytest.approx(math.tanh(4 / 2.0) * 3)


def test_checkpoint_of_another_point_is_ignored(resumed: dict) -> None:
    ev = resumed["other_point"]
    meta = _ok(ev)
    assert "starting afresh" in ev.stderr
    assert "restored" not in meta
    assert meta["results"][0]["metrics"]["timestep"] == 1
    assert _ok(resumed["first_attempt"])["results"][0]["metrics"]["timestep"] == 1


def test_metadata_stays_under_one_megabyte(evaluations: dict) -> None:
    ev = evaluations["chatty"]
    meta = _ok(ev)
    assert (ev.job / "meta.json").stat().st_size < 1_000_000
    assert meta["results_truncated"] is True
    assert meta["n_results"] == 6000
    assert meta["results"][-1]["training_iteration"] == 6000
    assert ev.output["loss"] == pytest.approx(1 / 6000)


def test_project_from_environment_and_from_working_directory(tmp_path: Path, runenv: dict) -> None:
    """--project, else $HPOGRID_PROJECT_DIR, else the working directory (the grid's sandbox)."""
    project = write_project(tmp_path / "project", script="simple_objective.py", model="simple_objective")
    job = make_job(tmp_path / "job", {"height": 14, "width": 3})
    env = dict(runenv, HPOGRID_PROJECT_DIR=str(project))
    proc = subprocess.run([installed("hpogrid-evaluate")], cwd=job, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((job / "output.json").read_text()) == {"status": 0, "loss": 0, "message": ""}
    # the grid layout: the project folder is the job folder
    (project / "input.json").write_text(json.dumps({"height": 15, "width": 3}))
    proc = subprocess.run([installed("hpogrid-evaluate"), "--meta", "userJobMetadata.json"], cwd=project, env=runenv,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((project / "output.json").read_text())["loss"] == 1
    assert json.loads((project / "userJobMetadata.json").read_text())["project"] == "project"


FORK_SERVER = """
import json, os, sys, time
from hpogrid.evaluator import program

t = time.time()
program.preload()
preload_s = time.time() - t
jobs = []
for job in sys.argv[2:]:
    t = time.time()
    pid = os.fork()
    if pid == 0:
        os.chdir(job)
        os._exit(program.main(["--project", sys.argv[1]]))
    _, status = os.waitpid(pid, 0)
    jobs.append({"job": job, "rc": os.waitstatus_to_exitcode(status), "seconds": time.time() - t})
print(json.dumps({"preload_s": preload_s, "jobs": jobs}))
"""


def test_forked_child_after_preload_is_fast(tmp_path: Path, runenv: dict) -> None:
    project = write_project(tmp_path / "project", script="simple_objective.py", model="simple_objective")
    points = [{"height": h, "width": 3} for h in (14, 10, 20, 0)]
    jobs = [make_job(tmp_path / f"job{i}", p) for i, p in enumerate(points)]
    proc = subprocess.run([sys.executable, "-c", FORK_SERVER, str(project), *map(str, jobs)], env=runenv,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    for job, point, run in zip(jobs, points, report["jobs"]):
        assert run["rc"] == 0
        assert json.loads((job / "output.json").read_text())["loss"] == (point["height"] - 14) ** 2
        assert json.loads((job / "meta.json").read_text())["style"] == "function_reporter"
    # the children skip Ray's import (seconds): each evaluation takes a fraction of a second
    assert max(run["seconds"] for run in report["jobs"]) < 1.5, report
    assert report["preload_s"] > max(run["seconds"] for run in report["jobs"]), report
