"""``hpogrid local_run``: run a project's whole search on this machine (or a Ray cluster) with Ray Tune.

The project's hpo_config decides everything (per-run overrides: ``--algorithm``, ``--num_trials``,
``--max_concurrent``, ``--seed``, ``--stop``, ``--max_failures``): the algorithm (hpogrid's steering
algorithm wrapped as a Ray Tune ``Searcher``, the same as ``submit_idds`` runs; Ray Tune's own
searchers by the names ``ray:hyperopt``, ``ray:optuna``, ``ray:nevergrad``, ``ray:bohb``), the
scheduler (with ``scheduler_param``), ``num_trials``, ``max_concurrent``, ``stop`` (none: each
training runs until it returns), ``max_failures``, ``log_dir``, ``verbose``, ``seed`` (a fresh one,
stored and shown, when none is given). The pre-flight of :mod:`hpogrid.client.preflight` runs first. The training script is adapted exactly as ``hpogrid-evaluate`` adapts it
(:mod:`hpogrid.evaluator.adapters`), so the five script styles behave the same in both.

Each trial is recorded in a new campaign of the project (backend ``local_run``) as a point:
``running`` at start, then ``finished`` with its last reported metric (loss = metric, negated for
``mode: max``) or ``failed`` with the reason; ``hpogrid report`` reads it like any other campaign.

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

import contextlib
import copy
import math
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from hpogrid.steering.space import Dimension, SearchSpace

from . import campaigns, projects
from .errors import CampaignError, ConfigError, HpogridError
from .records import CampaignState, Point, PointState

__all__ = ["local_run", "LocalRunResult", "check_combination", "RAY_SEARCHERS", "STEERING_SEARCHERS", "SCHEDULER_RULES"]

VARIANT_ALGORITHMS = ("random", "tune", "grid")
RAY_SEARCHERS = ("ray:hyperopt", "ray:optuna", "ray:nevergrad", "ray:bohb")
STEERING_SEARCHERS = ("hyperopt", "optuna", "nevergrad", "bohb", "bayesian", "skopt", "ax")
SCHEDULER_RULES: dict[str, tuple[str, ...]] = {
    "fifo": VARIANT_ALGORITHMS + RAY_SEARCHERS + STEERING_SEARCHERS,
    "asynchyperband": VARIANT_ALGORITHMS + RAY_SEARCHERS + STEERING_SEARCHERS,
    "bohbhyperband": ("ray:bohb", "bohb"),
    "pbt": VARIANT_ALGORITHMS,
}
_RAY_LOG_NAME = "ray-stderr.log"


@dataclass
class LocalRunResult:
    """What a finished ``local_run`` returns: its campaign, the trials as stored, the best one."""

    campaign_id: str
    campaign_dir: Path
    metric: str
    mode: str
    points: list[Point]
    best: Point | None
    seconds: float
    log_dir: Path
    counts: dict[str, int] = field(default_factory=dict)
    seed: int | None = None
    status: str = "finished"
    message: str | None = None


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


# ---- the trainable ----------------------------------------------------------------------------
def _trainable(project: Mapping[str, Any], scripts: Path, mapper: Callable[[dict], dict], workdir: str) -> tuple[type, str, Any]:
    from ray.tune.trainable.function_trainable import FunctionTrainable

    from hpogrid.evaluator.adapters import _ensure_train_report_compat, adapt, load_script, prepare_ray_environment

    model = project["model_config"]
    prepare_ray_environment()
    script = scripts / model["script"]
    try:
        module = load_script(script)
    except HpogridError:
        raise
    except Exception as exc:
        raise CampaignError(f"importing {script.name} failed: {type(exc).__name__}: {exc}") from exc
    from hpogrid.evaluator.errors import ScriptError

    if not hasattr(module, model["model"]):
        raise CampaignError(f"training script {script.name} has no function or class named '{model['model']}'")
    try:
        base, style = adapt(getattr(module, model["model"]), model["model"])
    except ScriptError as exc:
        raise CampaignError(str(exc)) from exc

    class HpogridTrainable(base):  # type: ignore[misc, valid-type]
        """The adapted user trainable; configs mapped to valid points, run where the data lies."""

        def __init__(self, config: dict | None = None, *args: Any, **kwargs: Any) -> None:
            # in the Ray worker: the same environment as hpogrid-evaluate gives a job
            os.environ["RAY_CHDIR_TO_TRIAL_DIR"] = "0"
            _ensure_train_report_compat()
            if os.path.isdir(workdir):
                os.chdir(workdir)
            super().__init__(mapper(dict(config or {})), *args, **kwargs)

        def reset(self, new_config: dict, *args: Any, **kwargs: Any) -> bool:
            return super().reset(mapper(dict(new_config)), *args, **kwargs)

    if not issubclass(base, FunctionTrainable) and not _defines_reset(base):
        def reset_config(self: Any, new_config: dict) -> bool:
            """Actor reuse for a class without ``reset_config``: clean up, then ``setup`` again
            (a new trial in the same process, without Ray's seconds of actor start-up)."""
            self.cleanup()
            self.setup(copy.deepcopy(new_config))
            return True

        HpogridTrainable.reset_config = reset_config  # type: ignore[method-assign]

    HpogridTrainable.__name__ = HpogridTrainable.__qualname__ = model["model"]
    return HpogridTrainable, style, module


def _token_auth_for(address: str) -> None:
    """Ray 2.x: ``ray start --head`` turns token authentication on when a token exists
    (``~/.ray/auth_token``, ``$RAY_AUTH_TOKEN``, ``$RAY_AUTH_TOKEN_PATH``), but a driver given an
    explicit address never does. Do what ``ray start`` did, unless ``RAY_AUTH_MODE`` says otherwise
    (or Ray was imported already, when the caller's settings stand)."""
    if "ray" in sys.modules:
        return
    if os.environ.get("RAY_AUTH_MODE") is not None:
        return
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or os.path.expanduser("~/.ray/auth_token")
    if os.environ.get("RAY_AUTH_TOKEN") or os.path.isfile(path):
        os.environ["RAY_AUTH_MODE"] = "token"


def _script_modules(scripts: Path, module: Any) -> list[Any]:
    root = str(scripts.resolve())
    found = [module]
    for mod in list(sys.modules.values()):
        path = getattr(mod, "__file__", None)
        if mod is not module and path and os.path.abspath(path).startswith(root + os.sep):
            found.append(mod)
    return found


def _defines_reset(cls: type) -> bool:
    from ray.tune import Trainable

    return getattr(cls, "reset_config", None) is not Trainable.reset_config


# ---- quiet Ray -------------------------------------------------------------------------------------
@contextlib.contextmanager
def _quiet(log_file: Path, enabled: bool) -> Iterator[None]:
    """Send this process's stderr (Ray's start-up warnings, C++ logs) to ``log_file``."""
    if not enabled:
        yield
        return
    log_file.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    saved = os.dup(2)
    fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 2)
    os.close(fd)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


# ---- the run ---------------------------------------------------------------------------------------
def local_run(
    project_name: str,
    *,
    ray_address: str | None = None,
    verbose: bool | None = None,
    cpus_per_trial: float = 1.0,
    gpus_per_trial: float = 0.0,
    num_cpus: int | None = None,
    echo: Callable[[str], None] = print,
    overrides: Mapping[str, Any] | None = None,
) -> LocalRunResult:
    """Run the search of ``project_name`` with Ray Tune and record it as a ``local_run`` campaign.

    ``ray_address`` (else ``$RAY_ADDRESS``) joins an existing Ray cluster; without it a private Ray
    instance is started (``num_cpus`` CPUs, default all) and stopped. ``verbose`` (default: the
    hpo_config's) shows Ray's own output; otherwise it goes to ``<log_dir>/ray-stderr.log``.
    ``overrides``: hpo_config fields for this run only (:data:`hpogrid.client.preflight.OVERRIDABLE`).
    """
    from hpogrid.steering.errors import SteeringError

    from .preflight import check_script, plan_run

    # the pre-flight, nothing written on failure: cheap checks first, the script's subprocess check below
    plan = plan_run(project_name, overrides, backend="local_run", script=False)
    project = plan.project
    hpo = dict(plan.hpo)
    try:
        space = SearchSpace.parse(project["search_space"])
    except SteeringError as exc:
        raise ConfigError(str(exc)) from exc
    check_combination(hpo, space)
    if cpus_per_trial <= 0 or gpus_per_trial < 0:
        raise ConfigError(f"cpus_per_trial > 0 and gpus_per_trial >= 0 must hold, got {cpus_per_trial}, {gpus_per_trial}")
    verbose = bool(hpo.get("verbose")) if verbose is None else verbose
    metric, mode = hpo["metric"], hpo["mode"]
    num_trials = int(hpo.get("num_trials") or 1)
    stop = dict(hpo.get("stop") or {})
    address = ray_address or os.environ.get("RAY_ADDRESS") or None
    param = dict(project["model_config"].get("param") or {})
    if address:
        _token_auth_for(address)  # before Ray is imported: its core reads the mode once

    try:
        search_alg, param_space, unit, num_samples = make_search_alg(hpo, space, metric, mode, num_trials)
    except SteeringError as exc:
        raise ConfigError(str(exc)) from exc
    scheduler = make_scheduler(hpo, space)
    mapper = make_config_mapper(space, unit)
    scripts = projects.scripts_dir(project_name)
    workdir = os.getcwd()
    check_script(projects.path(project_name))  # before this process imports the script itself
    trainable, style, module = _trainable(project, scripts, mapper, workdir)
    if not stop and style.startswith("trainable"):
        stop = {"training_iteration": 1}  # as hpogrid-evaluate: a Trainable class never returns by itself
        echo("note: a Trainable class without `stop` runs one iteration (set --stop to train longer)")

    store = campaigns.new(
        project_name, "local_run", algorithm=hpo.get("algorithm"), metric=metric, mode=mode, max_points=num_trials,
        max_concurrent=int(hpo.get("max_concurrent") or 1), pid=os.getpid(),
        settings={**plan.settings(), "scheduler": hpo.get("scheduler"), "stop": stop, "style": style,
                  "ray_address": address, "cpus_per_trial": cpus_per_trial, "gpus_per_trial": gpus_per_trial},
    )
    campaign = store.campaign()
    campaign_dir = store.path.parent
    log_dir = Path(hpo.get("log_dir") or "log")
    log_dir = log_dir if log_dir.is_absolute() else campaign_dir / log_dir
    log_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    store.update_campaign(status=CampaignState.RUNNING, started=started)
    echo(f"local_run {project_name}: campaign {campaign.id}, algorithm {hpo.get('algorithm')}, "
         f"scheduler {hpo.get('scheduler')}, {num_trials} trials, {hpo.get('max_concurrent')} at once, "
         f"stop {stop or 'none (each training runs until it returns)'}, seed {plan.seed}"
         + (f", Ray at {address}" if address else ""))
    if hpo.get("algorithm") == "tune" and num_samples * max(1, len(space.grid_combinations()) if space.grid_dims else 1) > num_trials:
        echo(f"note: algorithm 'tune' repeats the whole grid: {num_samples} x {len(space.grid_combinations())} trials")
    recorder = _recorder(store, space, mapper, metric, mode, num_trials, echo)
    recorder.max_failures = int(hpo.get("max_failures") or 0)
    recorder.stop = dict(stop or {})
    status, message = "failed", ""
    try:
        with _quiet(log_dir / _RAY_LOG_NAME, enabled=not verbose):
            _fit(trainable, module, scripts, param_space, param, search_alg, scheduler, metric, mode, num_samples,
                 _stopper(stop, recorder), log_dir, verbose, address, num_cpus, cpus_per_trial, gpus_per_trial,
                 recorder)
        status = "finished"
        if recorder.stopped_because:
            status, message = "failed", recorder.stopped_because
    except KeyboardInterrupt:
        status, message = "interrupted", "interrupted by the user"
        raise
    except Exception as exc:
        message = f"{type(exc).__name__}: {exc}"
        raise CampaignError(f"the Ray Tune run failed: {' '.join(str(exc).split())[:300]}"
                            + ("" if verbose else f" (Ray's log: {log_dir / _RAY_LOG_NAME})")) from exc
    finally:
        recorder.close_open(message or "the run ended before this trial finished")
        store.update_campaign(status=status, ended=time.time(), message=message or None)
        points = store.points()
        best = store.best()
        counts = store.counts()
        store.close()
    result = LocalRunResult(str(campaign.id), campaign_dir, metric, mode, points, best, time.time() - started,
                            log_dir, counts, seed=plan.seed, status=status, message=message or None)
    for line in summary_lines(result, space.names):
        echo(line)
    return result


def _stopper(stop: Mapping[str, float], recorder: "_Recorder") -> Any:
    """Ray Tune's stop rule for the run: the ``stop`` criteria per trial (Ray's dict rule, any
    ``result[key] >= value``), and the whole run once ``max_failures`` trials failed in a row."""
    from ray.tune.stopper import Stopper

    from hpogrid.evaluator.runner import stop_reached

    class CampaignStopper(Stopper):
        def __call__(self, trial_id: str, result: dict) -> bool:
            return bool(stop) and stop_reached(result, stop)

        def stop_all(self) -> bool:
            return recorder.stopped_because is not None

    return CampaignStopper()


def _fit(trainable: type, module: Any, scripts: Path, param_space: dict, param: dict, search_alg: Any, scheduler: Any,
         metric: str, mode: str, num_samples: int, stop: Any, log_dir: Path, verbose: bool, address: str | None,
         num_cpus: int | None, cpus: float, gpus: float, recorder: "_Recorder") -> None:
    import logging

    import ray
    import ray.cloudpickle
    from ray import tune

    # the script and the helper modules beside it travel by value: workers (on any node) need no path
    for mod in _script_modules(scripts, module):
        ray.cloudpickle.register_pickle_by_value(mod)
    env_vars = {
        "RAY_TRAIN_V2_ENABLED": os.environ.get("RAY_TRAIN_V2_ENABLED", "0"),
        "RAY_CHDIR_TO_TRIAL_DIR": "0",
        "TUNE_DISABLE_STRICT_METRIC_CHECKING": "1",
        "PYTHONPATH": os.pathsep.join(p for p in (str(scripts), os.environ.get("PYTHONPATH", "")) if p),
    }
    if not verbose:
        env_vars["PYTHONWARNINGS"] = "ignore"
    init = {
        "include_dashboard": False,
        "log_to_driver": verbose,
        "logging_level": logging.INFO if verbose else logging.ERROR,
        "runtime_env": {"env_vars": env_vars},
        "ignore_reinit_error": True,
    }
    if address:
        init["address"] = address
    else:
        init["address"] = "local"  # a private instance, never a cluster `ray start` left on this machine
        if num_cpus is not None:
            init["num_cpus"] = num_cpus
    started_here = not ray.is_initialized()
    if started_here:  # an initialised Ray (a caller's) is used as it is
        ray.init(**init)
    # a missing metric fails one trial, not the run; without --verbose no Tune tables or per-trial loggers
    quiet_env = {"TUNE_DISABLE_STRICT_METRIC_CHECKING": "1"}
    if not verbose:
        quiet_env.update(RAY_AIR_NEW_OUTPUT="0", TUNE_DISABLE_AUTO_CALLBACK_LOGGERS="1")
    saved = {k: os.environ.get(k) for k in quiet_env}
    os.environ.update(quiet_env)
    try:
        tuner = tune.Tuner(
            tune.with_resources(trainable, {"cpu": cpus, "gpu": gpus}),
            param_space={**param, **param_space},
            tune_config=tune.TuneConfig(metric=metric, mode=mode, search_alg=search_alg, scheduler=scheduler,
                                        num_samples=num_samples, reuse_actors=True),
            run_config=tune.RunConfig(name="local_run", storage_path=str(log_dir), stop=stop,
                                      verbose=1 if verbose else 0, callbacks=[recorder],
                                      failure_config=tune.FailureConfig(max_failures=0)),
        )
        tuner.fit()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if started_here:
            ray.shutdown()


def _recorder(*args: Any) -> "_Recorder":
    """A :class:`_Recorder` that is also a ``ray.tune.Callback`` (Ray is imported only now)."""
    from ray.tune import Callback

    cls = type("Recorder", (_Recorder, Callback), {})
    return cls(*args)


class _Recorder:
    """Ray Tune callback hooks that write each trial into the campaign store as a point and print
    one progress line per finished trial (mixed with ``ray.tune.Callback`` by :func:`_recorder`)."""

    def __init__(self, store: Any, space: SearchSpace, mapper: Callable, metric: str, mode: str, total: int,
                 echo: Callable[[str], None]):
        self.store, self.space, self.mapper, self.metric, self.mode = store, space, mapper, metric, mode
        self.total, self.echo = total, echo
        self.ids: dict[str, int] = {}
        self.started: dict[str, float] = {}
        self.results: dict[str, list[dict[str, Any]]] = {}
        self.records: dict[str, list[dict[str, Any]]] = {}
        self.cut: dict[str, bool] = {}  # trial id -> stopped early by the scheduler
        self.done = 0
        self.best: float | None = None
        self.host = os.uname().nodename
        self.max_failures = 0
        self.stop: dict[str, float] = {}  # the run's stop criteria: a trial that meets them is not cut short
        self.failed_in_a_row = 0
        self.stopped_because: str | None = None

    def __getstate__(self) -> dict[str, Any]:
        """Ray pickles the run config (callbacks included) for its experiment state; the store
        connection and the printer stay with the live object."""
        state = dict(self.__dict__)
        state.update(store=None, echo=None, mapper=None)
        return state

    # Ray Tune callback hooks
    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if trial.trial_id in self.ids:
            return
        point = point_of(trial.config, self.space, self.mapper)
        (pid,) = self.store.add_points([point])
        self.store.start_point(pid, host=self.host, job_dir=str(getattr(trial, "local_path", "") or "") or None)
        self.ids[trial.trial_id] = pid
        self.started[trial.trial_id] = time.time()
        self.results[trial.trial_id] = []
        self.records[trial.trial_id] = []

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        from hpogrid.evaluator.runner import result_record

        if trial.trial_id not in self.ids:
            self.on_trial_start(iteration, trials, trial)
        self.results[trial.trial_id].append({k: v for k, v in result.items() if k != "config"})
        self.cut[trial.trial_id] = _cut_short(result, self.stop)
        self.records[trial.trial_id].append(result_record(result, time.time()))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        from hpogrid.evaluator.program import evaluate_results
        from hpogrid.evaluator.status import Status

        pid = self._pid(trial)
        status, loss, message = evaluate_results(self.results[trial.trial_id], self.metric, self.mode)
        records = self.records[trial.trial_id][-500:]
        if status == Status.OK and self.cut.get(trial.trial_id):
            metric = loss if self.mode == "min" else -loss
            self.store.stop_point(pid, loss=loss, metric=metric, reports=records, host=self.host,
                                  message=f"by the scheduler at iteration {len(records)}")
            self._progress(trial, f"stopped early, {self.metric}={_fmt(metric)}")
        elif status == Status.OK:
            metric = loss if self.mode == "min" else -loss
            self.store.finish_point(pid, loss=loss, metric=metric, reports=records, host=self.host)
            self.best = loss if self.best is None else min(self.best, loss)
            self.failed_in_a_row = 0
            self._progress(trial, f"{self.metric}={_fmt(metric)}")
        else:
            self._failed(trial, pid, message, records)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        pid = self._pid(trial)
        self._failed(trial, pid, _trial_error(trial), self.records[trial.trial_id][-500:])

    def _failed(self, trial: Any, pid: int, message: str, records: list) -> None:
        self.store.fail_point(pid, message, reports=records, host=self.host)
        self._progress(trial, f"failed: {message}")
        self.failed_in_a_row += 1
        if self.max_failures and self.failed_in_a_row >= self.max_failures and self.stopped_because is None:
            self.stopped_because = (f"stopped after {self.failed_in_a_row} trials failed in a row (max_failures "
                                    f"{self.max_failures}); last reason: {message}")

    # helpers
    def _pid(self, trial: Any) -> int:
        if trial.trial_id not in self.ids:
            self.on_trial_start(0, [], trial)
        return self.ids[trial.trial_id]

    def _progress(self, trial: Any, what: str) -> None:
        self.done += 1
        seconds = time.time() - self.started.get(trial.trial_id, time.time())
        n = len(self.records.get(trial.trial_id, []))
        best = "" if self.best is None else f"  best {self.metric}={_fmt(self.best if self.mode == 'min' else -self.best)}"
        self.echo(f"[{self.done}/{self.total}] trial {self.ids[trial.trial_id]}: {what} "
                  f"({n} iteration{'s' if n != 1 else ''}, {seconds:.1f} s){best}")

    def close_open(self, message: str) -> None:
        for tid, pid in self.ids.items():
            try:
                point = self.store.point(pid)
            except HpogridError:
                continue
            if point.state is PointState.RUNNING:
                self.store.fail_point(pid, message, reports=self.records.get(tid, [])[-500:], host=self.host)



def _cut_short(result: dict, stop: Mapping[str, float]) -> bool:
    """Whether the scheduler stopped the trial at ``result``: Ray Tune marks a result ``done`` when
    it decides to stop the trial, which is the scheduler's doing unless the run's stop criteria are
    met (a trial that returns by itself ends after a result that is not ``done``)."""
    from hpogrid.evaluator.runner import stop_reached

    return bool(result.get("done")) and not (stop and stop_reached(result, stop))


def _trial_error(trial: Any) -> str:
    path = getattr(trial, "error_file", None)
    text = ""
    try:
        if path and os.path.exists(path):
            text = Path(path).read_text(errors="replace")
    except OSError:
        pass
    if not text:
        text = str(getattr(trial, "error_msg", "") or "the trial failed")
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    # Ray appends its own frames; the user's exception is the last "Name: message" line
    for line in reversed(lines):
        head = line.split(":", 1)[0]
        if head and head.replace(".", "").replace("_", "").isalnum() and (head.endswith("Error") or head.endswith("Exception") or head in ("SystemExit", "KeyboardInterrupt")):
            return line[:300]
    return (lines[-1] if lines else "the trial failed")[:300]


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.6g}"


def summary_lines(result: LocalRunResult, names: list[str], limit: int = 20) -> list[str]:
    """The end-of-run table: trials sorted by the metric (best first), then the best config."""
    finished = [p for p in result.points if p.state is PointState.FINISHED and p.loss is not None]
    failed = [p for p in result.points if p.state is not PointState.FINISHED or p.loss is None]
    finished.sort(key=lambda p: (p.loss, p.id))
    rows = finished + failed
    header = ["trial", *names, result.metric, "iterations", "state"]
    body = []
    for p in rows[:limit]:
        body.append([str(p.id), *(_cell(p.params.get(n)) for n in names),
                     _fmt(p.metric) if p.metric is not None else "-", str(len(p.reports or [])),
                     p.state.value if p.state is PointState.FINISHED else f"{p.state}: {(p.message or '')[:40]}"])
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(header)]
    from .engine import Progress, failure_lines

    stopped = sum(p.state is PointState.STOPPED for p in failed)  # cut short by the scheduler: not failures
    lines = [f"\n{len(finished)} finished, " + (f"{stopped} stopped early, " if stopped else "")
             + f"{len(failed) - stopped} failed in {result.seconds:.1f} s "
             f"(campaign {result.campaign_id}, seed {result.seed}; `hpogrid report` shows it again)"]
    if result.status != "finished" and result.message:
        lines.append(f"campaign {result.campaign_id} {result.status}: {result.message}")
    reasons = Progress(result.campaign_id, 0)
    for p in failed:
        if p.state is not PointState.STOPPED:
            reasons.count_failure(p.message)
    lines += [line.replace("{id}", str(result.campaign_id)) for line in failure_lines(reasons.failure_reasons)]
    lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in body]
    if len(rows) > limit:
        lines.append(f"... {len(rows) - limit} more")
    if result.best is not None:
        lines.append(f"best {result.metric}: {_fmt(result.best.metric)}  config: {result.best.params}")
    else:
        lines.append("no trial finished with a value of the metric")
    return lines


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
