"""Reading what a steering run is given: iDDS's ``%IN`` file and the optional config file.

``%IN`` comes in two forms (docs/PROTOCOL.md §2):
flat ``{"points": [[{...}, loss|null], ...], "opt_space": {...}|null}`` and segmented
``{"points": [[[model_id, {...}], loss|null], ...], "opt_space": [{"model_id": 0,
"search_space": {...}}, ...]}``. The config is a project.json (``hpo_config`` + ``search_space``)
or a flat ``{algorithm, algorithm_param, metric, mode, seed, search_space}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hpogrid.common import JsonFileError, read_json

from .errors import InputError, SpaceError
from .space import SearchSpace

__all__ = ["StepConfig", "SteeringInput", "Segment", "load_config", "read_input", "segment_space"]

_FLAT_KEYS = {"algorithm", "algorithm_param", "metric", "mode", "seed", "search_space"}


@dataclass
class StepConfig:
    """What the steering needs from a config; defaults when no config is given."""

    algorithm: str = "random"
    algorithm_param: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    metric: str = "loss"
    mode: str = "min"
    search_space: SearchSpace | None = None


@dataclass
class Segment:
    """One independent search: a model id (None in the flat form), its space and records."""

    model_id: int | None
    space: Any  # the raw search-space JSON, validated later (it may be null in %IN)
    records: list[tuple[dict[str, Any], Any]] = field(default_factory=list)


@dataclass
class SteeringInput:
    segmented: bool
    segments: list[Segment]


def _load_json(path: str | Path, what: str) -> Any:
    try:
        return read_json(path, what)
    except JsonFileError as exc:
        raise InputError(str(exc)) from None


def load_config(path: str | Path) -> StepConfig:
    """A project.json (its ``hpo_config`` and ``search_space``) or a flat steering config."""
    data = _load_json(path, "config")
    if not isinstance(data, dict):
        raise InputError(f"the config {str(path)!r} must be a JSON object, got {type(data).__name__}")
    if "hpo_config" in data:
        hpo = data["hpo_config"]
        if not isinstance(hpo, dict):
            raise InputError(f"the config {str(path)!r}: 'hpo_config' must be an object, got {hpo!r}")
        values = {k: hpo.get(k) for k in ("algorithm", "algorithm_param", "metric", "mode", "seed")}
        values["search_space"] = data.get("search_space")
    else:
        unknown = sorted(set(data) - _FLAT_KEYS)
        if unknown:
            raise InputError(
                f"the config {str(path)!r} has unknown key(s) {unknown}; expected a project.json "
                f"(with 'hpo_config') or the keys {', '.join(sorted(_FLAT_KEYS))}"
            )
        values = dict(data)
    config = StepConfig()
    if values.get("algorithm") is not None:
        if not isinstance(values["algorithm"], str):
            raise InputError(f"'algorithm' must be a string, got {values['algorithm']!r}")
        config.algorithm = values["algorithm"]
    if values.get("algorithm_param") is not None:
        if not isinstance(values["algorithm_param"], dict):
            raise InputError(f"'algorithm_param' must be an object, got {values['algorithm_param']!r}")
        config.algorithm_param = values["algorithm_param"]
    seed = values.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise InputError(f"'seed' must be a non-negative integer or null, got {seed!r}")
    config.seed = seed
    if values.get("metric") is not None:
        config.metric = str(values["metric"])
    if values.get("mode") is not None:
        if values["mode"] not in ("min", "max"):
            raise InputError(f"'mode' must be 'min' or 'max', got {values['mode']!r}")
        config.mode = values["mode"]
    if values.get("search_space") is not None:
        config.search_space = SearchSpace.parse(values["search_space"])
    return config


def _loss(value: Any, where: str) -> Any:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{where}: a loss must be a number or null, got {value!r}")
    return value


def _model_id(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{where}: a model_id must be an integer, got {value!r}")
    return value


def read_input(path: str | Path) -> SteeringInput:
    """Parse ``%IN``; the points are checked for shape here, against the space later."""
    data = _load_json(path, "%IN file")
    if not isinstance(data, dict) or not isinstance(data.get("points"), list):
        raise InputError(f"the %IN file {str(path)!r} must be an object with a 'points' list")
    points, opt_space = data["points"], data.get("opt_space")
    for i, record in enumerate(points):
        if not isinstance(record, list) or len(record) != 2:
            raise InputError(f"%IN points[{i}] must be [point, loss], got {record!r}")
    segmented = isinstance(opt_space, list) or any(isinstance(r[0], list) for r in points)
    if not segmented:
        records = []
        for i, (point, loss) in enumerate(points):
            if not isinstance(point, dict):
                raise InputError(f"%IN points[{i}]: a point must be an object, got {point!r}")
            records.append((point, _loss(loss, f"%IN points[{i}]")))
        return SteeringInput(False, [Segment(None, opt_space, records)])
    segments: dict[int, Segment] = {}
    for j, entry in enumerate(opt_space or []):
        if not isinstance(entry, dict) or "model_id" not in entry:
            raise InputError(f"%IN opt_space[{j}] must be {{\"model_id\": N, \"search_space\": {{...}}}}, got {entry!r}")
        mid = _model_id(entry["model_id"], f"%IN opt_space[{j}]")
        if mid in segments:
            raise InputError(f"%IN opt_space: model_id {mid} appears twice")
        segments[mid] = Segment(mid, entry.get("search_space"))
    for i, (pair, loss) in enumerate(points):
        if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[1], dict)):
            raise InputError(f"%IN points[{i}]: a segmented point must be [model_id, {{...}}], got {pair!r}")
        mid = _model_id(pair[0], f"%IN points[{i}]")
        if mid not in segments:
            if opt_space:
                raise InputError(f"%IN points[{i}]: model_id {mid} is not in opt_space")
            segments[mid] = Segment(mid, None)
        segments[mid].records.append((pair[1], _loss(loss, f"%IN points[{i}]")))
    return SteeringInput(True, list(segments.values()))


def segment_space(segment: Segment, config: StepConfig) -> SearchSpace:
    """The config's search space if it has one, else the one in ``%IN``."""
    if config.search_space is not None:
        return config.search_space
    if segment.space is None:
        where = "opt_space" if segment.model_id is None else f"opt_space of model_id {segment.model_id}"
        raise InputError(f"no search space: the config has none and %IN's {where} is null")
    try:
        return SearchSpace.parse(segment.space)
    except SpaceError as exc:
        raise SpaceError(f"%IN opt_space: {exc}") from None

