"""Where hpogrid keeps things: configs, projects and campaigns under ``$HPOGRID_HOME``.

Never inside site-packages (hpogrid 1.x stored user data there and lost it on every reinstall).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from hpogrid import common

from .errors import ConfigError, UsageError
from .storage_errors import storage_error

__all__ = ["home", "base_path", "base_path_hint", "BASE_PATH_ENV", "configs_dir", "projects_dir", "project_dir", "registry_path", "validate_name",
           "atomic_write_text", "atomic_write_json", "read_json", "CONFIG_KINDS"]

CONFIG_KINDS = ("hpo", "grid", "model", "search_space")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def home() -> Path:
    """``$HPOGRID_HOME``, default ``~/.hpogrid``."""
    value = os.environ.get("HPOGRID_HOME")
    return Path(value).expanduser() if value else Path.home() / ".hpogrid"


# ---- hpogrid 1.x compatibility: HPOGRID_BASE_PATH ----------------------------------------------
# hpogrid 1.x's setupenv.sh exported HPOGRID_BASE_PATH (its source tree); its README's examples name
# ${HPOGRID_BASE_PATH}/example/scripts/<script>. hpogrid 2 ships that layout in examples/1.x/.
BASE_PATH_ENV = "HPOGRID_BASE_PATH"
_SOURCE_BASE = Path(__file__).resolve().parent.parent / "examples" / "1.x"
_BASE_EXAMPLE = re.compile(r"^(?P<base>.*?)/?example/scripts/(?P<script>[^/]+)$")


def base_path() -> Path | None:
    """``$HPOGRID_BASE_PATH`` if set, else the 1.x example layout of a source checkout (or None)."""
    value = os.environ.get(BASE_PATH_ENV)
    if value:
        return Path(value).expanduser()
    return _SOURCE_BASE if (_SOURCE_BASE / "example" / "scripts").is_dir() else None


def base_path_hint(path: str) -> str | None:
    """What to say when a missing path is one of 1.x's ``${HPOGRID_BASE_PATH}/example/scripts/...``
    paths (None for any other path): how to set HPOGRID_BASE_PATH, or the path in hpogrid 2's layout."""
    match = _BASE_EXAMPLE.match(path)
    if match is None or Path(path).exists():
        return None
    base = base_path()
    if os.environ.get(BASE_PATH_ENV) and match.group("base") == os.environ[BASE_PATH_ENV].rstrip("/"):
        return (f"{path!r} does not exist: HPOGRID_BASE_PATH={os.environ[BASE_PATH_ENV]} has no example/scripts/ "
                "folder (hpogrid ships the 1.x layout in its source tree: `source examples/1.x/setupenv.sh`)")
    if match.group("base") == "":  # ${HPOGRID_BASE_PATH} expanded to nothing
        fix = f"`export {BASE_PATH_ENV}={base}`" if base else f"set {BASE_PATH_ENV}"
        return (f"{path!r} does not exist: HPOGRID_BASE_PATH is not set (the setupenv.sh of hpogrid 1.x set it); "
                f"run {fix} and paste again, or give the path of the script itself")
    return None


def configs_dir(kind: str) -> Path:
    return home() / "configs" / kind


def projects_dir() -> Path:
    return home() / "projects"


def project_dir(name: str) -> Path:
    return projects_dir() / validate_name(name, "project")


def registry_path() -> Path:
    return home() / "campaigns.db"


def validate_name(name: Any, what: str = "name") -> str:
    """A name that is safe as one path component: letters, digits, ``_ . -``; no ``/``, no ``..``."""
    if not isinstance(name, str) or not name:
        raise UsageError(f"{what} name must not be empty")
    if len(name) > 100:
        raise UsageError(f"{what} name must be at most 100 characters, got {len(name)}")
    if ".." in name or not _NAME.match(name):
        raise UsageError(
            f"invalid {what} name {name!r}: use letters, digits, '_', '.', '-' (no '/', no '..', no spaces)"
        )
    return name


def atomic_write_text(path: Path, text: str) -> None:
    """``hpogrid.common.atomic_write_text`` (a reader or a crash never sees half a file) into a
    folder it creates; a full or read-only disk is the client's one-line storage error."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        common.atomic_write_text(path, text)
    except OSError as exc:
        error = storage_error(OSError(exc.errno, exc.strerror, exc.filename or str(path)))
        if error is not None:
            raise error from exc
        raise


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def read_json(path: Path) -> Any:
    """A JSON file of the home (config, project.json): ``hpogrid.common.read_json``; an unreadable
    one raises its OSError (the CLI's storage error), a damaged one is a :class:`ConfigError`."""
    try:
        return common.read_json(path, "file")
    except common.JsonFileError as exc:
        if isinstance(exc.cause, OSError):
            raise exc.cause from None
        raise ConfigError(str(exc)) from None
