"""The grid sandbox driven by the grid's own commands, as a grid user types them: panda-client's
``phpo`` (plain and segmented), ``prun``, ``pbook``; idds-client's ``ClientManager``; ``rucio``.

Each HPO task's rounds follow iDDS 2.6.21 (a round only when no point is unevaluated, 10 points a
round unless ``num_points_per_iteration``, the budget counted in points with a loss) and each job
follows runHPO's HTTP flow (event range from PanDA, point from ``GET /idds/hpo``, loss by ``PUT``).
The steering here is a tiny deterministic script, so every count below is exact.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest

from .conftest import DATASET, DATASET_FILES, client, wait_task

pytestmark = pytest.mark.slow

STEER = '''
import argparse, json
p = argparse.ArgumentParser()
for flag in ("--in", "--out", "--n", "--max"):
    p.add_argument(flag, type=str if flag in ("--in", "--out") else int)
a = p.parse_args()
doc = json.load(open(getattr(a, "in")))
points, space = doc["points"], doc["opt_space"]
if isinstance(space, list):  # segmented: [[model_id, point], loss] in, [[model_id, point], ...] out
    per_model = a.max // len(space)
    out = []
    for seg in space:
        mine = sum(1 for (m, _), _ in points if m == seg["model_id"])
        out += [[seg["model_id"], {"x": mine + i}] for i in range(min(a.n, per_model - mine))]
else:
    out = [{"x": len(points) + i} for i in range(a.n)]
json.dump(out, open(a.out, "w"))
'''

TRAIN = '''
import json, math, sys, time
point = json.load(open("input.json"))
model, point = (point[0], point[1]) if isinstance(point, list) else (None, point)
x = point["x"]
start = time.time()
time.sleep({delay})
json.dump({"x": x, "model": model, "start": start, "end": time.time(),
           "staged": {f: open(f).read() for f in json.load(open("input_ds.json"))} if model is not None else {}},
          open("meta.json", "w"))
if x == 1 and "{fail}" == "yes":
    sys.exit(3)  # no output.json: runHPO exits 13, PanDA retries
if x == 2 and "{fail}" == "yes":
    json.dump({"status": 1, "loss": None, "message": "diverged"}, open("output.json", "w"))
elif x == 3 and "{fail}" == "yes":
    json.dump({"status": 0, "loss": float("nan")}, open("output.json", "w"))
else:
    json.dump({"status": 0, "loss": (x - 5) ** 2, "message": ""}, open("output.json", "w"))
'''


def make_workdir(tmp_path: Path, *, fail: bool = False, delay: float = 0.0) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    (work / "train.py").write_text(TRAIN.replace("{fail}", "yes" if fail else "no").replace("{delay}", str(delay)))
    (work / "space.json").write_text(json.dumps({"x": {"type": "Choice", "params": {"choices": [0, 1]}}}))
    (tmp_path / "steer.py").write_text(STEER)
    return work


def phpo(env: dict[str, str], work: Path, out_ds: str, *extra: str) -> int:
    steer = (f'run --rm -v "$(pwd)":/HPOiDDS steer:1 python3 {work.parent / "steer.py"} --in /HPOiDDS/%IN '
             "--out /HPOiDDS/%OUT --n %NUM_POINTS --max %MAX_POINTS")
    result = client("phpo", "--outDS", out_ds, "--evaluationContainer", "docker://eval:1",
                    "--evaluationExec", "python train.py && echo through-the-shell", "--steeringExec", steer,
                    "--searchSpaceFile", "space.json", "--evaluationMeta", "meta.json", *extra, env=env, cwd=work)
    m = re.search(r"new jediTaskID=(\d+)", result.stdout)
    assert result.returncode == 0 and m, result.stdout
    return int(m.group(1))


def idds_manager(env: dict[str, str]) -> Any:
    """idds-client's ClientManager on the sandbox, with the sandbox's test proxy."""
    os.environ.update({k: env[k] for k in ("IDDS_CLIENT_MODE", "IDDS_LOCAL_CONFIG_ROOT", "X509_USER_PROXY")})
    from idds.client.clientmanager import ClientManager

    cm = ClientManager(host=env["IDDS_HOST"], timeout=30)
    cm.auth_type, cm.x509_proxy = "x509_proxy", env["X509_USER_PROXY"]
    cm.setup_client()
    return cm


def task_dir(gridsim: dict, tid: int) -> Path:
    return gridsim["state"] / "tasks" / str(tid)


def test_phpo_rounds_follow_idds_and_each_job_speaks_http(grid_env: dict, gridsim: dict, tmp_path: Path):
    work = make_workdir(tmp_path, delay=0.2)
    tid = phpo(grid_env, work, "user.tester.gs.rounds", "--maxPoints", "12", "--nParallelEvaluation", "3",
               "--minUnevaluatedPoints", "1")
    assert tid >= 10**7  # a jediTaskID, not a request id, for pbook
    wait_task(gridsim, tid, ("done",), timeout=120)
    folder = task_dir(gridsim, tid)
    # iDDS: 10 points a round (phpo's num_points_per_generation is not read), then max_points - finished
    assert sorted(p.name for p in (folder / "rounds").iterdir()) == ["1.0", "2.0"]
    logs = [(folder / "rounds" / r / "steering.log").read_text() for r in ("1.0", "2.0")]
    assert "--n 10 --max 12" in logs[0] and "--n 2 --max 12" in logs[1]
    second = json.loads((folder / "rounds" / "2.0" / "idds_input.json").read_text())
    assert len(second["points"]) == 10 and all(loss is not None for _, loss in second["points"])  # all evaluated
    # the points and losses, read back by idds-client as a user would
    cm = idds_manager(grid_env)
    points = cm.get_hyperparameters(workload_id=tid, request_id=None)
    assert [p["id"] for p in points] == [str(i) for i in range(1, 13)]
    assert all(p["loss"] == (p["parameters"]["x"] - 5) ** 2 for p in points)
    assert [p["parameters"]["x"] for p in points] == list(range(12))
    # every job asked PanDA for its event and iDDS for its point, and PUT its loss: 12 of each
    log = Path(gridsim["log"]).read_text()
    assert len(re.findall(rf'"GET /idds/hpo/{tid}/null/\d+/null/null HTTP', log)) == 12
    assert len(re.findall(rf'"PUT /idds/hpo/{tid}/null/\d+/[0-9.e+-]+ HTTP', log)) == 12
    jobs = sorted(folder.glob("jobs/*/*"))
    assert len(jobs) == 12 and all("through-the-shell" in (j / "pilot.log").read_text() for j in jobs)
    spans = [(m["start"], m["end"]) for m in (json.loads((j / "meta.json").read_text()) for j in jobs)]
    overlap = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    assert 2 <= overlap <= 3  # nParallelEvaluation jobs at once, never more
    # pbook: show, show ID, the job metadata
    shown = client("pbook", "show", env=grid_env).stdout
    assert "PBook user: Tester" in shown and str(tid) in shown
    one = client("pbook", "show", str(tid), env=grid_env).stdout
    assert re.search(rf"{tid}\s+\d+\s+done\s+100%\s+user.tester.gs.rounds/", one), one
    meta_file = tmp_path / "meta_out.json"
    client("pbook", "get_user_job_metadata", str(tid), str(meta_file), env=grid_env)
    meta = json.loads(meta_file.read_text())
    assert len(meta) == 12 and sorted(m["x"] for m in meta.values()) == list(range(12))
    status = cm.get_status(request_id=None, workload_id=tid, with_detail=False)
    assert str(status).endswith("Finished") or getattr(status, "name", "") == "Finished", status


def test_failed_points_five_attempts_then_1e5(grid_env: dict, gridsim: dict, tmp_path: Path):
    """x=0 loss 0.0; x=1 no output (exit 13); x=2 status 1; x=3 loss NaN (a result, kept as such)."""
    work = make_workdir(tmp_path, fail=True)
    tid = phpo(grid_env, work, "user.tester.gs.fail", "--maxPoints", "4", "--nParallelEvaluation", "2")
    wait_task(gridsim, tid, ("finished",), timeout=120)
    folder = task_dir(gridsim, tid)
    assert [len(list((folder / "jobs" / str(i)).iterdir())) for i in range(1, 5)] == [1, 5, 5, 1]
    assert "ERROR: output.json doesn't exist" in (folder / "jobs" / "2" / "5" / "pilot.log").read_text()
    assert "status=1 message=diverged" in (folder / "jobs" / "3" / "5" / "pilot.log").read_text()
    points = idds_manager(grid_env).get_hyperparameters(workload_id=tid, request_id=None)
    losses = [p["loss"] for p in points]
    assert losses[:3] == [25, 1e5, 1e5] and math.isnan(losses[3])
    meta_file = tmp_path / "meta.json"
    client("pbook", "get_user_job_metadata", str(tid), str(meta_file), env=grid_env)
    # every job's metadata, failed attempts included: each job whose payload wrote meta.json (all 12, unless
    # a loaded machine made a job fail before its payload ran, e.g. fetching the sandbox: then it has none)
    wrote = [d for d in (folder / "jobs").glob("*/*") if (d / "meta.json").is_file()]
    assert len(wrote) >= 10 and len(json.loads(meta_file.read_text())) == len(wrote), [
        (d.name, (d / "pilot.log").read_text()[-500:]) for d in (folder / "jobs").glob("*/*") if d not in wrote]
    assert re.search(rf"{tid}\s+\d+\s+finished", client("pbook", "show", str(tid), env=grid_env).stdout)


def test_pbook_kill_and_retry_a_running_task(grid_env: dict, gridsim: dict, tmp_path: Path):
    work = make_workdir(tmp_path, delay=3)
    tid = phpo(grid_env, work, "user.tester.gs.kill", "--maxPoints", "3", "--nParallelEvaluation", "1")
    cm = idds_manager(grid_env)
    deadline = time.time() + 60
    while time.time() < deadline and not any(p["loss"] is not None for p in
                                             cm.get_hyperparameters(workload_id=tid, request_id=None) or []):
        time.sleep(0.3)
    killed = client("pbook", "kill", str(tid), env=grid_env).stdout
    assert f"command=kill is registered for task ID {tid}" in killed, killed
    wait_task(gridsim, tid, ("aborted",), timeout=60)
    assert re.search(rf"{tid}\s+\d+\s+aborted", client("pbook", "show", str(tid), env=grid_env).stdout)
    again = client("pbook", "kill", str(tid), env=grid_env).stdout
    assert "Command rejected: the kill command is not accepted if the task is in aborted status" in again
    retried = client("pbook", "retry", str(tid), env=grid_env).stdout
    assert f"command=retry is registered for task ID {tid}" in retried, retried
    wait_task(gridsim, tid, ("done",), timeout=90)
    points = cm.get_hyperparameters(workload_id=tid, request_id=None)
    assert [p["loss"] for p in points] == [25, 16, 9]
    # the killed job left its folder without output; its point was evaluated by the next job
    folders = {i: sorted((task_dir(gridsim, tid) / "jobs" / str(i)).iterdir()) for i in (1, 2, 3)}
    assert len(folders[1]) == 1 and sorted(len(f) for f in folders.values()) == [1, 1, 2]
    (twice,) = [f for f in folders.values() if len(f) == 2]
    assert not (twice[0] / "output.json").exists() and (twice[1] / "output.json").exists()
    unknown = client("pbook", "kill", "10999999", env=grid_env).stdout
    assert "jediTaskID=10999999 not found" in unknown


def test_segmented_phpo_with_training_files(grid_env: dict, gridsim: dict, tmp_path: Path):
    work = make_workdir(tmp_path)
    (work / "segs.json").write_text(json.dumps([{"name": "segA", "files": ["a.h5"]},
                                                {"name": "segB", "files": ["b.h5"]}]))
    tid = phpo(grid_env, work, "user.tester.gs.seg", "--maxPoints", "2", "--nParallelEvaluation", "2",
               "--segmentSpecFile", "segs.json", "--trainingDS", DATASET)
    wait_task(gridsim, tid, ("done",), timeout=120)
    points = idds_manager(grid_env).get_hyperparameters(workload_id=tid, request_id=None)
    assert sorted((p["parameters"][0], p["parameters"][1]["x"]) for p in points) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    for job in task_dir(gridsim, tid).glob("jobs/*/*"):
        meta = json.loads((job / "meta.json").read_text())
        name = DATASET_FILES[meta["model"]]  # each segment's job gets its own files, staged with their content
        assert meta["staged"] == {name: f"content of {name}\n"}
        assert f"--segmentID={meta['model']}" in (job / "job_parameters.txt").read_text()


def test_steering_container_without_workdir_fails_as_idds_would(grid_env: dict, gridsim: dict, tmp_path: Path):
    """iDDS 2.6.21 mounts ``$(pwd):None`` (phpo sends no workdir): docker refuses, 1 + 3 retries, the request fails."""
    work = make_workdir(tmp_path)
    result = client("phpo", "--outDS", "user.tester.gs.noworkdir", "--evaluationContainer", "docker://eval:1",
                    "--evaluationExec", "python train.py", "--steeringContainer", "steer:1",
                    "--steeringExec", "python3 /opt/steer.py --in /data/%IN --out /data/%OUT",
                    "--searchSpaceFile", "space.json", "--maxPoints", "2", env=grid_env, cwd=work)
    tid = int(re.search(r"new jediTaskID=(\d+)", result.stdout).group(1))
    wait_task(gridsim, tid, ("failed",), timeout=60)
    folder = task_dir(gridsim, tid)
    assert sorted(p.name for p in (folder / "rounds").iterdir()) == ["1.0", "1.1", "1.2", "1.3"]
    last = (folder / "rounds" / "1.3" / "steering.log").read_text()
    assert "invalid mount path: 'None' mount path must be absolute" in last
    assert not (folder / "jobs").exists()
    assert re.search(rf"{tid}\s+\d+\s+failed\s+0%", client("pbook", "show", str(tid), env=grid_env).stdout)


def test_prun_templates_and_input_files(grid_env: dict, gridsim: dict, tmp_path: Path):
    work = tmp_path / "prun"
    work.mkdir()
    (work / "job.py").write_text(
        "import json, os, sys\n"
        "staged = {f: open(f).read() for f in sorted(os.listdir('.')) if f.endswith('.h5')}\n"
        "json.dump({'argv': sys.argv[1:], 'staged': staged}, open('userJobMetadata.json', 'w'))\n")
    runs = {
        "user.tester.gs.prun.in": ["--exec", "python job.py %RNDM:100 ${SEQNUMBER} %IN && echo shell-ok",
                                   "--inDS", DATASET, "--nFilesPerJob", "1"],
        "user.tester.gs.prun.n": ["--exec", "python job.py %RNDM:100", "--nJobs", "2"],
    }
    found = {}
    for out_ds, args in runs.items():
        result = client("prun", "--outDS", out_ds, "--noBuild", *args, env=grid_env, cwd=work)
        m = re.search(r"new jediTaskID=(\d+)", result.stdout)
        assert result.returncode == 0 and m, result.stdout
        tid = int(m.group(1))
        wait_task(gridsim, tid, ("done",), timeout=90)
        meta_file = tmp_path / f"{out_ds}.json"
        client("pbook", "get_user_job_metadata", str(tid), str(meta_file), env=grid_env)
        found[out_ds] = sorted((m["argv"], m["staged"]) for m in json.loads(meta_file.read_text()).values())
    assert found["user.tester.gs.prun.in"] == [
        (["101", "101", "a.h5"], {"a.h5": "content of a.h5\n"}),
        (["102", "102", "b.h5"], {"b.h5": "content of b.h5\n"})]
    assert found["user.tester.gs.prun.n"] == [(["101"], {}), (["102"], {})]


def test_rucio_whoami_and_did_content(grid_env: dict):
    who = client("rucio", "whoami", env=grid_env)
    assert who.returncode == 0 and re.search(r"account\s*:\s*tester", who.stdout), who.stdout
    listed = client("rucio", "did", "content", "list", "--short", DATASET, env=grid_env)
    assert listed.returncode == 0 and listed.stdout.split() == [f"user.tester:{f}" for f in DATASET_FILES]
    missing = client("rucio", "did", "content", "list", "user.tester.no.such.ds", env=grid_env)
    assert missing.returncode != 0
    assert "Data identifier 'user.tester:user.tester.no.such.ds' not found" in missing.stdout
