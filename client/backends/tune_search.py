"""Ray Tune's pieces for ``local_run``: the search space as Ray Tune domains, the searcher and the
scheduler of an hpo_config, and the checks of their combinations.

=================  ===========================================  =====================================
algorithm          searcher                                     schedulers it combines with
=================  ===========================================  =====================================
random             BasicVariantGenerator (grid dims sampled)    fifo, asynchyperband, pbt
tune               BasicVariantGenerator (grid repeated)        fifo, asynchyperband, pbt
grid               BasicVariantGenerator (each combination)     fifo, asynchyperband, pbt
hyperopt, optuna,  hpogrid.steering's algorithm as a Searcher   fifo, asynchyperband
nevergrad, bohb,
bayesian, skopt,
ax
ray:hyperopt       ray.tune.search.hyperopt.HyperOptSearch      fifo, asynchyperband
ray:optuna         ray.tune.search.optuna.OptunaSearch          fifo, asynchyperband
ray:nevergrad      ray.tune.search.nevergrad.NevergradSearch    fifo, asynchyperband
ray:bohb           ray.tune.search.bohb.TuneBOHB                fifo, asynchyperband, bohbhyperband
=================  ===========================================  =====================================
``bohbhyperband`` needs ``ray:bohb`` (``bohb`` with it means ``ray:bohb``); ``pbt`` needs random/tune/grid (it mutates running trials instead
of asking a searcher) and a ``stop`` longer than one perturbation interval.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

from hpogrid.steering.space import Dimension, SearchSpace

from ..errors import ConfigError, HpogridError

__all__ = ["check_combination", "ray_param_space", "pbt_mutations", "make_config_mapper", "point_of",
           "steering_searcher", "make_search_alg", "make_scheduler", "VARIANT_ALGORITHMS", "RAY_SEARCHERS",
           "STEERING_SEARCHERS", "SCHEDULER_RULES"]

VARIANT_ALGORITHMS = ("random", "tune", "grid")
RAY_SEARCHERS = ("ray:hyperopt", "ray:optuna", "ray:nevergrad", "ray:bohb")
STEERING_SEARCHERS = ("hyperopt", "optuna", "nevergrad", "bohb", "bayesian", "skopt", "ax")
SCHEDULER_RULES: dict[str, tuple[str, ...]] = {
    "fifo": VARIANT_ALGORITHMS + RAY_SEARCHERS + STEERING_SEARCHERS,
    "asynchyperband": VARIANT_ALGORITHMS + RAY_SEARCHERS + STEERING_SEARCHERS,
    "bohbhyperband": ("ray:bohb", "bohb"),
    "pbt": VARIANT_ALGORITHMS,
}


# ---- checks ------------------------------------------------------------------------------------
def check_combination(hpo: Mapping[str, Any], space: SearchSpace) -> None:
    """Refuse, with one clear line, the algorithm/scheduler/stop combinations that make no sense."""
    algorithm, scheduler = hpo.get("algorithm", "random"), hpo.get("scheduler") or "fifo"
    known = VARIANT_ALGORITHMS + RAY_SEARCHERS + STEERING_SEARCHERS
    if algorithm not in known:
        raise ConfigError(f"unknown algorithm {algorithm!r} for local_run; valid: {', '.join(known)}")
    if scheduler not in SCHEDULER_RULES:
        raise ConfigError(f"unknown scheduler {scheduler!r}; valid: {', '.join(SCHEDULER_RULES)}")
    if algorithm not in SCHEDULER_RULES[scheduler]:
        if scheduler == "bohbhyperband":
            raise ConfigError(f"scheduler 'bohbhyperband' works with algorithm 'ray:bohb' (or 'bohb') only, not {algorithm!r}")
        raise ConfigError(
            f"scheduler 'pbt' mutates running trials instead of asking a searcher: it works with algorithm "
            f"random, tune or grid, not {algorithm!r}"
        )
    stop = hpo.get("stop") or {}
    if scheduler == "pbt":
        interval = (hpo.get("scheduler_param") or {}).get("perturbation_interval", 1)
        iterations = stop.get("training_iteration")
        if iterations is not None and iterations <= interval:
            raise ConfigError(
                f"scheduler 'pbt' needs trials longer than its perturbation_interval ({interval}), got "
                f"stop.training_iteration={iterations}"
            )
        if not _mutations_space(space):
            raise ConfigError("scheduler 'pbt' needs at least one hyperparameter that is not fixed")
    if algorithm == "grid" and not space.grid_dims:
        raise ConfigError("algorithm 'grid' needs a categorical hyperparameter with \"grid_search\": 1")


# ---- search space -> Ray Tune --------------------------------------------------------------------
_NATIVE = ("categorical", "uniform", "uniformint", "quniform", "loguniform", "qloguniform", "normal", "qnormal", "fixed")


def _domain(dim: Dimension, grid: bool) -> Any:
    """The Ray Tune domain of a dimension; ``None`` when Ray has none with the same law (the
    dimension is then sampled as a unit-uniform coordinate and mapped by its inverse CDF)."""
    from ray import tune

    a, m = dim.args, dim.method
    if m == "fixed":
        return a["value"]
    if m == "categorical":
        return tune.grid_search(dim.categories) if grid and dim.is_grid else tune.choice(dim.categories)
    if m == "uniform":
        return tune.uniform(a["low"], a["high"])
    if m == "uniformint":
        return tune.randint(int(a["low"]), int(a["high"]) + 1)  # Ray's high is exclusive
    if m == "quniform":
        lo, hi = dim.bounds
        return tune.quniform(lo, hi, a["q"])
    if m == "loguniform":
        return tune.loguniform(a["low"], a["high"])
    if m == "qloguniform":
        lo, hi = dim.bounds
        return tune.qloguniform(lo, hi, a["q"])
    if m == "normal":
        return tune.randn(a["mu"], a["sigma"])
    if m == "qnormal":
        return tune.qrandn(a["mu"], a["sigma"], a["q"])
    return None


def ray_param_space(space: SearchSpace, grid: bool) -> tuple[dict[str, Any], set[str]]:
    """Ray Tune's ``param_space`` for the search space, and the names sampled as unit coordinates."""
    from ray import tune

    out: dict[str, Any] = {}
    unit: set[str] = set()
    for dim in space:
        domain = _domain(dim, grid)
        if domain is None and dim.method != "fixed":
            out[dim.name] = tune.uniform(0.0, 1.0)
            unit.add(dim.name)
        else:
            out[dim.name] = domain
    return out, unit


def _mutations_space(space: SearchSpace) -> dict[str, Any]:
    return {d.name: d for d in space if d.method != "fixed"}


def pbt_mutations(space: SearchSpace) -> dict[str, Any]:
    """PBT's ``hyperparam_mutations`` from the search space: a list for categoricals, the same
    domain as the param space for the rest (fixed values are not mutated)."""
    from ray import tune

    out: dict[str, Any] = {}
    for dim in _mutations_space(space).values():
        if dim.is_categorical:
            out[dim.name] = list(dim.categories)
        else:
            domain = _domain(dim, grid=False)
            out[dim.name] = domain if domain is not None else tune.uniform(0.0, 1.0)
    return out


def make_config_mapper(space: SearchSpace, unit: set[str]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Ray's sampled values -> valid points: unit coordinates through the inverse CDF, the rest
    through ``canonical`` (ints for integer dimensions, categories as the original objects)."""
    dims = {d.name: d for d in space}

    def mapper(config: dict[str, Any]) -> dict[str, Any]:
        out = dict(config)
        for name, dim in dims.items():
            if name not in out:
                continue
            value = out[name]
            try:
                out[name] = dim.from_unit(value) if name in unit else dim.canonical(value)
            except (ValueError, TypeError):
                pass  # leave what Ray produced; the user sees it as Ray gave it
        return out

    return mapper


def point_of(config: Mapping[str, Any], space: SearchSpace, mapper: Callable[[dict], dict]) -> dict[str, Any]:
    mapped = mapper(dict(config))
    return {n: mapped[n] for n in space.names if n in mapped}


# ---- the steering's algorithms as a Ray Tune Searcher --------------------------------------------
def steering_searcher(space: SearchSpace, algorithm: str, algorithm_param: Mapping[str, Any] | None,
                      seed: int | None, metric: str, mode: str, max_points: int) -> Any:
    """hpogrid's steering algorithm ``algorithm`` behind Ray Tune's ``Searcher`` interface."""
    from ray.tune.search import Searcher

    from hpogrid.steering.api import Searcher as SteeringSearcher

    class SteeringAlgorithm(Searcher):
        def __init__(self) -> None:
            super().__init__(metric=metric, mode=mode)
            self.steering = SteeringSearcher(space, algorithm, algorithm_param, seed, mode, max_points)
            self.live: dict[str, dict[str, Any]] = {}

        def suggest(self, trial_id: str) -> dict[str, Any] | None:
            points = self.steering.ask(1, pending=list(self.live.values()))
            if not points:
                return Searcher.FINISHED
            self.live[trial_id] = points[0]
            return dict(points[0])

        def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
            point = self.live.pop(trial_id, None)
            if point is None:
                return
            value = None if error or not result else result.get(self.metric)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                value = None
            self.steering.tell(point, value)

    return SteeringAlgorithm()


def make_search_alg(hpo: Mapping[str, Any], space: SearchSpace, metric: str, mode: str, num_trials: int) -> tuple[Any, dict[str, Any], set[str], int]:
    """``(search_alg, param_space, unit_dims, num_samples)`` for the hpo_config."""
    from ray.tune.search import BasicVariantGenerator, ConcurrencyLimiter

    algorithm = hpo.get("algorithm", "random")
    if algorithm == "bohb" and hpo.get("scheduler") == "bohbhyperband":
        algorithm = "ray:bohb"  # HyperBandForBOHB talks to Ray's TuneBOHB only
    params = dict(hpo.get("algorithm_param") or {})
    seed = hpo.get("seed")
    limit = int(hpo.get("max_concurrent") or 1)
    if algorithm in VARIANT_ALGORITHMS:
        if params:
            raise ConfigError(f"algorithm {algorithm!r} takes no algorithm_param, got {sorted(params)}")
        grid = algorithm != "random"
        param_space, unit = ray_param_space(space, grid=grid)
        combos = len(space.grid_combinations()) if grid and space.grid_dims else 1
        samples = 1 if algorithm == "grid" else max(1, math.ceil(num_trials / combos))
        return BasicVariantGenerator(max_concurrent=limit, random_state=seed), param_space, unit, samples
    if algorithm in STEERING_SEARCHERS:
        searcher = steering_searcher(space, algorithm, params, seed, metric, mode, num_trials)
        return ConcurrencyLimiter(searcher, max_concurrent=limit), {}, set(), num_trials
    param_space, unit = ray_param_space(space, grid=False)
    algorithm = algorithm.split(":", 1)[1]  # ray:NAME -> Ray Tune's own searcher NAME
    try:
        if algorithm == "hyperopt":
            from ray.tune.search.hyperopt import HyperOptSearch

            searcher = HyperOptSearch(random_state_seed=seed, **params)
        elif algorithm == "optuna":
            from ray.tune.search.optuna import OptunaSearch

            searcher = OptunaSearch(seed=seed, **params)
        elif algorithm == "nevergrad":
            import nevergrad as ng
            from ray.tune.search.nevergrad import NevergradSearch

            # NGOpt's MetaModel (nevergrad 1.0.12) crashes under numpy >= 2.4 once it has a few points;
            # CMA is what NGOpt runs for these spaces. algorithm_param {"method": ...} picks another.
            method = params.pop("method", "CMA")
            if method not in ng.optimizers.registry:
                raise ConfigError(f"algorithm 'nevergrad': unknown method {method!r}; e.g. NGOpt, CMA, OnePlusOne, TwoPointsDE")
            kwargs = {"budget": params.pop("budget", num_trials), **params}
            searcher = NevergradSearch(optimizer=ng.optimizers.registry[method], optimizer_kwargs=kwargs)
        else:  # bohb
            from ray.tune.search.bohb import TuneBOHB

            searcher = TuneBOHB(seed=seed, **params)
    except ImportError as exc:
        raise ConfigError(f"algorithm {algorithm!r} needs a library that is not installed ({exc.name or exc}): "
                          f"pip install 'hpogrid[steering]'") from exc
    except (TypeError, AssertionError) as exc:
        raise ConfigError(f"algorithm {algorithm!r}: bad algorithm_param {params}: {exc}") from exc
    return ConcurrencyLimiter(searcher, max_concurrent=limit), param_space, unit, num_trials


def make_scheduler(hpo: Mapping[str, Any], space: SearchSpace) -> Any:
    from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler, HyperBandForBOHB, PopulationBasedTraining

    name = hpo.get("scheduler") or "fifo"
    params = dict(hpo.get("scheduler_param") or {})
    max_t = (hpo.get("stop") or {}).get("training_iteration")
    try:
        if name == "fifo":
            if params:
                raise ConfigError(f"scheduler 'fifo' takes no scheduler_param, got {sorted(params)}")
            return FIFOScheduler()
        if name == "asynchyperband":
            if max_t is not None:
                params.setdefault("max_t", max_t)
            return AsyncHyperBandScheduler(**params)
        if name == "bohbhyperband":
            if max_t is not None:
                params.setdefault("max_t", max_t)
            return HyperBandForBOHB(**params)
        params.setdefault("perturbation_interval", 1)
        return PopulationBasedTraining(hyperparam_mutations=pbt_mutations(space), **params)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, HpogridError):
            raise
        raise ConfigError(f"scheduler {name!r}: bad scheduler_param {params}: {exc}") from exc

