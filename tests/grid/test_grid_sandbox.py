"""End to end against the grid sandbox, through the installed ``hpogrid`` and the real panda-client,
idds-client and rucio code: Examples 1 and 2 submitted with ``submit_idds --backend panda`` and read
back with ``report``; ``tasks kill``/``retry`` on a running task; ``run --n_jobs 2``; ``sites``; and
each failure as one clear line."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import (DATASET, DATASET_FILES, SPACE_1, SPACE_2, WIRE_DIR, add_fault, campaign_id, hpogrid,
                       make_project, sim_state, task_id, wait_task)
from .test_grid_conformance import same_shape, shape

pytestmark = pytest.mark.slow


def report_json(env: dict[str, str], project: str, tmp_path: Path, *extra: str) -> tuple[list[dict], str]:
    out = tmp_path / f"{project}_report"
    result = hpogrid("report", project, "--to_json", "-o", str(out), *extra, env=env)
    return json.loads(out.with_suffix(".json").read_text()), result.stderr


def submit(env: dict[str, str], project: str, *args: str) -> tuple[int, str]:
    result = hpogrid("submit_idds", project, "--backend", "panda", "--progress", "none", *args, env=env)
    text = result.stdout + result.stderr
    return task_id(text), campaign_id(text)


def test_example1_simple_objective_with_input_dataset(grid_env: dict, gridsim: dict, tmp_path: Path):
    make_project(grid_env, "ex1", script="simple_objective.py", model="simple_objective", space=SPACE_1,
                 num_trials=4, max_concurrent=2, in_ds=DATASET)
    tid, cid = submit(grid_env, "ex1", "--min_unevaluated_points", "0")
    shown = json.loads(hpogrid("tasks", "show", "--json", env=grid_env).stdout)
    assert any(r["jeditaskid"] == int(cid) and r["backend"] == "panda" and r["remote_id"] == str(tid) for r in shown)
    wait_task(gridsim, tid, ("done",))
    records, _ = report_json(grid_env, "ex1", tmp_path)
    assert len(records) == 4
    for r in records:
        assert r["status"] == "finished"
        assert math.isclose(r["loss"], (r["height"] - 14) ** 2 - abs(r["width"] - 3), rel_tol=1e-9, abs_tol=1e-9)
    # the jobs saw the training dataset's file list (runHPO's input_ds.json)
    job_dirs = list((gridsim["state"] / "tasks" / str(tid) / "jobs").glob("*/*"))
    assert len(job_dirs) == 4
    assert json.loads((job_dirs[0] / "input_ds.json").read_text()) == DATASET_FILES
    assert (job_dirs[0] / "project.json").is_file()  # the sandbox is the job's working directory
    rows = json.loads(hpogrid("tasks", "show", "--json", env=grid_env).stdout)
    mine = [r for r in rows if r["jeditaskid"] == int(cid)][0]
    assert mine["status"] == "finished" and mine["done"] == 4
    # what iDDS serves about this task is shaped like the real app's captured replies
    import requests

    base = grid_env["IDDS_HOST"]
    for path, capture in ((f"request/null/{tid}/true", "get_request_4_detail.json"),
                          (f"request/null/{tid}/false", "get_request_4.json"),
                          (f"hpo/{tid}/null/null/null/null", "get_hpo_all.json")):
        reply = requests.get(f"{base}/{path}", timeout=30)
        assert reply.status_code == 200 and reply.headers["Content-Type"] == "application/json"
        ref, got = json.loads((WIRE_DIR / capture).read_text()), reply.json()
        if capture.startswith("get_hpo"):  # the hyperparameter names are the project's own
            ref, got = ([{**p, "parameters": sorted(p["parameters"].values())} for p in x] for x in (ref, got))
        assert same_shape(shape(got), shape(ref)) == [], capture
        assert len(reply.json()) == (4 if capture.startswith("get_hpo") else 1)


def test_example2_trainable_class(grid_env: dict, gridsim: dict, tmp_path: Path):
    make_project(grid_env, "ex2", script="simple_trainable.py", model="MyTrainableClass", space=SPACE_2,
                 num_trials=4, max_concurrent=2, extra_hpo=["--stop", '{"training_iteration": 3}'])
    tid, cid = submit(grid_env, "ex2")
    wait_task(gridsim, tid, ("done",))
    # tasks show brings the grid campaign up to date by itself
    rows = json.loads(hpogrid("tasks", "show", "--json", env=grid_env).stdout)
    mine = [r for r in rows if r["jeditaskid"] == int(cid)][0]
    assert mine["status"] == "finished" and mine["done"] == 4
    records, _ = report_json(grid_env, "ex2", tmp_path)
    assert len(records) == 4 and all(r["status"] == "finished" for r in records)
    for r in records:
        assert math.isclose(r["loss"], math.tanh(3 / r["alpha"]) * r["beta"], rel_tol=1e-6, abs_tol=1e-9)


SLOW = '''
import time


def slow_objective(config, reporter):
    time.sleep(2)
    reporter(loss=(config["height"] - 14) ** 2 - abs(config["width"] - 3))
'''


def test_kill_and_retry_a_running_task(grid_env: dict, gridsim: dict, tmp_path: Path):
    script = tmp_path / "slow_objective.py"
    script.write_text(SLOW)
    make_project(grid_env, "slow", script=script, model="slow_objective", space=SPACE_1, num_trials=4,
                 max_concurrent=1)
    tid, cid = submit(grid_env, "slow", "--n_points_per_iteration", "1")
    deadline = time.time() + 120
    while time.time() < deadline:  # until the first point has its loss
        row = [t for t in sim_state(gridsim)["tasks"] if t["jediTaskID"] == tid][0]
        if row["nFilesFinished"] >= 1:
            break
        time.sleep(0.5)
    records, warnings = report_json(grid_env, "slow", tmp_path)
    assert 1 <= len([r for r in records if r["status"] == "finished"]) < 4 and "not refreshed" not in warnings
    # iDDS answers 500 with its error headers: report says so in one line naming the task, keeps the stored results
    # (the prefix is report's own call: the running jobs GET and PUT their points under /idds/hpo too)
    add_fault(gridsim, prefix=f"/idds/hpo/{tid}/null/null", status=500, times=1, exception_class="CoreException",
              message='{"msg": "database is locked"}')
    result = hpogrid("report", "slow", env=grid_env)
    warning = [line for line in result.stderr.splitlines() if "not refreshed" in line]
    assert len(warning) == 1 and f"task {tid}" in warning[0] and "database is locked" in warning[0], result.stderr
    killed = hpogrid("tasks", "kill", cid, env=grid_env)
    assert f"campaign {cid}" in killed.stdout
    wait_task(gridsim, tid, ("aborted",))
    records, _ = report_json(grid_env, "slow", tmp_path)
    rows = json.loads(hpogrid("tasks", "show", "--json", "--local", env=grid_env).stdout)
    assert [r for r in rows if r["jeditaskid"] == int(cid)][0]["status"] == "killed"
    assert len([r for r in records if r["status"] == "finished"]) < 4
    retried = hpogrid("tasks", "retry", cid, env=grid_env)
    assert "retried on panda" in retried.stdout
    wait_task(gridsim, tid, ("done",))
    records, _ = report_json(grid_env, "slow", tmp_path)
    assert len(records) == 4 and all(r["status"] == "finished" for r in records)


def test_run_n_jobs_and_job_metadata(grid_env: dict, gridsim: dict, tmp_path: Path):
    make_project(grid_env, "runp", script="simple_objective.py", model="simple_objective", space=SPACE_1,
                 num_trials=3, max_concurrent=1)
    submitted = hpogrid("run", "runp", "--n_jobs", "2", env=grid_env).stdout
    tid, cid = task_id(submitted), campaign_id(submitted)
    wait_task(gridsim, tid, ("done",), timeout=200)
    code = ("import json, sys; from hpogrid.client.grid import monitor; "
            f"print(json.dumps(monitor.grid_tasks(jeditaskid={tid}, metadata=True)))")
    out = subprocess.run([sys.executable, "-c", code], env=grid_env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    (row,) = json.loads(out.stdout)
    assert row["status"] == "done" and len(row["metadata"]) == 2
    # the project's seed (11) offset by prun's job number: the two jobs search differently
    assert sorted(job["metaData"]["seed"] for job in row["metadata"]) == [11, 12]
    trials = [{json.dumps(t["height"]) for t in job["metaData"]["result"].values()} for job in row["metadata"]]
    assert not trials[0] & trials[1]
    for job in row["metadata"]:
        meta = job["metaData"]
        assert meta["project_name"] == "runp" and meta["status"] == 0 and len(meta["result"]) == 3
        best = min(meta["result"].values(), key=lambda r: r["loss"])
        assert meta["best_metric_score"] == best["loss"]
    # the task is a campaign of the project: report reads every trial of both jobs from the job metadata
    records, _ = report_json(grid_env, "runp", tmp_path)
    # a trial that the job's scheduler cut short is a result (`stopped`), never a failure
    assert len(records) == 6 and all(r["status"] in ("finished", "stopped") for r in records), records
    for r in records:
        assert math.isclose(r["loss"], (r["height"] - 14) ** 2 - abs(r["width"] - 3), rel_tol=1e-9, abs_tol=1e-9)
    listed = json.loads(hpogrid("tasks", "show", "--json", env=grid_env).stdout)
    mine = [r for r in listed if r["remote_id"] == str(tid)]
    assert len(mine) == 1 and mine[0]["jeditaskid"] == int(cid) and mine[0]["status"] == "finished"


def test_sites_gpu_by_default(grid_env: dict):
    gpu = hpogrid("sites", "--json", env=grid_env)
    names = [r["site"] for r in json.loads(gpu.stdout)]
    assert names and all("GPU" in n for n in names) and "ANALY_QMUL_GPU_TEST" not in names  # test status
    every = [r["site"] for r in json.loads(hpogrid("sites", "--all_sites", "--all_status", "--json",
                                                   env=grid_env).stdout)]
    assert "ANALY_CERN" in every and "ANALY_QMUL_GPU_TEST" in every
    table = hpogrid("sites", "-n", "ANALY_MWT2*", "-i", "corecount", env=grid_env).stdout.splitlines()
    assert table[0].split() == ["site", "corecount"] and table[1].split() == ["ANALY_MWT2_GPU", "8"]


def _one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0, result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("hpogrid: error: "), result.stderr
    return lines[0]


def test_server_down(grid_env: dict):
    make_project(grid_env, "down", script="simple_objective.py", model="simple_objective", space=SPACE_1)
    env = dict(grid_env)
    for key in ("PANDA_URL_SSL", "PANDA_URL", "PANDACACHE_URL"):
        env[key] = "http://127.0.0.1:9/server/panda"  # discard port: nothing listens
    line = _one_error_line(hpogrid("submit_idds", "down", "--backend", "panda", env=env, check=False))
    assert "127.0.0.1:9" in line and "Connection refused" in line
    line = _one_error_line(hpogrid("sites", env=env, check=False))
    assert "cannot reach PanDA" in line or "Connection refused" in line


def test_missing_dataset_is_refused_before_submission(grid_env: dict, gridsim: dict):
    make_project(grid_env, "nods", script="simple_objective.py", model="simple_objective", space=SPACE_1,
                 in_ds="user.tester.not.uploaded")
    before = len(sim_state(gridsim)["tasks"])
    line = _one_error_line(hpogrid("submit_idds", "nods", "--backend", "panda", env=grid_env, check=False))
    assert "user.tester:user.tester.not.uploaded does not exist in Rucio" in line
    line = _one_error_line(hpogrid("run", "nods", env=grid_env, check=False))
    assert "does not exist in Rucio" in line
    assert len(sim_state(gridsim)["tasks"]) == before


def test_unknown_task_id(grid_env: dict):
    make_project(grid_env, "ghost", script="simple_objective.py", model="simple_objective", space=SPACE_1)
    code = ("from hpogrid.client import campaigns; "
            "print(campaigns.new('ghost', 'panda', remote_id='999999', status='running').campaign()['id'])")
    cid = subprocess.run([sys.executable, "-c", code], env=grid_env, capture_output=True, text=True,
                         check=True).stdout.strip()
    for command in ("kill", "retry"):
        line = _one_error_line(hpogrid("tasks", command, cid, env=grid_env, check=False))
        assert "task 999999" in line and "no such task" in line, line
    for command in ("kill", "retry"):  # a grid task id that is no local campaign goes to PanDA
        line = _one_error_line(hpogrid("tasks", command, "424242", env=grid_env, check=False))
        assert "task 424242: PanDA has no such task" in line, line


def test_panda_http_error_is_one_line_and_nothing_is_recorded(grid_env: dict, gridsim: dict):
    make_project(grid_env, "http500", script="simple_objective.py", model="simple_objective", space=SPACE_1)
    before = len(sim_state(gridsim)["tasks"])
    shown = json.loads(hpogrid("tasks", "show", "--json", "--local", env=grid_env).stdout)
    add_fault(gridsim, prefix="/api/v1/task/submit", status=500, times=1, message="Internal Server Error")
    line = _one_error_line(hpogrid("submit_idds", "http500", "--backend", "panda", env=grid_env, check=False))
    assert "no valid answer" in line and "Internal Server Error" in line  # panda-client drops the HTTP code
    assert len(sim_state(gridsim)["tasks"]) == before
    assert json.loads(hpogrid("tasks", "show", "--json", "--local", env=grid_env).stdout) == shown


RAW_SUBMIT = """
import json, sys, tempfile, urllib.parse
from pathlib import Path
from hpogrid.client import projects
from hpogrid.client.backends.base import SubmitOptions
from hpogrid.client.grid import panda, taskparams
from hpogrid.client.grid.sandbox import make_sandbox

task = taskparams.build_hpo_task(projects.load(sys.argv[1]), SubmitOptions(), nickname="tester")
params = task.task_params["jobParameters"]
at = [p["value"] for p in params].index('-p "') + 1
params[at]["value"] = urllib.parse.quote(sys.argv[2])  # the evaluation payload, as phpo encodes it
with tempfile.TemporaryDirectory() as tmp:
    panda.upload_sandbox(make_sandbox(projects.path(sys.argv[1]), Path(tmp) / task.sandbox))
print(panda.submit_task(task.task_params))
"""

FAILED_EVALUATION = ("python3 -c \"import json; json.dump({'status': 1, 'loss': None, 'message': 'no luck'}, "
                     "open('output.json', 'w')); json.dump({'why': 'no luck'}, open('meta.json', 'w'))\"")


@pytest.mark.parametrize("payload, attempts_seen", [
    (FAILED_EVALUATION, "output.json"),  # the evaluation said it failed (status != 0): no loss reported
    ("python3 -c 'import sys; sys.exit(0)'", None),  # no output.json at all (runHPO: exit 13)
])
def test_failing_points_get_five_attempts_then_loss_1e5(payload: str, attempts_seen: str | None, grid_env: dict,
                                                        gridsim: dict):
    """PanDA's rule in the sandbox: a point whose job fails is retried, 5 attempts, then iDDS has loss 1e5."""
    import requests

    make_project(grid_env, "raw", script="simple_objective.py", model="simple_objective", space=SPACE_1,
                 num_trials=1, max_concurrent=1)
    out = subprocess.run([sys.executable, "-c", RAW_SUBMIT, "raw", payload], env=grid_env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    tid = int(out.stdout.strip())
    wait_task(gridsim, tid, ("finished",), timeout=120)
    jobs = gridsim["state"] / "tasks" / str(tid) / "jobs" / "1"
    assert sorted(p.name for p in jobs.iterdir()) == ["1", "2", "3", "4", "5"]
    if attempts_seen:
        assert all(json.loads((jobs / a / attempts_seen).read_text())["status"] == 1 for a in "12345")
    (point,) = requests.get(f"{grid_env['IDDS_HOST']}/hpo/{tid}/null/null/null/null", timeout=30).json()
    assert point["loss"] == 1e5
    # a grid task that is no local campaign: listed, its jobs' metadata shown, kill refused (it is over)
    shown = hpogrid("tasks", "show", "--metadata", "--jeditaskid", str(tid), env=grid_env).stdout
    assert f"grid task {tid}" in shown
    if attempts_seen:  # this payload leaves a metadata file: one per attempt, as PanDA keeps it per job
        assert shown.count('{"why": "no luck"}') == 5
    line = _one_error_line(hpogrid("tasks", "kill", str(tid), env=grid_env, check=False))
    assert f"task {tid}" in line and "not accepted if the task is in finished status" in line


def test_identical_sandbox_is_reused(grid_env: dict, gridsim: dict, tmp_path: Path):
    """panda-client's duplicate check (validate_cache_file): the same project folder is uploaded once."""
    make_project(grid_env, "reuse", script="simple_objective.py", model="simple_objective", space=SPACE_1)
    code = (
        "import sys\nfrom pathlib import Path\nfrom hpogrid.client import projects\n"
        "from hpogrid.client.grid import panda\nfrom hpogrid.client.grid.sandbox import make_sandbox\n"
        "names = [panda.upload_sandbox(make_sandbox(projects.path('reuse'), Path(sys.argv[1]) / f'jobO.{i}.tar'))"
        " for i in (1, 2)]\nprint(' '.join(names))\n")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], env=grid_env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["jobO.1.tar", "jobO.1.tar"]
    assert not (gridsim["state"] / "cache" / "jobO.2.tar").exists()
