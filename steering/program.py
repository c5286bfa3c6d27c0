"""``hpogrid-steering``: one steering round, as iDDS runs it (``steeringExec``).

    hpogrid-steering --in %IN --out %OUT --num-points %NUM_POINTS --max-points %MAX_POINTS
                     [--config FILE] [--seed N]

Reads every point so far from ``%IN``, rebuilds the algorithm from them and writes
``min(NUM_POINTS, MAX_POINTS - len(points), 10000)`` new points to ``%OUT`` (fewer only when a finite
space is exhausted; ``[]`` when the budget is spent), atomically. In the segmented form each
model_id is its own search with its own budget: NUM_POINTS and MAX_POINTS apply per segment,
and ``%OUT`` is ``[[model_id, point], ...]``.

A bad input is one line on stderr and exit status 1, with no ``%OUT``; bugs keep their traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from hpogrid.common import atomic_write_json

from .algorithms import create_algorithm
from .errors import InputError, SteeringError
from .inputs import StepConfig, load_config, read_input, segment_space

__all__ = ["main", "run_step", "fair_shares", "share_budget", "write_json_atomic", "MAX_POINTS_PER_ROUND"]

PROG = "hpogrid-steering"
#: The most points one round proposes (per segment), whatever %NUM_POINTS asks: a round's time,
#: memory and %OUT stay bounded; later rounds propose the rest (docs/CONTRACTS.md).
MAX_POINTS_PER_ROUND = 10_000


def _note(message: str) -> None:
    """A line for the round's log (the steering's stderr): what the step did to stay bounded."""
    print(f"{PROG}: note: {message}", file=sys.stderr, flush=True)


def _segment_seed(seed: int | None, model_id: int) -> int:
    """Independent, reproducible seeds per segment (no ``hash()``: it varies across processes)."""
    return int(np.random.SeedSequence([0 if seed is None else seed, model_id]).generate_state(1)[0])


OUT_MODE = 0o644  # %OUT is read by the iDDS agent, which may run as another user than the steering


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Write %OUT so that a reader sees the old file or the whole new one, never a part, durably;
    the file is 0644 whatever the umask (``hpogrid.common.atomic_write_json``)."""
    atomic_write_json(path, data, indent=None, mode=OUT_MODE, durable=True)


def fair_shares(total: int, k: int) -> list[int]:
    """``total`` split into ``k`` parts that differ by at most one, the larger ones first."""
    return [total // k + (1 if i < total % k else 0) for i in range(k)]


def share_budget(counts: Sequence[int], num_points: int, max_points: int) -> list[int]:
    """How many new points each segment gets, given the points each already has (``counts``).

    ``max_points`` and ``num_points`` are totals over all segments. Each segment's own budget is
    its fair share of ``max_points`` (``max_points // k``, one more for the first
    ``max_points % k`` segments in the given order); this round hands out
    ``min(num_points, max_points - sum(counts))`` points one at a time, each to the segment with
    the fewest points that still has budget (the earlier one on a tie). Deterministic.

    >>> share_budget([0, 0], 6, 6)
    [3, 3]
    >>> share_budget([2, 1, 0], 5, 9)
    [1, 2, 2]
    """
    k = len(counts)
    if k == 0:
        return []
    budgets = fair_shares(max_points, k)
    left = [max(0, b - c) for b, c in zip(budgets, counts)]
    have = list(counts)
    give = [0] * k
    for _ in range(max(0, min(num_points, max_points - sum(counts), sum(left)))):
        i = min((i for i in range(k) if left[i] > 0), key=lambda i: (have[i], i))
        give[i] += 1
        have[i] += 1
        left[i] -= 1
    return give


def run_step(
    in_path: str | Path,
    out_path: str | Path,
    num_points: int,
    max_points: int,
    config_path: str | Path | None = None,
    seed: int | None = None,
) -> list[Any]:
    """Exactly what one ``hpogrid-steering`` run does; returns what it wrote to ``out_path``.

    ``seed`` overrides the config's. Raises :class:`SteeringError` subclasses for bad input,
    before anything is written.
    """
    for name, value in (("num-points", num_points), ("max-points", max_points)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InputError(f"--{name} must be a non-negative integer, got {value!r}")
    if num_points > MAX_POINTS_PER_ROUND:
        _note(f"--num-points {num_points} capped to {MAX_POINTS_PER_ROUND} per round "
              f"(the steering's limit; later rounds propose the rest)")
        num_points = MAX_POINTS_PER_ROUND
    config = load_config(config_path) if config_path is not None else StepConfig()
    if seed is not None:
        config.seed = seed
    steering_input = read_input(in_path)
    out: list[Any] = []
    segments = steering_input.segments
    if steering_input.segmented:
        wanted = share_budget([len(s.records) for s in segments], num_points, max_points)
        limits = fair_shares(max_points, len(segments))  # each search's own budget (nevergrad plans with it)
    else:
        wanted, limits = [max(0, min(num_points, max_points - len(segments[0].records)))], [max_points]
    for segment, n, limit in zip(segments, wanted, limits):
        space = segment_space(segment, config)
        seg_seed = config.seed if segment.model_id is None else _segment_seed(config.seed, segment.model_id)
        algorithm = create_algorithm(config.algorithm, space, seg_seed, config.algorithm_param)
        points = algorithm.propose(segment.records, n, max_points=limit)
        for note in algorithm.notes:
            _note(note)
        out += points if segment.model_id is None else [[segment.model_id, p] for p in points]
    write_json_atomic(out_path, out)
    return out


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="One steering round for iDDS: read every point so far (%IN), write new points (%OUT).",
        epilog=(
            "iDDS steeringExec: hpogrid-steering --in %IN --out %OUT --num-points %NUM_POINTS "
            "--max-points %MAX_POINTS --config project.json. Values in %IN are losses (minimised; "
            "null = pending; 1e5 = failed). Without --config the search space is %IN's opt_space "
            "and the algorithm is random."
        ),
    )
    parser.add_argument("--in", dest="in_path", required=True, metavar="FILE", help="iDDS input: points so far and opt_space")
    parser.add_argument("--out", dest="out_path", required=True, metavar="FILE", help="where to write the new points (JSON list)")
    parser.add_argument("--num-points", type=int, required=True, metavar="N",
                        help=f"points wanted this round, over all segments (at most {MAX_POINTS_PER_ROUND} are proposed)")
    parser.add_argument("--max-points", type=int, required=True, metavar="N", help="total budget of points (over all segments)")
    parser.add_argument("--config", metavar="FILE", help="project.json, or {algorithm, algorithm_param, metric, mode, seed, search_space}")
    parser.add_argument("--seed", type=int, metavar="N", help="seed (overrides the config's); same seed + same %%IN = same points")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry; returns the exit status (never calls ``sys.exit`` itself)."""
    args = _parser().parse_args(argv)  # usage errors: argparse exits with status 2
    try:
        run_step(args.in_path, args.out_path, args.num_points, args.max_points, args.config, args.seed)
    except SteeringError as exc:
        message = " ".join(str(exc).split())
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
