"""The real iDDS 2.6.21 (REST app + agents on PostgreSQL), started once per test session."""

from __future__ import annotations

from typing import Iterator

import pytest

from hpogrid.iddslocal import LocalIdds
from tests.idds import shared


@pytest.fixture(scope="package")
def real_idds() -> Iterator[LocalIdds]:
    """A started local iDDS (its own work folder outside pytest's, a free port), shared by the
    session and stopped (its database removed) at the end. Skips, saying why, where the iDDS
    environment cannot be built (no PyPI, no uv/venv)."""
    idds = shared.acquire()
    try:
        yield idds
    finally:
        shared.release()
