"""``optuna``: an Optuna sampler (TPE by default) on an in-memory study rebuilt from history.

Evaluated points become COMPLETE trials and pending points RUNNING ones; each point of a batch
is asked in turn and stays RUNNING, so the samplers' own handling of running trials (TPE's
``constant_liar``, on by default) keeps a batch apart. Normal-family dimensions are searched on
their CDF (a float in [0, 1]), so their prior is kept; categories are searched by index.
"""

from __future__ import annotations

import contextlib
import importlib.util
import warnings
from typing import Any, Callable, Sequence

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from ..errors import InputError, MissingDependencyError
from ..space import Dimension, SearchSpace
from ._params import choose
from .base import BaseAlgorithm, Evaluated

_SAMPLERS: dict[str, str] = {
    "tpe": "TPESampler",
    "cmaes": "CmaEsSampler",
    "qmc": "QMCSampler",
    "gp": "GPSampler",
    "nsgaii": "NSGAIISampler",
    "nsgaiii": "NSGAIIISampler",
    "random": "RandomSampler",
}
# libraries a sampler imports lazily, and where they come from
_SAMPLER_NEEDS = {
    "GPSampler": ("torch", "pip install torch (a CPU build), or use algorithm 'bayesian'"),
    "CmaEsSampler": ("cmaes", "pip install 'hpogrid[steering]'"),
}


@contextlib.contextmanager
def _quiet() -> Any:
    """Silence optuna's per-study INFO lines and experimental warnings, then restore them."""
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            yield
    finally:
        optuna.logging.set_verbosity(level)


class _Mapping:
    """One dimension as an optuna distribution, with value <-> parameter conversions."""

    def __init__(self, dim: Dimension):
        self.dim = dim
        a, m = dim.args, dim.method
        self.to_param: Callable[[Any], Any] = lambda v: v
        self.from_param: Callable[[Any], Any] = lambda p: p
        self.dist: BaseDistribution
        if m == "categorical":
            cats = dim.categories
            self.dist = CategoricalDistribution(list(range(len(cats))))
            self.to_param = dim.index
            self.from_param = lambda p: cats[int(p)]
        elif m == "uniform":
            self.dist = FloatDistribution(a["low"], a["high"])
        elif m == "uniformint":
            self.dist = IntDistribution(int(a["low"]), int(a["high"]))
        elif m == "quniform":
            lo, hi = dim.bounds
            if dim.is_int:
                self.dist = IntDistribution(lo, hi, step=a["q"])
            else:
                self.dist = FloatDistribution(lo, hi, step=a["q"])
        elif m == "loguniform":
            self.dist = FloatDistribution(a["low"], a["high"], log=True)
        elif m == "qloguniform":
            lo, hi = dim.bounds
            self.dist = FloatDistribution(float(lo), float(hi), log=True)
        else:  # normal family: search the CDF
            self.dist = FloatDistribution(0.0, 1.0)
            self.to_param = dim.to_unit
            self.from_param = dim.from_unit


class OptunaSearch(BaseAlgorithm):
    """``algorithm_param``: ``sampler`` (tpe, cmaes, qmc, gp, nsgaii, nsgaiii, random); every
    other key goes to the sampler's constructor (e.g. ``n_startup_trials``, ``multivariate``)."""

    history_limit = 5000  # FrozenTrials rebuilt each step; the gp sampler lowers it (cubic fit)

    def __init__(self, space: SearchSpace, seed: int | None = None, **params: Any):
        super().__init__(space, seed)
        params = dict(params)
        self.sampler_cls_name = choose("optuna", "sampler", params.pop("sampler", "tpe"), _SAMPLERS)
        if self.sampler_cls_name == "GPSampler":
            self.history_limit = 300
        module, fix = _SAMPLER_NEEDS.get(self.sampler_cls_name, ("optuna", ""))
        if importlib.util.find_spec(module) is None:
            raise MissingDependencyError(f"optuna's {self.sampler_cls_name} needs {module}, which is not installed: {fix}")
        if self.sampler_cls_name == "QMCSampler":
            # optuna counts QMC samples in a study attribute that a rebuilt study lacks: an
            # unscrambled sequence would restart at the same point every step
            params.setdefault("scramble", True)
        self.sampler_kwargs = params
        self.mappings = {d.name: _Mapping(d) for d in space if d.method != "fixed"}
        self.distributions = {name: m.dist for name, m in self.mappings.items()}
        self._make_sampler(self.seed)  # fail now, not mid-step, on a bad sampler argument
        self.study: optuna.Study | None = None

    def _make_sampler(self, seed: int, evaluated: Sequence[Evaluated] = ()) -> optuna.samplers.BaseSampler:
        cls = getattr(optuna.samplers, self.sampler_cls_name)
        kwargs = dict(self.sampler_kwargs)
        if self.sampler_cls_name == "CmaEsSampler" and len(evaluated) >= 10 and "source_trials" not in kwargs:
            # CMA-ES keeps its state in trial attributes a rebuilt study lacks, so each step
            # restarts it: warm-start it (WS-CMA-ES; it needs 10 solutions) from the history
            numeric = {k: d for k, d in self.distributions.items() if not isinstance(d, CategoricalDistribution)}
            kwargs["source_trials"] = [
                create_trial(params={k: self._params(e.point)[k] for k in numeric}, distributions=numeric, value=e.loss)
                for e in evaluated
            ]
        try:
            with _quiet():
                return cls(seed=seed, **kwargs)
        except TypeError as exc:
            raise InputError(f"algorithm 'optuna': bad algorithm_param for {cls.__name__}: {exc}") from None

    def _params(self, point: dict[str, Any]) -> dict[str, Any]:
        return {name: m.to_param(point[name]) for name, m in self.mappings.items()}

    def rebuild(self, evaluated: Sequence[Evaluated]) -> None:
        with _quiet():
            self.study = optuna.create_study(sampler=self._make_sampler(self.step_seed, evaluated), direction="minimize")
        self.study.add_trials(self._trials(evaluated))

    def _trials(self, evaluated: Sequence[Evaluated]) -> list[optuna.trial.FrozenTrial]:
        return [create_trial(params=self._params(e.point), distributions=self.distributions, value=e.loss) for e in evaluated]

    def suggest(self, n: int, pending: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        assert self.study is not None, "rebuild() runs before suggest()"
        if not self.mappings:
            return []
        for point in pending:
            self.study.add_trial(
                create_trial(state=TrialState.RUNNING, params=self._params(point), distributions=self.distributions)
            )
        out = []
        with _quiet():
            for _ in range(n):
                trial = self.study.ask(self.distributions)
                point = {d.name: d.args["value"] for d in self.space if d.method == "fixed"}
                point.update({name: m.from_param(trial.params[name]) for name, m in self.mappings.items()})
                out.append({name: point[name] for name in self.space.names})
        return out
