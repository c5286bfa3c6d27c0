"""The search-space format: every method's meaning, and every rule it enforces."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from hpogrid.steering.errors import SpaceError
from hpogrid.steering.space import METHODS, SearchSpace, point_key

ONE_OF_EACH = {
    "cat": {"method": "categorical", "dimension": {"categories": [32, "relu", 0.5, True, None, [1, 2]]}},
    "grid": {"method": "categorical", "dimension": {"categories": ["a", "b"], "grid_search": 1}},
    "u": {"method": "uniform", "dimension": {"low": -2.5, "high": 7}},
    "ui": {"method": "uniformint", "dimension": {"low": 3, "high": 10}},
    "qu": {"method": "quniform", "dimension": {"low": 0.05, "high": 1.0, "q": 0.1}},
    "qui": {"method": "quniform", "dimension": {"low": 16, "high": 256, "q": 16}},
    "lu": {"method": "loguniform", "dimension": {"low": 1e-5, "high": 1e-2, "base": 10}},
    "qlu": {"method": "qloguniform", "dimension": {"low": 1, "high": 1000, "q": 5}},
    "n": {"method": "normal", "dimension": {"mu": 1, "sigma": 2}},
    "qn": {"method": "qnormal", "dimension": {"mu": 0, "sigma": 3, "q": 0.5}},
    "ln": {"method": "lognormal", "dimension": {"mu": 0, "sigma": 1}},
    "qln": {"method": "qlognormal", "dimension": {"mu": 1, "sigma": 1, "q": 1}},
    "fx": {"method": "fixed", "dimension": {"value": "const"}},
}


def test_every_method_is_covered() -> None:
    assert {spec["method"] for spec in ONE_OF_EACH.values()} == set(METHODS)


@pytest.fixture(scope="module")
def samples() -> tuple[SearchSpace, list[dict]]:
    space = SearchSpace.parse(ONE_OF_EACH)
    rng = np.random.default_rng(7)
    return space, [space.sample(rng) for _ in range(2000)]


def test_samples_are_valid_points(samples) -> None:
    space, points = samples
    for p in points:
        assert space.contains(p), p
        json.dumps(p)  # plain JSON values only


def test_bounds_integers_and_q(samples) -> None:
    _, points = samples
    assert all(-2.5 <= p["u"] <= 7 for p in points)
    assert {p["ui"] for p in points} == set(range(3, 11))  # both bounds included
    assert all(type(p["ui"]) is int for p in points)
    assert {p["qui"] for p in points} <= set(range(16, 257, 16)) and all(type(p["qui"]) is int for p in points)
    assert all(0.1 <= p["qu"] <= 1.0 and abs(p["qu"] * 10 - round(p["qu"] * 10)) < 1e-9 for p in points)
    assert all(1e-5 <= p["lu"] <= 1e-2 for p in points)
    assert all(p["qlu"] % 5 == 0 and 5 <= p["qlu"] <= 1000 and type(p["qlu"]) is int for p in points)
    assert all(p["qln"] >= 0 and type(p["qln"]) is int for p in points)
    assert all(p["ln"] > 0 for p in points)
    assert all(p["fx"] == "const" for p in points)


def test_laws(samples) -> None:
    _, points = samples
    n = np.array([p["n"] for p in points])
    assert abs(n.mean() - 1) < 0.2 and abs(n.std() - 2) < 0.2
    logs = np.log10([p["lu"] for p in points])  # log-uniform: the log is uniform over [-5, -2]
    assert abs(logs.mean() + 3.5) < 0.1 and (logs < -4).mean() == pytest.approx(1 / 3, abs=0.05)
    ln = np.log([p["ln"] for p in points])  # lognormal: base e by default
    assert abs(ln.mean()) < 0.1 and abs(ln.std() - 1) < 0.1


def test_categories_keep_json_types(samples) -> None:
    space, points = samples
    seen = {json.dumps(p["cat"]) for p in points}
    assert seen == {"32", '"relu"', "0.5", "true", "null", "[1, 2]"}
    # canonical() returns the original objects, also from a library's stringified/float output
    assert space["cat"].canonical(32.0) == 32 and type(space["cat"].canonical(32.0)) is int
    assert space["cat"].canonical(np.int64(32)) == 32
    assert space["cat"].canonical(True) is True


def test_unit_round_trip() -> None:
    space = SearchSpace.parse(ONE_OF_EACH)
    rng = np.random.default_rng(1)
    for _ in range(200):
        p = space.sample(rng)
        u = space.to_unit(p)
        assert all(0.0 <= x <= 1.0 for x in u)
        back = space.from_unit(u)
        for d in space:
            if d.is_categorical or d.method == "uniformint":
                assert back[d.name] == p[d.name]
            elif d.q is None:
                assert math.isclose(back[d.name], p[d.name], rel_tol=1e-6, abs_tol=1e-9)


def test_canonical_clips_and_quantises() -> None:
    space = SearchSpace.parse(ONE_OF_EACH)
    assert space["u"].canonical(100.0) == 7
    assert space["ui"].canonical(9.6) == 10 and space["ui"].canonical(-4) == 3
    assert space["qui"].canonical(300) == 256 and space["qui"].canonical(20.0) == 16
    assert space["qu"].canonical(0.33) == pytest.approx(0.3)


def test_grid_combinations_stable_order() -> None:
    space = SearchSpace.parse({
        "a": {"method": "categorical", "dimension": {"categories": [1, 2], "grid_search": 1}},
        "x": {"method": "uniform", "dimension": {"low": 0, "high": 1}},
        "b": {"method": "categorical", "dimension": {"categories": ["p", "q", "r"], "grid_search": True}},
    })
    assert space.grid_combinations() == [
        {"a": 1, "b": "p"}, {"a": 1, "b": "q"}, {"a": 1, "b": "r"},
        {"a": 2, "b": "p"}, {"a": 2, "b": "q"}, {"a": 2, "b": "r"},
    ]
    assert space.cardinality() is None


def test_idds_example_form_is_accepted() -> None:
    space = SearchSpace.parse({"A": {"type": "Choice", "params": {"choices": [1, 4]}},
                               "B": {"type": "Scalar", "bounds": [0, 5]}})
    assert space["A"].categories == [1, 4] and space["B"].bounds == (0, 5)


def test_point_key_distinguishes_types() -> None:
    assert point_key({"a": 1}) != point_key({"a": 1.0}) != point_key({"a": True})
    assert point_key({"a": 1, "b": 2}) == point_key({"b": 2, "a": 1})


@pytest.mark.parametrize(
    "spec, words",
    [
        ("{bad", "not valid JSON"),
        ([1, 2], "JSON object"),
        ({}, "empty"),
        ({"x": {"method": "gaussian", "dimension": {}}}, "unknown method 'gaussian'"),
        ({"x": {"method": "uniform", "dimension": {"low": 0, "high": 1, "step": 2}}}, "unknown dimension"),
        ({"x": {"method": "uniform", "dimension": {"low": 0}}}, "needs dimension(s) high"),
        ({"x": {"method": "uniform", "dimension": {"low": 5, "high": 1}}}, "low < high must hold, got low=5, high=1"),
        ({"x": {"method": "uniform", "dimension": {"low": "a", "high": 1}}}, "'low' must be a finite number"),
        ({"x": {"method": "quniform", "dimension": {"low": 0, "high": 1, "q": 0}}}, "q > 0 must hold, got q=0"),
        ({"x": {"method": "quniform", "dimension": {"low": 0.1, "high": 0.2, "q": 1}}}, "no multiple of q=1"),
        ({"x": {"method": "normal", "dimension": {"mu": 0, "sigma": -1}}}, "sigma > 0 must hold, got sigma=-1"),
        ({"x": {"method": "qnormal", "dimension": {"mu": 0, "sigma": 0, "q": 1}}}, "sigma > 0"),
        ({"x": {"method": "lognormal", "dimension": {"mu": 0, "sigma": 1, "base": 1}}}, "base != 1"),
        ({"x": {"method": "loguniform", "dimension": {"low": 0, "high": 1}}}, "needs low > 0"),
        ({"x": {"method": "uniformint", "dimension": {"low": 0.5, "high": 3}}}, "must be an integer"),
        ({"x": {"method": "categorical", "dimension": {"categories": []}}}, "non-empty list"),
        ({"x": {"method": "categorical", "dimension": {"categories": [1, 1]}}}, "distinct"),
        ({"x": {"method": "categorical", "dimension": {"categories": [1], "grid_search": 3}}}, "grid_search"),
        ({"x": {"method": "uniform"}}, "'dimension' must be an object"),
        ({"x": {"method": "uniform", "dimension": {"low": 0, "high": 1}, "extra": 1}}, "unknown key"),
        ({"": {"method": "uniform", "dimension": {"low": 0, "high": 1}}}, "non-empty string"),
        ({"x": 3}, "expected an object"),
    ],
)
def test_invalid_spaces_name_the_problem(spec, words) -> None:
    with pytest.raises(SpaceError) as info:
        SearchSpace.parse(json.dumps(spec) if not isinstance(spec, str) else spec)
    assert words in str(info.value)
