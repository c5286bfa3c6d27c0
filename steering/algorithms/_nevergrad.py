"""``nevergrad``: any optimizer of ``nevergrad.optimizers.registry`` (``NGOpt`` by default).

The search runs in the unit cube (an ``Array`` bounded to [0, 1], mapped through
:meth:`Dimension.from_unit`), so priors, ints and ``q`` are kept. History is replayed with
``suggest`` + ``ask`` + ``tell``, which every nevergrad optimizer accepts (``tell`` of a point it
did not ask is not supported by all). Pending points are asked and left untold: nevergrad
optimizers know about candidates in flight (``num_workers``). The budget is the campaign's
``max_points`` (iDDS's ``%MAX_POINTS``), which NGOpt uses to pick its method; without one
(the Python API called without ``max_points``) it is twice the points so far, at least 100.
"""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import nevergrad as ng
import numpy as np

from ..errors import InputError
from ..space import SearchSpace, point_key
from ._params import check_params
from .base import BaseAlgorithm, Evaluated

_DEFAULTS = {"method": "NGOpt", "budget": None, "num_workers": None}
_FALLBACK = "CMA"
_REASKS = 20


class NevergradSearch(BaseAlgorithm):
    """``algorithm_param``: method (e.g. NGOpt, CMA, TwoPointsDE, PSO, RandomSearch), budget
    (default: the campaign's max points), num_workers (default: the batch size)."""

    history_limit = 2000  # the optimizer is replayed one ask/tell per result

    def __init__(self, space: SearchSpace, seed: int | None = None, **params: Any):
        super().__init__(space, seed)
        self.params = check_params("nevergrad", params, _DEFAULTS)
        method = self.params["method"]
        if not isinstance(method, str) or method not in ng.optimizers.registry:
            examples = ", ".join(n for n in ("NGOpt", "CMA", "TwoPointsDE", "PSO", "OnePlusOne", "RandomSearch"))
            raise InputError(
                f"algorithm 'nevergrad': unknown method {method!r}; valid: any name of "
                f"nevergrad.optimizers.registry ({len(ng.optimizers.registry)} of them), e.g. {examples}"
            )
        self.evaluated: Sequence[Evaluated] = ()

    def rebuild(self, evaluated: Sequence[Evaluated]) -> None:
        self.evaluated = evaluated

    def suggest(self, n: int, pending: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        try:
            return self._suggest(self.params["method"], n, pending)
        except TypeError:
            # nevergrad 1.0.12's MetaModel (chosen by NGOpt for small dimensions) calls float()
            # on a one-element array, an error since numpy 2.4; its base optimizer is CMA
            if self.params["method"] == _FALLBACK:
                raise
            return self._suggest(_FALLBACK, n, pending)

    def _suggest(self, method: str, n: int, pending: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        d = len(self.space)
        # a replay does not carry a population's state (e.g. CMA's mean) across steps, so the
        # optimizer starts from the best point so far rather than from the centre of the space
        init = np.full(d, 0.5)
        if self.evaluated:
            best = min(self.evaluated, key=lambda e: e.loss).point
            init = np.clip(np.array(self.space.to_unit(best)), 1e-6, 1 - 1e-6)
        param = ng.p.Array(init=init, lower=0.0, upper=1.0)
        param.random_state = np.random.RandomState(self.step_seed % 2**32)
        budget = self.params["budget"] or self.max_points
        if budget is None:  # no campaign budget known (Python API without max_points)
            budget = max(100, 2 * (len(self.evaluated) + len(pending) + n))
        workers = self.params["num_workers"] or max(1, n + len(pending))
        optimizer = ng.optimizers.registry[method](param, budget=budget, num_workers=workers)
        out = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # nevergrad warns about budgets, bad losses, workers
            for e in self.evaluated:
                optimizer.suggest(np.array(self.space.to_unit(e.point)))
                optimizer.tell(optimizer.ask(), e.loss)
            for p in pending:
                optimizer.suggest(np.array(self.space.to_unit(p)))
                optimizer.ask()
            # a (1+1)-style optimizer re-asks its parent after a replay: tell it the known loss
            # and ask again, rather than let the step fall back to random points
            known = {point_key(e.point): e.loss for e in self.evaluated}
            taken = {point_key(p) for p in pending}
            for _ in range(n):
                for _attempt in range(_REASKS):
                    candidate = optimizer.ask()
                    point = self.space.from_unit(candidate.value)
                    key = point_key(point)
                    if key in known:
                        optimizer.tell(candidate, known[key])
                    elif key not in taken:
                        break
                taken.add(key)
                out.append(point)
        return out
