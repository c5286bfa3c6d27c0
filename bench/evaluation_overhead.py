"""What one evaluation costs: ``hpogrid-evaluate`` of the simple objective (Example 1) against an
empty Python process and against a bare Ray Tune ``Tuner`` running the same one trial, all measured
in the same run on this machine; plus an evaluation in a child forked after ``preload()`` (the
embedded engine's fork server).

    .venv/bin/python bench/evaluation_overhead.py [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

TUNER = """
import ray
from ray import tune

def simple_objective(config):
    tune.report({"loss": (config["height"] - 14) ** 2 - abs(config["width"] - 3)})

ray.init(address="local", include_dashboard=False)  # a fresh instance, as Tuner's auto-init does
tuner = tune.Tuner(
    simple_objective,
    param_space={"height": 10.0, "width": 5.0},
    tune_config=tune.TuneConfig(num_samples=1, metric="loss", mode="min"),
    run_config=tune.RunConfig(storage_path=%(storage)r, verbose=0),
)
print(tuner.fit().get_best_result().metrics["loss"])
ray.shutdown()
"""

FORKED = """
import os, sys, time
from hpogrid.evaluator import program
program.preload()
times = []
for _ in range(int(sys.argv[2])):
    t = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        os.chdir(sys.argv[3])
        os._exit(program.main(["--project", sys.argv[1]]))
    os.waitpid(pid, 0)
    times.append(time.perf_counter() - t)
print(" ".join(map(str, times)))
"""


def _project(root: Path) -> Path:
    scripts = root / "project" / "scripts"
    scripts.mkdir(parents=True)
    (scripts / "simple_objective.py").write_text((REPO / "examples" / "scripts" / "simple_objective.py").read_text())
    (root / "project" / "project.json").write_text(json.dumps({
        "project_name": "simple_objective",
        "hpo_config": {"metric": "loss", "mode": "min", "stop": {"training_iteration": 1}},
        "search_space": {"height": {"method": "uniform", "dimension": {"low": -100, "high": 100}},
                         "width": {"method": "uniform", "dimension": {"low": 0, "high": 20}}},
        "model_config": {"script": "simple_objective.py", "model": "simple_objective", "param": {}},
        "scripts": "scripts",
    }))
    job = root / "job"
    job.mkdir()
    (job / "input.json").write_text(json.dumps({"height": 10.0, "width": 5.0}))
    return root / "project"


def _wall(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    t = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs of each (the median is shown)")
    args = parser.parse_args()
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)
    env["RAY_ENABLE_UV_RUN_RUNTIME_ENV"] = "0"
    with tempfile.TemporaryDirectory(prefix="hpogrid-bench-") as tmp:
        root = Path(tmp)
        project = _project(root)
        job = root / "job"
        tuner_script = root / "tuner.py"
        tuner_script.write_text(TUNER % {"storage": str(root / "ray_results")})
        rows: list[tuple[str, list[float]]] = []
        runs = {
            "python -c 'pass'": [sys.executable, "-c", "pass"],
            "python -c 'import ray.tune'": [sys.executable, "-c", "import ray.tune"],
            "hpogrid-evaluate (simple objective)": [str(BIN / "hpogrid-evaluate"), "--project", str(project)],
            "Ray Tune Tuner, 1 trial": [sys.executable, str(tuner_script)],
        }
        for label, argv in runs.items():
            rows.append((label, [_wall(argv, job, env) for _ in range(args.repeat)]))
            out = json.loads((job / "output.json").read_text()) if "evaluate" in label else None
            if out is not None and out["status"] != 0:
                raise SystemExit(f"evaluation failed: {out}")
        proc = subprocess.run([sys.executable, "-c", FORKED, str(project), str(args.repeat), str(job)],
                              env=env, capture_output=True, text=True, check=True)
        rows.insert(3, ("forked child after preload()", [float(x) for x in proc.stdout.split()]))
    base = statistics.median(rows[2][1])
    width = max(len(label) for label, _ in rows)
    print(f"evaluation overhead, median of {args.repeat} runs each ({os.cpu_count()} CPUs)")
    print(f"{'run':<{width}}  {'wall s':>8}  {'min s':>7}  {'x hpogrid-evaluate':>18}")
    for label, times in rows:
        med = statistics.median(times)
        print(f"{label:<{width}}  {med:8.3f}  {min(times):7.3f}  {med / base:18.2f}")


if __name__ == "__main__":
    main()
