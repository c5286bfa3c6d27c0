"""Fixtures for the evaluator tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def env(cli_env: dict[str, str]) -> dict[str, str]:
    e = dict(cli_env)
    e.pop("HPOGRID_PROJECT_DIR", None)
    return e
