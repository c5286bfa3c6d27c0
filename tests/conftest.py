"""Shared fixtures: every test gets its own HPOGRID_HOME, so tests never touch ~/.hpogrid."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@pytest.fixture(autouse=True)
def hpogrid_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path_factory.mktemp("hpogrid_home")
    monkeypatch.setenv("HPOGRID_HOME", str(home))
    # Ray must not reach for a cluster a developer may have running, and must stay quiet.
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    return home


@pytest.fixture
def examples() -> Path:
    return REPO / "examples"


def installed(command: str) -> str:
    """Path of a console script installed in the test environment (as a user would type it)."""
    path = BIN / command
    if not path.exists():
        raise RuntimeError(f"{command} is not installed in {BIN}; run `make test`")
    return str(path)


@pytest.fixture
def cli_env(hpogrid_home: Path) -> dict[str, str]:
    """Environment for running installed commands in subprocesses."""
    env = dict(os.environ)
    env["HPOGRID_HOME"] = str(hpogrid_home)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def stop_group(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """End a server a test started in its own session: SIGTERM its group, SIGKILL after ``grace``."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
