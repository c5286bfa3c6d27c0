"""hyperopt's TPE settings: what the steering passes to ``hyperopt.tpe.suggest``, and that the
chosen default (gamma 0.75, see steering/algorithms/_hyperopt.py) reaches Example 1's target."""

from __future__ import annotations

from typing import Any

import pytest
from hyperopt import tpe

from hpogrid.steering import Searcher, propose

# Example 1 (examples/scripts/simple_objective.py): optimum -17, target -15
SPACE = {"height": {"method": "uniform", "dimension": {"low": -100, "high": 100}},
         "width": {"method": "uniform", "dimension": {"low": 0, "high": 20}}}
HISTORY = [({"height": float(h), "width": float(w)}, float((h - 14) ** 2 - abs(w - 3)))
           for h, w in zip(range(-90, 90, 7), range(0, 20))]


@pytest.fixture
def tpe_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The keyword arguments of every real ``tpe.suggest`` call (the real function still runs)."""
    calls: list[dict[str, Any]] = []
    real = tpe.suggest

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(tpe, "suggest", spy)
    return calls


def test_the_steering_passes_gamma_075_and_hyperopts_other_defaults(tpe_calls: list[dict[str, Any]]) -> None:
    out = propose(SPACE, HISTORY, 3, algorithm="hyperopt", seed=1)
    assert len(out) == 3 and len(tpe_calls) == 3
    for kwargs in tpe_calls:
        assert kwargs == {"verbose": False, "n_startup_jobs": 20, "n_EI_candidates": 24, "gamma": 0.75,
                          "prior_weight": 1.0}
    # only gamma differs from hyperopt's own defaults
    assert (tpe._default_n_startup_jobs, tpe._default_n_EI_candidates, tpe._default_gamma,
            tpe._default_prior_weight) == (20, 24, 0.25, 1.0)


def test_algorithm_param_overrides_the_default_gamma(tpe_calls: list[dict[str, Any]]) -> None:
    propose(SPACE, HISTORY, 1, algorithm="hyperopt", seed=1, algorithm_param={"gamma": 0.25})
    assert len(tpe_calls) == 1 and tpe_calls[0]["gamma"] == 0.25


def test_example_1_reaches_the_target_with_3_in_flight() -> None:
    """local_run's loop without Ray (bench/local_run_quality.py): ask(1) with the points in flight
    as pending, 200 trials, seed 3 (the seed on which gamma 0.25 stopped at -12.7)."""
    searcher = Searcher(SPACE, "hyperopt", None, 3, "min", 200)
    live: list[dict[str, Any]] = []
    for done in range(200):
        while len(live) < 3 and done + len(live) < 200:
            live.append(searcher.ask(1, pending=live)[0])
        point = live.pop(0)
        searcher.tell(point, (point["height"] - 14) ** 2 - abs(point["width"] - 3))
    assert len(searcher.history) == 200
    assert min(loss for _, loss in searcher.history) <= -15
