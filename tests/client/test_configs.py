"""Configs through the library API: defaults, actions, and every kind of bad input."""

from __future__ import annotations

import json

import pytest

from hpogrid.client import configs
from hpogrid.client.errors import AlreadyExistsError, ConfigError, NotFoundError, UsageError
from hpogrid.client.home import home

SPACE = {"height": {"method": "uniform", "dimension": {"low": -100, "high": 100}}}


def test_hpo_defaults_follow_the_reference_table() -> None:
    config = configs.create("hpo", "h", {})
    assert config == {
        "algorithm": "random", "metric": "accuracy", "mode": "max", "scheduler": "asynchyperband",
        "num_trials": 100, "max_concurrent": 3, "log_dir": "./log", "verbose": False,
        "stop": {}, "scheduler_param": {}, "algorithm_param": {}, "seed": None, "max_failures": 10,
    }
    assert json.loads((home() / "configs" / "hpo" / "h.json").read_text()) == config


def test_cli_strings_are_parsed() -> None:
    config = configs.create("hpo", "h", {"num_trials": "7", "stop": '{"training_iteration": 5}',
                                         "algorithm_param": '{"method": "CMA"}', "verbose": "true"})
    assert config["num_trials"] == 7 and config["stop"] == {"training_iteration": 5}
    assert config["algorithm_param"] == {"method": "CMA"} and config["verbose"] is True


def test_grid_and_model_configs() -> None:
    grid = configs.create("grid", "g", {"site": "ANALY_A,ANALY_B", "inDS": "user.me:user.me.ds"})
    assert grid["site"] == ["ANALY_A", "ANALY_B"] and grid["backend"] == "embedded" and grid["retry"] is False
    model = configs.create("model", "m", {"script": "train.py", "model": "f", "param": '{"epochs": 3}'})
    assert model == {"script": "train.py", "model": "f", "param": {"epochs": 3}}


def test_update_keeps_what_is_not_given_and_recreate_replaces() -> None:
    configs.create("hpo", "h", {"algorithm": "hyperopt", "num_trials": 10})
    updated = configs.update("hpo", "h", {"mode": "min", "num_trials": None})
    assert updated["algorithm"] == "hyperopt" and updated["num_trials"] == 10 and updated["mode"] == "min"
    recreated = configs.create("hpo", "h", {"algorithm": "optuna"}, replace=True)
    assert recreated["num_trials"] == 100 and recreated["mode"] == "max"


def test_search_space_update_adds_hyperparameters() -> None:
    configs.create("search_space", "s", json.dumps(SPACE))
    new = {"new_hp": {"method": "lognormal", "dimension": {"mu": 1, "sigma": 1}}}
    assert set(configs.update("search_space", "s", json.dumps(new))) == {"height", "new_hp"}
    assert configs.load("search_space", "s")["height"] == SPACE["height"]  # kept as given


def test_list_remove_and_glob() -> None:
    for name in ("alpha", "beta", "alpine"):
        configs.create("model", name, {"script": "t.py", "model": "f"})
    assert configs.list_names("model") == ["alpha", "alpine", "beta"]
    assert configs.list_names("model", "al*") == ["alpha", "alpine"]
    configs.remove("model", "beta")
    assert configs.list_names("model") == ["alpha", "alpine"]


def test_resolve_by_name_path_or_dict(tmp_path) -> None:
    configs.create("search_space", "s", SPACE)
    file = tmp_path / "space.json"
    file.write_text(json.dumps(SPACE))
    assert configs.resolve("search_space", "s") == configs.resolve("search_space", str(file)) == SPACE
    assert configs.resolve("model", {"script": "a.py", "model": "f"})["param"] == {}
    with pytest.raises(NotFoundError):
        configs.resolve("search_space", str(tmp_path / "missing.json"))


@pytest.mark.parametrize(
    "kind, values, words",
    [
        ("hpo", {"algorithm": "gradient"}, "unknown algorithm 'gradient'"),
        ("hpo", {"scheduler": "median"}, "unknown scheduler"),
        ("hpo", {"mode": "maximum"}, "unknown mode"),
        ("hpo", {"num_trials": 0}, "num_trials >= 1 must hold, got num_trials=0"),
        ("hpo", {"num_trials": "ten"}, "num_trials must be an integer"),
        ("hpo", {"max_concurrent": 0}, "max_concurrent >= 1"),
        ("hpo", {"stop": "{bad"}, "stop: not valid JSON"),
        ("hpo", {"stop": "[1]"}, "stop must be a JSON object"),
        ("hpo", {"algorithm_param": "3"}, "algorithm_param must be a JSON object"),
        ("model", {"model": "f"}, "needs 'script'"),
        ("model", {"script": "../x.py", "model": "f"}, "relative to the scripts path"),
        ("grid", {"backend": "slurm"}, "unknown backend"),
        ("search_space", '{"x": {"method": "uniform", "dimension": {"low": 2, "high": 1}}}', "low < high"),
        ("search_space", "{nope", "not valid JSON"),
    ],
)
def test_bad_values_change_nothing(kind, values, words) -> None:
    with pytest.raises(ConfigError) as info:
        configs.create(kind, "x", values)
    assert words in str(info.value)
    assert not (home() / "configs" / kind / "x.json").exists()


@pytest.mark.parametrize("name", ["", "a/b", "..", "a..b", "has space", "/abs", ".hidden"])
def test_bad_names(name) -> None:
    with pytest.raises(UsageError):
        configs.create("hpo", name, {})


def test_exists_and_missing() -> None:
    configs.create("hpo", "h", {})
    assert configs.create("hpo", "h", {}) == configs.load("hpo", "h")  # the same create again: unchanged
    with pytest.raises(AlreadyExistsError):
        configs.create("hpo", "h", {"num_trials": 5})
    for action in (lambda: configs.load("hpo", "nope"), lambda: configs.update("hpo", "nope", {}),
                   lambda: configs.remove("hpo", "nope")):
        with pytest.raises(NotFoundError):
            action()
