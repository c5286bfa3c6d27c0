"""Search quality: best value after 50 and 100 evaluations, hpogrid's steering beside the bare
libraries, sequential (1 point per step) and batched (10 per step, none evaluated in between).

    .venv/bin/python bench/search_quality.py [--quick] [--seeds N] [--algorithms a,b] [--objectives o,p]

Objectives: Branin (2-D, min 0.397887), Hartmann6 (6-D, min -3.32237) -- reported as mean
regret over seeds -- and ``digits``: validation error of an RBF SVM (C, gamma) on
scikit-learn's digits data set. The steering is run as iDDS runs it: rebuilt from the whole
history at every step. "bare" rows use each library as its authors document it (a live
optimizer, ask/tell, no rebuild). ``ratio`` is the row's mean over the bare library's in the
same mode; ``vs seq TPE`` compares with sequential bare Optuna TPE (the batch target: <= 1.5).
Not a test: run it by hand.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import time
import warnings
from typing import Any, Callable

import numpy as np

from hpogrid.steering import SearchSpace, propose

# ---- objectives ----------------------------------------------------------------------------
BRANIN_SPACE = {"x": {"method": "uniform", "dimension": {"low": -5, "high": 10}},
                "y": {"method": "uniform", "dimension": {"low": 0, "high": 15}}}
HARTMANN_SPACE = {f"x{i}": {"method": "uniform", "dimension": {"low": 0, "high": 1}} for i in range(6)}
DIGITS_SPACE = {"C": {"method": "loguniform", "dimension": {"low": 1e-2, "high": 1e3}},
                "gamma": {"method": "loguniform", "dimension": {"low": 1e-5, "high": 1e-1}}}

_A = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]])
_P = 1e-4 * np.array([[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
                      [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]])
_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def branin(p: dict[str, float]) -> float:
    x, y = p["x"], p["y"]
    return (y - 5.1 / (4 * math.pi**2) * x**2 + 5 / math.pi * x - 6) ** 2 + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x) + 10


def hartmann6(p: dict[str, float]) -> float:
    x = np.array([p[f"x{i}"] for i in range(6)])
    return float(-np.sum(_ALPHA * np.exp(-np.sum(_A * (x - _P) ** 2, axis=1))))


_DIGITS: Any = None


def digits_error(p: dict[str, float]) -> float:
    """Validation error of an RBF SVM on a fixed split of scikit-learn's digits (1797 images)."""
    global _DIGITS
    from sklearn.datasets import load_digits
    from sklearn.svm import SVC

    if _DIGITS is None:
        X, y = load_digits(return_X_y=True)
        idx = np.random.default_rng(0).permutation(len(y))
        _DIGITS = (X[idx[:600]], y[idx[:600]], X[idx[600:1100]], y[idx[600:1100]])
    Xt, yt, Xv, yv = _DIGITS
    return float(1.0 - SVC(C=p["C"], gamma=p["gamma"]).fit(Xt, yt).score(Xv, yv))


OBJECTIVES: dict[str, tuple[dict, Callable[[dict], float], float | None]] = {
    "branin": (BRANIN_SPACE, branin, 0.397887),
    "hartmann6": (HARTMANN_SPACE, hartmann6, -3.32237),
    "digits": (DIGITS_SPACE, digits_error, None),
}


# ---- runners: each returns the list of values in evaluation order ------------------------------
def run_steering(algorithm: str, space: dict, f: Callable, budget: int, batch: int, seed: int) -> list[float]:
    sp = SearchSpace.parse(space)
    history: list = []
    while len(history) < budget:
        points = propose(sp, history, min(batch, budget - len(history)), algorithm=algorithm, seed=seed, max_points=budget)
        history += [(p, f(p)) for p in points]
    return [loss for _, loss in history]


def bare_optuna(space: dict, f: Callable, budget: int, batch: int, seed: int) -> list[float]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed))
    values: list[float] = []

    def ask(trial: Any) -> dict:
        return {k: trial.suggest_float(k, v["dimension"]["low"], v["dimension"]["high"], log=v["method"] == "loguniform")
                for k, v in space.items()}

    while len(values) < budget:
        trials = [study.ask() for _ in range(min(batch, budget - len(values)))]
        points = [ask(t) for t in trials]
        for t, p in zip(trials, points):
            values.append(f(p))
            study.tell(t, values[-1])
    return values


def bare_hyperopt(space: dict, f: Callable, budget: int, batch: int, seed: int) -> list[float]:
    from hyperopt import Trials, fmin, hp, tpe

    hspace = {k: (hp.loguniform(k, math.log(v["dimension"]["low"]), math.log(v["dimension"]["high"]))
                  if v["method"] == "loguniform" else hp.uniform(k, v["dimension"]["low"], v["dimension"]["high"]))
              for k, v in space.items()}
    trials = Trials()
    # fmin is sequential by design; batch = hyperopt's own max_queue_len (asks several before evaluating)
    fmin(f, hspace, algo=tpe.suggest, max_evals=budget, trials=trials, rstate=np.random.default_rng(seed),
         show_progressbar=False, max_queue_len=batch)
    return [t["result"]["loss"] for t in trials.trials]


def bare_nevergrad(space: dict, f: Callable, budget: int, batch: int, seed: int) -> list[float]:
    import nevergrad as ng

    sp = SearchSpace.parse(space)
    param = ng.p.Array(init=np.full(len(sp), 0.5), lower=0.0, upper=1.0)
    param.random_state = np.random.RandomState(seed)
    values: list[float] = []
    for method in ("NGOpt", "CMA"):  # NGOpt's MetaModel crashes with numpy >= 2.4; CMA is its base
        opt = ng.optimizers.registry[method](param, budget=budget, num_workers=batch)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                while len(values) < budget:
                    cands = [opt.ask() for _ in range(min(batch, budget - len(values)))]
                    for c in cands:
                        values.append(f(sp.from_unit(c.value)))
                        opt.tell(c, values[-1])
            return values
        except TypeError:
            values = []
    return values


def bare_skopt(space: dict, f: Callable, budget: int, batch: int, seed: int) -> list[float]:
    from skopt import Optimizer
    from skopt.space import Real

    dims = [Real(v["dimension"]["low"], v["dimension"]["high"], prior="log-uniform" if v["method"] == "loguniform" else "uniform")
            for v in space.values()]
    names = list(space)
    opt = Optimizer(dims, random_state=seed)  # skopt's defaults: GP, gp_hedge, acq_optimizer auto
    values: list[float] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        while len(values) < budget:
            xs = opt.ask(min(batch, budget - len(values))) if batch > 1 else [opt.ask()]
            ys = [f(dict(zip(names, x))) for x in xs]
            opt.tell(xs, ys)
            values += ys
    return values


def bare_random(space: dict, f: Callable, budget: int, batch: int, seed: int) -> list[float]:
    sp = SearchSpace.parse(space)
    rng = np.random.default_rng(seed)
    return [f(sp.from_unit(u)) for u in rng.random((budget, len(sp)))]


BARE: dict[str, tuple[str, Callable]] = {
    "random": ("numpy uniform", bare_random),
    "tune": ("numpy uniform", bare_random),
    "hyperopt": ("hyperopt fmin TPE", bare_hyperopt),
    "optuna": ("optuna TPESampler", bare_optuna),
    "bayesian": ("skopt Optimizer GP", bare_skopt),
    "skopt": ("skopt Optimizer GP", bare_skopt),
    "nevergrad": ("nevergrad NGOpt (CMA when NGOpt crashes)", bare_nevergrad),
    "bohb": ("(no bare run: hpbandster needs a Pyro nameserver)", None),  # type: ignore[dict-item]
}


def _job(args: tuple) -> tuple:
    kind, algorithm, objective, batch, seed, budget = args
    space, f, _ = OBJECTIVES[objective]
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if kind == "steering":
                values = run_steering(algorithm, space, f, budget, batch, seed)
            else:
                values = BARE[algorithm][1](space, f, budget, batch, seed)
    except Exception as exc:  # a crashing library is a result of the benchmark, not its end
        print(f"{kind} {algorithm} {objective} batch={batch} seed={seed}: {type(exc).__name__}: {exc}", flush=True)
        return (kind, algorithm, objective, batch, seed, math.nan, math.nan, time.perf_counter() - t0)
    best = np.minimum.accumulate(np.array(values[:budget], dtype=float))
    return (kind, algorithm, objective, batch, seed, float(best[min(49, budget - 1)]), float(best[-1]), time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 seeds, Branin and Hartmann6 only")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--budget", type=int, default=100)
    parser.add_argument("--algorithms", default="random,tune,hyperopt,optuna,bayesian,skopt,nevergrad,bohb")
    parser.add_argument("--objectives", default=None, help="default: branin,hartmann6,digits (--quick: no digits)")
    parser.add_argument("--modes", default="seq,batch", help="seq (1 point per step), batch (10 per step)")
    parser.add_argument("--no-bare", action="store_true", help="skip the bare-library rows (except Optuna TPE)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    seeds = 3 if args.quick else args.seeds
    objectives = (args.objectives or ("branin,hartmann6" if args.quick else "branin,hartmann6,digits")).split(",")
    batches = [{"seq": 1, "batch": 10}[m] for m in args.modes.split(",")]
    algorithms = args.algorithms.split(",")
    jobs = []
    for objective in objectives:
        for batch in batches:
            for seed in range(seeds):
                jobs.append(("bare", "optuna", objective, batch, seed, args.budget))
                for algorithm in algorithms:
                    jobs.append(("steering", algorithm, objective, batch, seed, args.budget))
                    if not args.no_bare and algorithm not in ("optuna",) and BARE.get(algorithm, ("", None))[1] is not None:
                        if algorithm in ("tune", "bayesian"):
                            continue  # same bare rows as random / skopt
                        jobs.append(("bare", algorithm, objective, batch, seed, args.budget))
    t0 = time.perf_counter()
    with mp.get_context("spawn").Pool(args.workers) as pool:
        results = pool.map(_job, jobs, chunksize=1)
    table: dict[tuple, list] = {}
    for kind, algorithm, objective, batch, seed, b50, b100, secs in results:
        table.setdefault((kind, algorithm, objective, batch), []).append((b50, b100, secs))
    print(f"# search quality: {seeds} seeds, budget {args.budget}, wall {time.perf_counter() - t0:.0f} s")
    for objective in objectives:
        opt = OBJECTIVES[objective][2]
        label = "mean regret" if opt is not None else "mean best validation error"
        print(f"\n## {objective} ({label}; ratio = steering / bare library, same mode)")
        print(f"{'algorithm':<13}{'mode':<8}{'@50':>10}{'@100':>10}{'bare @100':>11}{'ratio':>7}{'vs seq TPE':>11}{'s/run':>7}  bare library")
        ref = table.get(("bare", "optuna", objective, 1))
        ref100 = np.mean([r[1] for r in ref]) - (opt or 0.0) if ref else float("nan")
        for batch in batches:
            mode = "seq" if batch == 1 else "batch10"
            for algorithm in ["optuna-bare"] + algorithms:
                kind, name = ("bare", "optuna") if algorithm == "optuna-bare" else ("steering", algorithm)
                rows = table.get((kind, name, objective, batch))
                if not rows:
                    continue
                r50 = np.mean([r[0] for r in rows]) - (opt or 0.0)
                r100 = np.mean([r[1] for r in rows]) - (opt or 0.0)
                bare_name = {"tune": "random", "bayesian": "skopt"}.get(name, name)
                bare = table.get(("bare", bare_name, objective, batch)) if kind == "steering" else None
                b100 = np.mean([r[1] for r in bare]) - (opt or 0.0) if bare else float("nan")
                ratio = r100 / b100 if bare and b100 > 0 else float("nan")
                secs = np.mean([r[2] for r in rows])
                lib = BARE.get(bare_name, ("",))[0] if kind == "steering" else "(the reference)"
                print(f"{algorithm:<13}{mode:<8}{r50:>10.4f}{r100:>10.4f}{b100:>11.4f}{ratio:>7.2f}{r100 / ref100 if ref100 > 0 else float('nan'):>11.2f}{secs:>7.1f}  {lib}")


if __name__ == "__main__":
    main()
