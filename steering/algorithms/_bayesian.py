"""``bayesian``: Gaussian-process Bayesian optimisation (scikit-learn's GP, expected improvement).

The GP works in the unit cube of :meth:`Dimension.to_unit`, so priors, ints and ``q`` come for
free; categories sit at the centres of equal bins (an ordinal code: cheap, and adequate for the
few categories of a typical search). Built for the steering's budget rather than exactness:

- the kernel is fitted once per step (one L-BFGS start) on at most ``max_fit`` points (the best
  third plus a seeded random subset of the rest), then kept fixed;
- expected improvement is maximised over ``candidates`` random points plus Gaussian
  perturbations of the best points, snapped to valid values (no gradient optimiser);
- a batch, and the pending points, use the *kriging believer*: each chosen point is added with
  the GP's predicted mean as its value and the GP is refitted with the fixed kernel, so the
  next point goes elsewhere.

Before ``n_initial_points`` results exist it proposes a scrambled Sobol design (scipy).
"""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import numpy as np
from scipy.stats import norm, qmc
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

from ..space import SearchSpace
from ._params import check_params
from .base import BaseAlgorithm, Evaluated

_DEFAULTS = {"n_initial_points": 10, "candidates": 2000, "max_fit": 300, "xi": 0.01}


class BayesianSearch(BaseAlgorithm):
    """``algorithm_param``: n_initial_points, candidates, max_fit, xi (EI's exploration margin)."""

    pending_limit = 200  # kriging believer: one GP refit each

    def __init__(self, space: SearchSpace, seed: int | None = None, **params: Any):
        super().__init__(space, seed)
        self.params = check_params("bayesian", params, _DEFAULTS)
        self.history_limit = int(self.params["max_fit"])
        self.d = len(space)
        self.gp: GaussianProcessRegressor | None = None
        self.X = np.zeros((0, self.d))
        self.y = np.zeros(0)

    # ---- geometry ---------------------------------------------------------------------------
    def _unit(self, points: Sequence[dict[str, Any]]) -> np.ndarray:
        return np.array([self.space.to_unit(p) for p in points], dtype=float).reshape(-1, self.d)

    def _snap(self, U: np.ndarray) -> np.ndarray:
        """Move unit-cube points onto values the space can produce (discrete dims only)."""
        U = np.clip(U, 0.0, 1.0)
        for j, dim in enumerate(self.space):
            if dim.is_categorical or dim.method == "uniformint":
                k = dim.cardinality()
                U[:, j] = (np.minimum(np.floor(U[:, j] * k), k - 1) + 0.5) / k
            elif dim.q is not None:
                U[:, j] = [dim.to_unit(dim.from_unit(u)) for u in U[:, j]]
        return U

    # ---- model ------------------------------------------------------------------------------
    def rebuild(self, evaluated: Sequence[Evaluated]) -> None:
        self.X = self._unit([e.point for e in evaluated])
        self.y = np.array([e.loss for e in evaluated], dtype=float)
        self.gp = None
        if len(self.y) < max(2, self.params["n_initial_points"]):
            return
        X, y = self.X, self.y  # at most max_fit of them: the base class subsamples (history_limit)
        self.mean, self.scale = float(y.mean()), float(y.std()) or 1.0
        kernel = ConstantKernel(1.0, (1e-3, 1e3)) * Matern(
            length_scale=np.full(self.d, 0.3), length_scale_bounds=(1e-2, 1e2), nu=2.5
        ) + WhiteKernel(1e-4, (1e-8, 1e-1))
        gp = GaussianProcessRegressor(kernel, normalize_y=False, n_restarts_optimizer=0, random_state=self.step_seed % 2**31)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            gp.fit(X, (y - self.mean) / self.scale)
        # from now on the kernel is fixed: refits for believed points are one Cholesky each
        self.gp = GaussianProcessRegressor(gp.kernel_, optimizer=None, normalize_y=False)
        self.fit_X, self.fit_y = X, (y - self.mean) / self.scale
        self.gp.fit(self.fit_X, self.fit_y)

    def _believe(self, U: np.ndarray) -> None:
        """Kriging believer: pretend the GP's mean was observed at ``U``."""
        assert self.gp is not None
        mu = self.gp.predict(U)
        self.fit_X = np.vstack([self.fit_X, U])
        self.fit_y = np.concatenate([self.fit_y, mu])
        self.gp.fit(self.fit_X, self.fit_y)

    def _candidates(self) -> np.ndarray:
        n = self.params["candidates"]
        U = self.rng.random((n, self.d))
        top = self.fit_X[np.argsort(self.fit_y, kind="stable")[:5]]
        local = np.repeat(top, max(1, n // 10), axis=0)
        local = local + self.rng.normal(0.0, 0.05, local.shape)
        return self._snap(np.vstack([U, local]))

    def _expected_improvement(self, U: np.ndarray) -> np.ndarray:
        assert self.gp is not None
        mu, sd = self.gp.predict(U, return_std=True)
        best = float(self.fit_y[: len(self.fit_y)].min())
        sd = np.maximum(sd, 1e-9)
        z = (best - mu - self.params["xi"]) / sd
        return (best - mu - self.params["xi"]) * norm.cdf(z) + sd * norm.pdf(z)

    # ---- proposals ----------------------------------------------------------------------------
    def suggest(self, n: int, pending: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        if self.gp is None:
            sobol = qmc.Sobol(self.d, scramble=True, seed=self.step_seed % 2**31)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # balance warning for n not 2**m
                U = sobol.random(n)
            return [self.space.from_unit(u) for u in U]
        if pending:
            self._believe(self._unit(pending))
        out = []
        for _ in range(n):
            U = self._candidates()
            ei = self._expected_improvement(U)
            u = U[int(np.argmax(ei))]
            out.append(self.space.from_unit(u))
            self._believe(u[None, :])
        return out
