"""``bohb``: the model of BOHB (hpbandster's kernel-density config generator) on one budget.

The steering has no notion of budgets (early stopping belongs to the evaluator's scheduler), so
this is BOHB's TPE-like density model with every result on the same budget. It searches the unit
cube (ConfigSpace floats in [0, 1], mapped through :meth:`Dimension.from_unit`; categories by
index). hpbandster has no pending-point mechanism: pending points and the points of a batch are
told with the worst loss seen (a constant liar), which keeps the batch out of their
neighbourhood. hpbandster draws from numpy's global generator, so each step seeds it and puts
the caller's state back afterwards.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from typing import Any, Iterator, Sequence

import ConfigSpace as CS
import numpy as np
from hpbandster.core.dispatcher import Job
from hpbandster.optimizers.config_generators.bohb import BOHB as BOHBGenerator

from ..space import SearchSpace
from ._params import check_params
from .base import BaseAlgorithm, Evaluated

_DEFAULTS = {"top_n_percent": 15, "num_samples": 64, "random_fraction": 1 / 3, "bandwidth_factor": 3, "min_bandwidth": 1e-3, "min_points_in_model": None}
_BUDGET = 1.0


@contextlib.contextmanager
def _seeded_global_numpy(seed: int) -> Iterator[None]:
    state = np.random.get_state()
    np.random.seed(seed % 2**32)
    try:
        yield
    finally:
        np.random.set_state(state)


class BohbSearch(BaseAlgorithm):
    """``algorithm_param``: hpbandster's BOHB model options (top_n_percent, num_samples,
    random_fraction, bandwidth_factor, min_bandwidth, min_points_in_model)."""

    history_limit = 5000  # the KDEs are refitted per told result

    def __init__(self, space: SearchSpace, seed: int | None = None, **params: Any):
        super().__init__(space, seed)
        self.params = check_params("bohb", params, _DEFAULTS)
        self.evaluated: Sequence[Evaluated] = ()

    def _configspace(self) -> CS.ConfigurationSpace:
        cs = CS.ConfigurationSpace(seed=self.step_seed % 2**31)
        for dim in self.space:
            if dim.method == "categorical":
                cs.add(CS.CategoricalHyperparameter(dim.name, list(range(len(dim.categories)))))
            elif dim.method != "fixed":
                cs.add(CS.UniformFloatHyperparameter(dim.name, 0.0, 1.0))
        return cs

    def _config(self, point: dict[str, Any]) -> dict[str, Any]:
        cfg = {}
        for dim in self.space:
            if dim.method == "categorical":
                cfg[dim.name] = dim.index(point[dim.name])
            elif dim.method != "fixed":
                cfg[dim.name] = dim.to_unit(point[dim.name])
        return cfg

    def _point(self, cfg: dict[str, Any]) -> dict[str, Any]:
        point = {}
        for dim in self.space:
            if dim.method == "categorical":
                point[dim.name] = dim.categories[int(cfg[dim.name])]
            elif dim.method == "fixed":
                point[dim.name] = dim.args["value"]
            else:
                point[dim.name] = dim.from_unit(float(cfg[dim.name]))
        return point

    def rebuild(self, evaluated: Sequence[Evaluated]) -> None:
        self.evaluated = evaluated

    def suggest(self, n: int, pending: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        if all(d.method == "fixed" for d in self.space):
            return []
        cs = self._configspace()
        logger = logging.getLogger("hpogrid.steering.bohb")
        logger.addHandler(logging.NullHandler())
        generator = BOHBGenerator(cs, logger=logger, **self.params)
        losses = [e.loss for e in self.evaluated]
        worst = max(losses) if losses else 0.0
        told = 0

        def tell(point: dict[str, Any], loss: float) -> None:
            nonlocal told
            job = Job(id=(0, 0, told), budget=_BUDGET, config=self._config(point))
            job.result = {"loss": loss, "info": {}}
            generator.new_result(job, update_model=False)
            told += 1

        out = []
        with _seeded_global_numpy(self.step_seed), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for e in self.evaluated:
                tell(e.point, e.loss)
            for p in pending:
                tell(p, worst)
            for _ in range(n):
                if told:
                    generator.new_result(Job(id=(0, 0, -1), budget=_BUDGET, config=None), update_model=True) if False else None
                    self._refit(generator)
                cfg, _info = generator.get_config(_BUDGET)
                point = self._point(cfg)
                out.append(point)
                tell(point, worst)
        return out

    @staticmethod
    def _refit(generator: BOHBGenerator) -> None:
        """Refit the density model once per proposal (``update_model=False`` above skips the
        refit on every told point: rebuilding from history would otherwise refit n times)."""
        generator.configs.setdefault(_BUDGET, [])
