"""One contract suite, run against every registered algorithm.

What every algorithm must do whatever its library: points inside the space with the right
types, the same points for the same seed and history in another process, survive failed / NaN
/ inf / 1e5 results, take pending points into account without duplicates, handle an empty
history, stop at an exhausted finite space. Unavailable algorithms are tested for their error.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from hpogrid.steering import (
    ALGORITHMS,
    FAILED,
    MissingDependencyError,
    SearchSpace,
    Searcher,
    create_algorithm,
    point_key,
    propose,
)
from hpogrid.steering.algorithms import get_algorithm_class

ONE_OF_EACH = {
    "cat": {"method": "categorical", "dimension": {"categories": [32, "relu", 0.5, True, None, [1, 2]]}},
    "grid": {"method": "categorical", "dimension": {"categories": ["a", "b", 3], "grid_search": 1}},
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
SPACE = SearchSpace.parse(ONE_OF_EACH)
# a 2-D space with a grid dimension, so `grid` can run for more than a few points
PLANE = SearchSpace.parse(
    {
        "g": {"method": "categorical", "dimension": {"categories": list(range(12)), "grid_search": 1}},
        "x": {"method": "uniform", "dimension": {"low": 0, "high": 1}},
    }
)
# finite: 2 x 2 grid categories = 4 points
FINITE = SearchSpace.parse(
    {
        "a": {"method": "categorical", "dimension": {"categories": ["p", "q"], "grid_search": 1}},
        "b": {"method": "categorical", "dimension": {"categories": [1, 2], "grid_search": 1}},
    }
)


def _available(name: str) -> bool:
    try:
        get_algorithm_class(name)
    except MissingDependencyError:
        return False
    try:
        create_algorithm(name, SPACE, 0)
    except MissingDependencyError:
        return False
    return True


AVAILABLE = [n for n in ALGORITHMS if _available(n)]
UNAVAILABLE = [n for n in ALGORITHMS if n not in AVAILABLE]


def _loss(point: dict[str, Any]) -> float:
    """A deterministic loss over any point of SPACE / PLANE (sum of numeric values)."""
    total = 0.0
    for value in point.values():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            total += (float(value) - 0.3) ** 2
    return total


def _run(name: str, space: SearchSpace, rounds: int, n: int, seed: int = 7) -> list[tuple[dict, Any]]:
    """A small steering loop: each round proposes n points, evaluated before the next round."""
    history: list[tuple[dict, Any]] = []
    for _ in range(rounds):
        points = propose(space, history, n, algorithm=name, seed=seed)
        history += [(p, _loss(p)) for p in points]
    return history


def test_every_algorithm_is_either_tested_or_explained() -> None:
    assert set(AVAILABLE) | set(UNAVAILABLE) == set(ALGORITHMS)
    assert {"random", "grid", "tune", "hyperopt", "optuna", "skopt", "bayesian", "nevergrad"} <= set(AVAILABLE)


@pytest.mark.parametrize("name", AVAILABLE)
def test_points_are_inside_the_space_with_their_types(name: str) -> None:
    history = _run(name, SPACE, rounds=3, n=4 if name != "grid" else 1)
    assert len(history) == (12 if name != "grid" else 3)
    for point, _ in history:
        assert SPACE.contains(point), point
        assert isinstance(point["ui"], int) and isinstance(point["qui"], int) and isinstance(point["qln"], int)
        assert isinstance(point["u"], float) and isinstance(point["n"], float)
        assert point["fx"] == "const"
        # the original category objects, JSON types kept (True is not 1, [1, 2] is a list)
        assert any(point["cat"] == c and type(point["cat"]) is type(c) for c in ONE_OF_EACH["cat"]["dimension"]["categories"])
        assert math.isclose(point["qu"] / 0.1, round(point["qu"] / 0.1), abs_tol=1e-6)
        assert point["qlu"] % 5 == 0 and point["qui"] % 16 == 0
        json.dumps(point)  # plain Python values only
    keys = [point_key(p) for p, _ in history]
    assert len(set(keys)) == len(keys)


DETERMINISM_SCRIPT = """
import json, sys
from hpogrid.steering import SearchSpace, propose
out = {}
for name, space, history in json.loads(sys.stdin.read()):
    out[name] = propose(SearchSpace.parse(space), [tuple(r) for r in history], 4, algorithm=name, seed=11)
print(json.dumps(out))
"""


def _determinism_case(name: str) -> tuple[SearchSpace, list]:
    """Every method's space, with a history of 14 results and one pending point (grid: the
    plane, whose 12 combinations are not all taken by such a history)."""
    space = PLANE if name == "grid" else SPACE
    rng = np.random.default_rng(3)
    history = [(space.sample(rng), float(rng.random())) for _ in range(14 if name != "grid" else 6)]
    return space, history + [(space.sample(rng), None)]


@pytest.fixture(scope="module")
def other_processes() -> list[dict[str, Any]]:
    """The proposals of every algorithm computed in two fresh processes with other hash seeds."""
    jobs = []
    for name in AVAILABLE:
        space, history = _determinism_case(name)
        jobs.append([name, space.to_json(), history])
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", DETERMINISM_SCRIPT], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONHASHSEED=hash_seed),
        )
        for hash_seed in ("1", "2")  # both at once: most of the time is imports
    ]
    results = []
    for proc in procs:
        stdout, stderr = proc.communicate(json.dumps(jobs), timeout=300)
        assert proc.returncode == 0, stderr
        results.append(json.loads(stdout))
    return results


@pytest.mark.parametrize("name", AVAILABLE)
def test_same_seed_and_history_give_the_same_points_in_another_process(name: str, other_processes: list) -> None:
    space, history = _determinism_case(name)
    history = json.loads(json.dumps(history))  # as the other processes saw it
    here = propose(space, [tuple(r) for r in history], 4, algorithm=name, seed=11)
    assert len(here) == 4
    assert other_processes[0][name] == here and other_processes[1][name] == here
    if name != "grid":  # another seed gives other points
        assert propose(space, [tuple(r) for r in history], 4, algorithm=name, seed=12) != here


@pytest.mark.parametrize("name", AVAILABLE)
def test_failed_nan_inf_and_failure_loss_count_as_evaluated_and_bad(name: str) -> None:
    rng = np.random.default_rng(5)
    pts = [PLANE.sample(rng) for _ in range(16)]
    bad = [FAILED, float("nan"), float("inf"), float("-inf"), 1e5]
    history = [(p, bad[i % len(bad)] if i % 3 == 0 else _loss(p)) for i, p in enumerate(pts)]
    seen = {point_key(PLANE.canonical(p)) for p in pts}
    out = propose(PLANE, history, 5, algorithm=name, seed=1)
    assert len(out) == 5 if name != "grid" else len(out) == 12 - len({p["g"] for p in pts}) or len(out) == 5
    assert all(PLANE.contains(p) and point_key(p) not in seen for p in out)
    # nothing but failures is also a history
    only_bad = [(p, bad[i % len(bad)]) for i, p in enumerate(pts[:6])]
    assert all(PLANE.contains(p) for p in propose(PLANE, only_bad, 3, algorithm=name, seed=1))


@pytest.mark.parametrize("name", AVAILABLE)
def test_pending_points_are_never_proposed_again_nor_twice_in_a_batch(name: str) -> None:
    history = _run(name, PLANE, rounds=1, n=6)
    pending = propose(PLANE, history, 3, algorithm=name, seed=2)
    records = history + [(p, None) for p in pending]
    batch = propose(PLANE, records, 3, algorithm=name, seed=2)
    keys = [point_key(p) for p in batch]
    assert len(batch) == 3 and len(set(keys)) == 3
    assert not set(keys) & {point_key(p) for p, _ in records}
    # pending given separately is the same as pending in the history
    assert propose(PLANE, history, 3, algorithm=name, seed=2, pending=pending) == batch
    if name == "grid":  # a grid never reuses the combination of a pending point
        assert not {p["g"] for p in batch} & {p["g"] for p, _ in records}


@pytest.mark.parametrize("name", [n for n in AVAILABLE if n not in ("grid", "tune", "random")])
def test_a_batch_is_spread_out_when_the_model_has_a_favourite(name: str) -> None:
    """After many results pointing at x = 0.3, a batch of 6 is still not one point repeated."""
    line = SearchSpace.parse({"x": {"method": "uniform", "dimension": {"low": 0, "high": 1}}})
    rng = np.random.default_rng(9)
    history = [({"x": float(x)}, (float(x) - 0.3) ** 2) for x in rng.random(30)]
    batch = [p["x"] for p in propose(line, history, 6, algorithm=name, seed=4)]
    assert len(batch) == 6
    assert max(batch) - min(batch) > 1e-3, batch


@pytest.mark.parametrize("name", AVAILABLE)
def test_max_mode_is_a_negated_loss(name: str) -> None:
    history = _run(name, PLANE, rounds=1, n=8)
    searcher = Searcher(PLANE, algorithm=name, seed=3, mode="max")
    for point, loss in history:
        searcher.tell(point, -loss)  # the metric a maximising user reports
    assert [loss for _, loss in searcher.history] == [loss for _, loss in history]
    assert searcher.ask(3) == propose(PLANE, history, 3, algorithm=name, seed=3)
    failed = Searcher(PLANE, algorithm=name, seed=3, mode="max")
    failed.tell(history[0][0], None)
    assert failed.history[0][1] == FAILED


@pytest.mark.parametrize("name", AVAILABLE)
def test_empty_history_and_zero_points(name: str) -> None:
    out = propose(SPACE, [], 5, algorithm=name, seed=0)
    assert len(out) == (3 if name == "grid" else 5)  # grid: 3 combinations of the grid dimension
    assert all(SPACE.contains(p) for p in out)
    assert propose(SPACE, [], 0, algorithm=name, seed=0) == []


@pytest.mark.parametrize("name", AVAILABLE)
def test_an_exhausted_finite_space_gives_fewer_points_then_none(name: str) -> None:
    history = [({"a": "p", "b": 1}, 0.5), ({"a": "q", "b": 2}, FAILED)]
    pending = [{"a": "p", "b": 2}]
    out = propose(FINITE, history, 5, algorithm=name, seed=0, pending=pending)
    assert out == [{"a": "q", "b": 1}]
    assert propose(FINITE, history + [(out[0], 0.1)], 5, algorithm=name, seed=0, pending=pending) == []


@pytest.mark.parametrize("name", UNAVAILABLE)
def test_an_unavailable_algorithm_says_which_extra_to_install(name: str) -> None:
    with pytest.raises(MissingDependencyError) as exc:
        create_algorithm(name, SPACE, 0)
    message = str(exc.value)
    assert name in message and ("pip install" in message or "not available" in message)
