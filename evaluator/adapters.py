"""Turn a user's training script into a Ray Tune trainable class, whatever its style.

Styles accepted (all run through Ray Tune's own ``FunctionTrainable`` / ``Trainable`` machinery, so
``ray.tune.report``, ``ray.train.report``, ``ray.tune.get_checkpoint`` and the ``train()`` loop behave
as under Ray Tune):

1. ``f(config, reporter)`` calling ``reporter(loss=...)`` (hpogrid 1.x / Ray 1.x): adapted, the
   reporter forwards to ``ray.tune.report``;
2. ``f(config)`` calling ``ray.tune.report({...})`` or ``ray.train.report({...})``, once or per iteration;
3. ``f(config)`` returning a dict of metrics (or a number, reported as ``_metric``);
4. a ``ray.tune.Trainable`` subclass with Ray 2.x methods (``setup``, ``step``, ``save_checkpoint``,
   ``load_checkpoint``);
5. a ``Trainable`` subclass with Ray 1.x names (``_setup``, ``_train``, ``_save``, ``_restore``,
   ``_stop``, ``_reset_config``): adapted to the Ray 2.x names.

``load_trainable`` is shared by the evaluator and ``hpogrid local_run``.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

from .errors import ScriptError

__all__ = ["load_trainable", "load_script", "adapt", "check_model", "model_style", "prepare_ray_environment",
           "ensure_train_report_compat", "Reporter", "STYLES"]

STYLES = ("function_reporter", "function_report", "function_return", "trainable", "trainable_legacy")

_LEGACY_MARKER = ".hpogrid_legacy_checkpoint.json"


def prepare_ray_environment() -> None:
    """Environment Ray must see before it is imported, for Ray Tune scripts to run unchanged.

    - ``RAY_TRAIN_V2_ENABLED=0``: with Ray Train v2 (the 2.x default) ``ray.train.report`` raises inside
      a Tune function; v1 keeps it working (with Ray's own deprecation warning), as scripts expect.
    - ``RAY_CHDIR_TO_TRIAL_DIR=0``: the training runs where its input data lies.
    Values already set by the user win.
    """
    os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "0")
    os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")


def ensure_train_report_compat() -> None:
    """If ``ray.train`` was imported before :func:`prepare_ray_environment` (Train v2), route
    ``ray.train.report``/``get_checkpoint`` to Ray Tune's session when called in a Tune function."""
    import ray.train
    from ray.train._internal import session as v1

    if getattr(ray.train, "report", None) is v1.report:
        return
    import ray.tune

    v2_report, v2_get_checkpoint = ray.train.report, ray.train.get_checkpoint

    def report(metrics: dict, *, checkpoint: Any = None, **kwargs: Any) -> None:
        if v1.get_session() is not None:
            return ray.tune.report(metrics, checkpoint=checkpoint)
        return v2_report(metrics, checkpoint=checkpoint, **kwargs)

    def get_checkpoint() -> Any:
        if v1.get_session() is not None:
            return ray.tune.get_checkpoint()
        return v2_get_checkpoint()

    ray.train.report, ray.train.get_checkpoint = report, get_checkpoint


def load_script(script_path: Path, module_name: str | None = None) -> ModuleType:
    """Import the training script by path, with its folder first on ``sys.path`` (so helper modules
    beside it import). Errors raised while the script runs its top level propagate unchanged."""
    script_path = Path(script_path)
    if not script_path.is_file():
        raise ScriptError(f"training script {script_path} does not exist")
    if script_path.suffix != ".py":
        raise ScriptError(f"training script must be a .py file, got {script_path.name}")
    folder = str(script_path.parent.resolve())
    if folder not in sys.path:
        sys.path.insert(0, folder)
    name = module_name or script_path.stem
    spec = importlib.util.spec_from_file_location(name, script_path)
    if spec is None or spec.loader is None:  # pragma: no cover - only for odd paths
        raise ScriptError(f"cannot import training script {script_path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def load_trainable(script_path: Path, model: str, module: ModuleType | None = None) -> tuple[type, str]:
    """The Ray Tune trainable class for ``model`` in ``script_path``, and its style name. ``module``:
    the script already imported in this process (``preload.preloaded_module``, a fork server's
    parent), else the script is imported now."""
    prepare_ray_environment()
    if module is None:
        module = load_script(script_path)
    return adapt(_find_model(module, script_path, model), model)


def check_model(script_path: Path, model: str) -> str:
    """The pre-flight check of a training script: it imports, ``model`` exists and has one of the
    five styles. Returns the style name; raises :class:`ScriptError` with one line otherwise
    (an exception of the script's top level included). Imports Ray only if the script does."""
    prepare_ray_environment()
    try:
        module = load_script(script_path)
    except ScriptError:
        raise
    except BaseException as exc:  # the script's own top level: user code, any exception
        last = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        raise ScriptError(f"importing training script {Path(script_path).name} failed: {last}") from None
    return model_style(_find_model(module, script_path, model), model)


def _find_model(module: ModuleType, script_path: Path, model: str) -> Any:
    if not hasattr(module, model):
        found = sorted(
            n for n, v in vars(module).items()
            if not n.startswith("_") and (inspect.isfunction(v) or inspect.isclass(v)) and getattr(v, "__module__", None) == module.__name__
        )
        raise ScriptError(
            f"training script {Path(script_path).name} has no function or class named '{model}'"
            + (f"; it defines: {', '.join(found)}" if found else "")
        )
    return getattr(module, model)


class Reporter:
    """The ``reporter`` of Ray 1.x function trainables: ``reporter(loss=..., accuracy=...)``.

    Each call is one ``ray.tune.report`` (one training iteration). ``reporter(0.3)`` reports
    ``{"_metric": 0.3}``, as Ray 1.x did; a dict as first argument is merged in.
    """

    def __call__(self, _metric: Any = None, **metrics: Any) -> None:
        import ray.tune

        if isinstance(_metric, dict):
            metrics = {**_metric, **metrics}
        elif _metric is not None:
            metrics["_metric"] = _metric
        ray.tune.report(metrics)

    @property
    def trial_id(self) -> str:
        import ray.tune

        return ray.tune.get_context().get_trial_id()

    @property
    def trial_name(self) -> str:
        import ray.tune

        return ray.tune.get_context().get_trial_name()

    @property
    def logdir(self) -> str:
        return os.getcwd()


def _positional(func: Callable[..., Any]) -> list[inspect.Parameter]:
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError) as exc:
        raise ScriptError(f"cannot read the signature of {func!r}: {exc}") from exc
    return [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty]


def model_style(obj: Any, name: str) -> str:
    """Which of the five styles (:data:`STYLES`) ``obj`` has; :class:`ScriptError` if none. The one
    rule for both :func:`adapt` and the pre-flight :func:`check_model` (no Ray import of its own: a
    Trainable subclass means the script imported ``ray.tune`` already)."""
    if inspect.isclass(obj):
        tune = sys.modules.get("ray.tune")
        trainable = getattr(tune, "Trainable", None) if tune is not None else None
        if trainable is None or not issubclass(obj, trainable):
            raise ScriptError(f"'{name}' is a class but not a ray.tune.Trainable subclass")
        return "trainable_legacy" if _is_legacy(obj) else "trainable"
    if not callable(obj):
        raise ScriptError(f"'{name}' is neither a function nor a ray.tune.Trainable subclass (got {type(obj).__name__})")
    required = _positional(obj)
    if len(required) == 0:
        raise ScriptError(f"function '{name}' must take the config dict as first argument: def {name}(config)")
    if len(required) == 1:
        if not inspect.isgeneratorfunction(obj) and _returns_value(obj):
            return "function_return"
        return "function_report"
    if len(required) == 2:
        return "function_reporter"
    raise ScriptError(
        f"function '{name}' takes {len(required)} required arguments; expected f(config) or f(config, reporter)"
    )


def adapt(obj: Any, name: str) -> tuple[type, str]:
    """Adapt a user function or Trainable class to a Ray Tune trainable class."""
    ensure_train_report_compat()
    from ray.tune.trainable.function_trainable import wrap_function

    style = model_style(obj, name)
    if style == "trainable_legacy":
        return _legacy_trainable(obj), style
    if style == "trainable":
        return obj, style
    if style == "function_reporter":
        def with_reporter(config: dict) -> Any:
            return obj(config, Reporter())

        with_reporter.__name__ = getattr(obj, "__name__", name)
        with_reporter.__qualname__ = with_reporter.__name__
        return wrap_function(with_reporter, name=name), style
    return wrap_function(obj, name=name), style


def _returns_value(func: Callable[..., Any]) -> bool:
    """Best effort, for meta.json only: does the source contain ``return <something>``?"""
    try:
        source = inspect.getsource(func)
    except (OSError, TypeError):
        return False
    return any(line.strip().startswith("return ") for line in source.splitlines())


def _overrides(cls: type, attr: str) -> bool:
    from ray.tune import Trainable

    return getattr(cls, attr, None) is not getattr(Trainable, attr, None)


def _is_legacy(cls: type) -> bool:
    return hasattr(cls, "_train") and not _overrides(cls, "step")


def _legacy_trainable(cls: type) -> type:
    """Subclass ``cls`` with the Ray 2.x method names calling the Ray 1.x ones.

    Ray 1.x ``_save(checkpoint_dir)`` returned a path inside the folder (or a dict); Ray 2.x wants
    ``None`` (or a dict), so the returned path is remembered in a marker file and handed back to
    ``_restore(path)``.
    """
    ns: dict[str, Any] = {"__module__": cls.__module__, "__qualname__": cls.__qualname__, "__doc__": cls.__doc__}
    if hasattr(cls, "_setup") and not _overrides(cls, "setup"):
        def setup(self: Any, config: dict) -> None:
            self._setup(config)

        ns["setup"] = setup

    def step(self: Any) -> dict:
        return self._train()

    ns["step"] = step
    if hasattr(cls, "_save") and not _overrides(cls, "save_checkpoint"):
        def save_checkpoint(self: Any, checkpoint_dir: str) -> Any:
            out = self._save(checkpoint_dir)
            if isinstance(out, dict):
                return out
            if out is not None:
                rel = os.path.relpath(os.path.abspath(str(out)), os.path.abspath(checkpoint_dir))
                with open(os.path.join(checkpoint_dir, _LEGACY_MARKER), "w", encoding="utf-8") as fh:
                    json.dump({"path": rel}, fh)
            return None

        ns["save_checkpoint"] = save_checkpoint
    if hasattr(cls, "_restore") and not _overrides(cls, "load_checkpoint"):
        def load_checkpoint(self: Any, checkpoint: Any) -> None:
            if isinstance(checkpoint, dict):
                return self._restore(checkpoint)
            marker = os.path.join(str(checkpoint), _LEGACY_MARKER)
            path = str(checkpoint)
            if os.path.isfile(marker):
                with open(marker, encoding="utf-8") as fh:
                    path = os.path.normpath(os.path.join(str(checkpoint), json.load(fh)["path"]))
            return self._restore(path)

        ns["load_checkpoint"] = load_checkpoint
    if hasattr(cls, "_stop") and not _overrides(cls, "cleanup"):
        def cleanup(self: Any) -> None:
            self._stop()

        ns["cleanup"] = cleanup
    if hasattr(cls, "_reset_config") and not _overrides(cls, "reset_config"):
        def reset_config(self: Any, new_config: dict) -> bool:
            return bool(self._reset_config(new_config))

        ns["reset_config"] = reset_config
    return type(cls.__name__, (cls,), ns)
