"""Steering latency: seconds per step (rebuild from a history of H results + propose 10 points),
for every algorithm, beside the bare library doing the same work the way its docs show.

    .venv/bin/python bench/steering_latency.py [--quick] [--sizes 10,100,500,1000] [--algorithms a,b]

Space: 6 uniform dimensions in [0, 1] (Hartmann6's). Histories are random points with random
losses, plus 5 pending points. A cell is skipped ("-") once a smaller history took over
``--cap`` seconds. Targets: a TPE step (hyperopt, optuna) at H=1000 under 0.5 s; a GP step
(bayesian) at H=200 under 2 s. Not a test: run it by hand.
"""

from __future__ import annotations

import argparse
import math
import time
import warnings
from typing import Any, Callable

import numpy as np

from hpogrid.steering import ALGORITHMS, MissingDependencyError, SearchSpace, create_algorithm

D = 6
SPACE = SearchSpace.parse({f"x{i}": {"method": "uniform", "dimension": {"low": 0, "high": 1}} for i in range(D)})
N = 10


def _history(h: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((h, D)), rng.random(h), rng.random((5, D))


def bare_random(X: np.ndarray, y: np.ndarray, P: np.ndarray) -> Any:
    return np.random.default_rng(0).random((N, D))


def bare_hyperopt(X: np.ndarray, y: np.ndarray, P: np.ndarray) -> Any:
    from hyperopt import STATUS_OK, Domain, Trials, hp, tpe
    from hyperopt.base import JOB_STATE_DONE

    space = {f"x{i}": hp.uniform(f"x{i}", 0, 1) for i in range(D)}
    domain = Domain(lambda p: 0.0, space)
    trials = Trials()
    docs = trials.new_trial_docs(
        list(range(len(y))), [None] * len(y), [{"status": STATUS_OK, "loss": float(v)} for v in y],
        [{"tid": t, "cmd": None, "workdir": None, "idxs": {k: [t] for k in space}, "vals": {f"x{i}": [float(X[t, i])] for i in range(D)}}
         for t in range(len(y))],
    )
    for doc in docs:
        doc["state"] = JOB_STATE_DONE
    trials.insert_trial_docs(docs)
    trials.refresh()
    out = []
    for j in range(N):  # tpe.suggest gives one point per call
        (doc,) = tpe.suggest([len(y) + j], domain, trials, j, verbose=False)
        out.append(doc)
    return out


def bare_optuna(X: np.ndarray, y: np.ndarray, P: np.ndarray) -> Any:
    import optuna
    from optuna.distributions import FloatDistribution
    from optuna.trial import create_trial

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    dists = {f"x{i}": FloatDistribution(0, 1) for i in range(D)}
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    study.add_trials([create_trial(params={f"x{i}": float(x[i]) for i in range(D)}, distributions=dists, value=float(v)) for x, v in zip(X, y)])
    return [study.ask(dists).params for _ in range(N)]


def bare_skopt(X: np.ndarray, y: np.ndarray, P: np.ndarray) -> Any:
    from skopt import Optimizer

    opt = Optimizer([(0.0, 1.0)] * D, random_state=0)  # skopt's defaults (GP, acq_optimizer auto)
    opt.tell(X.tolist(), y.tolist())
    return opt.ask(N)


def bare_nevergrad(X: np.ndarray, y: np.ndarray, P: np.ndarray) -> Any:
    import nevergrad as ng

    for method in ("NGOpt", "CMA"):  # NGOpt's MetaModel crashes with numpy >= 2.4; CMA is its base
        param = ng.p.Array(init=np.full(D, 0.5), lower=0.0, upper=1.0)
        param.random_state = np.random.RandomState(0)
        opt = ng.optimizers.registry[method](param, budget=max(100, 2 * len(y)), num_workers=N)
        try:
            for x, v in zip(X, y):
                opt.suggest(x)
                opt.tell(opt.ask(), float(v))
            return [opt.ask() for _ in range(N)]
        except TypeError:
            continue
    return []


def bare_bohb(X: np.ndarray, y: np.ndarray, P: np.ndarray) -> Any:
    import logging

    import ConfigSpace as CS
    from hpbandster.core.dispatcher import Job
    from hpbandster.optimizers.config_generators.bohb import BOHB

    cs = CS.ConfigurationSpace(seed=0)
    for i in range(D):
        cs.add(CS.UniformFloatHyperparameter(f"x{i}", 0.0, 1.0))
    cg = BOHB(cs, logger=logging.getLogger("bench"))
    for t, (x, v) in enumerate(zip(X, y)):
        job = Job(id=(0, 0, t), budget=1.0, config={f"x{i}": float(x[i]) for i in range(D)})
        job.result = {"loss": float(v), "info": {}}
        cg.new_result(job)  # hpbandster's documented path refits the model on every result
    return [cg.get_config(1.0) for _ in range(N)]


BARE: dict[str, tuple[str, Callable | None]] = {
    "random": ("numpy uniform", bare_random),
    "grid": ("(ours by nature)", None),
    "tune": ("(Ray Tune's generator; ours, Ray not imported)", None),
    "hyperopt": ("hyperopt Trials + tpe.suggest x10", bare_hyperopt),
    "bayesian": ("skopt Optimizer() defaults, ask(10)", bare_skopt),
    "skopt": ("skopt Optimizer() defaults, ask(10)", bare_skopt),
    "optuna": ("optuna add_trials + ask x10 (TPE)", bare_optuna),
    "nevergrad": ("nevergrad NGOpt replay + ask x10 (CMA when NGOpt crashes)", bare_nevergrad),
    "bohb": ("hpbandster BOHB new_result each + get_config x10", bare_bohb),
    "ax": ("-", None),
}


def _time(fn: Callable[[], Any]) -> float:
    """Wall time of one call, on one BLAS thread like the steering's own steps (OpenBLAS's
    threads contend on a busy 2-core machine and make small GP fits 100x slower)."""
    from threadpoolctl import threadpool_limits

    t0 = time.perf_counter()
    with warnings.catch_warnings(), threadpool_limits(limits=1, user_api="blas"):
        warnings.simplefilter("ignore")
        fn()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="histories 10 and 100 only")
    parser.add_argument("--sizes", default="10,100,500,1000")
    parser.add_argument("--algorithms", default=",".join(ALGORITHMS))
    parser.add_argument("--cap", type=float, default=20.0, help="skip larger histories after a step this slow (s)")
    parser.add_argument("--skip-bare", default="", help="algorithms whose bare-library column to skip")
    args = parser.parse_args(argv)
    sizes = [10, 100] if args.quick else [int(s) for s in args.sizes.split(",")]
    grid_space = SearchSpace.parse({**SPACE.to_json(), "g": {"method": "categorical", "dimension": {"categories": list(range(2000)), "grid_search": 1}}})
    print(f"# steering latency: seconds per step (rebuild + propose {N}), {D}-D space, 5 pending points")
    print(f"{'algorithm':<11}" + "".join(f"{'H=' + str(h):>9}{'bare':>8}{'ratio':>7}" for h in sizes) + "  bare library")
    for name in args.algorithms.split(","):
        try:
            create_algorithm(name, grid_space if name == "grid" else SPACE, 0)
        except MissingDependencyError as exc:
            print(f"{name:<11}unavailable: {str(exc)[:90]}")
            continue
        label, bare = BARE.get(name, ("-", None))
        if name in args.skip_bare.split(","):
            label, bare = label + " (skipped)", None
        cells, slow, slow_bare = [], False, False
        for h in sizes:
            X, y, P = _history(h)
            space = grid_space if name == "grid" else SPACE
            if name == "grid":
                X = np.hstack([X, (np.arange(h)[:, None] + 0.5) / 2000])
                P = np.hstack([P, (np.arange(h, h + 5)[:, None] + 0.5) / 2000])
            history = [(space.from_unit(x), float(v)) for x, v in zip(X, y)] + [(space.from_unit(p), None) for p in P]
            ours = math.nan if slow else _time(lambda: create_algorithm(name, space, 0).propose(history, N, max_points=2 * h))
            theirs = math.nan if bare is None or slow_bare else _time(lambda: bare(X[:, :D], y, P[:, :D]))
            slow, slow_bare = slow or ours > args.cap, slow_bare or theirs > args.cap
            ratio = ours / theirs if theirs == theirs and ours == ours else math.nan
            cells.append(f"{ours:>9.3f}{theirs:>8.3f}{ratio:>7.2f}".replace("nan", "  -"))
        print(f"{name:<11}" + "".join(cells) + f"  {label}", flush=True)


if __name__ == "__main__":
    main()
