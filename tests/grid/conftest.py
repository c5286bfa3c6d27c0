"""The grid sandbox for the grid tests: ``hpogrid-gridsim`` on a free loopback port, one per session.

Every test drives the real panda-client / idds-client / rucio code paths (mostly through the
installed ``hpogrid`` command, as a user types it) against it.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.conftest import REPO, installed, stop_group

WIRE_DIR = Path(__file__).with_name("wire")  # real iDDS replies and phpo's task parameters (docs/PROTOCOL.md)
DATASET = "user.tester.train.ds"
DATASET_FILES = ["a.h5", "b.h5"]


def parse_env(text: str) -> dict[str, str]:
    env = {}
    for line in text.splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export "):].partition("=")
            env[key] = value
    return env


@pytest.fixture(scope="session")
def gridsim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A running sandbox: ``{"env": {...}, "url": ..., "state": Path, "proc": Popen}``."""
    state = tmp_path_factory.mktemp("gridsim")
    env_file = state / "env.sh"
    files = state / "dataset_files"  # the training dataset's files, staged into the jobs that read it
    files.mkdir()
    for name in DATASET_FILES:
        (files / name).write_text(f"content of {name}\n")
    log = open(state / "server.log", "wb")
    proc = subprocess.Popen(
        [installed("hpogrid-gridsim"), "--port", "0", "--state-dir", str(state / "state"), "--env-file", str(env_file),
         "--nickname", "tester", "--dataset", f"{DATASET}={','.join(str(files / n) for n in DATASET_FILES)}"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    deadline = time.time() + 60
    while not env_file.exists() and time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"hpogrid-gridsim exited: {(state / 'server.log').read_text()}")
        time.sleep(0.1)
    env = parse_env(env_file.read_text())
    url = env["PANDA_URL_SSL"].rsplit("/server/panda", 1)[0]
    try:
        yield {"env": env, "url": url, "state": state / "state", "proc": proc, "log": state / "server.log"}
    finally:
        stop_group(proc, grace=30)
        log.close()


@pytest.fixture
def grid_env(gridsim: dict[str, Any], cli_env: dict[str, str]) -> dict[str, str]:
    """The environment of a user who pasted the sandbox's export lines."""
    env = {k: v for k, v in cli_env.items() if not k.startswith(("PANDA_", "IDDS_", "RUCIO_", "X509_", "OIDC_"))}
    env.update(gridsim["env"])
    return env


def client(name: str, *args: str, env: dict[str, str], cwd: Path | None = None,
           timeout: float = 120) -> subprocess.CompletedProcess:
    """One of the grid's own commands (panda-client's ``phpo``/``prun``/``pbook``, ``rucio``) as a
    user types it, with the sandbox's settings; stdout and stderr together (pbook logs to both)."""
    env = {**env, "PATH": f"{Path(installed('hpogrid')).parent}:{env.get('PATH', '/usr/bin:/bin')}"}
    return subprocess.run([installed(name), *args], env=env, cwd=cwd, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout)


def hpogrid(*args: str, env: dict[str, str], timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    """The installed ``hpogrid`` command, as a user types it."""
    result = subprocess.run([installed("hpogrid"), *args], env=env, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"hpogrid {' '.join(args)} exited {result.returncode}\n"
                             f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}")
    return result


def sim_state(gridsim: dict[str, Any]) -> dict[str, Any]:
    with urllib.request.urlopen(f"{gridsim['url']}/_gridsim/state", timeout=10) as r:
        return json.loads(r.read())


def add_fault(gridsim: dict[str, Any], **spec: Any) -> None:
    req = urllib.request.Request(f"{gridsim['url']}/_gridsim/fault", data=json.dumps(spec).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=10):
        pass


SPACE_1 = {"height": {"method": "uniform", "dimension": {"low": -100, "high": 100}},
           "width": {"method": "uniform", "dimension": {"low": 0, "high": 20}}}
SPACE_2 = {"alpha": {"method": "uniform", "dimension": {"low": -10, "high": 10}},
           "beta": {"method": "categorical", "dimension": {"categories": [-1, 0, 1, 2, 3, 4, 5]}}}


def make_project(env: dict[str, str], name: str, *, script: str | Path, model: str, space: dict[str, Any],
                 num_trials: int = 4, max_concurrent: int = 2, algorithm: str = "random", metric: str = "loss",
                 mode: str = "min", in_ds: str | None = None, extra_hpo: list[str] | None = None) -> None:
    """Configs and a project through the CLI (grid config with backend panda)."""
    scripts = Path(script) if Path(script).is_absolute() else REPO / "examples" / "scripts" / script
    hpogrid("model_config", "recreate", f"{name}_m", "--script", scripts.name, "--model", model, env=env)
    hpogrid("search_space", "recreate", f"{name}_s", json.dumps(space), env=env)
    hpogrid("hpo_config", "recreate", f"{name}_h", "--algorithm", algorithm, "--metric", metric, "--mode", mode,
            "--num_trials", str(num_trials), "--max_concurrent", str(max_concurrent), "--seed", "11",
            *(extra_hpo or []), env=env)
    grid = ["grid_config", "recreate", f"{name}_g", "--backend", "panda", "--site", "ANALY_MANC_GPU_TEST"]
    if in_ds:
        grid += ["--inDS", in_ds]
    hpogrid(*grid, env=env)
    hpogrid("project", "recreate", name, "--scripts_path", str(scripts), "--model_config", f"{name}_m",
            "--search_space", f"{name}_s", "--hpo_config", f"{name}_h", "--grid_config", f"{name}_g", env=env)


def campaign_id(stdout_and_err: str) -> str:
    import re

    m = re.search(r"campaign (\d+)", stdout_and_err)
    assert m, stdout_and_err
    return m.group(1)


def task_id(text: str) -> int:
    import re

    m = re.search(r"jediTaskID=(\d+)", text)
    assert m, text
    return int(m.group(1))


def quiet_log(gridsim: dict[str, Any]) -> str:
    """The server's log without the test's own polling of ``/_gridsim/state``."""
    return "".join(line for line in Path(gridsim["log"]).read_text().splitlines(keepends=True)
                   if "/_gridsim/state" not in line)


def wait_task(gridsim: dict[str, Any], tid: int, states: tuple[str, ...], timeout: float = 150) -> dict[str, Any]:
    deadline = time.time() + timeout
    row: dict[str, Any] = {}
    while time.time() < deadline:
        rows = [t for t in sim_state(gridsim)["tasks"] if t["jediTaskID"] == tid]
        if rows:
            row = rows[0]
            if row["status"] in states:
                return row
        time.sleep(0.5)
    raise AssertionError(f"task {tid} did not reach {states} in {timeout} s; last: {row}; "
                         f"server log:\n{quiet_log(gridsim)[-3000:]}")


