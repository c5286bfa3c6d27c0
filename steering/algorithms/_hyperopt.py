"""``hyperopt``: Tree-structured Parzen Estimators (``hyperopt.tpe.suggest``).

The ``Trials`` object is rebuilt from history each step. ``hp.choice`` dimensions store the
*index* of the category in ``misc.vals`` (hpogrid 1.3.3 stored raw values, so a numeric category
was read as an index). ``tpe.suggest`` gives one point per call, so a batch is a loop in which
each proposal goes back in as a pending trial; hyperopt counts a trial without a loss as
infinitely bad, i.e. a constant liar that keeps the batch apart.

Defaults are ``tpe.suggest``'s own except ``gamma``: 0.75 instead of 0.25. hyperopt models the
"good" density on the best ``ceil(gamma * sqrt(n))`` results (at most 25): 4 of 200 with 0.25,
11 with 0.75 (Optuna's TPE uses 10 % of them, 20 of 200). With 4 points the good density is too
narrow and TPE stalls short of a narrow optimum. Measured on Example 1 (optimum -17, target -15;
200 trials, 3 in flight, ask/tell as local_run does; bench/local_run_quality.py and
bench/results/local_run_quality.txt): gamma 0.25 reached -15 on 8/20 seeds, 0.5 on 15/20,
0.75 on 18/20, 1.0 on 18/20; plain ``hyperopt.fmin`` (0.25, sequential) 16/30. The other knobs
moved it less (n_EI_candidates 100: 10/20, 500: 7/20; n_startup_jobs 10: 9/20; prior_weight
0.5: 13/20); lying about pending points with the median loss changes nothing (they fall in the
"bad" set either way) and with the best loss it is worse (6/20).
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any, Sequence

from hyperopt import STATUS_OK, Domain, Trials, hp, tpe
from hyperopt.base import JOB_STATE_DONE, JOB_STATE_NEW

from ..space import Dimension, SearchSpace
from ._params import check_params
from .base import BaseAlgorithm, Evaluated

_DEFAULTS = {"n_startup_jobs": 20, "n_EI_candidates": 24, "gamma": 0.75, "prior_weight": 1.0}


def _expression(dim: Dimension) -> Any:
    """The hyperopt expression with the same law as ``dim`` (None for ``fixed``)."""
    a, m, name = dim.args, dim.method, dim.name
    if m == "fixed":
        return None
    if m == "categorical":
        return hp.choice(name, list(range(len(dim.categories))))
    if m == "uniform":
        return hp.uniform(name, a["low"], a["high"])
    if m == "uniformint":
        return hp.quniform(name, a["low"] - 0.5, a["high"] + 0.5, 1)
    if m == "quniform":
        lo, hi = dim.bounds
        return hp.quniform(name, lo - a["q"] / 2, hi + a["q"] / 2, a["q"])
    if m == "loguniform":
        return hp.loguniform(name, math.log(a["low"]), math.log(a["high"]))
    if m == "qloguniform":
        return hp.qloguniform(name, math.log(a["low"]), math.log(a["high"]), a["q"])
    if m == "normal":
        return hp.normal(name, a["mu"], a["sigma"])
    if m == "qnormal":
        return hp.qnormal(name, a["mu"], a["sigma"], a["q"])
    ln_base = math.log(a["base"])
    if m == "lognormal":
        return hp.lognormal(name, a["mu"] * ln_base, a["sigma"] * ln_base)
    return hp.qlognormal(name, a["mu"] * ln_base, a["sigma"] * ln_base, a["q"])


class HyperoptSearch(BaseAlgorithm):
    """TPE; ``algorithm_param``: n_startup_jobs, n_EI_candidates, gamma, prior_weight."""

    history_limit = 5000  # Trials documents are rebuilt each step: linear, but heavy per point

    def __init__(self, space: SearchSpace, seed: int | None = None, **params: Any):
        super().__init__(space, seed)
        self.params = check_params("hyperopt", params, _DEFAULTS)
        exprs = {d.name: _expression(d) for d in space}
        self.exprs = {k: v for k, v in exprs.items() if v is not None}
        self.domain = Domain(lambda point: 0.0, self.exprs) if self.exprs else None
        self.trials = Trials()

    def _value(self, dim: Dimension, value: Any) -> Any:
        return dim.index(value) if dim.method == "categorical" else value

    def _docs(self, points: Sequence[dict[str, Any]], losses: Sequence[float | None], first_tid: int) -> list:
        tids = list(range(first_tid, first_tid + len(points)))
        miscs, results = [], []
        for tid, point, loss in zip(tids, points, losses):
            vals = {name: [self._value(self.space[name], point[name])] for name in self.exprs}
            miscs.append({"tid": tid, "cmd": None, "workdir": None, "idxs": {k: [tid] for k in vals}, "vals": vals})
            results.append({"status": STATUS_OK, "loss": loss} if loss is not None else {"status": "new"})
        docs = self.trials.new_trial_docs(tids, [None] * len(tids), results, miscs)
        for doc, loss in zip(docs, losses):
            doc["state"] = JOB_STATE_NEW if loss is None else JOB_STATE_DONE
        return docs

    def rebuild(self, evaluated: Sequence[Evaluated]) -> None:
        self.trials = Trials()
        if self.domain is not None and evaluated:
            self.trials.insert_trial_docs(self._docs([e.point for e in evaluated], [e.loss for e in evaluated], 0))
            self.trials.refresh()

    def suggest(self, n: int, pending: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        if self.domain is None:  # only fixed dimensions: the base enumerates the single point
            return []
        algo = partial(tpe.suggest, verbose=False, **self.params)
        next_tid = len(self.trials.trials)
        if pending:
            self.trials.insert_trial_docs(self._docs(pending, [None] * len(pending), next_tid))
            self.trials.refresh()
            next_tid += len(pending)
        out = []
        for j in range(n):
            seed = int(self.rng.integers(2**31 - 1))
            (doc,) = algo([next_tid], self.domain, self.trials, seed)
            raw = {name: vals[0] for name, vals in doc["misc"]["vals"].items()}
            point = {}
            for dim in self.space:
                if dim.method == "fixed":
                    point[dim.name] = dim.args["value"]
                elif dim.method == "categorical":
                    point[dim.name] = dim.categories[int(raw[dim.name])]
                else:
                    point[dim.name] = raw[dim.name]
            out.append(point)
            point = self.space.canonical(point)
            self.trials.insert_trial_docs(self._docs([point], [None], next_tid))
            self.trials.refresh()
            next_tid += 1
        return out
