"""Two contracts iDDS relies on: ``%OUT`` is readable by the agent's user (0644, whatever the
umask), and in the segmented form ``--num-points`` / ``--max-points`` are totals over all segments
(phpo sets max_points = maxPoints x segments; iDDS's %NUM_POINTS is the round's total)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from hpogrid.steering.program import run_step, share_budget
from tests.conftest import installed

SPACE = {"h": {"method": "uniformint", "dimension": {"low": 1, "high": 1000}}}


def _segmented(points: list[Any], models: int = 2) -> dict[str, Any]:
    return {"points": points, "opt_space": [{"model_id": m, "search_space": SPACE} for m in range(models)]}


def _steer(tmp_path: Path, data: Any, num: int, max_: int, umask: int = 0o022) -> list[Any]:
    in_path, out_path = tmp_path / "idds_input.json", tmp_path / "output.json"
    in_path.write_text(json.dumps(data))
    proc = subprocess.run([installed("hpogrid-steering"), "--in", str(in_path), "--out", str(out_path),
                           "--num-points", str(num), "--max-points", str(max_), "--seed", "3"],
                          capture_output=True, text=True, timeout=120, preexec_fn=lambda: os.umask(umask))
    assert proc.returncode == 0, proc.stderr
    return json.loads(out_path.read_text())


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_out_is_readable_by_others_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    _steer(tmp_path, {"points": [], "opt_space": SPACE}, 2, 4, umask=umask)
    assert stat.S_IMODE((tmp_path / "output.json").stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idds_input.json", "output.json"]  # no temporary left


def test_run_step_writes_0644_too(tmp_path: Path) -> None:
    (tmp_path / "in.json").write_text(json.dumps({"points": [], "opt_space": SPACE}))
    old = os.umask(0o077)
    try:
        run_step(tmp_path / "in.json", tmp_path / "out.json", 1, 1)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out.json").stat().st_mode) == 0o644


def test_two_segments_get_the_total_budget_not_twice_it(tmp_path: Path) -> None:
    """The issue's case: 2 segments, --max-points 6 --num-points 6 gave 12 points."""
    out = _steer(tmp_path, _segmented([]), 6, 6)
    assert len(out) == 6
    assert [m for m, _ in out] == [0, 0, 0, 1, 1, 1]


def test_rounds_of_a_segmented_campaign_stop_at_the_total(tmp_path: Path) -> None:
    """Rounds of 2 (iDDS's %NUM_POINTS) over 2 segments with a total of 6: three rounds of 2, then []."""
    points: list[Any] = []
    rounds = []
    for _ in range(4):
        out = _steer(tmp_path, _segmented(points), 2, 6)
        rounds.append([m for m, _ in out])
        points += [[pair, 1.0] for pair in out]
    assert rounds == [[0, 1], [0, 1], [0, 1], []]
    assert len({p[0][1]["h"] for p in points if p[0][0] == 0}) == 3  # each segment: 3 distinct points


def test_the_same_history_gives_the_same_points(tmp_path: Path) -> None:
    history = _segmented([[[0, {"h": 5}], 0.3], [[1, {"h": 9}], None]])
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir(), second.mkdir()
    assert _steer(first, history, 3, 8) == _steer(second, history, 3, 8)


@pytest.mark.parametrize(("counts", "num", "max_", "expected"), [
    ([0, 0], 6, 6, [3, 3]),          # the case
    ([0, 0], 2, 6, [1, 1]),          # a round of 2
    ([3, 3], 2, 6, [0, 0]),          # budget spent
    ([0, 0, 0], 4, 7, [2, 1, 1]),    # 7 = 3 + 2 + 2; ties go to the earlier segment
    ([3, 0, 0], 10, 7, [0, 2, 2]),   # a segment at its share gets no more
    ([2, 1, 0], 5, 9, [1, 2, 2]),    # fewest points first
    ([5, 0], 4, 6, [0, 1]),          # over its share (an older per-segment run): the total still caps
    ([], 3, 6, []),
])
def test_share_budget(counts: list[int], num: int, max_: int, expected: list[int]) -> None:
    assert share_budget(counts, num, max_) == expected
    assert sum(expected) <= max(0, min(num, max_ - sum(counts)))
