"""The fork server preloads the project's training module: behaviour, not time.

Real fork servers (``python -m hpogrid.client.engine._forkserver``), real ``hpogrid-evaluate`` jobs,
and one campaign through the installed ``hpogrid submit_idds``. Each training script appends its
process id to a counter file when its top level runs, so the number of imports is counted exactly.
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from hpogrid.client.engine import ForkServerRunner, Job, JobExit
from hpogrid.evaluator.preload import preload_verdict, scripts_fingerprint
from tests.conftest import stop_group
from tests.e2e.test_submit_idds import _free_port, hpogrid, make_project, points, wait_for

# Imported once per campaign when preloaded; a job that mutates module state must not leak it.
COUNTED = '''
import os
with open(os.environ["COUNT_FILE"], "a") as f:
    f.write(f"{os.getpid()}\\n")
CALLS = []
VERSION = 1

def objective(config, reporter):
    CALLS.append(config["x"])
    reporter(loss=float(config["x"]), calls=len(CALLS), version=VERSION)
'''

THREADED = COUNTED.replace("CALLS = []", '''CALLS = []
import threading, time
threading.Thread(target=time.sleep, args=(600,), name="user-poller", daemon=True).start()''')

# Its top level reads the point's input.json, which exists in a job folder but not in the project folder.
NEEDS_JOB_FOLDER = COUNTED.replace("CALLS = []", '''CALLS = []
import json
POINT = json.load(open("input.json"))''')


def write_project(root: Path, script: str) -> Path:
    """A project folder as the client freezes it (project.json + scripts/), per docs/CONTRACTS.md."""
    (root / "scripts").mkdir(parents=True)
    (root / "scripts" / "objective.py").write_text(script)
    (root / "project.json").write_text(json.dumps({
        "project_name": "counted",
        "hpo_config": {"metric": "loss", "mode": "min", "stop": {"training_iteration": 1}},
        "model_config": {"script": "objective.py", "model": "objective", "param": {}},
        "scripts": "scripts",
    }))
    return root


def run_jobs(runner: ForkServerRunner, root: Path, project: Path, xs: list[float], tag: str) -> list[dict]:
    """Start one job per x (all at once), wait for every exit; the jobs' meta.json files."""
    jobs = []
    for i, x in enumerate(xs):
        workdir = root / f"{tag}{i}"
        workdir.mkdir()
        (workdir / "input.json").write_text(json.dumps({"x": x}))
        job = Job(f"{tag}{i}", i, 1, workdir, evaluate=["--project", str(project), "--meta", "meta.json"])
        runner.start(job)
        jobs.append(job)
    exits: dict[str, JobExit] = {}
    sel = selectors.DefaultSelector()
    deadline = time.monotonic() + 120
    try:
        while len(exits) < len(jobs):
            assert time.monotonic() < deadline, f"jobs did not end: {sorted(exits)}"
            fd = runner.fileno()
            if fd is not None and not sel.get_map():
                sel.register(fd, selectors.EVENT_READ)
            sel.select(0.5)
            exits.update({e.key: e for e in runner.poll()})
    finally:
        sel.close()
    assert all(e.rc == 0 for e in exits.values()), exits
    metas = []
    for job in jobs:
        output = json.loads((job.workdir / "output.json").read_text())
        assert output["status"] == 0, (output, (job.workdir / "log").read_text())
        metas.append(json.loads((job.workdir / "meta.json").read_text()))
    return metas


def metrics(meta: dict) -> dict:
    return meta["results"][-1]["metrics"]


@pytest.fixture
def count_file(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "imports.txt"
    monkeypatch.setenv("COUNT_FILE", str(path))  # the fork server inherits it
    return path


def imports(count_file: Path) -> list[int]:
    return [int(line) for line in count_file.read_text().split()] if count_file.exists() else []


# ---- the rule ------------------------------------------------------------------------------------
@pytest.mark.parametrize("error, threads, cuda, reason, fork_safe", [
    (None, [], False, None, True),
    ("ImportError: x", [], False, "import error: ImportError: x", True),
    (None, ["poller"], False, "threads started at import: poller", False),
    ("E: y", ["b", "a"], False, "threads started at import: a, b", False),
    (None, [], True, "CUDA was initialised at import (it does not survive a fork)", False),
])
def test_preload_verdict(error, threads, cuda, reason, fork_safe) -> None:
    assert preload_verdict(error=error, new_threads=threads, cuda_initialized=cuda) == (reason, fork_safe)


def test_fingerprint_changes_with_edits_and_new_files_not_bytecode(tmp_path) -> None:
    (tmp_path / "a.py").write_text("x = 1")
    first = scripts_fingerprint(tmp_path)
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"junk")
    assert scripts_fingerprint(tmp_path) == first
    (tmp_path / "a.py").write_text("x = 2")
    os.utime(tmp_path / "a.py", ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    second = scripts_fingerprint(tmp_path)
    assert second != first
    (tmp_path / "helper.py").write_text("")
    assert scripts_fingerprint(tmp_path) not in (first, second)


# ---- the fork server -----------------------------------------------------------------------------
def test_preloaded_once_jobs_isolated_and_edited_script_reimported(tmp_path, count_file) -> None:
    project = write_project(tmp_path / "project", COUNTED)
    runner = ForkServerRunner(log=tmp_path / "fs.log", project_dir=project)
    runner.open()
    try:
        metas = run_jobs(runner, tmp_path, project, [1.0, 2.0, 3.0, 4.0], "a")
        server_pid = runner._proc.pid  # type: ignore[union-attr]
        assert runner.project == {"loaded": True, "reason": None}
        # imported once, in the server; each job its own process, none saw another's mutation
        assert imports(count_file) == [server_pid]
        assert [m["preload"] for m in metas] == [{"preloaded": True}] * 4
        assert [metrics(m)["calls"] for m in metas] == [1, 1, 1, 1]
        pids = {m["host"]["pid"] for m in metas}
        assert len(pids) == 4 and server_pid not in pids
        assert all(m["timings"]["load_s"] < 1.0 and "launch_s" in m["timings"] for m in metas)

        # the script is edited during the campaign: the next job runs the new code, imported once more
        script = project / "scripts" / "objective.py"
        script.write_text(COUNTED.replace("VERSION = 1", "VERSION = 2"))
        later = time.time_ns() + 2 * 10**9
        os.utime(script, ns=(later, later))
        metas = run_jobs(runner, tmp_path, project, [5.0, 6.0], "b")
        assert [metrics(m)["version"] for m in metas] == [2, 2]
        assert [m["preload"]["preloaded"] for m in metas] == [True, True]
        assert imports(count_file) == [server_pid, server_pid]
        assert (tmp_path / "fs.log").read_text().count("preloaded objective.py") == 2
    finally:
        runner.close()


def test_module_starting_threads_falls_back_to_fresh_processes(tmp_path, count_file) -> None:
    project = write_project(tmp_path / "project", THREADED)
    runner = ForkServerRunner(log=tmp_path / "fs.log", project_dir=project)
    runner.open()
    try:
        metas = run_jobs(runner, tmp_path, project, [1.0, 2.0], "t")
        reason = "threads started at import: user-poller"
        assert runner.project == {"loaded": False, "reason": reason}
        assert f"objective.py not preloaded ({reason}); jobs run as fresh processes" in (tmp_path / "fs.log").read_text()
        assert [m["preload"] for m in metas] == [{"preloaded": False, "reason": reason}] * 2
        # one import in the server (refused), one in each fresh job process
        counted = imports(count_file)
        assert len(counted) == 3 and counted[0] == runner._proc.pid  # type: ignore[union-attr]
        assert sorted(counted[1:]) == sorted(m["host"]["pid"] for m in metas)
        for i in range(2):
            assert f"not preloaded ({reason}); importing it in this job" in (tmp_path / f"t{i}" / "log").read_text()
    finally:
        runner.close()


def test_import_error_in_the_server_falls_back_to_an_import_in_the_job(tmp_path, count_file) -> None:
    project = write_project(tmp_path / "project", NEEDS_JOB_FOLDER)
    runner = ForkServerRunner(log=tmp_path / "fs.log", project_dir=project)
    runner.open()
    try:
        metas = run_jobs(runner, tmp_path, project, [1.0, 2.0], "e")
        assert runner.project["loaded"] is False  # type: ignore[index]
        assert runner.project["reason"].startswith("import error: FileNotFoundError")  # type: ignore[index]
        assert "each job imports it afresh" in (tmp_path / "fs.log").read_text()
        assert [m["preload"]["preloaded"] for m in metas] == [False, False]
        # the server's attempt (its top level ran up to the error), then one import in each job
        counted = imports(count_file)
        assert len(counted) == 3 and counted[0] == runner._proc.pid  # type: ignore[union-attr]
        assert sorted(counted[1:]) == sorted(m["host"]["pid"] for m in metas)
    finally:
        runner.close()


# ---- as a user types it --------------------------------------------------------------------------
def test_submit_idds_imports_the_training_script_once(cli_env, tmp_path) -> None:
    env = {**cli_env, "COUNT_FILE": str(tmp_path / "imports.txt")}
    space = {"x": {"method": "uniform", "dimension": {"low": 0, "high": 10}}}
    project = make_project(env, tmp_path, "counted", num_trials=6, concurrent=2, space=space, script=COUNTED)
    hpogrid(["submit_idds", "counted", "--progress", "none"], env)
    rows = points(project, 1)
    assert len(rows) == 6 and {r["state"] for r in rows.values()} == {"finished"}
    metas = [json.loads(Path(r["job_dir"], "meta.json").read_text()) for r in rows.values()]
    # two imports for six jobs: the pre-flight's check (its own process, before anything starts) and
    # the fork server's preload; no job imports the script itself
    counted = imports(tmp_path / "imports.txt")
    assert len(counted) == 2 and not set(counted) & {m["host"]["pid"] for m in metas}
    assert [metrics(m)["calls"] for m in metas] == [1] * 6
    assert all(m["preload"] == {"preloaded": True} for m in metas)
    assert "preloaded objective.py" in (project / "campaigns" / "1" / "forkserver.log").read_text()


@pytest.fixture
def ray_head(cli_env, tmp_path):
    """A private Ray head on loopback, in its own session, ended by its process group; its workers
    (and so their fork servers) count imports in ``tmp_path/imports.txt``."""
    ray = Path(sys.executable).parent / "ray"
    if not ray.exists():
        pytest.skip("ray is not installed (hpogrid[evaluator])")
    port = _free_port()  # an ephemeral port: outside Ray's worker port range (10002-19999)
    env = {**cli_env, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled",
           "COUNT_FILE": str(tmp_path / "imports.txt")}
    temp = tempfile.mkdtemp(prefix="hs", dir="/tmp")  # unix socket paths must stay short
    head = subprocess.Popen([str(ray), "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
                             "--num-cpus", "2", "--block", "--include-dashboard=false", "--disable-usage-stats",
                             "--temp-dir", temp], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        wait_for(lambda: socket.socket().connect_ex(("127.0.0.1", port)) == 0, 120, "the Ray head")
        yield env, f"127.0.0.1:{port}"
    finally:
        stop_group(head, grace=5)
        shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.slow
def test_ray_backend_workers_import_the_training_script_once_each(ray_head, tmp_path) -> None:
    """``--backend ray``: each Ray worker process keeps a warm fork server per project."""
    env, address = ray_head
    space = {"x": {"method": "uniform", "dimension": {"low": 0, "high": 10}}}
    project = make_project(env, tmp_path, "counted", num_trials=8, concurrent=2, space=space, script=COUNTED)
    hpogrid(["submit_idds", "counted", "--backend", "ray", "--ray-address", address, "--progress", "none"], env,
            timeout=300)
    rows = points(project, 1)
    assert len(rows) == 8 and {r["state"] for r in rows.values()} == {"finished"}, {r["message"] for r in rows.values()}
    metas = [json.loads(Path(r["job_dir"], "meta.json").read_text()) for r in rows.values()]
    assert all(m["preload"] == {"preloaded": True} for m in metas)
    assert [metrics(m)["calls"] for m in metas] == [1] * 8
    servers = imports(tmp_path / "imports.txt")
    jobs = {m["host"]["pid"] for m in metas}
    # one import per warm server (one per Ray worker process used), never one per job
    assert len(servers) == len(set(servers)) and 1 <= len(servers) < 8
    assert len(jobs) == 8 and not jobs & set(servers)


@pytest.fixture
def ray_worker():
    """This process as a Ray worker: ``_ray``'s per-process fork servers, closed and forgotten after."""
    from hpogrid.client.engine import _ray

    yield _ray
    for runner in _ray._SERVERS.values():
        runner.close()
    _ray._SERVERS.clear()
    for digest in ("speedtest-a", "speedtest-b", "speedtest-c"):
        shutil.rmtree(Path(tempfile.gettempdir()) / "hpogrid-ray" / digest, ignore_errors=True)


def test_ray_task_body_reuses_the_workers_warm_fork_server(tmp_path, count_file, ray_worker) -> None:
    """What a Ray worker runs per task (``ray_job``), called twice in this process as a worker would:
    one fork server for the project, the module imported once, each job its own process; a task of
    another project replaces the server."""
    _ray = ray_worker
    project = write_project(tmp_path / "project", COUNTED)
    bundle = _ray._pack(project)
    results = [_ray.ray_job(bundle, "speedtest-a", {"x": float(x)}, ["--meta", "meta.json"], {}, 60.0)
               for x in (1, 2)]
    server = _ray._SERVERS["speedtest-a"]._proc.pid  # type: ignore[union-attr]
    metas = [json.loads(r["files"]["meta.json"]) for r in results]
    assert [r["rc"] for r in results] == [0, 0]
    assert [json.loads(r["files"]["output.json"])["loss"] for r in results] == [1.0, 2.0]
    assert imports(count_file) == [server]
    assert [m["preload"] for m in metas] == [{"preloaded": True}] * 2
    assert [metrics(m)["calls"] for m in metas] == [1, 1]
    assert len({m["host"]["pid"] for m in metas} | {server}) == 3
    other = write_project(tmp_path / "other", COUNTED.replace("VERSION = 1", "VERSION = 3"))
    result = _ray.ray_job(_ray._pack(other), "speedtest-b", {"x": 3.0}, ["--meta", "meta.json"], {}, 60.0)
    assert metrics(json.loads(result["files"]["meta.json"]))["version"] == 3
    assert list(_ray._SERVERS) == ["speedtest-b"] and len(imports(count_file)) == 2


def test_ray_task_body_kills_a_job_at_the_hard_timeout(tmp_path, count_file, ray_worker) -> None:
    _ray = ray_worker
    project = write_project(tmp_path / "project", COUNTED.replace("    CALLS.append", "    import time; time.sleep(600)\n    CALLS.append"))
    result = _ray.ray_job(_ray._pack(project), "speedtest-c", {"x": 1.0}, ["--meta", "meta.json"], {}, 3.0)
    assert (result["rc"], result["signal"]) == (None, 9)
    assert "output.json" not in result["files"]
