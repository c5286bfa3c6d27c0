"""The four configs (hpo, grid, model, search space): their fields, defaults, checks and store.

Field names, choices and defaults follow hpogrid 1.x's README (docs/HPOGRID1.md), so its commands run
verbatim. A stored config is always complete (defaults filled in): the steering and the
evaluator read it without knowing the client's defaults.
"""

from __future__ import annotations

import fnmatch
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from hpogrid.steering.errors import SpaceError, shown
from hpogrid.steering.space import SearchSpace

from .errors import AlreadyExistsError, ConfigError, NotFoundError
from .home import atomic_write_json, configs_dir, read_json, validate_name

__all__ = [
    "KINDS",
    "ALGORITHMS",
    "SCHEDULERS",
    "BACKENDS",
    "RAY_ALGORITHMS",
    "STOP_PRESETS",
    "DEFAULT_MAX_FAILURES",
    "DEFAULT_EVALUATION_CONTAINER",
    "DEFAULT_STEERING_CONTAINER",
    "Field",
    "FIELDS",
    "validate",
    "create",
    "update",
    "remove",
    "list_names",
    "load",
    "resolve",
    "path_of",
    "parse_json",
    "read_json_file",
]

KINDS = ("hpo", "grid", "model", "search_space")
STEERING_ALGORITHMS = ("random", "grid", "tune", "hyperopt", "bayesian", "skopt", "optuna", "nevergrad", "ax", "bohb")
#: Ray Tune's own searchers, by name, for ``local_run`` only (the steering does not know them).
RAY_ALGORITHMS = ("ray:hyperopt", "ray:optuna", "ray:nevergrad", "ray:bohb")
ALGORITHMS = STEERING_ALGORITHMS + RAY_ALGORITHMS
#: ``stop`` by name: ``none`` (the default: a training runs until it returns, as under Ray Tune) and
#: ``1.x`` (hpogrid 1.x's default, one training iteration), for 1.x configs that relied on it.
STOP_PRESETS: dict[str, dict[str, Any]] = {"none": {}, "1.x": {"training_iteration": 1}}
#: A campaign stops (failed) after this many points failed in a row (0: never); see README.
DEFAULT_MAX_FAILURES = 10
SCHEDULERS = ("asynchyperband", "bohbhyperband", "pbt", "fifo")
BACKENDS = ("embedded", "ray", "panda", "idds")
# Images built from deploy/ (pinned tags, never :latest: a campaign must be reproducible).
DEFAULT_EVALUATION_CONTAINER = "docker://gitlab-registry.cern.ch/aml/hyperparameter-optimization/alkaid-qt/hpogrid/evaluator:2.0.0"
DEFAULT_STEERING_CONTAINER = "gitlab-registry.cern.ch/aml/hyperparameter-optimization/alkaid-qt/hpogrid/steering:2.0.0"
DEFAULT_SITES = ["ANALY_MANC_GPU_TEST", "ANALY_MWT2_GPU", "ANALY_BNL_GPU_ARC"]
DEFAULT_OUTDS = "user.{nickname}.hpogrid.{project}.out.{timestamp}"


# ---- value parsers: each takes a CLI string or a JSON value and returns the stored value ----
def parse_json(text: str, what: str) -> Any:
    """JSON text a user gave (inline or from a file), or one line naming ``what``, the line and the column."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{what}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None


def read_json_file(path: str | Path, what: str) -> Any:
    """A JSON file the user named: "no such file: NAME", or its JSON errors with line and column."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise NotFoundError(f"{what}: no such file: {shown(str(path))}")
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{what}: cannot read {shown(str(path))}: {exc.__class__.__name__}") from None
    return parse_json(text, f"{what} file {shown(str(path))}")


def _json_value(value: Any, what: str) -> Any:
    if isinstance(value, str):
        return parse_json(value, what)
    return value


def _json_object(what: str) -> Callable[[Any], Any]:
    def parse(value: Any) -> dict[str, Any]:
        value = _json_value(value, what)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ConfigError(f"{what} must be a JSON object, got {shown(value)}")
        return value

    return parse


def _choice(what: str, choices: tuple[str, ...]) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if value not in choices:
            raise ConfigError(f"unknown {what} {shown(value)}; valid: {', '.join(choices)}")
        return value

    return parse


def _int_at_least(what: str, low: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        try:
            number = int(value) if not isinstance(value, bool) else None
        except (TypeError, ValueError):
            number = None
        if number is None or (isinstance(value, float) and not value.is_integer()):
            raise ConfigError(f"{what} must be an integer, got {shown(value)}")
        if number < low:
            raise ConfigError(f"{what} >= {low} must hold, got {what}={number}")
        return number

    return parse


def _optional_int(what: str) -> Callable[[Any], int | None]:
    def parse(value: Any) -> int | None:
        if value is None:
            return None
        return _int_at_least(what, 0)(value)

    return parse


def _text(what: str, required: bool = False) -> Callable[[Any], str | None]:
    def parse(value: Any) -> str | None:
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{what} must be a non-empty string, got {shown(value)}")
        return value

    return parse


def _bool(what: str) -> Callable[[Any], bool]:
    def parse(value: Any) -> bool:
        if isinstance(value, bool):
            return value
        if value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ConfigError(f"{what} must be true or false, got {shown(value)}")

    return parse


def _sites(value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [s.strip() for s in value.split(",") if s.strip()]
    if not isinstance(value, list) or not all(isinstance(s, str) and s for s in value):
        raise ConfigError(f"site must be a comma-separated list of site names, got {shown(value)}")
    return value


def _script(value: Any) -> str:
    value = _text("script", required=True)(value)
    if Path(value).is_absolute() or ".." in Path(value).parts:
        raise ConfigError(f"script must be a file name relative to the scripts path, got {shown(value)}")
    return value


def _stop(value: Any) -> dict[str, Any]:
    if isinstance(value, str) and value.strip() in STOP_PRESETS:
        return dict(STOP_PRESETS[value.strip()])
    if isinstance(value, str) and not value.strip().startswith("{") and value.strip() != "null":
        raise ConfigError(f"stop must be a JSON object like '{{\"training_iteration\": 5}}' or one of "
                          f"{', '.join(STOP_PRESETS)}, got {value[:80]!r}")
    value = _json_object("stop")(value)
    for key, limit in value.items():
        if not isinstance(limit, (int, float)) or isinstance(limit, bool) or not math.isfinite(limit):
            raise ConfigError(f"stop: the limit of {shown(key)} must be a number, got {shown(limit)}")
    return value


@dataclass(frozen=True)
class Field:
    """One config entry: its CLI option, default, parser and help text."""

    name: str
    default: Any
    parse: Callable[[Any], Any]
    help: str
    short: str | None = None
    choices: tuple[str, ...] | None = None
    required: bool = False
    flag: bool = False


FIELDS: dict[str, tuple[Field, ...]] = {
    "hpo": (
        Field("algorithm", "random", _choice("algorithm", ALGORITHMS), "search algorithm", "-a", ALGORITHMS),
        Field("metric", "accuracy", _text("metric", True), "metric to optimise, as the training reports it", "-m"),
        Field("mode", "max", _choice("mode", ("min", "max")), "optimisation mode", "-o", ("min", "max")),
        Field("scheduler", "asynchyperband", _choice("scheduler", SCHEDULERS), "trial scheduler (local_run)", "-s", SCHEDULERS),
        Field("num_trials", 100, _int_at_least("num_trials", 1), "number of points to evaluate", "-n"),
        Field("max_concurrent", 3, _int_at_least("max_concurrent", 1), "evaluations running at once", "-c"),
        Field("log_dir", "./log", _text("log_dir", True), "logging directory", "-l"),
        Field("verbose", False, _bool("verbose"), "verbose output", "-v", flag=True),
        Field("stop", {}, _stop, "stopping criteria (JSON, e.g. '{\"training_iteration\": 5}'); default none: "
              "a training runs until it returns; '1.x' = hpogrid 1.x's default {\"training_iteration\": 1}"),
        Field("scheduler_param", {}, _json_object("scheduler_param"), "extra scheduler parameters (JSON)"),
        Field("algorithm_param", {}, _json_object("algorithm_param"), "extra algorithm parameters (JSON)"),
        Field("seed", None, _optional_int("seed"), "random seed (reproducible proposals) [default: a fresh one "
              "per campaign, stored and shown]"),
        Field("max_failures", DEFAULT_MAX_FAILURES, _int_at_least("max_failures", 0),
              "stop a campaign after this many points failed in a row (0: never)"),
    ),
    "grid": (
        Field("site", DEFAULT_SITES, _sites, "grid site(s), comma-separated", "-s"),
        Field("container", DEFAULT_EVALUATION_CONTAINER, _text("container", True), "container the jobs run in", "-c"),
        Field("retry", False, _bool("retry"), "retry failed jobs", "-r", flag=True),
        Field("inDS", None, _text("inDS"), "input dataset (Rucio DID)", "-i"),
        Field("outDS", DEFAULT_OUTDS, _text("outDS", True), "output dataset name pattern", "-o"),
        Field("backend", "embedded", _choice("backend", BACKENDS), "where submit_idds runs", "-b", BACKENDS),
    ),
    "model": (
        Field("script", None, _script, "training script (file name in the scripts path)", "-s", required=True),
        Field("model", None, _text("model", True), "function or class in the script", "-m", required=True),
        Field("param", {}, _json_object("param"), "extra parameters merged into the config (JSON)", "-p"),
    ),
}


def _check_space(value: Any) -> dict[str, Any]:
    """The search space as given (kept verbatim for ``show``), once it has passed validation."""
    value = _json_value(value, "search space")
    try:
        SearchSpace.parse(value)
    except SpaceError as exc:
        raise ConfigError(str(exc)) from None
    return dict(value)


def validate(kind: str, data: Any) -> dict[str, Any]:
    """A complete, checked config from (possibly partial) ``data``; missing fields get defaults."""
    _kind(kind)
    if kind == "search_space":
        return _check_space(data)
    if not isinstance(data, Mapping):
        raise ConfigError(f"a {kind} config must be a JSON object, got {type(data).__name__}")
    fields = {f.name: f for f in FIELDS[kind]}
    unknown = set(data) - set(fields)
    if unknown:
        raise ConfigError(f"unknown {kind} config key(s) {sorted(unknown)}; valid: {', '.join(fields)}")
    out: dict[str, Any] = {}
    for f in FIELDS[kind]:
        if f.name in data and data[f.name] is not None:
            out[f.name] = f.parse(data[f.name])
        elif f.required:
            raise ConfigError(f"{kind} config needs '{f.name}'")
        else:
            out[f.name] = json.loads(json.dumps(f.default))
    return out


def _kind(kind: str) -> str:
    if kind not in KINDS:
        raise ConfigError(f"unknown config kind {shown(kind)}; valid: {', '.join(KINDS)}")
    return kind


def path_of(kind: str, name: str) -> Path:
    return configs_dir(_kind(kind)) / f"{validate_name(name, 'config')}.json"


def load(kind: str, name: str) -> dict[str, Any]:
    path = path_of(kind, name)
    if not path.exists():
        raise NotFoundError(f"no {kind} config named {shown(name)} (see `hpogrid {_cli(kind)} list`)")
    return read_json(path)


def create(kind: str, name: str, values: Mapping[str, Any] | Any, *, replace: bool = False) -> dict[str, Any]:
    """Store a new config; with ``replace`` (recreate) an existing one is overwritten."""
    path = path_of(kind, name)
    if kind != "search_space":
        values = {k: v for k, v in dict(values).items() if v is not None}
    config = validate(kind, values)
    if path.exists() and not replace:
        if read_json(path) == config:  # the same create again (pasted twice, as 1.x README's examples do)
            return config
        raise AlreadyExistsError(f"{kind} config {shown(name)} exists with other values; "
                                 f"use `hpogrid {_cli(kind)} recreate` or `update`")
    atomic_write_json(path, config)
    return config


def update(kind: str, name: str, values: Mapping[str, Any] | Any) -> dict[str, Any]:
    """Change the given fields (search space: add or replace the given hyperparameters), keep the rest."""
    current = load(kind, name)
    if kind == "search_space":
        change = _check_space(values)
        merged: dict[str, Any] = {**current, **change}
    else:
        merged = {**current, **{k: v for k, v in dict(values).items() if v is not None}}
    config = validate(kind, merged)
    atomic_write_json(path_of(kind, name), config)
    return config


def remove(kind: str, name: str) -> None:
    path = path_of(kind, name)
    if not path.exists():
        raise NotFoundError(f"no {kind} config named {shown(name)}")
    path.unlink()


def list_names(kind: str, pattern: str = "*") -> list[str]:
    folder = configs_dir(_kind(kind))
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.json") if fnmatch.fnmatchcase(p.stem, pattern))


def resolve(kind: str, ref: str | Mapping[str, Any]) -> dict[str, Any]:
    """A config given by stored name, by path to a JSON file, or as a dict, checked and complete."""
    if isinstance(ref, Mapping):
        return validate(kind, ref)
    if not isinstance(ref, str) or not ref:
        raise ConfigError(f"{kind} config: expected a stored name or a path to a JSON file, got {shown(ref)}")
    candidate = Path(ref).expanduser()
    if ref.endswith(".json") or "/" in ref or candidate.is_file():
        return validate(kind, read_json_file(candidate, f"{kind} config"))
    return validate(kind, load(kind, ref))


def _cli(kind: str) -> str:
    return "search_space" if kind == "search_space" else f"{kind}_config"
