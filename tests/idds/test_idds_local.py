"""The real iDDS 2.6.21 on this machine: the installed ``hpogrid-idds-local`` command, and a whole
HPO request run by iDDS's own agents with ``hpogrid-steering`` to its budget."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest

from hpogrid.iddslocal import LocalIdds, Unavailable, ensure_environment
from tests.conftest import installed
from tests.idds import hpo
from tests.idds.shared import idds_workdir

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()


def _run(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([installed("hpogrid-idds-local"), *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def workdir() -> Iterator[Path]:
    folder = idds_workdir()
    yield folder / "idds"
    shutil.rmtree(folder, ignore_errors=True)


def test_cli_start_status_stop(workdir: Path, tmp_path: Path):
    try:
        ensure_environment()
    except Unavailable as exc:
        pytest.skip(f"the real iDDS cannot run here: {exc.reason}")
    port = _free_port()
    t0 = time.monotonic()
    started = _run("start", "--workdir", str(workdir), "--port", str(port))
    to_ping = time.monotonic() - t0
    try:
        assert started.returncode == 0, started.stderr
        assert started.stdout.splitlines() == [f"export HPOGRID_IDDS_HOST=http://127.0.0.1:{port}/idds",
                                               f"export X509_USER_PROXY={workdir.resolve() / 'proxy.pem'}"]
        print(f"start to ping: {to_ping:.1f} s")
        up = _run("status", "--workdir", str(workdir))
        assert (up.returncode, up.stdout) == (0, f"http://127.0.0.1:{port}/idds: answers "
                                                 "(database running, rest running, agents running)\n")
        # a second start in the same folder, and a start on a port in use: one line, nothing changed
        again = _run("start", "--workdir", str(workdir), "--port", str(port))
        assert again.returncode == 1 and again.stdout == ""
        assert again.stderr == (f"Error: a local iDDS is already running in {workdir.resolve()} "
                                f"(http://127.0.0.1:{port}/idds); stop it first\n")
        busy = _run("start", "--workdir", str(tmp_path / "other"), "--port", str(port))
        assert (busy.returncode, busy.stderr) == (1, f"Error: port {port} on 127.0.0.1 is already in use\n")
        pids = [p["pid"] for p in json.loads((workdir / "state.json").read_text())["processes"].values()]
        assert len(pids) == 3 and all(_alive(pid) for pid in pids)
    finally:
        stopped = _run("stop", "--workdir", str(workdir), "--purge")
    assert (stopped.returncode, stopped.stdout) == (0, "stopped: database, rest, agents\n")
    assert not (workdir / "pgdata").exists()
    assert not any(_alive(pid) for pid in pids)  # PostgreSQL included
    down = _run("status", "--workdir", str(workdir))
    assert (down.returncode, down.stdout) == (1, f"no local iDDS in {workdir.resolve()}\n")
    assert _run("stop", "--workdir", str(workdir)).stdout == f"nothing running in {workdir.resolve()}\n"


def test_a_whole_hpo_request_runs_to_its_budget(real_idds: LocalIdds):
    """6 points, 2 per round: iDDS's agents run hpogrid-steering three times (through the docker
    stand-in), wait for every loss, and finish the request at the budget."""
    workload_id = 610001
    request_id = hpo.submit(real_idds.url, real_idds.proxy, hpo.request_metadata(workload_id, max_points=6,
                                                                                   per_round=2))
    campaign = hpo.drive(real_idds.url, workload_id, request_id, budget=6, timeout=300)
    print(f"first points after {campaign.first_point_after} s; gaps between a round's last loss and the "
          f"next points: {campaign.round_gaps} s; finished after {campaign.elapsed:.1f} s")
    assert campaign.status == "Finished"
    assert [p["id"] for p in campaign.points] == ["1", "2", "3", "4", "5", "6"]
    assert len(campaign.round_gaps) == 2  # three rounds of two points
    final = hpo.points(real_idds.url, workload_id)
    assert {p["id"]: p["loss"] for p in final} == campaign.losses
    for point in final:
        assert set(point["parameters"]) == {"x", "y"}
        assert 0 <= point["parameters"]["x"] <= 1 and 0 <= point["parameters"]["y"] <= 10
    # the steering ran three times, each with the points so far, and wrote %OUT readable by others
    work = next(real_idds.workdir.glob(f"work/request_{request_id}_{workload_id}/transform_*/processing_*"))
    assert len(list(work.glob("*.out"))) == 3
    assert stat.S_IMODE((work / "output.json").stat().st_mode) == 0o644
