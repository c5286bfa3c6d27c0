"""``hpogrid local_run``: the five script styles, every algorithm with each scheduler it combines
with, refused combinations, Examples 1 and 2 at 200 trials, the digits model, a Ray cluster.

Runs that need Ray go through one subprocess per group (one ``ray.init`` shared by its runs, the
way a user's session would), so the pytest process never imports Ray.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "examples" / "scripts"

RUNNER = r"""
import json, os, sys
os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "0")
from hpogrid.client import projects
from hpogrid.client.backends.local_run import local_run

specs = json.loads(sys.stdin.read())
init = specs.pop("__init__", None)
if init is not None:
    import logging
    import ray
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False,
             runtime_env={"env_vars": {"RAY_TRAIN_V2_ENABLED": "0"}}, **init)
out = {}
for name, spec in specs.items():
    projects.create(name, scripts_path=spec["scripts"], model_config=spec["model"], search_space=spec["space"],
                    hpo_config=spec["hpo"], grid_config={"site": ["TEST"]})
    lines = []
    try:
        r = local_run(name, echo=lines.append, **spec.get("kwargs", {}))
    except Exception as exc:
        out[name] = {"error": f"{type(exc).__name__}: {exc}", "lines": lines}
        continue
    out[name] = {
        "counts": r.counts, "seconds": r.seconds, "campaign": r.campaign_id, "lines": lines,
        "best": None if r.best is None else {"metric": r.best["metric"], "loss": r.best["loss"], "params": r.best["params"]},
        "points": [{"state": p["state"], "metric": p["metric"], "loss": p["loss"], "message": p["message"],
                    "params": p["params"], "iterations": len(p["reports"])} for p in r.points],
    }
print("RESULT " + json.dumps(out))
"""

XY = {"x": {"method": "uniform", "dimension": {"low": -5, "high": 5}},
      "y": {"method": "uniform", "dimension": {"low": -5, "high": 5}},
      "c": {"method": "categorical", "dimension": {"categories": [0, 1], "grid_search": 1}}}
EX1_SPACE = {"height": {"method": "uniform", "dimension": {"low": -100, "high": 100}},
             "width": {"method": "uniform", "dimension": {"low": 0, "high": 20}}}
EX2_SPACE = {"alpha": {"method": "uniform", "dimension": {"low": -10, "high": 10}},
             "beta": {"method": "categorical", "dimension": {"categories": [-1, 0, 1, 2, 3, 4, 5]}}}
DIGITS_SPACE = {
    "hidden": {"method": "categorical", "dimension": {"categories": [32, 64, 128]}},
    "learning_rate_init": {"method": "loguniform", "dimension": {"low": 1e-3, "high": 3e-2}},
    "alpha": {"method": "loguniform", "dimension": {"low": 1e-6, "high": 1e-2}},
    "batch_size": {"method": "categorical", "dimension": {"categories": [16, 32, 64]}},
}

COMBINATIONS = [
    *[(a, s) for a in ("random", "tune", "grid") for s in ("fifo", "asynchyperband", "pbt")],
    *[(a, s) for a in ("hyperopt", "optuna", "nevergrad", "bayesian", "skopt") for s in ("fifo", "asynchyperband")],
    *[("bohb", s) for s in ("fifo", "asynchyperband", "bohbhyperband")],
    # Ray Tune's own searchers, by name (issue 12: hpogrid's steering is the default)
    ("ray:hyperopt", "asynchyperband"), ("ray:optuna", "fifo"), ("ray:nevergrad", "fifo"), ("ray:bohb", "bohbhyperband"),
]

FAILING = """
def f(config):
    if config["x"] > 0:
        raise ValueError("x too big: %.3f" % config["x"])
    return {"loss": config["x"]}
"""


def _hpo(**kw: Any) -> dict[str, Any]:
    base = {"algorithm": "random", "metric": "loss", "mode": "min", "scheduler": "fifo", "num_trials": 3,
            "max_concurrent": 1, "stop": {"training_iteration": 1}, "seed": 7}
    base.update(kw)
    return base


def _spec(script: str, model: str, space: dict, hpo: dict, param: dict | None = None, scripts: Path | None = None) -> dict:
    return {"scripts": str(scripts or SCRIPTS / script), "model": {"script": script, "model": model, "param": param or {}},
            "space": space, "hpo": hpo}


def _run(specs: dict[str, dict], home: Path, *, init: dict | None = {}, timeout: float = 900,
         env: dict[str, str] | None = None) -> dict[str, Any]:
    payload = dict(specs)
    if init is not None:
        payload["__init__"] = init
    run_env = dict(env or os.environ)
    run_env["HPOGRID_HOME"] = str(home)
    run_env.pop("RAY_ADDRESS", None)
    proc = subprocess.run([sys.executable, "-c", RUNNER], input=json.dumps(payload), env=run_env,
                          capture_output=True, text=True, timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, f"runner failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return json.loads(lines[-1][len("RESULT "):])


def _ok(result: dict, n: int) -> list[dict]:
    assert "error" not in result, result
    assert result["counts"]["finished"] + result["counts"].get("stopped", 0) == n, result  # stopped: by a scheduler
    assert result["counts"]["running"] == result["counts"]["proposed"] == 0
    return result["points"]


# ---- styles and the algorithm x scheduler matrix: one Ray session ---------------------------------
def _matrix_name(algorithm: str, scheduler: str) -> str:
    """The project name of one combination (``ray:hyperopt`` is no valid project name)."""
    return f"m_{algorithm.replace(':', '-')}_{scheduler}"


def _matrix_specs(combinations: list[tuple[str, str]]) -> dict[str, dict]:
    specs = {}
    for algorithm, scheduler in combinations:
        specs[_matrix_name(algorithm, scheduler)] = _spec(
            "tune_report.py", "quadratic", XY,
            _hpo(algorithm=algorithm, scheduler=scheduler, num_trials=4, stop={"training_iteration": 2},
                 scheduler_param={"grace_period": 1} if scheduler == "asynchyperband" else {}),
            {"epochs": 4},
        )
    return specs


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The styles and a failing script, in one Ray session."""
    fail_dir = tmp_path_factory.mktemp("failing")
    (fail_dir / "failing.py").write_text(FAILING)
    specs = {
        "style_reporter": _spec("simple_objective.py", "simple_objective", EX1_SPACE, _hpo()),
        "style_tune_report": _spec("tune_report.py", "quadratic", XY, _hpo(stop={"training_iteration": 2}), {"epochs": 3}),
        "style_train_report": _spec("train_report.py", "accuracy_of_x",
                                    {"x": {"method": "uniform", "dimension": {"low": 0, "high": 1}}},
                                    _hpo(metric="accuracy", mode="max")),
        "style_return": _spec("return_dict.py", "branin", {"x1": {"method": "uniform", "dimension": {"low": -5, "high": 10}},
                                                          "x2": {"method": "uniform", "dimension": {"low": 0, "high": 15}}}, _hpo()),
        "style_trainable": _spec("modern_trainable.py", "GradientDescent",
                                 {"lr": {"method": "loguniform", "dimension": {"low": 1e-3, "high": 1}}},
                                 _hpo(stop={"training_iteration": 3})),
        "style_legacy": _spec("simple_trainable.py", "MyTrainableClass", EX2_SPACE, _hpo(stop={"training_iteration": 2})),
        "failing": _spec("failing.py", "f", {"x": {"method": "uniform", "dimension": {"low": -1, "high": 1}}},
                         _hpo(num_trials=6, seed=3), scripts=fail_dir / "failing.py"),
    }
    return _run(specs, tmp_path_factory.mktemp("home"))


HALF = len(COMBINATIONS) // 2


@pytest.fixture(scope="module")
def matrix_a(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _run(_matrix_specs(COMBINATIONS[:HALF]), tmp_path_factory.mktemp("home"))


@pytest.fixture(scope="module")
def matrix_b(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _run(_matrix_specs(COMBINATIONS[HALF:]), tmp_path_factory.mktemp("home"))


STYLE_CHECKS = {
    # name -> (iterations per trial, metric from params)
    "style_reporter": (1, lambda p: (p["height"] - 14) ** 2 - abs(p["width"] - 3)),
    "style_tune_report": (2, lambda p: (p["x"] - 1) ** 2 + (p["y"] + 2) ** 2 + 0.5),
    "style_train_report": (1, lambda p: 1.0 - (p["x"] - 0.7) ** 2),
    "style_return": (1, None),
    "style_trainable": (3, None),
    "style_legacy": (2, lambda p: __import__("math").tanh(2 / p["alpha"]) * p["beta"]),
}


@pytest.mark.parametrize("name", list(STYLE_CHECKS))
def test_styles_through_local_run(quick: dict, name: str) -> None:
    points = _ok(quick[name], 3)
    iterations, expected = STYLE_CHECKS[name]
    for p in points:
        assert p["iterations"] == iterations, p
        if expected is not None:
            assert p["metric"] == pytest.approx(expected(p["params"]), rel=1e-6, abs=1e-9)
        assert p["loss"] == pytest.approx(p["metric"] if name != "style_train_report" else -p["metric"])
    lines = quick[name]["lines"]
    assert sum(ln.startswith("[") for ln in lines) == 3  # one progress line per trial
    assert any(ln.startswith("best ") for ln in lines)


def test_failed_trials_are_recorded_and_the_run_goes_on(quick: dict) -> None:
    result = quick["failing"]
    assert "error" not in result, result
    states = {p["state"] for p in result["points"]}
    assert states == {"finished", "failed"}, result["points"]
    for p in result["points"]:
        if p["state"] == "failed":
            assert p["params"]["x"] > 0 and p["message"].startswith("ValueError: x too big"), p
        else:
            assert p["params"]["x"] <= 0 and p["metric"] == pytest.approx(p["params"]["x"])
    assert result["best"]["metric"] == min(p["params"]["x"] for p in result["points"])


@pytest.mark.parametrize("algorithm,scheduler", COMBINATIONS)
def test_algorithm_with_scheduler(request: pytest.FixtureRequest, algorithm: str, scheduler: str) -> None:
    half = "matrix_a" if (algorithm, scheduler) in COMBINATIONS[:HALF] else "matrix_b"
    result = request.getfixturevalue(half)[_matrix_name(algorithm, scheduler)]
    expected = 2 if algorithm == "grid" else 4  # grid: each combination of the grid dimension once
    points = _ok(result, expected)
    for p in points:
        assert set(p["params"]) == {"x", "y", "c"}
        assert -5 <= p["params"]["x"] <= 5 and p["params"]["c"] in (0, 1)
        assert 1 <= p["iterations"] <= 2
        assert p["metric"] is not None
        # a trial the scheduler cut short is `stopped`; one that reached stop (2 iterations) `finished`
        assert p["state"] == ("finished" if p["iterations"] == 2 else "stopped"), p
    if algorithm == "grid":
        assert sorted(p["params"]["c"] for p in points) == [0, 1]


# ---- refused combinations: one clear line, before Ray starts ---------------------------------------
def _project(name: str, hpo: dict, space: dict | None = None) -> None:
    from hpogrid.client import projects

    projects.create(name, scripts_path=SCRIPTS / "tune_report.py",
                    model_config={"script": "tune_report.py", "model": "quadratic"},
                    search_space=space or XY, hpo_config=_hpo(**hpo), grid_config={"site": ["TEST"]})


@pytest.mark.parametrize("hpo,space,text", [
    ({"algorithm": "hyperopt", "scheduler": "pbt", "stop": {"training_iteration": 5}}, None,
     "scheduler 'pbt' mutates running trials instead of asking a searcher: it works with algorithm random, tune or grid, not 'hyperopt'"),
    ({"algorithm": "random", "scheduler": "bohbhyperband"}, None,
     "scheduler 'bohbhyperband' works with algorithm 'ray:bohb' (or 'bohb') only, not 'random'"),
    ({"algorithm": "random", "scheduler": "pbt", "stop": {"training_iteration": 1}}, None,
     "scheduler 'pbt' needs trials longer than its perturbation_interval (1), got stop.training_iteration=1"),
    ({"algorithm": "grid"}, {"x": {"method": "uniform", "dimension": {"low": 0, "high": 1}}},
     "algorithm 'grid' needs a categorical hyperparameter with \"grid_search\": 1"),
    ({"algorithm": "random", "scheduler": "fifo", "scheduler_param": {"max_t": 3}}, None,
     "scheduler 'fifo' takes no scheduler_param, got ['max_t']"),
    ({"algorithm": "ax"}, None, "algorithm 'ax' needs"),
])
def test_refused_combinations(hpo: dict, space: dict | None, text: str, capsys: pytest.CaptureFixture) -> None:
    from hpogrid.client.cli import cli, main
    from hpogrid.client.cli.local_run import command

    if "local_run" not in cli.commands:
        cli.add_command(command)
    _project("refused", hpo, space)
    rc = main(["local_run", "refused"])
    err = capsys.readouterr().err
    assert rc != 0
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and text in lines[0], err
    from hpogrid.client import campaigns

    assert campaigns.for_project("refused") == []  # nothing was started or recorded


def test_unknown_project(capsys: pytest.CaptureFixture) -> None:
    from hpogrid.client.cli import cli, main
    from hpogrid.client.cli.local_run import command

    if "local_run" not in cli.commands:
        cli.add_command(command)
    assert main(["local_run", "nope"]) == 1
    assert "no project named 'nope'" in capsys.readouterr().err


# ---- the README's examples at full budget, and a real model ----------------------------------------
@pytest.fixture(scope="module")
def examples_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    specs = {
        # hpogrid's steering TPE (local_run's default since issue 12), 3 in flight: seed 1 reaches -16.86
        # (bench/results/local_run_quality.txt; TPE itself does not reach -15 on every seed)
        "example1": _spec("simple_objective.py", "simple_objective", EX1_SPACE,
                          _hpo(algorithm="hyperopt", scheduler="asynchyperband", num_trials=200, max_concurrent=3, seed=1)),
        "example2": _spec("simple_trainable.py", "MyTrainableClass", EX2_SPACE,
                          _hpo(algorithm="hyperopt", scheduler="asynchyperband", num_trials=200, max_concurrent=2, seed=1)),
        "digits": _spec("digits_mlp.py", "train_digits", DIGITS_SPACE,
                        _hpo(algorithm="hyperopt", metric="val_accuracy", mode="max", scheduler="asynchyperband",
                             num_trials=8, stop={"training_iteration": 10},
                             scheduler_param={"grace_period": 3}),
                        {"epochs": 10}),
    }
    return _run(specs, tmp_path_factory.mktemp("home"))


@pytest.mark.slow
def test_example1_hyperopt_200_trials(examples_run: dict) -> None:
    result = examples_run["example1"]
    _ok(result, 200)
    assert result["best"]["metric"] <= -15, result["best"]


@pytest.mark.slow
def test_example2_hyperopt_200_trials(examples_run: dict) -> None:
    result = examples_run["example2"]
    _ok(result, 200)
    # a search that works: beta 4 or 5 (the best two of seven) with a negative alpha. Not -5 on every seed:
    # TPE settles on beta=4 for seeds 1 and 2 of 1-6 (measured, 2026-12-01); quality is bench/'s to measure
    assert result["best"]["metric"] <= -3.9, result["best"]


@pytest.mark.slow
def test_digits_mlp_reaches_95_percent(examples_run: dict) -> None:
    result = examples_run["digits"]
    _ok(result, 8)
    assert result["best"]["metric"] > 0.95, result["best"]
    assert result["best"]["loss"] == pytest.approx(-result["best"]["metric"])


# ---- an existing Ray cluster on loopback ---------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children() -> dict[int, list[int]]:
    """Parent pid -> child pids, from /proc (Linux)."""
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def _family(pid: int) -> dict[int, str]:
    """``pid`` and its descendants, with their command names."""
    tree, out, todo = _children(), {}, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/comm") as fh:
                out[p] = fh.read().strip()
        except OSError:
            continue
        todo += tree.get(p, [])
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
def test_ray_address_runs_on_an_existing_cluster(tmp_path: Path) -> None:
    """`ray start --head` on loopback, a small search through the CLI command with --ray-address, then
    the cluster is stopped through its own processes' ids (never a machine-wide `ray stop`, which
    would also stop other Ray instances of this user)."""
    import signal

    port = _free_port()
    ray_bin = str(Path(sys.executable).parent / "ray")
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)
    env["HPOGRID_HOME"] = str(tmp_path / "home")
    # `ray start` records the head in /tmp/ray/ray_current_cluster, where a plain ray.init() anywhere on
    # this machine would look for it after the test: put the file back as it was
    current = Path("/tmp/ray/ray_current_cluster")
    before = current.read_text() if current.exists() else None
    head = subprocess.Popen([ray_bin, "start", "--head", "--block", "--port", str(port), "--num-cpus", "2",
                             "--include-dashboard=false", "--node-ip-address", "127.0.0.1", "--disable-usage-stats"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    family: dict[int, str] = {}
    try:
        deadline = time.time() + 180
        while True:
            family = _family(head.pid)
            names = " ".join(family.values())
            if "raylet" in names and "gcs_server" in names:
                break
            assert head.poll() is None, "ray start --head exited"
            assert time.time() < deadline, "the Ray head did not start"
            time.sleep(0.5)
        time.sleep(2)
        spec = _spec("simple_objective.py", "simple_objective", EX1_SPACE, _hpo(num_trials=4))
        code = (
            "from hpogrid.client import projects\n"
            "from hpogrid.client.cli.local_run import local_run\n"
            f"projects.create('onray', scripts_path={spec['scripts']!r}, model_config={spec['model']!r}, "
            f"search_space={spec['space']!r}, hpo_config={spec['hpo']!r}, grid_config={{'site': ['TEST']}})\n"
            f"local_run.main(['onray', '--ray-address', '127.0.0.1:{port}'])\n"
        )
        proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert "Ray at 127.0.0.1:%d" % port in proc.stdout
        assert "4 finished, 0 failed" in proc.stdout, proc.stdout
        assert "best loss:" in proc.stdout
        assert "Started a local Ray instance" not in proc.stdout + proc.stderr  # it joined the cluster
    finally:
        family.update(_family(head.pid))
        head.terminate()  # `ray start --block` stops the processes it started
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            head.kill()
            head.wait()
        deadline = time.time() + 20
        while time.time() < deadline and any(_alive(p) for p in family if p != head.pid):
            time.sleep(0.5)
        for p in family:
            if p != head.pid and _alive(p):
                os.kill(p, signal.SIGKILL)
        if current.exists() and current.read_text().strip().endswith(f":{port}"):
            if before is None:
                current.unlink()
            else:
                current.write_text(before)
