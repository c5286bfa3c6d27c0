"""Task parameters: hpogrid's HPO task has the keys and structure of phpo's (wire capture), with
hpogrid's values; ``--dry-run`` prints it and the exact commands; the steering command runs."""

from __future__ import annotations

import base64
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from hpogrid.client.backends.base import GridOptions, SubmitOptions
from hpogrid.client.errors import ConfigError
from hpogrid.client.grid.taskparams import (META_FILE, build_hpo_task, build_run_task, output_dataset,
                                            steering_config, steering_exec)
from hpogrid.gridsim.commands import job_spec, local_steering

from .conftest import SPACE_1, WIRE_DIR, hpogrid, make_project


def project(**grid) -> dict:
    return {
        "project_name": "simple_objective",
        "hpo_config": {"algorithm": "hyperopt", "metric": "loss", "mode": "min", "num_trials": 8, "max_concurrent": 2,
                       "algorithm_param": {}, "seed": 5},
        "search_space": SPACE_1,
        "model_config": {"script": "simple_objective.py", "model": "simple_objective", "param": {}},
        "grid_config": {"site": ["ANALY_A_GPU"], "container": "docker://example/eval:1", "retry": False,
                        "inDS": None, "outDS": "user.{nickname}.hpogrid.{project}.out.{timestamp}",
                        "backend": "panda", **grid},
    }


def structure(value):
    """Keys and types, recursively (values dropped)."""
    if isinstance(value, dict):
        return {k: structure(v) for k, v in value.items()}
    if isinstance(value, list):
        return [structure(v) for v in value]
    return type(value).__name__


def _capture():
    return json.loads((WIRE_DIR / "taskParamMap_full.json").read_text())


def test_full_task_matches_phpo_capture_in_keys_and_structure():
    ref = _capture()
    options = SubmitOptions(min_unevaluated_points=1, n_points_per_iteration=2,
                            grid=GridOptions(checkpoint_save="ckpt", checkpoint_load="ckpt.tgz"))
    task = build_hpo_task(project(inDS="user.tester.train.ds"), options, nickname="tester").task_params
    # The capture also asked for --evaluationMetrics and --maxPointsPerEvaluationJob, which hpogrid does not
    # use; everything else must line up one to one.
    unused = ("$JEDITASKID.metrics", "--outMetricsFile", "--maxLoopCount")
    ref_params = [p for p in ref["jobParameters"] if not str(p["value"]).startswith(unused)]
    assert set(task) == set(ref) | {"site"}  # one site: phpo sends "site" (the capture named none)
    # one addition to phpo's request data: iDDS 2.6.21 reads the round size from num_points_per_iteration
    assert set(task["hpoRequestData"]) == set(ref["hpoRequestData"]) | {"num_points_per_iteration"}
    assert [set(p) for p in task["jobParameters"]] == [set(p) for p in ref_params]
    assert [p["type"] for p in task["jobParameters"]] == [p["type"] for p in ref_params]
    for key in ("multiStepExec", "log"):
        assert structure(task[key]) == structure(ref[key]), key
    # the fixed parts are phpo's own
    for key in ("hpoWorkflow", "noInput", "nEventsPerJob", "vo", "transPath", "prodSourceLabel", "skipScout",
                "useLocalIO", "coreCount", "processingType"):
        assert task[key] == ref[key], key
    assert ref_params[0] == task["jobParameters"][0]
    # hpogrid's values
    assert task["nEvents"] == 2 and task["totNumJobs"] == 8 and task["maxNumJobs"] == 16
    assert task["site"] == "ANALY_A_GPU"
    assert task["container_name"] == "docker://example/eval:1"
    assert re.fullmatch(r"user\.tester\.hpogrid\.simple_objective\.out\.\d{14}/", task["taskName"])
    hrd = task["hpoRequestData"]
    assert hrd["max_points"] == 8 and hrd["num_points_per_generation"] == 2 and hrd["min_unevaluated_points"] == 1
    assert hrd["num_points_per_iteration"] == 2
    assert hrd["opt_space"] == SPACE_1 and hrd["executable"] == "docker" and hrd["sandbox"] is None
    values = [p["value"] for p in task["jobParameters"]]
    assert f"--outMetaFile={META_FILE}" in values
    assert "--checkPointToSave ckpt" in values and "--checkPointToLoad ckpt.tgz" in values
    assert [p for p in task["jobParameters"] if p.get("param_type") == "input"][0]["dataset"] == "user.tester.train.ds"
    spec = job_spec(task)
    assert shlex.split(spec.payload)[:3] == ["hpogrid-evaluate", "--meta", META_FILE]
    assert "--checkpoint-save" in spec.payload and spec.training_file == "input_ds.json"


def test_defaults_sites_and_gpu():
    task = build_hpo_task(project(site=["A", "B"]), SubmitOptions(grid=GridOptions(gpu=True)), nickname="nick").task_params
    assert task["includedSite"] == ["A", "B"] and "site" not in task
    assert task["architecture"] == "#&nvidia"
    assert task["hpoRequestData"]["num_points_per_generation"] == 2  # max_concurrent by default
    assert "min_unevaluated_points" not in task["hpoRequestData"]
    any_site = build_hpo_task(project(), SubmitOptions(site=["ANY"]), nickname="nick").task_params
    assert "site" not in any_site and "includedSite" not in any_site


def test_steering_exec_carries_the_algorithm_and_runs_locally(tmp_path: Path):
    proj = project()
    text = steering_exec(proj, image="steer:1")
    assert text.startswith('run --rm -v "$(pwd)":/HPOiDDS steer:1 ')
    encoded = re.search(r"echo (\S+) \| base64 -d", text).group(1)
    assert json.loads(base64.b64decode(encoded)) == json.loads(json.dumps(steering_config(proj)))
    # iDDS's way: %IN in the round folder, docker run -> here; the real hpogrid-steering answers
    command = local_steering(text)
    assert command.image == "steer:1"
    (tmp_path / "idds_input.json").write_text(json.dumps({"points": [[{"height": 1.0, "width": 2.0}, 3.0]],
                                                          "opt_space": SPACE_1}))
    argv = shlex.split(command.template.replace("%IN", "idds_input.json").replace("%OUT", "output.json")
                       .replace("%NUM_POINTS", "3").replace("%MAX_POINTS", "8"))
    bindir = str(Path(sys.executable).parent)
    result = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True,
                            env={"PATH": f"{bindir}:/usr/bin:/bin"}, timeout=120)
    assert result.returncode == 0, result.stderr
    points = json.loads((tmp_path / "output.json").read_text())
    assert len(points) == 3
    assert all(-100 <= p["height"] <= 100 and 0 <= p["width"] <= 20 for p in points)


def test_output_dataset_pattern():
    assert output_dataset("user.{nickname}.x.{project}", nickname="n", project="p") == "user.n.x.p"
    with pytest.raises(ConfigError, match="may only use"):
        output_dataset("user.{who}.x", nickname="n", project="p")


def test_run_task_is_prun_with_n_jobs():
    task = build_run_task(project(), n_jobs=3, nickname="tester", site=["ANALY_X"])
    params = task.task_params
    assert params["nEvents"] == 3 and params["nEventsPerJob"] == 1 and params["noInput"] is True
    assert params["site"] == "ANALY_X" and params["disableAutoRetry"] == 1
    assert params["container_name"] == "docker://example/eval:1"
    spec = job_spec(params)
    assert spec.sandbox == task.sandbox and spec.sandbox.startswith("jobO.")
    assert shlex.split(spec.payload)[:3] == ["python3", "-m", "hpogrid.client.grid.job"]


def test_cli_dry_run_prints_task_and_commands_without_credential(cli_env: dict[str, str]):
    env = {k: v for k, v in cli_env.items() if not k.startswith(("PANDA_", "X509_", "IDDS_"))}
    env["X509_USER_PROXY"] = "/nonexistent/proxy"
    env["PANDA_URL_SSL"] = env["PANDA_URL"] = "http://127.0.0.1:9/server/panda"  # never contacted
    make_project(env, "dry", script="simple_objective.py", model="simple_objective", space=SPACE_1, num_trials=5)
    out = hpogrid("submit_idds", "dry", "--backend", "panda", "--dry-run", "--min_unevaluated_points", "1", env=env)
    data = json.loads(out.stdout)
    assert data["task_parameters"]["hpoWorkflow"] is True
    assert data["task_parameters"]["hpoRequestData"]["max_points"] == 5
    assert data["steeringExec"] == data["task_parameters"]["hpoRequestData"]["arguments"]
    assert "hpogrid-steering" in data["steeringExec"] and data["evaluationExec"].startswith("hpogrid-evaluate")
    assert "NICKNAME" in data["outDS"]  # no credential: the nickname is left as a placeholder
    run = hpogrid("run", "dry", "--n_jobs", "2", "--dry-run", env=env)
    assert json.loads(run.stdout)["task_parameters"]["nEvents"] == 2


def test_cli_grid_options_reach_the_task(cli_env: dict[str, str]):
    """submit_idds's grid options (GPU, checkpoints, job cap, sites) end up in what PanDA gets."""
    env = {k: v for k, v in cli_env.items() if not k.startswith(("PANDA_", "X509_", "IDDS_"))}
    env["PANDA_URL_SSL"] = env["PANDA_URL"] = "http://127.0.0.1:9/server/panda"  # never contacted
    make_project(env, "opts", script="simple_objective.py", model="simple_objective", space=SPACE_1, num_trials=5)
    out = hpogrid("submit_idds", "opts", "--backend", "panda", "--dry-run", "--gpu", "--site", "ANALY_A,ANALY_B",
                  "--checkpoint-save", "ckpt", "--checkpoint-load", "ckpt.tgz", "--checkpoint-interval", "10",
                  "--max_evaluation_jobs", "7", "--steering-container", "example/steer:3", env=env)
    data = json.loads(out.stdout)
    params = data["task_parameters"]
    values = [j["value"] for j in params["jobParameters"]]
    assert params["architecture"] == "#&nvidia" and params["maxNumJobs"] == 7
    assert "--checkPointToSave ckpt" in values and "--checkPointToLoad ckpt.tgz" in values
    assert "--checkPointInterval 10" in values
    assert "--checkpoint-save ckpt --checkpoint-load ckpt.tgz" in data["evaluationExec"]
    assert " example/steer:3 " in data["steeringExec"]
    assert "ANALY_A,ANALY_B" in data["panda_client_args"]
