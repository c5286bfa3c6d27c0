"""What the ``ax`` algorithm must get right beyond the contract suite (which runs it too when Ax
is installed). Without Ax the registry's refusal is tested in test_registry_and_algorithms.py."""

from __future__ import annotations

import importlib.util
import logging

import numpy as np
import pytest

if importlib.util.find_spec("ax") is None or importlib.util.find_spec("torch") is None:
    pytest.skip("Ax is not installed (pip install 'hpogrid[ax]', with a CPU build of torch)", allow_module_level=True)

import torch

from hpogrid.steering import InputError, SearchSpace, create_algorithm, point_key, propose

SPACE = SearchSpace.parse(
    {
        "opt": {"method": "categorical", "dimension": {"categories": ["adam", "sgd", "rmsprop"]}},
        "lr": {"method": "loguniform", "dimension": {"low": 1e-5, "high": 1e-1}},
        "layers": {"method": "uniformint", "dimension": {"low": 1, "high": 8}},
        "batch": {"method": "quniform", "dimension": {"low": 16, "high": 256, "q": 16}},
        "dropout": {"method": "uniform", "dimension": {"low": 0.0, "high": 0.5}},
        "shift": {"method": "normal", "dimension": {"mu": 0, "sigma": 1}},
        "tag": {"method": "fixed", "dimension": {"value": "run"}},
        "only": {"method": "categorical", "dimension": {"categories": [7]}},
    }
)
LINE = SearchSpace.parse({"x": {"method": "uniform", "dimension": {"low": 0, "high": 1}}})


def _loss(point: dict) -> float:
    return (
        (np.log10(point["lr"]) + 3) ** 2
        + (point["layers"] - 4) ** 2 / 10
        + (point["dropout"] - 0.1) ** 2
        + point["shift"] ** 2 / 4
        + (0.0 if point["opt"] == "adam" else 0.5)
    )


def _history(n: int, seed: int = 0) -> list[tuple[dict, float]]:
    rng = np.random.default_rng(seed)
    return [(p, _loss(p)) for p in (SPACE.sample(rng) for _ in range(n))]


def test_a_model_batch_of_5_from_10_results_is_diverse_and_inside_the_space() -> None:
    history = _history(10)
    batch = propose(SPACE, history, 5, algorithm="ax", seed=3)
    assert len(batch) == 5 and all(SPACE.contains(p) for p in batch)
    keys = {point_key(p) for p in batch}
    assert len(keys) == 5 and not keys & {point_key(p) for p, _ in history}
    # not one point with a nudge: the batch spreads over the continuous dimensions
    assert np.ptp([np.log10(p["lr"]) for p in batch]) > 0.05 or np.ptp([p["dropout"] for p in batch]) > 0.02
    assert all(p["tag"] == "run" and p["only"] == 7 for p in batch)
    # the unbounded dimension is searched within about 3 sigma, not at the CDF's far tails
    assert all(abs(p["shift"]) < 3.2 for p in batch)


def test_the_model_moves_towards_the_minimum_of_a_simple_loss() -> None:
    rng = np.random.default_rng(1)
    history = [({"x": float(x)}, (float(x) - 0.3) ** 2) for x in rng.random(8)]
    (point,) = propose(LINE, history, 1, algorithm="ax", seed=0)
    assert abs(point["x"] - 0.3) < 0.1, point


def test_pending_points_are_part_of_the_batch_generation() -> None:
    history = _history(8)
    first = propose(SPACE, history, 3, algorithm="ax", seed=5)
    second = propose(SPACE, history, 3, algorithm="ax", seed=5, pending=first)
    assert len(second) == 3
    assert not {point_key(p) for p in second} & {point_key(p) for p in first}


def test_before_n_initial_points_results_a_step_is_a_seeded_sobol_design() -> None:
    a = propose(SPACE, _history(2), 6, algorithm="ax", seed=9)
    assert a == propose(SPACE, _history(2), 6, algorithm="ax", seed=9)
    assert a != propose(SPACE, _history(3), 6, algorithm="ax", seed=9)  # a new design each step
    assert len({point_key(p) for p in a}) == 6


@pytest.mark.parametrize(
    ("params", "word"),
    [({"acquisition": "EI"}, "n_initial_points"), ({"num_restarts": 0}, "num_restarts"), ({"raw_samples": 1.5}, "raw_samples")],
)
def test_a_bad_algorithm_param_is_refused(params: dict, word: str) -> None:
    with pytest.raises(InputError) as exc:
        create_algorithm("ax", SPACE, 0, params)
    assert word in str(exc.value)


def test_algorithm_params_reach_ax() -> None:
    history = _history(6)
    out = propose(SPACE, history, 2, algorithm="ax", seed=0, algorithm_param={"n_initial_points": 20})
    assert len(out) == 2 and all(SPACE.contains(p) for p in out)
    # with 20 initial points, 6 results are still the Sobol phase: cheap and seed-determined
    assert out == propose(SPACE, history, 2, algorithm="ax", seed=0, algorithm_param={"n_initial_points": 20})


def test_a_step_is_quiet_and_leaves_logging_and_torch_as_it_found_them(capfd: pytest.CaptureFixture[str]) -> None:
    capfd.readouterr()
    threads, disabled = torch.get_num_threads(), logging.root.manager.disable
    propose(SPACE, _history(7), 2, algorithm="ax", seed=0)
    out, err = capfd.readouterr()
    assert "[INFO" not in out + err and "ax." not in err, err
    assert torch.get_num_threads() == threads and logging.root.manager.disable == disabled


def test_dimensions_with_one_value_stay_out_of_ax() -> None:
    space = SearchSpace.parse(
        {
            "q": {"method": "quniform", "dimension": {"low": 0.9, "high": 1.1, "q": 1}},  # only 1.0
            "x": {"method": "uniform", "dimension": {"low": 0, "high": 1}},
        }
    )
    history = [({"q": 1.0, "x": i / 10}, (i / 10 - 0.3) ** 2) for i in range(7)]
    out = propose(space, history, 3, algorithm="ax", seed=0)
    assert len(out) == 3 and all(space.contains(p) and p["q"] == 1.0 for p in out)
    single = SearchSpace.parse({"f": {"method": "fixed", "dimension": {"value": 3}}})
    assert propose(single, [], 3, algorithm="ax", seed=0) == [{"f": 3}]
    assert propose(single, [({"f": 3}, 1.0)], 3, algorithm="ax", seed=0) == []
