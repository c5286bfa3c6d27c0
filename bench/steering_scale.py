"""Steering cost at scale: time and peak memory of one step (rebuild from H results + propose 10)
per algorithm at H = 1,000, 10,000 and 50,000, beside the bare library doing the same work.

    .venv/bin/python bench/steering_scale.py [--sizes 1000,10000,50000] [--algorithms a,b]
                                             [--cap 120] [--mem-gb 6] [--no-bare] [--out FILE]

Each cell runs in a fresh process (so the peak RSS is that step's, imports included) under a
time cap (``--cap`` seconds) and an address-space cap (``--mem-gb``): a cell over either is
shown as ``>cap`` / ``>mem`` instead of taking the machine down. The space and histories are
those of bench/steering_latency.py (6 uniform dimensions, random losses, 5 pending points).
The table goes to stdout and, with ``--out``, to a file (bench/results/steering_scale.txt).
Not a test: run it by hand. The bounds it checks are in docs/CONTRACTS.md ("Steering cost").
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def cell(name: str, h: int, bare: bool, unbounded: bool = False) -> dict:
    """One measurement, in this process: seconds of the step, peak RSS, the step's notes."""
    sys.path.insert(0, str(HERE))
    from steering_latency import BARE, SPACE, N, _history, _time  # noqa: E402  (the latency bench's setup)

    from hpogrid.steering import SearchSpace, create_algorithm

    space = SPACE
    X, y, P = _history(h)
    if name in ("grid", "tune"):  # 3 grid dimensions of 40 values: 64,000 combinations, each used once
        import numpy as np

        space = SearchSpace.parse({**SPACE.to_json(), **{f"g{j}": {"method": "categorical", "dimension": {
            "categories": list(range(40)), "grid_search": 1}} for j in range(3)}})
        codes = np.array([[(k // 40**j) % 40 for j in range(3)] for k in range(h + 5)])
        G = (codes + 0.5) / 40
        X, P = np.hstack([X, G[:h]]), np.hstack([P, G[h:]])
    notes: list[str] = []
    cpu = time.process_time()
    if bare:
        fn = BARE[name][1]
        seconds = _time(lambda: fn(X[:, :6], y, P[:, :6]))
    else:
        history = [(space.from_unit(x), float(v)) for x, v in zip(X, y)] + [(space.from_unit(p), None) for p in P]
        algo = create_algorithm(name, space, 0)
        if unbounded:
            algo.history_limit = algo.pending_limit = None
        cpu = time.process_time()
        seconds = _time(lambda: algo.propose(history, N, max_points=2 * h))
        notes = algo.notes
    cpu = time.process_time() - cpu
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "cpu": cpu, "peak_mb": peak_mb, "notes": notes}


def _run_cell(name: str, h: int, bare: bool, cap: float, mem_gb: float,
              unbounded: bool = False) -> tuple[str, str, list[str]]:
    limit = int(mem_gb * 2**30)

    def limits() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    argv = [sys.executable, __file__, "--cell", name, str(h)] + (["--bare"] if bare else []) \
        + (["--unbounded"] if unbounded else [])
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=cap, preexec_fn=limits)
    except subprocess.TimeoutExpired:
        return f">{cap:g}s", "-", []
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["?"])[-1]
        return (">mem" if "MemoryError" in tail or "Cannot allocate" in tail or done.returncode < 0 else "error"), "-", [tail[:120]]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    return f"{out['cpu']:.2f}", f"{out['peak_mb']:.0f}", out["notes"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000,50000")
    parser.add_argument("--algorithms", default="random,grid,tune,hyperopt,bayesian,skopt,optuna,nevergrad,bohb")
    parser.add_argument("--cap", type=float, default=120.0, help="seconds per cell")
    parser.add_argument("--mem-gb", type=float, default=6.0, help="address space per cell, GB")
    parser.add_argument("--no-bare", action="store_true", help="skip the bare-library columns")
    parser.add_argument("--out", default=None, help="also write the table to this file")
    parser.add_argument("--cell", nargs=2, metavar=("ALGORITHM", "H"), help=argparse.SUPPRESS)
    parser.add_argument("--bare", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--unbounded", action="store_true",
                        help="hpogrid's algorithms without their history/pending limits (the 'before' figures)")
    args = parser.parse_args(argv)
    if args.cell:
        print(json.dumps(cell(args.cell[0], int(args.cell[1]), args.bare, args.unbounded)))
        return 0
    sys.path.insert(0, str(HERE))
    from steering_latency import BARE  # noqa: E402

    sizes = [int(s) for s in args.sizes.split(",")]
    load = os.getloadavg()[0]
    lines = [f"# steering scale: one step (rebuild from H results + propose 10), 6-D space, 5 pending; "
             f"CPU seconds / peak RSS MB per cell, fresh process each, wall caps {args.cap:g} s and {args.mem_gb:g} GB"
             + (" -- WITHOUT hpogrid's history bounds (before)" if args.unbounded else ""),
             f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average {load:.0f} on {os.cpu_count()} cores "
             f"(CPU seconds, one BLAS thread: wall on an idle machine is about the same)",
             f"{'algorithm':<10}" + "".join(f"{'H=' + str(h):>10}{'MB':>6}{'bare':>9}{'MB':>6}" for h in sizes)]
    print("\n".join(lines), flush=True)
    notes_seen: dict[str, str] = {}
    for name in args.algorithms.split(","):
        bare_fn = BARE.get(name, ("-", None))[1]
        row, bare_dead, ours_dead = f"{name:<10}", False, False
        for h in sizes:
            ours_t, ours_m, notes = ("skip", "-", []) if ours_dead else _run_cell(name, h, False, args.cap, args.mem_gb,
                                                                                  args.unbounded)
            ours_dead = ours_dead or ours_t.startswith(">")
            if bare_fn is None or args.no_bare or bare_dead:
                bare_t, bare_m = "-", "-"
            else:
                bare_t, bare_m, _ = _run_cell(name, h, True, args.cap, args.mem_gb)
                bare_dead = bare_t.startswith(">") or bare_t == "error"
            row += f"{ours_t:>10}{ours_m:>6}{bare_t:>9}{bare_m:>6}"
            if notes:
                notes_seen[name] = notes[0]
        print(row, flush=True)
        lines.append(row)
    for name, note in notes_seen.items():
        lines.append(f"#   {note}")
        print(lines[-1])
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
