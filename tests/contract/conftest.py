"""What the backend contract suite runs against: one tiny project, and each backend's side.

The project's script fails every point until a marker file exists (so ``retry`` has failed points
to reopen); its budget is 2 points, 2 at a time, one round. Servers are started once per session:
the grid sandbox (``hpogrid-gridsim``) for ``panda``, the real iDDS (tests/idds/shared.py, shared
with tests/idds and tests/grid) for ``idds``; each skips, saying why, where it cannot run here.
"""

from __future__ import annotations

import importlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest

from hpogrid.client import projects
from hpogrid.client.backends import SubmitOptions
from tests.conftest import installed, stop_group
from tests.grid.conftest import parse_env

BUDGET = 2
SITE = "ANALY_MANC_GPU_TEST"  # a site the grid sandbox knows

SCRIPT = '''import os

MARKER = {marker!r}


def objective(config, reporter):
    if not os.path.exists(MARKER):
        raise RuntimeError("no marker yet: every point fails until the test creates it")
    reporter(loss=float(config["x"]))
'''


@dataclass
class Side:
    """A backend as the suite drives it: its name, the options of a submit, the environment it needs."""

    name: str
    options: SubmitOptions
    env: dict[str, str] = field(default_factory=dict)
    remote: bool = False  # the campaign runs elsewhere: wait for it through refresh()


@dataclass
class Project:
    name: str
    marker: Path

    def heal(self) -> None:
        """From now on every evaluation succeeds."""
        self.marker.write_text("ok\n")


@pytest.fixture
def project(tmp_path: Path) -> Project:
    marker = tmp_path / "marker"
    script = tmp_path / "scripts" / "contract_obj.py"
    script.parent.mkdir()
    script.write_text(SCRIPT.format(marker=str(marker)))
    projects.create("contract", scripts_path=script,
                    model_config={"script": script.name, "model": "objective"},
                    search_space={"x": {"method": "uniform", "dimension": {"low": 0, "high": 1}}},
                    hpo_config={"algorithm": "random", "metric": "loss", "mode": "min", "num_trials": BUDGET,
                                "max_concurrent": BUDGET, "seed": 3},
                    grid_config={"site": [SITE]})
    return Project("contract", marker)


@pytest.fixture(scope="session")
def contract_gridsim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The grid sandbox (PanDA + iDDS + rucio) on a free loopback port: its export lines."""
    state = tmp_path_factory.mktemp("contract_gridsim")
    env_file = state / "env.sh"
    log = open(state / "server.log", "wb")
    proc = subprocess.Popen([installed("hpogrid-gridsim"), "--port", "0", "--state-dir", str(state / "state"),
                             "--env-file", str(env_file), "--nickname", "tester"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 60
    while not env_file.exists() and time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"hpogrid-gridsim exited: {(state / 'server.log').read_text()}")
        time.sleep(0.1)
    try:
        yield parse_env(env_file.read_text())
    finally:
        stop_group(proc, grace=30)
        log.close()


@pytest.fixture(scope="session")
def contract_idds() -> Iterator[Any]:
    from tests.idds import shared

    server = shared.acquire()
    try:
        yield server
    finally:
        shared.release()


def _grid_env(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    """This process as a user who pasted the sandbox's export lines (panda-client reads its URLs on import)."""
    for key in list(os.environ):
        if key.startswith(("PANDA_", "IDDS_", "RUCIO_", "X509_", "OIDC_")):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    if "pandaclient.Client" in sys.modules:
        importlib.reload(sys.modules["pandaclient.Client"])


@pytest.fixture(scope="session")
def ray_head() -> Iterator[str]:
    """One Ray head on loopback for the session (ray and local_run join it: Ray starts once)."""
    ray = Path(sys.executable).parent / "ray"
    if not ray.exists():
        pytest.skip("ray is not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    temp = tempfile.mkdtemp(prefix="hc", dir="/tmp")  # unix socket paths are limited to 107 characters
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    head = subprocess.Popen([str(ray), "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
                             "--num-cpus", "2", "--block", "--include-dashboard=false", "--disable-usage-stats",
                             "--temp-dir", temp], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.time() + 120
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if head.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"the Ray head did not start (exit {head.poll()})")
            time.sleep(0.5)
        yield f"127.0.0.1:{port}"
    finally:
        stop_group(head, grace=5)
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(params=["embedded", "ray", "local_run", "panda", "idds"])
def side(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Side:
    name = request.param
    local = SubmitOptions(max_attempts=1, n_points_per_iteration=BUDGET, progress=None, echo=lambda _line: None)
    if name in ("embedded", "ray", "local_run"):
        if name != "embedded":
            monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
            monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
            local.ray_address = request.getfixturevalue("ray_head")
        return Side(name, local)
    if name == "panda":
        _grid_env(monkeypatch, request.getfixturevalue("contract_gridsim"))
        return Side(name, SubmitOptions(), remote=True)
    server = request.getfixturevalue("contract_idds")
    proxy = tmp_path / "proxy.pem"
    proxy.write_text("any file: the local REST app injects a test DN\n")
    monkeypatch.setenv("X509_USER_PROXY", str(proxy))
    local.grid.idds_host = server.url
    return Side(name, local)
