"""One real iDDS per test session, whichever test folder asks first (tests/idds and tests/grid
each register the ``real_idds`` fixture; both get this one server, stopped by the last user)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from hpogrid.iddslocal import LocalIdds, StartError, Unavailable, start

_server: LocalIdds | None = None
_users = 0
_unavailable: str | None = None  # why the environment cannot be built: asked once per session


def idds_workdir() -> Path:
    """A work folder outside pytest's temporary tree: parallel pytest sessions rotate that tree
    away (and close its modes again) while a server may still be using it."""
    return Path(tempfile.mkdtemp(prefix="hpogrid-idds-test-"))


def acquire() -> LocalIdds:
    global _server, _users, _unavailable
    if _unavailable is not None:
        pytest.skip(f"the real iDDS cannot run here: {_unavailable}")
    if _server is None:
        workdir = idds_workdir()
        try:
            _server = start(workdir)
        except Unavailable as exc:
            shutil.rmtree(workdir, ignore_errors=True)
            _unavailable = exc.reason
            pytest.skip(f"the real iDDS cannot run here: {exc.reason}")
        except StartError as exc:
            pytest.fail(f"the real iDDS did not start: {exc} (its logs are in {workdir})")
    _users += 1
    return _server


def release() -> None:
    global _server, _users
    _users -= 1
    if _users == 0 and _server is not None:
        _server.stop(purge=True)
        shutil.rmtree(_server.workdir, ignore_errors=True)
        _server = None
