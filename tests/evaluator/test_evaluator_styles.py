"""The five training script styles, each an example in examples/scripts/, through the installed
``hpogrid-evaluate`` in a job folder, as PanDA runs it."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.evaluator._evalkit import Case, run_cases

# name -> (case, expected loss, expected number of results, expected style)
STYLES = {
    "reporter_function": (
        Case({"script": "simple_objective.py", "model": "simple_objective"}, {"height": 10, "width": 5}),
        (10 - 14) ** 2 - abs(5 - 3), 1, "function_reporter",
    ),
    "tune_report_function": (
        Case({"script": "tune_report.py", "model": "quadratic", "stop": {"training_iteration": 10}, "param": {"epochs": 4}},
             {"x": 1.0, "y": -2.0}),
        0.25, 4, "function_report",
    ),
    "tune_report_function_stopped": (
        Case({"script": "tune_report.py", "model": "quadratic", "stop": {"training_iteration": 2}, "param": {"epochs": 50}},
             {"x": 2.0, "y": -2.0}),
        1.0 + 0.5, 2, "function_report",
    ),
    "train_report_function_max": (
        Case({"script": "train_report.py", "model": "accuracy_of_x", "metric": "accuracy", "mode": "max"}, {"x": 0.5}),
        -(1.0 - 0.2**2), 1, "function_report",
    ),
    "returning_function": (
        Case({"script": "return_dict.py", "model": "branin"}, {"x1": math.pi, "x2": 2.275}),
        0.397887, 1, "function_return",
    ),
    "trainable_ray2": (
        Case({"script": "modern_trainable.py", "model": "GradientDescent", "stop": {"training_iteration": 3}}, {"lr": 0.25}),
        0.375**2, 3, "trainable",
    ),
    "trainable_legacy": (
        Case({"script": "simple_trainable.py", "model": "MyTrainableClass", "stop": {"training_iteration": 3}},
             {"alpha": -1.0, "beta": 5}),
        math.tanh(-3.0) * 5, 3, "trainable_legacy",
    ),
}


@pytest.fixture(scope="module")
def evaluations(tmp_path_factory: pytest.TempPathFactory) -> dict:
    import os
    import sys

    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["HPOGRID_HOME"] = str(tmp_path_factory.mktemp("home"))
    env.pop("HPOGRID_PROJECT_DIR", None)
    env.pop("RAY_ADDRESS", None)
    return run_cases(tmp_path_factory.mktemp("styles"), {k: v[0] for k, v in STYLES.items()}, env)


@pytest.mark.parametrize("name", list(STYLES))
def test_style_evaluates(evaluations: dict, name: str) -> None:
    case, loss, n_results, style = STYLES[name]
    ev = evaluations[name]
    assert ev.rc == 0, ev.stderr
    assert ev.output["status"] == 0, ev.output
    assert ev.output["message"] == ""
    assert ev.output["loss"] == pytest.approx(loss, rel=1e-5, abs=1e-6)
    meta = ev.meta
    assert meta["style"] == style
    assert meta["point"] == case.point
    assert meta["status"] == 0 and meta["loss"] == ev.output["loss"]
    assert meta["n_results"] == n_results == len(meta["results"])
    assert [r["training_iteration"] for r in meta["results"]] == list(range(1, n_results + 1))
    stamps = [r["timestamp"] for r in meta["results"]]
    assert stamps == sorted(stamps) and stamps[0] >= meta["timings"]["start_timestamp"]
    assert meta["rule"] == "last"
    assert meta["host"]["hostname"] and meta["host"]["ray"]
    assert meta["timings"]["total_s"] > 0
    assert meta["best"]["value"] is not None
    assert (ev.job / "meta.json").stat().st_size < 1_000_000
    # nothing but the job's files is left in the job folder
    assert sorted(p.name for p in ev.job.iterdir()) == ["input.json", "meta.json", "output.json"]


def test_best_is_recorded_beside_last(evaluations: dict) -> None:
    """The loss is the last value; meta.json's best is the best value over the iterations."""
    meta = evaluations["trainable_legacy"].meta
    values = [r["metrics"]["loss"] for r in meta["results"]]
    assert meta["best"]["value"] == pytest.approx(min(values))
    assert meta["loss"] == pytest.approx(values[-1])
