"""Ray Tune's run for ``local_run``: the user's trainable (adapted as ``hpogrid-evaluate`` adapts it),
Ray's start (a private instance, or a cluster's address), the stop rule and ``Tuner.fit``."""

from __future__ import annotations

import contextlib
import copy
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from ..errors import CampaignError, HpogridError

__all__ = ["make_trainable", "token_auth_for", "quiet", "stopper", "fit", "RAY_LOG_NAME"]

RAY_LOG_NAME = "ray-stderr.log"  # Ray's own output without --verbose, in the campaign's log folder


def make_trainable(project: Mapping[str, Any], scripts: Path, mapper: Callable[[dict], dict], workdir: str) -> tuple[type, str, Any]:
    from ray.tune.trainable.function_trainable import FunctionTrainable

    from hpogrid.evaluator.adapters import adapt, ensure_train_report_compat, load_script, prepare_ray_environment

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
            ensure_train_report_compat()
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


def token_auth_for(address: str) -> None:
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
def quiet(log_file: Path, enabled: bool) -> Iterator[None]:
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


def stopper(stop: Mapping[str, float], recorder: Any) -> Any:
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


def fit(trainable: type, module: Any, scripts: Path, param_space: dict, param: dict, search_alg: Any, scheduler: Any,
         metric: str, mode: str, num_samples: int, stop: Any, log_dir: Path, verbose: bool, address: str | None,
         num_cpus: int | None, cpus: float, gpus: float, recorder: Any) -> None:
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
