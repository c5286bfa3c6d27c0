"""A realistic training script at fork speed: hpogrid against plain Optuna and Ray Tune, in one run.

The workload (``examples/scripts/mlp_breast_cancer.py``): a scikit-learn MLP on the breast-cancer
data, 15 epochs of ``partial_fit`` with one ``ray.tune.report`` each, a 4-dimension space, 40 points,
2 at a time. Contenders, each its own process timed from start to exit (interpreter, imports and
Ray start-up included, as a user waits for them):

- plain Optuna, ``study.optimize(n_jobs=2)`` in one process (TPE; the same training loop, no Ray);
- Ray Tune's ``Tuner`` (default search: random; ``max_concurrent_trials=2``);
- ``hpogrid local_run`` (Ray Tune, fifo; algorithm optuna);
- ``hpogrid submit_idds`` embedded (algorithm optuna): every job its own forked process and folder,
  the training module preloaded once per campaign by the fork server;
- the same with a GPU-free PyTorch MLP, when torch is importable (the row is skipped otherwise).

For the embedded campaign, the per-job breakdown comes from each job's meta.json (``timings``, written
by the evaluator) and the store (when the driver started the job and recorded its end):
fork = the runner's request to the evaluator's start; import = reading the job's inputs + loading the
training module; setup = Ray's storage context + building the trainable; train = the training loop;
write+exit = the rest of the evaluator (teardown, result files) + process exit + the driver's record.
Overhead = all but ``train``. The fork server's own start (imports, preload: once per campaign,
overlapping the first steering round) is shown apart: how long the first jobs waited for it.

    .venv/bin/python bench/realistic.py [--points 40] [--concurrent 2] [--out bench/results/realistic.txt]
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
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SCRIPTS = REPO / "examples" / "scripts"
SCRIPT = SCRIPTS / "mlp_breast_cancer.py"
SPACE = {"hidden": {"method": "uniformint", "dimension": {"low": 8, "high": 128}},
         "learning_rate_init": {"method": "loguniform", "dimension": {"low": 1e-4, "high": 1e-1}},
         "alpha": {"method": "loguniform", "dimension": {"low": 1e-6, "high": 1e-2}},
         "batch_size": {"method": "categorical", "dimension": {"categories": [16, 32, 64, 128]}}}
EPOCHS = 15

# Plain Optuna as its users write it: the same model and data, no Ray.
OPTUNA = """
import sys, warnings
import numpy as np, optuna
sys.path.insert(0, %(scripts)r)
from sklearn.datasets import load_breast_cancer
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

def objective(trial):
    x, y = load_breast_cancer(return_X_y=True)
    xt, xv, yt, yv = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    scaler = StandardScaler().fit(xt)
    xt, xv = scaler.transform(xt), scaler.transform(xv)
    model = MLPClassifier(hidden_layer_sizes=(trial.suggest_int("hidden", 8, 128),),
                          learning_rate_init=trial.suggest_float("learning_rate_init", 1e-4, 1e-1, log=True),
                          alpha=trial.suggest_float("alpha", 1e-6, 1e-2, log=True),
                          batch_size=trial.suggest_categorical("batch_size", [16, 32, 64, 128]), random_state=0)
    classes = np.unique(yt)
    for epoch in range(%(epochs)d):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.partial_fit(xt, yt, classes=classes)
        accuracy = float(model.score(xv, yv))
    return accuracy

optuna.logging.set_verbosity(optuna.logging.WARNING)
study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=1))
study.optimize(objective, n_trials=%(points)d, n_jobs=%(concurrent)d)
print("BEST", study.best_value)
"""

TUNER = """
import sys, ray
from ray import tune
sys.path.insert(0, %(scripts)r)
from mlp_breast_cancer import train_mlp
ray.init(address="local", num_cpus=%(concurrent)d, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
tuner = tune.Tuner(
    train_mlp,
    param_space={"hidden": tune.randint(8, 129), "learning_rate_init": tune.loguniform(1e-4, 1e-1),
                 "alpha": tune.loguniform(1e-6, 1e-2), "batch_size": tune.choice([16, 32, 64, 128])},
    tune_config=tune.TuneConfig(num_samples=%(points)d, metric="accuracy", mode="max",
                                max_concurrent_trials=%(concurrent)d),
    run_config=tune.RunConfig(storage_path=%(storage)r, verbose=0, stop={"training_iteration": %(epochs)d}),
)
results = tuner.fit()
print("BEST", results.get_best_result().metrics["accuracy"])
ray.shutdown()
"""

# A GPU-free PyTorch model on the same data (only when torch is importable).
TORCH_SCRIPT = """
import torch
from ray import tune
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

torch.set_num_threads(1)


def train_torch(config):
    x, y = load_breast_cancer(return_X_y=True)
    xt, xv, yt, yv = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    scaler = StandardScaler().fit(xt)
    xt, xv = (torch.tensor(scaler.transform(a), dtype=torch.float32) for a in (xt, xv))
    yt, yv = torch.tensor(yt), torch.tensor(yv)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(30, int(config["hidden"])), torch.nn.ReLU(),
                                torch.nn.Linear(int(config["hidden"]), 2))
    opt = torch.optim.Adam(model.parameters(), lr=float(config["learning_rate_init"]), weight_decay=float(config["alpha"]))
    bs = int(config["batch_size"])
    for epoch in range(15):
        for i in range(0, len(xt), bs):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(xt[i:i + bs]), yt[i:i + bs]).backward()
            opt.step()
        with torch.no_grad():
            accuracy = float((model(xv).argmax(1) == yv).float().mean())
        tune.report({"accuracy": accuracy, "epoch": epoch + 1})
"""


@dataclass
class Row:
    runner: str
    wall: float | None
    best: float | None
    note: str = ""


@dataclass
class JobTimes:
    fork: float
    imports: float
    setup: float
    train: float
    write: float
    waited: float = 0.0

    @property
    def overhead(self) -> float:
        return self.fork + self.imports + self.setup + self.write


def timed(argv: list[str], env: dict[str, str], what: str) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{what} failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return wall, proc.stdout


def best_line(stdout: str) -> float:
    return float([line for line in stdout.splitlines() if line.startswith("BEST")][-1].split()[1])


def hpogrid(args: list[str], env: dict[str, str]) -> str:
    return timed([str(BIN / "hpogrid"), *args], env, f"hpogrid {args[0]}")[1]


def make_project(env: dict[str, str], name: str, script: Path, model: str, points: int, concurrent: int) -> None:
    hpogrid(["model_config", "recreate", f"{name}_m", "--script", script.name, "--model", model], env)
    hpogrid(["search_space", "recreate", f"{name}_s", json.dumps(SPACE)], env)
    hpogrid(["hpo_config", "recreate", f"{name}_h", "--algorithm", "optuna", "--metric", "accuracy", "--mode", "max",
             "--scheduler", "fifo", "--num_trials", str(points), "--max_concurrent", str(concurrent), "--seed", "1",
             "--stop", json.dumps({"training_iteration": EPOCHS}), "--log_dir", str(Path(env["HPOGRID_HOME"]) / "log")],
            env)
    hpogrid(["grid_config", "recreate", f"{name}_g"], env)
    hpogrid(["project", "recreate", name, "--scripts_path", str(script), "-m", f"{name}_m", "-s", f"{name}_s",
             "-o", f"{name}_h", "-g", f"{name}_g"], env)


def campaign_results(home: Path, name: str) -> tuple[float | None, list[JobTimes], int]:
    """Best metric, per-job timings and the number of jobs that got the preloaded module."""
    folder = sorted((home / "projects" / name / "campaigns").iterdir(), key=lambda p: int(p.name))[-1]
    with sqlite3.connect(folder / "store.db") as conn:
        rows = conn.execute("SELECT metric, started, ended, job_dir, state FROM points").fetchall()
    times, preloaded, best = [], 0, None
    for metric, started, ended, job_dir, state in rows:
        if state != "finished":
            continue
        best = metric if best is None or metric > best else best
        meta_path = Path(job_dir) / "meta.json"
        if not meta_path.is_file():  # local_run: a Ray trial folder, no evaluator job
            continue
        meta = json.loads(meta_path.read_text())
        t = meta["timings"]
        preloaded += bool((meta.get("preload") or {}).get("preloaded"))
        inside = t["total_s"]  # the evaluator's own time, from its start to its files
        imports = t.get("prepare_s", 0.0) + t.get("load_s", 0.0)
        setup, train = t.get("setup_s", 0.0), t.get("train_s", 0.0)
        after = ended - (t["start_timestamp"] + inside)  # exit, reap, the driver's record
        fork = t.get("launch_s", 0.0)
        # before the runner's request: the first jobs wait for the fork server's start (once per campaign)
        waited = max(0.0, t["start_timestamp"] - fork - started)
        times.append(JobTimes(fork, imports, setup, train, max(0.0, inside - imports - setup - train) + after, waited))
    return best, times, preloaded


def run_hpogrid(home: Path, name: str, command: list[str]) -> tuple[float, float | None, list[JobTimes], int]:
    env = {**os.environ, "HPOGRID_HOME": str(home), "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    wall, out = timed([str(BIN / "hpogrid"), *command], env, " ".join(command[:2]))
    if not (home / "projects" / name / "campaigns").is_dir():
        raise SystemExit(f"{' '.join(command[:2])} left no campaign: {out[-500:]}")
    best, times, preloaded = campaign_results(home, name)
    return wall, best, times, preloaded


def attempt(name: str, note: str, run) -> Row:
    """One contender: (wall, best) from ``run()``; a failure is a row with its reason, not the end."""
    try:
        wall, best = run()
    except SystemExit as exc:
        reason = " ".join(str(exc).split())
        print(f"  {name}: FAILED {reason[:300]}", flush=True)
        return Row(name, None, None, f"failed: {reason[-80:]}")
    print(f"  {name}: {wall:.1f} s, best {best}", flush=True)
    return Row(name, wall, best, note)


def keep(box: list, result: tuple) -> tuple[float, float | None]:
    box.append(result)
    return result[0], result[1]


def optuna_or_tuner(code: str, env: dict[str, str], what: str) -> tuple[float, float]:
    wall, out = timed([sys.executable, "-c", code], env, what)
    return wall, best_line(out)


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a is not None and b else "-"


def median_ms(values: list[float]) -> str:
    return f"{1000 * statistics.median(values):.1f}" if values else "-"


def render(rows: list[Row], breakdowns: dict[str, tuple[list[JobTimes], int]], header: str) -> str:
    from rich.console import Console
    from rich.table import Table

    console = Console(record=True, width=120, file=open(os.devnull, "w"))
    console.print(header)
    optuna = rows[0].wall
    table = Table(title="wall time (start to exit), best validation accuracy")
    for col in ("runner", "wall s", "x Optuna", "best accuracy", "note"):
        table.add_column(col, justify="left" if col in ("runner", "note") else "right")
    for row in rows:
        table.add_row(row.runner, "-" if row.wall is None else f"{row.wall:.1f}",
                      "-" if row.wall is None or not optuna else f"{row.wall / optuna:.2f}",
                      "-" if row.best is None else f"{row.best:.4f}", row.note)
    console.print(table)
    for name, (times, preloaded) in breakdowns.items():
        waited = max((t.waited for t in times), default=0.0)
        table = Table(title=f"{name}: per-job medians in ms ({len(times)} jobs, {preloaded} got the preloaded "
                            f"module; the first jobs waited {waited:.1f} s for the fork server's start)")
        for col in ("fork", "import", "setup", "train", "write+exit", "overhead (all but train)", "overhead p90"):
            table.add_column(col, justify="right")
        overheads = sorted(t.overhead for t in times)
        p90 = overheads[int(0.9 * (len(overheads) - 1))] if overheads else None
        table.add_row(median_ms([t.fork for t in times]), median_ms([t.imports for t in times]),
                      median_ms([t.setup for t in times]), median_ms([t.train for t in times]),
                      median_ms([t.write for t in times]), median_ms(overheads),
                      "-" if p90 is None else f"{1000 * p90:.1f}")
        console.print(table)
    return console.export_text()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=40)
    ap.add_argument("--concurrent", type=int, default=2)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "realistic.txt")
    args = ap.parse_args()
    n, c = args.points, args.concurrent
    fill = {"scripts": str(SCRIPTS), "points": n, "concurrent": c, "epochs": EPOCHS}
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    rows: list[Row] = []
    breakdowns: dict[str, tuple[list[JobTimes], int]] = {}
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="hpogrid-bench-") as tmp:
        tmp = Path(tmp)
        print(f"realistic: {n} points of {SCRIPT.name} ({EPOCHS} epochs), {c} at a time, {os.cpu_count()} cores, "
              f"load {load:.1f}", flush=True)
        rows.append(attempt("plain Optuna study.optimize(n_jobs=2)", "one process, threads",
                            lambda: optuna_or_tuner(OPTUNA % fill, env, "plain Optuna")))
        rows.append(attempt("Ray Tune Tuner (random)", "reuse_actors default",
                            lambda: optuna_or_tuner(TUNER % {**fill, "storage": str(tmp / "ray")},
                                                    {**env, "PYTHONPATH": str(SCRIPTS)}, "Ray Tune Tuner")))
        home = tmp / "home"
        hpo_env = {**env, "HPOGRID_HOME": str(home)}
        make_project(hpo_env, "mlp", SCRIPT, "train_mlp", n, c)
        rows.append(attempt("hpogrid local_run (fifo, optuna)", "Ray Tune, reuse_actors=True",
                            lambda: run_hpogrid(home, "mlp", ["local_run", "mlp"])[:2]))
        embedded_run: list = []
        rows.append(attempt("hpogrid submit_idds embedded (optuna)", "a forked process per job",
                            lambda: keep(embedded_run, run_hpogrid(home, "mlp", ["submit_idds", "mlp", "--progress", "none"]))))
        if embedded_run:
            breakdowns["embedded, sklearn MLP"] = (embedded_run[0][2], embedded_run[0][3])
        try:
            import torch  # noqa: F401
        except ImportError:
            rows.append(Row("embedded, PyTorch MLP (CPU)", None, None, "skipped: torch is not installed"))
        else:
            torch_dir = tmp / "torch_scripts"
            torch_dir.mkdir()
            (torch_dir / "torch_mlp.py").write_text(TORCH_SCRIPT)
            make_project(hpo_env, "tmlp", torch_dir / "torch_mlp.py", "train_torch", n, c)
            torch_run: list = []
            rows.append(attempt("embedded, PyTorch MLP (CPU)", "a forked process per job",
                                lambda: keep(torch_run, run_hpogrid(home, "tmlp", ["submit_idds", "tmlp", "--progress", "none"]))))
            if torch_run:
                breakdowns["embedded, PyTorch MLP"] = (torch_run[0][2], torch_run[0][3])
    header = (f"bench/realistic.py: {n} points of {SCRIPT.name} ({EPOCHS} epochs, partial_fit, ray.tune.report "
              f"each epoch), {c} at a time; {os.cpu_count()} cores, load average {load:.1f} at start, "
              f"{os.getloadavg()[0]:.1f} at the end")
    text = render(rows, breakdowns, header)
    embedded, optuna, local = rows[3].wall, rows[0].wall, rows[2].wall
    times = breakdowns.get("embedded, sklearn MLP", ([], 0))[0]
    overhead = statistics.median(t.overhead for t in times) if times else float("nan")
    text += (f"\nembedded / Optuna = {ratio(embedded, optuna)} (target <= 2), embedded / local_run = "
             f"{ratio(embedded, local)} (target < 1), median job overhead {1000 * overhead:.1f} ms (target < 50)\n")
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
