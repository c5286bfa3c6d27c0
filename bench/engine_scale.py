"""Scale: one embedded campaign of 10,000 points with 200 concurrent jobs of a trivial objective.

Runs ``hpogrid submit_idds`` (the real CLI, fork server, warm steering, SQLite store) and samples
while it runs: the driver's resident memory (it must stay flat: the driver keeps no per-result
state), jobs running at once, system memory available. At the end it reads the store: every point
must have a result, and the steering's seconds per round (with 10,000 points of history at the end).

    .venv/bin/python bench/engine_scale.py [--points 10000] [--concurrent 200] [--sleep 1.0]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent

OBJECTIVE = """
import os, time

def trivial(config, reporter):
    time.sleep(float(os.environ.get("SCALE_SLEEP", "1.0")))
    reporter(loss=config["x"])
"""


def hpogrid(args: list[str], env: dict[str, str]) -> None:
    proc = subprocess.run([str(BIN / "hpogrid"), *args], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"hpogrid {' '.join(args)} failed:\n{proc.stderr}")


def rss_kb(pid: int, field: str = "VmRSS") -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def mem_available_mb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=10_000)
    ap.add_argument("--concurrent", type=int, default=200)
    ap.add_argument("--sleep", type=float, default=1.0, help="seconds each evaluation sleeps")
    ap.add_argument("--algorithm", default="random")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="hpogrid-scale-") as tmp:
        tmp = Path(tmp)
        env = {**os.environ, "HPOGRID_HOME": str(tmp / "home"), "SCALE_SLEEP": str(args.sleep)}
        (tmp / "trivial.py").write_text(OBJECTIVE)
        hpogrid(["model_config", "create", "m", "--script", "trivial.py", "--model", "trivial"], env)
        hpogrid(["search_space", "create", "s", json.dumps({"x": {"method": "uniform", "dimension": {"low": 0, "high": 1}}})], env)
        hpogrid(["hpo_config", "create", "h", "--algorithm", args.algorithm, "--metric", "loss", "--mode", "min",
                 "--num_trials", str(args.points), "--max_concurrent", str(args.concurrent), "--seed", "1"], env)
        hpogrid(["grid_config", "create", "g"], env)
        hpogrid(["project", "create", "trivial", "--scripts_path", str(tmp / "trivial.py"), "-m", "m", "-s", "s",
                 "-o", "h", "-g", "g"], env)
        store = tmp / "home" / "projects" / "trivial" / "campaigns" / "1" / "store.db"
        print(f"engine scale: {args.points} points, {args.concurrent} concurrent jobs, objective sleeps "
              f"{args.sleep:g} s, {os.cpu_count()} cores", flush=True)
        t0 = time.perf_counter()
        driver = subprocess.Popen([str(BIN / "hpogrid"), "submit_idds", "trivial", "--progress", "none"], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        samples = []  # (elapsed, done, running, driver rss MB, mem available MB)
        peak_hwm = 0
        max_running = 0
        min_avail = mem_available_mb()
        while driver.poll() is None:
            time.sleep(1.0)
            rss = rss_kb(driver.pid)
            peak_hwm = max(peak_hwm, rss_kb(driver.pid, "VmHWM") or 0)
            done = running = 0
            if store.exists():
                try:
                    with sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5) as conn:
                        counts = dict(conn.execute("SELECT state, COUNT(*) FROM points GROUP BY state").fetchall())
                    done = counts.get("finished", 0) + counts.get("failed", 0)
                    running = counts.get("running", 0)
                except sqlite3.Error:
                    pass
            avail = mem_available_mb()
            min_avail = min(min_avail, avail)
            max_running = max(max_running, running)
            if rss is not None:
                samples.append((time.perf_counter() - t0, done, running, rss / 1024, avail))
        wall = time.perf_counter() - t0
        out, err = driver.communicate()
        if driver.returncode != 0:
            raise SystemExit(f"the campaign failed:\n{out}\n{err[-3000:]}")
        with sqlite3.connect(store) as conn:
            counts = dict(conn.execute("SELECT state, COUNT(*) FROM points GROUP BY state").fetchall())
            rounds = conn.execute("SELECT seconds, n_proposed FROM rounds WHERE status = 'finished' ORDER BY id").fetchall()
        secs = [r[0] for r in rounds if r[0] is not None]
        tenth = max(1, len(secs) // 10)
        print(out.strip())
        print()
        print(f"{'points':<34} {args.points}")
        print(f"{'finished / failed':<34} {counts.get('finished', 0)} / {counts.get('failed', 0)}")
        print(f"{'wall':<34} {wall:.1f} s ({args.points / wall:.1f} evaluations/s)")
        print(f"{'jobs running at once (max seen)':<34} {max_running} of {args.concurrent}")
        print(f"{'driver peak RSS (VmHWM)':<34} {peak_hwm / 1024:.1f} MB")
        print(f"{'system memory available (min)':<34} {min_avail:.0f} MB")
        print(f"{'rounds':<34} {len(rounds)} (mean {statistics.mean(r[1] for r in rounds):.1f} points per round)")
        print(f"{'steering s/round mean / median':<34} {statistics.mean(secs):.3f} / {statistics.median(secs):.3f}")
        print(f"{'steering s/round first / last 10%':<34} {statistics.mean(secs[:tenth]):.3f} / {statistics.mean(secs[-tenth:]):.3f}")
        print(f"{'steering s/round max':<34} {max(secs):.3f}")
        print()
        print("driver memory while it ran (flat = no per-result state):")
        print(f"  {'elapsed s':>9} {'done':>7} {'running':>8} {'driver RSS MB':>14} {'mem avail MB':>13}")
        marks = [int(len(samples) * f) for f in (0.02, 0.1, 0.25, 0.5, 0.75, 0.9)] + [len(samples) - 1]
        for i in sorted(set(m for m in marks if 0 <= m < len(samples))):
            e, d, r, m, a = samples[i]
            print(f"  {e:>9.0f} {d:>7} {r:>8} {m:>14.1f} {a:>13.0f}")
        ok = counts.get("finished", 0) + counts.get("failed", 0) == args.points
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
