"""The local iDDS's stand-ins for docker and HTCondor, run as iDDS runs them (real subprocesses),
and the environment builder's refusal; no server needed, seconds."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from hpogrid.iddslocal import Unavailable, ensure_environment, status
from hpogrid.iddslocal.server import _idds_env, _install_standins
from tests.conftest import installed

SCRIPT = """#!/bin/bash
echo "in $(pwd)"
docker run --rm -v "$(pwd)":/HPOiDDS -e GREETING=hi img:1 {python} -c "import json, os, sys; json.dump({{'argv': sys.argv[1:], 'greeting': os.environ['GREETING']}}, open('/HPOiDDS/out.json', 'w'))" /HPOiDDS/in.json
"""


@pytest.fixture
def pool(tmp_path: Path) -> dict[str, str]:
    _install_standins(tmp_path / "bin")
    env = dict(os.environ)
    env.update({"PATH": f"{tmp_path / 'bin'}{os.pathsep}{env['PATH']}", "HPOGRID_IDDS_POOL": str(tmp_path / "pool")})
    return env


def test_a_steering_job_runs_through_condor_submit_and_docker(tmp_path: Path, pool: dict[str, str]):
    job = tmp_path / "job"
    job.mkdir()
    (job / "step.sh").write_text(SCRIPT.format(python=sys.executable))
    (job / "job.jdl").write_text(f"initialdir = {job}\nExecutable = {job / 'step.sh'}\n"
                                 "Output = p_1.$(ClusterId).$(ProcId).out\nError = p_1.$(ClusterId).$(ProcId).err\n"
                                 '+Processing_id = "1_77_1"\nQueue 1\n')
    submitted = subprocess.run(["condor_submit", str(job / "job.jdl")], env=pool, capture_output=True, text=True)
    assert submitted.stdout.splitlines()[-1] == "1 job(s) submitted to cluster 1."
    # the container path was mapped back to the job folder, -e exported, the job ran in initialdir
    assert json.loads((job / "out.json").read_text()) == {"argv": [str(job / "in.json")], "greeting": "hi"}
    assert (job / "p_1.1.0.out").read_text() == f"in {job}\n"
    queue = subprocess.run(["condor_q", "-format", "%s", "ClusterId", "1"], env=pool, capture_output=True, text=True)
    assert (queue.returncode, queue.stdout) == (0, "")
    history = subprocess.run(["condor_history", "-format", "%s", "ClusterId", "1"], env=pool, capture_output=True,
                             text=True)
    assert history.stdout == f"1 1_77_1 4 {job} p_1.1.0.out p_1.1.0.err"
    second = subprocess.run(["condor_submit", str(job / "job.jdl")], env=pool, capture_output=True, text=True)
    assert second.stdout.endswith("submitted to cluster 2.\n")


def test_docker_without_run_does_nothing_and_without_image_fails(pool: dict[str, str]):
    assert subprocess.run(["docker", "image", "rm", "-f", "img:1"], env=pool).returncode == 0
    bad = subprocess.run(["docker", "run", "--rm"], env=pool, capture_output=True, text=True)
    assert (bad.returncode, bad.stderr) == (125, "docker stand-in: no image given\n")


def test_the_steering_environment_has_no_trace_of_the_idds_venv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    idds_python = tmp_path / "venv" / "bin" / "python"
    monkeypatch.setenv("VIRTUAL_ENV", str(tmp_path / "venv"))
    monkeypatch.setenv("PYTHONPATH", "/somewhere")
    monkeypatch.setenv("X509_USER_PROXY", "/tmp/x509")
    monkeypatch.setenv("PATH", f"{idds_python.parent}{os.pathsep}/usr/bin")
    env = _idds_env(tmp_path / "w", Path("/opt/hpogrid/bin"), idds_python)
    assert env["PATH"].split(os.pathsep) == [str(tmp_path / "w" / "bin"), "/opt/hpogrid/bin", "/usr/bin"]
    assert not {"VIRTUAL_ENV", "PYTHONPATH", "X509_USER_PROXY"} & set(env)
    assert env["IDDS_CONFIG"] == str(tmp_path / "w" / "idds.cfg")


def test_an_environment_that_cannot_be_built_is_unavailable(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(Unavailable, match="cannot create") as info:
        ensure_environment(blocker / "venv")
    assert "\n" not in info.value.reason


def test_start_refuses_a_bad_folder_or_a_busy_port_in_one_line(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    bad = subprocess.run([installed("hpogrid-idds-local"), "start", "--workdir", str(blocker / "w")],
                         capture_output=True, text=True, timeout=60)
    assert (bad.returncode, bad.stdout) == (1, "")
    assert bad.stderr == f"Error: cannot use {blocker / 'w'} as the work folder: Not a directory\n"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        port = busy.getsockname()[1]
        taken = subprocess.run([installed("hpogrid-idds-local"), "start", "--workdir", str(tmp_path / "w"),
                                "--port", str(port)], capture_output=True, text=True, timeout=60)
    assert (taken.returncode, taken.stderr) == (1, f"Error: port {port} on 127.0.0.1 is already in use\n")
    usage = subprocess.run([installed("hpogrid-idds-local"), "start"], capture_output=True, text=True, timeout=60)
    assert usage.returncode == 2 and "Missing option '--workdir'" in usage.stderr and "Traceback" not in usage.stderr


def test_status_of_a_folder_without_a_server(tmp_path: Path):
    assert status(tmp_path).lines() == [f"no local iDDS in {tmp_path.resolve()}"]
    assert not status(tmp_path).up
