"""``hpogrid-steering`` as iDDS runs it: the installed command, hand-written %IN files."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from hpogrid.steering import SearchSpace
from hpogrid.steering.program import main, run_step

from tests.conftest import installed

HPOGRID_SPACE = {
    "A": {"method": "categorical", "dimension": {"categories": [1, 4]}},
    "B": {"method": "uniform", "dimension": {"low": 0, "high": 5}},
}
IDDS_SPACE = {"A": {"type": "Choice", "params": {"choices": [1, 4]}}, "B": {"type": "Scalar", "bounds": [0, 5]}}
IDDS_EXAMPLE = {"points": [[{"A": 1, "B": 2}, 0.3], [{"A": 1, "B": 3}, None]], "opt_space": HPOGRID_SPACE}


def _steer(tmp_path: Path, data: Any, num: int, max_: int, *extra: str, raw: str | None = None) -> tuple[subprocess.CompletedProcess, Path]:
    in_path, out_path = tmp_path / "idds_input.json", tmp_path / "output.json"
    in_path.write_text(raw if raw is not None else json.dumps(data))
    proc = subprocess.run(
        [installed("hpogrid-steering"), "--in", str(in_path), "--out", str(out_path),
         "--num-points", str(num), "--max-points", str(max_), *extra],
        capture_output=True, text=True, timeout=120,
    )
    return proc, out_path


def _ok(proc: subprocess.CompletedProcess, out_path: Path) -> Any:
    assert proc.returncode == 0, proc.stderr
    return json.loads(out_path.read_text())


def test_the_idds_example_with_hpogrid_space(tmp_path: Path) -> None:
    proc, out = _steer(tmp_path, IDDS_EXAMPLE, 3, 10)
    points = _ok(proc, out)
    space = SearchSpace.parse(HPOGRID_SPACE)
    assert len(points) == 3 and all(space.contains(p) for p in points)
    assert {json.dumps(p, sort_keys=True) for p in points}.isdisjoint(
        {json.dumps(p, sort_keys=True) for p, _ in IDDS_EXAMPLE["points"]}
    )


def test_the_idds_choice_scalar_form(tmp_path: Path) -> None:
    data = dict(IDDS_EXAMPLE, opt_space=IDDS_SPACE)
    points = _ok(*_steer(tmp_path, data, 4, 100))
    assert len(points) == 4 and all(p["A"] in (1, 4) and 0 <= p["B"] <= 5 for p in points)


@pytest.mark.parametrize(("num", "max_", "expected"), [(3, 10, 3), (10, 5, 3), (3, 2, 0), (0, 10, 0)])
def test_the_budget_counts_every_point_so_far(tmp_path: Path, num: int, max_: int, expected: int) -> None:
    # 2 points so far (one pending): min(num, max - 2)
    assert len(_ok(*_steer(tmp_path, IDDS_EXAMPLE, num, max_))) == expected


def test_a_config_chooses_algorithm_and_seed_and_runs_are_reproducible(tmp_path: Path) -> None:
    config = tmp_path / "project.json"
    config.write_text(json.dumps({
        "project_name": "p", "search_space": HPOGRID_SPACE,
        "hpo_config": {"algorithm": "optuna", "algorithm_param": {"sampler": "tpe"}, "metric": "loss", "mode": "min",
                       "seed": 5, "scheduler": "asynchyperband", "num_trials": 20},
    }))
    first = _ok(*_steer(tmp_path, {"points": IDDS_EXAMPLE["points"], "opt_space": None}, 4, 20, "--config", str(config)))
    again = _ok(*_steer(tmp_path, {"points": IDDS_EXAMPLE["points"], "opt_space": None}, 4, 20, "--config", str(config)))
    reseeded = _ok(*_steer(tmp_path, {"points": IDDS_EXAMPLE["points"], "opt_space": None}, 4, 20, "--config", str(config), "--seed", "6"))
    assert first == again and first != reseeded
    # the warm-worker entry does exactly what the process does
    assert run_step(tmp_path / "idds_input.json", tmp_path / "again.json", 4, 20, config) == first
    assert run_step(tmp_path / "idds_input.json", tmp_path / "again.json", 4, 20, config, seed=6) == reseeded
    assert json.loads((tmp_path / "again.json").read_text()) == reseeded


def test_a_flat_config_with_grid(tmp_path: Path) -> None:
    config = tmp_path / "steer.json"
    space = {"opt": {"method": "categorical", "dimension": {"categories": ["adam", "sgd"], "grid_search": 1}},
             "lr": {"method": "loguniform", "dimension": {"low": 1e-4, "high": 1e-1}}}
    config.write_text(json.dumps({"algorithm": "grid", "seed": 1, "search_space": space}))
    data = {"points": [[{"opt": "adam", "lr": 0.01}, None]], "opt_space": None}
    points = _ok(*_steer(tmp_path, data, 5, 10, "--config", str(config)))
    assert [p["opt"] for p in points] == ["sgd"]  # fewer: the grid is exhausted


def test_segmented_input_shares_the_total_budget_among_models(tmp_path: Path) -> None:
    seg_space = {"h": {"method": "uniformint", "dimension": {"low": 1, "high": 100}}}
    data = {
        "points": [[[0, {"h": 3}], 0.5], [[0, {"h": 7}], None], [[1, {"h": 50}], 0.1]],
        "opt_space": [{"model_id": 0, "search_space": seg_space}, {"model_id": 1, "search_space": seg_space},
                      {"model_id": 2, "search_space": seg_space}],
    }
    out = _ok(*_steer(tmp_path, data, 5, 9))
    # totals: 9 points = 3 per model, 6 left; model 0 has 2 (1 left), model 1 has 1, model 2 none;
    # 5 this round, each to the model with the fewest points
    assert [m for m, _ in out] == [0, 1, 1, 2, 2]
    assert all(isinstance(p["h"], int) and 1 <= p["h"] <= 100 for _, p in out)
    assert {3, 7} .isdisjoint({p["h"] for m, p in out if m == 0})


def test_the_budget_spent_gives_an_empty_list(tmp_path: Path) -> None:
    assert _ok(*_steer(tmp_path, IDDS_EXAMPLE, 5, 2)) == []


BAD_INPUTS = [
    ("malformed JSON", None, '{"points": [[{"A": 1}, 0.3]', "not valid JSON"),
    ("not an object", None, "[1, 2]", "'points'"),
    ("bad record", {"points": [[{"A": 1, "B": 2}]], "opt_space": HPOGRID_SPACE}, None, "[point, loss]"),
    ("bad loss", {"points": [[{"A": 1, "B": 2}, "low"]], "opt_space": HPOGRID_SPACE}, None, "loss"),
    ("bad space", {"points": [], "opt_space": {"B": {"method": "uniform", "dimension": {"low": 5, "high": 1}}}}, None, "low < high"),
    ("no space", {"points": [], "opt_space": None}, None, "no search space"),
    ("point outside space", {"points": [[{"C": 1}, 0.3]], "opt_space": HPOGRID_SPACE}, None, "lacks"),
]


@pytest.mark.parametrize(("case", "data", "raw", "words"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_one_line_nonzero_and_no_output(tmp_path: Path, case: str, data: Any, raw: str | None, words: str) -> None:
    proc, out = _steer(tmp_path, data, 3, 10, raw=raw)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hpogrid-steering: error: ") and words in lines[0], proc.stderr
    assert not out.exists() and not list(tmp_path.glob(".output.json.*"))


def test_unknown_algorithm_and_missing_files(tmp_path: Path) -> None:
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"algorithm": "simplex"}))
    proc, out = _steer(tmp_path, IDDS_EXAMPLE, 3, 10, "--config", str(config))
    assert proc.returncode == 1 and "unknown algorithm 'simplex'" in proc.stderr and "hyperopt" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not out.exists()
    for missing in (["--config", str(tmp_path / "nope.json")],):
        proc, out = _steer(tmp_path, IDDS_EXAMPLE, 3, 10, *missing)
        assert proc.returncode == 1 and "cannot read the config" in proc.stderr and not out.exists()
    proc = subprocess.run([installed("hpogrid-steering"), "--in", str(tmp_path / "absent.json"), "--out",
                           str(tmp_path / "o.json"), "--num-points", "1", "--max-points", "2"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1 and "cannot read the %IN file" in proc.stderr
    assert not (tmp_path / "o.json").exists()


def test_main_returns_a_status_in_process(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    in_path = tmp_path / "in.json"
    in_path.write_text(json.dumps(IDDS_EXAMPLE))
    assert main(["--in", str(in_path), "--out", str(tmp_path / "o.json"), "--num-points", "2", "--max-points", "9"]) == 0
    assert len(json.loads((tmp_path / "o.json").read_text())) == 2
    assert main(["--in", str(in_path), "--out", str(tmp_path / "x.json"), "--num-points", "-1", "--max-points", "9"]) == 1
    assert "non-negative" in capsys.readouterr().err
