"""The ``real_idds`` fixture: a started real iDDS 2.6.21 (REST app + agents) for the whole session.

TEMPORARY in this branch: it uses ``hpogrid.iddslocal`` (branch idds-server) when installed, and
otherwise starts the server with ``_kit_idds.py``. When the branches merge, delete this file and
``_kit_idds.py``: ``tests/idds/conftest.py`` provides ``real_idds`` (move the tests, or import it here).
"""

from __future__ import annotations

import shutil
import socket
import tempfile
from pathlib import Path
from typing import Iterator

import pytest


def _free_port(low: int = 18250, high: int = 18300) -> int:
    for port in range(low, high):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free loopback port in {low}-{high - 1}")


@pytest.fixture(scope="session")
def real_idds() -> Iterator[object]:
    # Not under pytest's shared basetemp: on a machine where several people run pytest as one user,
    # a live PostgreSQL data folder there was seen to lose its postmaster.pid mid-run.
    cache = Path.home() / ".cache/hpogrid/dev-idds-backend/runs"
    cache.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="idds-", dir=cache))
    try:
        from hpogrid.iddslocal import Unavailable, start  # type: ignore[import-not-found]
    except ImportError:
        from ._kit_idds import Unavailable, start  # type: ignore[assignment]

        starter = lambda: start(workdir, _free_port())  # noqa: E731
    else:
        starter = lambda: start(workdir)  # noqa: E731
    try:
        server = starter()
    except Unavailable as exc:
        shutil.rmtree(workdir, ignore_errors=True)
        pytest.skip(f"no real iDDS on this machine: {exc}")
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
