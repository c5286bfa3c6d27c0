"""The real iDDS 2.6.21 (REST app + agents on PostgreSQL), started once per test session."""

from __future__ import annotations

from typing import Iterator

import pytest

from hpogrid.iddslocal import LocalIdds, StartError, Unavailable, start


@pytest.fixture(scope="session")
def real_idds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalIdds]:
    """A started local iDDS (its own work folder, a free port); stopped after the session. Skips,
    saying why, where the iDDS environment cannot be built (no PyPI, no uv/venv)."""
    workdir = tmp_path_factory.mktemp("idds-local")
    try:
        idds = start(workdir)
    except Unavailable as exc:
        pytest.skip(f"the real iDDS cannot run here: {exc.reason}")
    except StartError as exc:
        pytest.fail(f"the real iDDS did not start: {exc}")
    with idds:
        yield idds
