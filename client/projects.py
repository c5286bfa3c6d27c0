"""Projects: the four configs resolved and frozen, plus a copy of the user's scripts.

A project folder (project.json + scripts/) is self-contained: it is what the evaluator reads,
and what travels to the grid in the sandbox. Editing a stored config later does not change a
project; ``project update`` does, explicitly.
"""

from __future__ import annotations

import datetime as _dt
import fnmatch
import shutil
import tempfile
from pathlib import Path
from typing import Any

from . import configs
from .errors import AlreadyExistsError, ConfigError, NotFoundError
from .home import atomic_write_json, project_dir, projects_dir, read_json, validate_name

__all__ = ["PARTS", "create", "update", "remove", "list_names", "load", "path", "scripts_dir", "version"]

# project.json key -> config kind
PARTS = {"model_config": "model", "search_space": "search_space", "hpo_config": "hpo", "grid_config": "grid"}
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".git", ".ipynb_checkpoints")


def version() -> str:
    try:
        from importlib.metadata import version as _v

        return _v("hpogrid")
    except Exception:  # not installed (running from a source tree)
        return "unknown"


def path(name: str) -> Path:
    return project_dir(name)


def scripts_dir(name: str) -> Path:
    return path(name) / "scripts"


def load(name: str) -> dict[str, Any]:
    file = path(name) / "project.json"
    if not file.is_file():
        raise NotFoundError(f"no project named {name!r} (see `hpogrid project list`)")
    return read_json(file)


def list_names(pattern: str = "*") -> list[str]:
    folder = projects_dir()
    if not folder.is_dir():
        return []
    return sorted(
        p.name for p in folder.iterdir() if (p / "project.json").is_file() and fnmatch.fnmatchcase(p.name, pattern)
    )


def _check_script(model: dict[str, Any], scripts: Path, shown_as: str) -> None:
    if not (scripts / model["script"]).is_file():  # name the user's path, never the staging folder
        raise ConfigError(f"the model script {model['script']!r} is not in the scripts path ({shown_as})")


def _copy_scripts(source: Path, target: Path) -> None:
    target.mkdir(parents=True)
    if source.is_dir():
        shutil.copytree(source, target, dirs_exist_ok=True, ignore=_IGNORE)
    else:
        shutil.copy2(source, target / source.name)


def _build(name: str, parts: dict[str, Any], scripts_source: Path | None, old: Path | None) -> dict[str, Any]:
    """Write a complete project folder beside the final one, then swap it in (atomic for readers)."""
    projects_dir().mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=projects_dir(), prefix=f".{name}.new."))
    staging.chmod(0o755)  # mkdtemp makes it private; a project folder is an ordinary folder
    try:
        if scripts_source is not None:
            _copy_scripts(scripts_source, staging / "scripts")
        else:
            assert old is not None
            shutil.copytree(old / "scripts", staging / "scripts")
        _check_script(parts["model_config"], staging / "scripts",
                      str(scripts_source) if scripts_source is not None else f"project {name!r}'s scripts")
        now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        created = read_json(old / "project.json").get("created", now) if old else now
        project = {"project_name": name, **parts, "scripts": "scripts", "created": created, "updated": now,
                   "hpogrid_version": version()}
        atomic_write_json(staging / "project.json", project)
        final = path(name)
        if old is not None:
            if (old / "campaigns").is_dir():  # a project's history survives recreate/update
                (old / "campaigns").rename(staging / "campaigns")
            trash = Path(tempfile.mkdtemp(dir=projects_dir(), prefix=f".{name}.old."))
            old.rename(trash / "project")
            staging.rename(final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            staging.rename(final)
        return project
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def create(
    name: str,
    *,
    scripts_path: str | Path,
    model_config: Any,
    search_space: Any,
    hpo_config: Any,
    grid_config: Any,
    replace: bool = False,
) -> dict[str, Any]:
    """Create (or, with ``replace``, recreate) a project from configs given by name, path or dict."""
    validate_name(name, "project")
    existing = path(name) if (path(name) / "project.json").is_file() else None
    if existing and not replace:
        raise AlreadyExistsError(f"project {name!r} exists; use `hpogrid project recreate` or `update`")
    source = _scripts_source(scripts_path)
    given = {"model_config": model_config, "search_space": search_space, "hpo_config": hpo_config,
             "grid_config": grid_config}
    missing = [key for key, ref in given.items() if ref is None]
    if missing:
        raise ConfigError(f"project {name!r} needs --{' --'.join(missing)}")
    parts = {key: configs.resolve(PARTS[key], ref) for key, ref in given.items()}
    return _build(name, parts, source, existing)


def update(name: str, *, scripts_path: str | Path | None = None, **refs: Any) -> dict[str, Any]:
    """Replace the given configs (by name, path or dict) and/or the scripts; keep the rest."""
    current = load(name)
    unknown = set(refs) - set(PARTS)
    if unknown:
        raise ConfigError(f"unknown project part(s) {sorted(unknown)}; valid: {', '.join(PARTS)}")
    parts = {key: current[key] for key in PARTS}
    for key, ref in refs.items():
        if ref is not None:
            parts[key] = configs.resolve(PARTS[key], ref)
    source = _scripts_source(scripts_path) if scripts_path is not None else None
    return _build(name, parts, source, path(name))


def remove(name: str) -> None:
    folder = path(name)
    if not (folder / "project.json").is_file():
        raise NotFoundError(f"no project named {name!r}")
    trash = Path(tempfile.mkdtemp(dir=projects_dir(), prefix=f".{name}.rm."))
    folder.rename(trash / "project")
    shutil.rmtree(trash, ignore_errors=True)


def _scripts_source(scripts_path: str | Path | None) -> Path:
    if scripts_path is None or str(scripts_path) == "":
        raise ConfigError("a project needs --scripts_path (a training script or a folder of scripts)")
    source = Path(scripts_path).expanduser()
    if not source.exists():
        raise NotFoundError(f"scripts path {str(scripts_path)!r} does not exist")
    return source.resolve()
