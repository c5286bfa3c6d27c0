"""Steering cost is bounded at any history size: past its limit an algorithm models a subsample
(the best third plus a seeded random rest) and the step says so; one round proposes at most
MAX_POINTS_PER_ROUND points. Behaviour, not time: bench/steering_scale.py measures the time.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from hpogrid.steering import ALGORITHMS, MissingDependencyError, SearchSpace, create_algorithm
from hpogrid.steering.algorithms.base import BaseAlgorithm, best_and_sample
from hpogrid.steering.program import MAX_POINTS_PER_ROUND
from tests.conftest import installed

SPACE = SearchSpace.parse({f"x{i}": {"method": "uniform", "dimension": {"low": 0, "high": 1}} for i in range(3)})
H = 5200
#: Algorithms that model no history (their cost is linear in it) and must see all of it.
UNBOUNDED = {"random", "grid", "tune"}


def _history(h: int, pending: int = 3) -> list:
    rng = np.random.default_rng(1)
    points = [SPACE.from_unit(u) for u in rng.random((h + pending, 3))]
    return [(p, float(v)) for p, v in zip(points[:h], rng.random(h))] + [(p, None) for p in points[h:]]


def _algorithm(name: str) -> BaseAlgorithm:
    try:
        return create_algorithm(name, SPACE, 0)
    except MissingDependencyError as exc:
        pytest.skip(str(exc))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(set(ALGORITHMS) - UNBOUNDED))
def test_past_its_limit_an_algorithm_models_a_subsample_and_says_so(name: str) -> None:
    algo = _algorithm(name)
    limit = algo.history_limit
    assert limit is not None and limit < H, f"{name} has no history bound"
    seen: list[int] = []
    rebuild = algo.rebuild
    algo.rebuild = lambda evaluated: (seen.append(len(evaluated)), rebuild(evaluated))[1]  # type: ignore[method-assign]
    history = _history(H)
    points = algo.propose(history, 4)
    assert seen == [limit]
    assert len(points) == 4 and all(SPACE.contains(p) for p in points)
    assert algo.notes[0] == (f"{name}: modelling {limit} of {H} evaluated points (the best {limit // 3} and "
                             f"{limit - limit // 3} sampled at random) to bound the step's time and memory")
    below = _algorithm(name)
    below.propose(history[: limit] + history[H:], 2)
    assert below.notes == []


@pytest.mark.parametrize("name", sorted(UNBOUNDED))
def test_algorithms_without_a_model_see_the_whole_history(name: str) -> None:
    grid = SearchSpace.parse({**SPACE.to_json(), "g": {"method": "categorical", "dimension": {"categories": [1, 2], "grid_search": 1}}})
    algo = create_algorithm(name, SPACE if name == "random" else grid, 0)
    assert algo.history_limit is None
    if name == "random":  # grid and tune need a grid dimension; their rebuild only counts combinations
        algo.propose(_history(H), 2)
        assert algo.notes == []


def test_many_pending_points_are_bounded_and_never_proposed_again() -> None:
    algo = _algorithm("skopt")
    history = _history(20, pending=500)
    pending = {json.dumps(p, sort_keys=True) for p, loss in history if loss is None}
    points = algo.propose(history, 3)
    assert algo.notes == ["skopt: steering away from the latest 200 of 500 pending points (all are still never proposed again)"]
    assert not pending & {json.dumps(p, sort_keys=True) for p in points}


def test_the_subsample_keeps_the_best_third_and_is_seeded() -> None:
    losses = np.random.default_rng(0).random(1000)
    keep = best_and_sample(losses, 90, np.random.default_rng(5))
    assert len(keep) == 90 == len(set(keep.tolist())) and list(keep) == sorted(keep)
    assert set(np.argsort(losses)[:30]) <= set(keep.tolist())
    assert (keep == best_and_sample(losses, 90, np.random.default_rng(5))).all()
    assert (best_and_sample(losses[:50], 90, np.random.default_rng(5)) == np.arange(50)).all()


def _steer(tmp_path: Path, history: list, num_points: int, max_points: int, algorithm: str) -> subprocess.CompletedProcess:
    (tmp_path / "in.json").write_text(json.dumps({"points": [[p, loss] for p, loss in history], "opt_space": SPACE.to_json()}))
    (tmp_path / "config.json").write_text(json.dumps({"algorithm": algorithm, "search_space": SPACE.to_json(), "seed": 3}))
    return subprocess.run([installed("hpogrid-steering"), "--in", "in.json", "--out", "out.json", "--num-points", str(num_points),
                           "--max-points", str(max_points), "--config", "config.json"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)


def test_num_points_is_capped_per_round_with_a_note(tmp_path: Path) -> None:
    done = _steer(tmp_path, [], 100_000_000, 100_000_000, "random")
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"hpogrid-steering: note: --num-points 100000000 capped to {MAX_POINTS_PER_ROUND} per round "
        "(the steering's limit; later rounds propose the rest)"]
    assert len(json.loads((tmp_path / "out.json").read_text())) == MAX_POINTS_PER_ROUND


def test_the_round_log_says_the_history_was_subsampled(tmp_path: Path) -> None:
    done = _steer(tmp_path, _history(300, pending=0), 2, 1000, "skopt")
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines() == [
        "hpogrid-steering: note: skopt: modelling 200 of 300 evaluated points (the best 66 and 134 sampled at "
        "random) to bound the step's time and memory"]
    assert len(json.loads((tmp_path / "out.json").read_text())) == 2
