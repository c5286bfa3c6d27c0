"""The part of a project the evaluator needs: read from ``project.json`` + ``scripts/``.

See docs/CONTRACTS.md. Every config is stored complete by the client, so nothing here knows the
client's defaults; a field the evaluator needs and cannot find is a :class:`ProjectError`.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .errors import ProjectError

__all__ = ["Project", "load_project", "resolve_project_dir", "PROJECT_FILE"]

PROJECT_FILE = "project.json"
PROJECT_ENV = "HPOGRID_PROJECT_DIR"


@dataclass(frozen=True)
class Project:
    """What one evaluation needs of a project."""

    name: str
    root: Path
    scripts_dir: Path
    script: str
    model: str
    param: dict[str, Any]
    metric: str
    mode: str
    stop: dict[str, float]
    search_space: dict[str, Any] = field(default_factory=dict)
    hpo_config: dict[str, Any] = field(default_factory=dict)

    @property
    def script_path(self) -> Path:
        return self.scripts_dir / self.script


def resolve_project_dir(option: str | os.PathLike[str] | None, cwd: Path | None = None) -> Path:
    """``--project`` if given, else ``$HPOGRID_PROJECT_DIR``, else the working directory."""
    if option is not None and str(option) != "":
        return Path(option).expanduser().resolve()
    env = os.environ.get(PROJECT_ENV)
    if env:
        return Path(env).expanduser().resolve()
    return (cwd or Path.cwd()).resolve()


def _need(mapping: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in mapping:
        raise ProjectError(f"project.json: '{where}' lacks '{key}'")
    value = mapping[key]
    if not isinstance(value, kind):
        raise ProjectError(f"project.json: '{where}.{key}' has the wrong type, got {value!r}")
    return value


def _stop(raw: Any) -> dict[str, float]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ProjectError(f"project.json: 'hpo_config.stop' must be an object like {{\"training_iteration\": 5}}, got {raw!r}")
    stop: dict[str, float] = {}
    for key, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            raise ProjectError(f"project.json: 'hpo_config.stop.{key}' must be a number, got {value!r}")
        stop[str(key)] = value
    return stop


def load_project(root: Path) -> Project:
    """Read and check ``root/project.json``; the script's existence is checked too."""
    path = root / PROJECT_FILE
    if not root.is_dir():
        raise ProjectError(f"project directory {root} does not exist")
    if not path.is_file():
        raise ProjectError(f"no {PROJECT_FILE} in {root} (give the project folder with --project or ${PROJECT_ENV})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ProjectError(f"cannot read {path}: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise ProjectError(f"{path} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(data, Mapping):
        raise ProjectError(f"{path} must hold a JSON object, got {type(data).__name__}")
    hpo = _need(data, "hpo_config", Mapping, "project")
    model = _need(data, "model_config", Mapping, "project")
    metric = _need(hpo, "metric", str, "hpo_config")
    mode = _need(hpo, "mode", str, "hpo_config")
    if mode not in ("min", "max"):
        raise ProjectError(f"project.json: 'hpo_config.mode' must be 'min' or 'max', got {mode!r}")
    script = _need(model, "script", str, "model_config")
    name_of_model = _need(model, "model", str, "model_config")
    param = model.get("param") or {}
    if not isinstance(param, Mapping):
        raise ProjectError(f"project.json: 'model_config.param' must be an object, got {param!r}")
    scripts = data.get("scripts", "scripts")
    if not isinstance(scripts, str) or not scripts:
        raise ProjectError(f"project.json: 'scripts' must be a folder name, got {scripts!r}")
    scripts_dir = (root / scripts).resolve()
    if not scripts_dir.is_dir():
        raise ProjectError(f"the project's scripts folder {scripts_dir} does not exist")
    space = data.get("search_space") or {}
    return Project(
        name=str(data.get("project_name") or root.name),
        root=root,
        scripts_dir=scripts_dir,
        script=script,
        model=name_of_model,
        param=dict(param),
        metric=metric,
        mode=mode,
        stop=_stop(hpo.get("stop")),
        search_space=dict(space) if isinstance(space, Mapping) else {},
        hpo_config=dict(hpo),
    )
