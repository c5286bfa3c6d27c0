"""Campaign throughput: 200 evaluations of Example 1's objective, 2 at a time, measured in one run:

- ``hpogrid submit_idds`` embedded (warm steering worker + fork server; each job its own process,
  own folder, input.json/output.json/meta.json/log, every transition committed to SQLite), with the
  default pace (a round when a slot frees) and with ``--min_unevaluated_points 2`` (rounds ahead);
- Ray Tune's ``Tuner`` with default settings, and with ``reuse_actors=True`` (same objective,
  random search, ``max_concurrent_trials=2``);
- a loop starting one fresh ``python -c`` per point (the floor of process-per-job without warmth).

Each contender runs as its own process, timed from start to exit (interpreter and Ray start-up
included, as a user waits for them).

    .venv/bin/python bench/engine_throughput.py [--points 200] [--concurrent 2] [--default-points N]

``--default-points`` runs Tuner-default on fewer trials and scales its time to ``--points`` (it costs
about 1.5 s per trial: 5 minutes for 200).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SCRIPT = REPO / "examples" / "scripts" / "simple_objective.py"
SPACE = {"height": {"method": "uniform", "dimension": {"low": -100, "high": 100}},
         "width": {"method": "uniform", "dimension": {"low": 0, "high": 20}}}

TUNER = """
import os, time, ray
from ray import tune
t0 = time.perf_counter()
def simple_objective(config):
    tune.report({"loss": (config["height"] - 14) ** 2 - abs(config["width"] - 3)})
ray.init(address="local", num_cpus=%(cpus)d, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
tuner = tune.Tuner(
    simple_objective,
    param_space={"height": tune.uniform(-100, 100), "width": tune.uniform(0, 20)},
    tune_config=tune.TuneConfig(num_samples=%(points)d, metric="loss", mode="min",
                                max_concurrent_trials=%(concurrent)d, reuse_actors=%(reuse)s),
    run_config=tune.RunConfig(storage_path=%(storage)r, verbose=0),
)
results = tuner.fit()
print(len(results), results.get_best_result().metrics["loss"])
ray.shutdown()
"""

PYTHON_C = ("import json,sys; p=json.loads(sys.argv[1]); "
            "json.dump({'status':0,'loss':(p['height']-14)**2-abs(p['width']-3),'message':''}, open(sys.argv[2],'w'))")


def hpogrid(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(BIN / "hpogrid"), *args], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"hpogrid {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def run_embedded(points: int, concurrent: int, home: Path, extra: tuple[str, ...] = ()) -> tuple[float, str]:
    env = {**os.environ, "HPOGRID_HOME": str(home)}
    hpogrid(["model_config", "recreate", "m", "--script", "simple_objective.py", "--model", "simple_objective"], env)
    hpogrid(["search_space", "recreate", "s", json.dumps(SPACE)], env)
    hpogrid(["hpo_config", "recreate", "h", "--algorithm", "random", "--metric", "loss", "--mode", "min",
             "--num_trials", str(points), "--max_concurrent", str(concurrent), "--seed", "1"], env)
    hpogrid(["grid_config", "recreate", "g"], env)
    hpogrid(["project", "recreate", "simple_objective", "--scripts_path", str(SCRIPT), "-m", "m", "-s", "s",
             "-o", "h", "-g", "g"], env)
    t0 = time.perf_counter()
    proc = hpogrid(["submit_idds", "simple_objective", "--progress", "none", *extra], env)
    wall = time.perf_counter() - t0
    first = proc.stdout.splitlines()[0]
    if f"{points} finished" not in first:
        raise SystemExit(f"embedded campaign did not finish every point: {first}")
    return wall, first


def run_tuner(points: int, concurrent: int, reuse: bool, storage: Path) -> float:
    code = TUNER % {"points": points, "concurrent": concurrent, "reuse": reuse, "storage": str(storage),
                    "cpus": max(2, concurrent)}
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    if proc.returncode != 0 or not last.startswith(str(points)):
        raise SystemExit(f"Tuner failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return wall


def run_python_c(points: int, folder: Path) -> float:
    import random

    rnd = random.Random(1)
    t0 = time.perf_counter()
    for i in range(points):
        p = {"height": rnd.uniform(-100, 100), "width": rnd.uniform(0, 20)}
        subprocess.run([sys.executable, "-c", PYTHON_C, json.dumps(p), str(folder / f"out{i}.json")], check=True)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=200)
    ap.add_argument("--concurrent", type=int, default=2)
    ap.add_argument("--default-points", type=int, default=None,
                    help="trials for Tuner-default (scaled to --points); default: --points")
    args = ap.parse_args()
    n, c = args.points, args.concurrent
    rows = []
    with tempfile.TemporaryDirectory(prefix="hpogrid-bench-") as tmp:
        tmp = Path(tmp)
        print(f"engine throughput: {n} evaluations of Example 1, {c} at a time, {os.cpu_count()} cores", flush=True)
        wall, line = run_embedded(n, c, tmp / "home")
        rows.append(("hpogrid submit_idds (embedded)", wall, n, ""))
        print(f"  embedded done: {wall:.1f} s ({line})", flush=True)
        ahead = ("--min_unevaluated_points", str(c))
        wall2, line = run_embedded(n, c, tmp / "home", ahead)
        rows.append((f"  same, {' '.join(ahead)}", wall2, n, "(rounds asked ahead)"))
        print(f"  embedded (rounds ahead) done: {wall2:.1f} s ({line})", flush=True)
        wall = run_tuner(n, c, True, tmp / "ray_reuse")
        rows.append(("Ray Tune Tuner, reuse_actors=True", wall, n, ""))
        print(f"  Tuner reuse_actors done: {wall:.1f} s", flush=True)
        dn = args.default_points or n
        wall = run_tuner(dn, c, False, tmp / "ray_default")
        note = "" if dn == n else f"(measured on {dn} trials: {wall:.1f} s, scaled)"
        rows.append(("Ray Tune Tuner, default", wall * n / dn, n, note))
        print(f"  Tuner default done: {wall:.1f} s for {dn}", flush=True)
        (tmp / "pyc").mkdir()
        wall = run_python_c(n, tmp / "pyc")
        rows.append(("fresh `python -c` per point (sequential)", wall, n, ""))
    embedded = rows[0][1]
    reuse = rows[2][1]
    print()
    print(f"{'contender':<44} {'wall s':>8} {'ms/eval':>8} {'x embedded':>11} {'x reuse_actors':>15}")
    for name, wall, count, note in rows:
        print(f"{name:<44} {wall:>8.1f} {1000 * wall / count:>8.1f} {wall / embedded:>11.2f} {wall / reuse:>15.2f} {note}")
    print()
    ratio = embedded / reuse
    verdict = "meets" if ratio <= 0.5 else "misses"
    print(f"embedded / Tuner(reuse_actors) = {ratio:.2f} ({verdict} the target <= 0.5), with one process per job")
    return 0


if __name__ == "__main__":
    sys.exit(main())
