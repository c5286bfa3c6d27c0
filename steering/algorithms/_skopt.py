"""``skopt``: scikit-optimize's ``Optimizer`` (GP by default; RF, ET, GBRT on request).

The optimizer is rebuilt with one ``tell`` of the whole history (one model fit, not one per
point). Pending points and the points of a batch are constant liars (``strategy``, skopt's
own batch method). Defaults favour speed: ``acq_optimizer="sampling"`` (skopt's "auto" runs
L-BFGS from many starts), and the GP kernel is fitted once per step, not once per lie (skopt's
default ``ask(10)`` refits it 20 times: ~5 s at history 10, over a minute at history 200). Quantised dimensions are searched as integers k with value
k*q, normal-family ones on their CDF.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, Sequence

import numpy as np
from sklearn.base import clone
from skopt import Optimizer
from skopt.space import Categorical, Integer, Real

from ..errors import InputError
from ..space import Dimension, SearchSpace
from ._params import check_params, choose
from .base import BaseAlgorithm, Evaluated

_DEFAULTS = {
    "base_estimator": "GP",
    "n_initial_points": 10,
    "acq_func": "gp_hedge",
    "acq_optimizer": "sampling",
    "n_points": 2000,
    "strategy": "cl_min",
}
_ESTIMATORS = {"GP": "GP", "RF": "RF", "ET": "ET", "GBRT": "GBRT"}


class _Mapping:
    """One dimension as a skopt dimension, with value <-> skopt value conversions."""

    def __init__(self, dim: Dimension):
        a, m = dim.args, dim.method
        self.to_x: Callable[[Any], Any] = lambda v: v
        self.from_x: Callable[[Any], Any] = lambda x: x
        if m in ("categorical", "fixed"):
            cats = dim.categories
            self.dim = Categorical(list(range(len(cats))), name=dim.name)
            self.to_x = dim.index
            self.from_x = lambda x: cats[int(x)]
        elif m == "uniform":
            self.dim = Real(a["low"], a["high"], name=dim.name)
        elif m == "uniformint":
            self.dim = Integer(int(a["low"]), int(a["high"]), name=dim.name)
        elif m == "quniform":
            lo, hi = dim.bounds
            q = a["q"]
            self.dim = Integer(round(lo / q), round(hi / q), name=dim.name)
            self.to_x = lambda v: int(round(v / q))
            self.from_x = lambda k: k * q
        elif m in ("loguniform", "qloguniform"):
            lo, hi = dim.bounds
            self.dim = Real(float(lo), float(hi), prior="log-uniform", name=dim.name)
        else:  # normal family: search the CDF, kept off 0 and 1 where the inverse CDF explodes
            self.dim = Real(1e-6, 1 - 1e-6, name=dim.name)
            self.to_x = lambda v: min(max(dim.to_unit(v), 1e-6), 1 - 1e-6)
            self.from_x = dim.from_unit


#: Results a step models, by estimator: a GP's fit is cubic in them (skopt at 1,000 points took
#: 58 s a step, at 50,000 the OOM killer); trees are n log n.
_HISTORY_LIMITS = {"GP": 200, "RF": 2000, "ET": 2000, "GBRT": 2000}


class SkoptSearch(BaseAlgorithm):
    """``algorithm_param``: base_estimator (GP, RF, ET, GBRT), n_initial_points, acq_func,
    acq_optimizer, n_points, strategy (cl_min, cl_mean, cl_max)."""

    pending_limit = 200  # constant liars: one model refit each

    def __init__(self, space: SearchSpace, seed: int | None = None, **params: Any):
        super().__init__(space, seed)
        self.params = check_params("skopt", params, _DEFAULTS)
        self.params["base_estimator"] = choose("skopt", "base_estimator", self.params["base_estimator"], _ESTIMATORS)
        if self.params["base_estimator"] == "GBRT" and not hasattr(np, "in1d"):
            raise InputError(
                "algorithm 'skopt': base_estimator GBRT does not work with numpy >= 2.4 and "
                "scikit-learn >= 1.6 (scikit-optimize 0.10.2 calls removed APIs); use GP, RF or ET"
            )
        self.history_limit = _HISTORY_LIMITS[self.params["base_estimator"]]
        self.mappings = [_Mapping(d) for d in space]
        self.optimizer: Optimizer | None = None

    def _x(self, point: dict[str, Any]) -> list[Any]:
        return [m.to_x(point[d.name]) for m, d in zip(self.mappings, self.space)]

    def _optimizer(self, base_estimator: Any, seed: int) -> Optimizer:
        p = self.params
        try:
            return Optimizer(
                [m.dim for m in self.mappings],
                base_estimator=base_estimator,
                n_initial_points=p["n_initial_points"],
                acq_func=p["acq_func"],
                acq_optimizer=p["acq_optimizer"],
                acq_optimizer_kwargs={"n_points": p["n_points"]},
                random_state=seed % (2**31),
            )
        except ValueError as exc:
            raise InputError(f"algorithm 'skopt': bad algorithm_param: {exc}") from None

    def rebuild(self, evaluated: Sequence[Evaluated]) -> None:
        self.optimizer = self._optimizer(self.params["base_estimator"], self.step_seed)
        self._evaluated = evaluated

    def _lie(self, ys: Sequence[float]) -> float:
        strategy = self.params["strategy"]
        if strategy == "cl_min":
            return min(ys)
        if strategy == "cl_max":
            return max(ys)
        return sum(ys) / len(ys)

    def suggest(self, n: int, pending: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Constant liar, as skopt's ``ask(n, strategy)`` does, but with one model fit per
        point instead of two, and for a GP the kernel fitted once on the real history and
        kept fixed while the lies go in (the lies are what make the batch diverse)."""
        assert self.optimizer is not None, "rebuild() runs before suggest()"
        opt = self.optimizer
        xs = [self._x(e.point) for e in self._evaluated]
        ys = [e.loss for e in self._evaluated]
        lie = self._lie(ys) if ys else 0.0
        asked: list[list[Any]] = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "The objective has been evaluated at point ... before"
            if xs:
                opt.tell(xs, ys)
            if pending or n > 1:
                if opt.models and self.params["base_estimator"] == "GP":
                    fitted = opt.models[-1]
                    fixed = clone(fitted).set_params(kernel=fitted.kernel_, optimizer=None, noise=None)
                    opt = self._optimizer(fixed, self.step_seed + 1)
                    if xs:
                        opt.tell(xs, ys)
                if pending:
                    opt.tell([self._x(p) for p in pending], [lie] * len(pending))
            for i in range(n):
                x = opt.ask()
                asked.append(x)
                if i + 1 < n:
                    opt.tell(x, lie)
        return [{d.name: m.from_x(v) for d, m, v in zip(self.space, self.mappings, x)} for x in asked]
