"""The separate Python environment that holds the unmodified iDDS 2.6.21 server.

idds-server pins Flask, SQLAlchemy and friends that do not belong in hpogrid's environment, so the
server runs from its own venv, built once from PyPI with ``uv`` (or ``venv`` + ``pip``) and reused
afterwards: a probe import decides whether it is complete.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

from .errors import Unavailable

__all__ = ["IDDS_VERSION", "PACKAGES", "clean_env", "environment_path", "ensure_environment"]

IDDS_VERSION = "2.6.21"
# idds-server: REST app and agents; idds-atlas: the HPO work (ATLASHPOWork); idds-workflow,
# idds-common, idds-client: what those import; idds-prompt: imported by the REST app's blueprints;
# psycopg2-binary + pgserver: PostgreSQL from PyPI; werkzeug: the HTTP server for the REST app.
PACKAGES = [f"idds-server=={IDDS_VERSION}", f"idds-atlas=={IDDS_VERSION}", f"idds-common=={IDDS_VERSION}",
            f"idds-workflow=={IDDS_VERSION}", f"idds-client=={IDDS_VERSION}", "idds-prompt", "psycopg2-binary",
            "pgserver", "werkzeug"]
# iDDS's server modules read their configuration at import, so the probe checks the installed
# versions and imports only what needs no configuration.
PROBE = ("from importlib.metadata import version; import pgserver, psycopg2, werkzeug, flask, sqlalchemy; "
         f"assert all(version(p) == '{IDDS_VERSION}' for p in "
         "('idds-server', 'idds-atlas', 'idds-common', 'idds-workflow', 'idds-client'))")
BUILD_TIMEOUT = 900


def environment_path() -> Path:
    """``$HPOGRID_IDDS_LOCAL_VENV``, default ``~/.cache/hpogrid/idds-local-2.6.21``."""
    default = Path.home() / ".cache" / "hpogrid" / f"idds-local-{IDDS_VERSION}"
    return Path(os.environ.get("HPOGRID_IDDS_LOCAL_VENV") or default).expanduser()


def _works(python: Path) -> bool:
    if not python.exists():
        return False
    probe = subprocess.run([str(python), "-c", PROBE], capture_output=True, env=clean_env(), timeout=300)
    return probe.returncode == 0


def clean_env() -> dict[str, str]:
    """The caller's environment without another venv's or iDDS's settings."""
    return {k: v for k, v in os.environ.items()
            if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME") and not k.startswith("IDDS_")}


def _build(venv: Path) -> None:
    python = venv / "bin" / "python"
    uv = Path(sys.executable).parent / "uv"
    uv_cmd = str(uv) if uv.exists() else shutil.which("uv")
    if uv_cmd:
        steps = [[uv_cmd, "venv", "-q", "--allow-existing", "-p", sys.executable, str(venv)],
                 [uv_cmd, "pip", "install", "-q", "--python", str(python), *PACKAGES]]
    else:
        steps = [[sys.executable, "-m", "venv", str(venv)],
                 [str(python), "-m", "pip", "install", "-q", *PACKAGES]]
    for argv in steps:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, env=clean_env(), timeout=BUILD_TIMEOUT)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise Unavailable(f"cannot build the iDDS environment in {venv}: {type(exc).__name__}: {exc}") from exc
        if done.returncode != 0:
            tail = " ".join((done.stderr or done.stdout).split())[-300:]
            raise Unavailable(f"cannot build the iDDS environment in {venv} ({Path(argv[0]).name} exited "
                              f"{done.returncode}): {tail}")


def ensure_environment(venv: Path | None = None) -> Path:
    """The iDDS environment's python, building the environment first if it is missing or incomplete.

    Several processes may ask at once (parallel test sessions): a lock file next to the venv makes
    one build and the others wait for it. Raises ``Unavailable(reason)`` when it cannot be built.
    """
    venv = (venv or environment_path()).resolve()
    python = venv / "bin" / "python"
    try:
        venv.parent.mkdir(parents=True, exist_ok=True)
        lock = open(venv.parent / f".{venv.name}.lock", "a+")
    except OSError as exc:
        raise Unavailable(f"cannot create {venv.parent}: {exc.strerror}") from exc
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _works(python):
            return python
        _build(venv)
        if not _works(python):
            raise Unavailable(f"the iDDS environment in {venv} was built but its probe fails: {PROBE}")
    return python
