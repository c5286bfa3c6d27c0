"""The pre-flight and run plan (client/preflight.py), stop presets, failure grouping: unit tests."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from hpogrid.client import configs, projects
from hpogrid.client.engine import Progress, failure_lines
from hpogrid.client.errors import ConfigError
from hpogrid.client.preflight import PreflightError, check_script, check_seconds, plan_run

SCRIPT = "def train(config, reporter):\n    reporter(loss=config['x'])\n"
SPACE = {"x": {"method": "uniform", "dimension": {"low": 0, "high": 1}}}


def _project(tmp_path: Path, name: str = "p", script: str = SCRIPT, model: str = "train", **hpo) -> str:
    (tmp_path / "train.py").write_text(script)
    projects.create(name, scripts_path=tmp_path / "train.py", model_config={"script": "train.py", "model": model},
                    search_space=SPACE, hpo_config={"metric": "loss", "mode": "min", **hpo}, grid_config={})
    return name


@pytest.mark.parametrize("value, ok", [
    (None, True), (1, True), (0.5, True), ("30", True),
    (0, False), (-1, False), (math.inf, False), (math.nan, False), ("inf", False), ("abc", False), (True, False),
])
def test_check_seconds(value, ok) -> None:
    if ok:
        assert check_seconds(value) == (None if value is None else float(value))
    else:
        with pytest.raises(PreflightError, match="must be a finite number of seconds > 0"):
            check_seconds(value)


def test_stop_presets_and_default() -> None:
    assert configs.validate("hpo", {})["stop"] == {}
    assert configs.validate("hpo", {"stop": "1.x"})["stop"] == {"training_iteration": 1}
    assert configs.validate("hpo", {"stop": "none"})["stop"] == {}
    assert configs.validate("hpo", {"stop": "null"})["stop"] == {}
    with pytest.raises(ConfigError, match="stop must be a JSON object .* or one of none, 1.x, got 'forever'"):
        configs.validate("hpo", {"stop": "forever"})
    assert configs.validate("hpo", {})["max_failures"] == configs.DEFAULT_MAX_FAILURES == 10
    with pytest.raises(ConfigError, match="max_failures >= 0 must hold"):
        configs.validate("hpo", {"max_failures": -1})


def test_plan_applies_overrides_and_draws_fresh_seeds(tmp_path) -> None:
    _project(tmp_path)
    a = plan_run("p", {"num_trials": "5", "stop": '{"training_iteration": 3}', "algorithm": None},
                 backend="embedded", script=False)
    b = plan_run("p", {}, backend="embedded", script=False)
    assert a.hpo["num_trials"] == 5 and a.hpo["stop"] == {"training_iteration": 3}
    assert a.overrides == {"num_trials": 5, "stop": {"training_iteration": 3}}
    assert a.seed_drawn and b.seed_drawn and a.seed != b.seed and a.hpo["seed"] == a.seed
    assert projects.load("p")["hpo_config"]["num_trials"] == 100  # the project is not changed
    given = plan_run("p", {}, backend="embedded", script=False, seed=7)
    assert (given.seed, given.seed_drawn, given.overrides) == (7, False, {"seed": 7})
    assert given.settings()["seed"] == 7 and given.settings()["max_failures"] == 10


def test_plan_refuses(tmp_path) -> None:
    _project(tmp_path)
    with pytest.raises(ConfigError, match="num_trials >= 1 must hold"):
        plan_run("p", {"num_trials": 0}, backend="embedded", script=False)
    with pytest.raises(PreflightError, match="cannot override \\['metric'\\]"):
        plan_run("p", {"metric": "acc"}, backend="embedded", script=False)
    with pytest.raises(PreflightError, match="Ray Tune's own searcher, for `hpogrid local_run` only"):
        plan_run("p", {"algorithm": "ray:hyperopt"}, backend="embedded", script=False)
    assert plan_run("p", {"algorithm": "ray:hyperopt"}, backend="local_run", script=False).hpo["algorithm"] == "ray:hyperopt"
    with pytest.raises(PreflightError, match="timeout must be a finite number"):
        plan_run("p", {}, backend="embedded", timeout=float("inf"), script=False)


def test_check_script_in_a_subprocess(tmp_path) -> None:
    _project(tmp_path, "good")
    assert check_script(projects.path("good")) == "function_reporter"
    (tmp_path / "bad").mkdir()
    _project(tmp_path / "bad", "bad", model="trian")
    with pytest.raises(PreflightError) as err:
        check_script(projects.path("bad"))
    assert str(err.value) == ("pre-flight: training script train.py has no function or class named 'trian'; "
                              "it defines: train")
    (tmp_path / "slow").mkdir()
    _project(tmp_path / "slow", "slow", script="import time\ntime.sleep(60)\n" + SCRIPT)
    with pytest.raises(PreflightError, match="took longer than 1 s"):
        check_script(projects.path("slow"), timeout=1)


def test_failures_grouped_by_reason() -> None:
    p = Progress("3", 10)
    for message in ["METRIC_MISSING: no loss", "boom  x", "METRIC_MISSING: no loss", None]:
        p.count_failure(message)
    assert p.failure_reasons == {"METRIC_MISSING: no loss": 2, "boom x": 1, "no reason recorded": 1}
    assert failure_lines(p.failure_reasons) == [
        "failures by reason (4 failed points):",
        "     2 x METRIC_MISSING: no loss",
        "     1 x boom x",
        "     1 x no reason recorded",
    ]
    lines = failure_lines({f"r{i}": 1 for i in range(7)}, limit=5)
    assert len(lines) == 7 and lines[-1].startswith("     2 x 2 other reason(s)")
    assert failure_lines({}) == []


def test_displays_show_the_latest_failure() -> None:
    import io

    from rich.console import Console

    from hpogrid.client.engine._progress import LiveDisplay, status_line, summary_lines

    p = Progress("4", 10, failed=2, seed=99)
    p.last_failure = "METRIC_MISSING (status 2): no reported result holds the metric 'acc'"
    p.count_failure(p.last_failure)
    p.count_failure(p.last_failure)
    assert status_line(p).endswith("| last failure: METRIC_MISSING (status 2): no reported result holds the metric 'acc'")
    out = io.StringIO()
    display = LiveDisplay(console=Console(file=out, force_terminal=True, width=200))
    display(p)
    display.close()
    assert "last failure" in out.getvalue() and "seed 99" in out.getvalue()
    p.status = "finished"
    lines = summary_lines(p)
    assert lines[0].startswith("campaign 4 finished: 0 finished, 2 failed of 10 points in") and lines[0].endswith(", seed 99")
    assert lines[1:3] == ["failures by reason (2 failed points):",
                          "     2 x METRIC_MISSING (status 2): no reported result holds the metric 'acc'"]


def test_local_run_stops_after_max_failures_trials_in_a_row(tmp_path) -> None:
    """The recorder (a Ray Tune callback) and the run's Stopper, with real Ray Trial objects and store."""
    from ray.tune.experiment import Trial

    from hpogrid.client import campaigns
    from hpogrid.client.backends.tune_fit import stopper as _stopper
    from hpogrid.client.backends.tune_record import recorder as _recorder
    from hpogrid.client.backends.tune_search import make_config_mapper
    from hpogrid.steering.space import SearchSpace

    _project(tmp_path)
    store = campaigns.new("p", "local_run", metric="loss", mode="min", max_points=10)
    space = SearchSpace.parse(SPACE)
    said: list[str] = []
    recorder = _recorder(store, space, make_config_mapper(space, set()), "loss", "min", 10, said.append)
    recorder.max_failures = 2
    stopper = _stopper({"training_iteration": 3}, recorder)
    assert stopper("t", {"training_iteration": 2}) is False and stopper("t", {"training_iteration": 3}) is True
    assert _stopper({}, recorder)("t", {"training_iteration": 100}) is False  # no stop: run to the end

    def trial(i: int, results: list[dict]) -> None:
        t = Trial("f", config={"x": i / 10}, trial_id=f"t{i}", stub=True)
        recorder.on_trial_start(0, [], t)
        for r in results:
            recorder.on_trial_result(0, [], t, r)
        recorder.on_trial_complete(0, [], t)

    trial(1, [{"acc": 1}])  # no 'loss': failed
    assert not stopper.stop_all()
    trial(2, [{"loss": 0.5}])  # a result: the count starts again
    trial(3, [{"acc": 1}])
    assert not stopper.stop_all()
    trial(4, [])
    assert stopper.stop_all()
    assert recorder.stopped_because.startswith("stopped after 2 trials failed in a row (max_failures 2); last reason: "
                                               "the training reported no result")
    assert [p["state"] for p in store.points()] == ["failed", "finished", "failed", "failed"]
