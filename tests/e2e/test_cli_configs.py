"""The config and project commands as a user types them (the installed `hpogrid`)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import installed

EX1 = [
    "model_config create simple_objective_model --script simple_objective.py --model simple_objective",
    ["search_space", "create", "simple_objective_space",
     '{"height":{"method":"uniform","dimension":{"low":-100,"high":100}}, '
     '"width":{"method":"uniform","dimension":{"low":0,"high":20}}}'],
    "hpo_config create random_search_min_loss --algorithm random --metric loss --mode min --num_trials 200",
    "grid_config create manc_standard --site ANALY_MANC_GPU_TEST",
]
EX2 = [
    "model_config create simple_trainable_model --script simple_trainable.py --model MyTrainableClass",
    ["search_space", "create", "simple_trainable_space",
     '{"alpha":{"method":"uniform","dimension":{"low":-10,"high":10}}, '
     '"beta": {"method":"categorical","dimension":{"categories":[-1,0,1,2,3,4,5]}}}'],
    "hpo_config create bayesian_min_loss --algorithm bayesian --metric loss --mode min --num_trials 200",
]


def run(args, env, check=True) -> subprocess.CompletedProcess:
    argv = args.split() if isinstance(args, str) else args
    proc = subprocess.run([installed("hpogrid"), *argv], env=env, capture_output=True, text=True, timeout=120)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_reference_examples_verbatim(cli_env, tmp_path: Path) -> None:
    for cmd in EX1 + EX2:
        run(cmd, cli_env)
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "simple_objective.py").write_text("def simple_objective(config, reporter):\n    reporter(loss=0)\n")
    (scripts / "simple_trainable.py").write_text("class MyTrainableClass:\n    pass\n")
    run(f"project create simple_objective --scripts_path {scripts}/simple_objective.py "
        "--model_config simple_objective_model --search_space simple_objective_space "
        "--hpo_config random_search_min_loss --grid_config manc_standard", cli_env)
    run(f"project create simple_trainable --scripts_path {scripts}/simple_trainable.py "
        "--model_config simple_trainable_model --search_space simple_trainable_space "
        "--hpo_config bayesian_min_loss --grid_config manc_standard", cli_env)

    shown = json.loads(run("hpo_config show random_search_min_loss", cli_env).stdout)
    assert (shown["algorithm"], shown["metric"], shown["mode"], shown["num_trials"]) == ("random", "loss", "min", 200)
    space = json.loads(run("search_space show simple_trainable_space", cli_env).stdout)
    assert space["beta"]["dimension"]["categories"] == [-1, 0, 1, 2, 3, 4, 5]
    grid = json.loads(run("grid_config show manc_standard", cli_env).stdout)
    assert grid["site"] == ["ANALY_MANC_GPU_TEST"]
    project = json.loads(run("project show simple_objective", cli_env).stdout)
    assert project["model_config"]["model"] == "simple_objective"
    assert run("project list", cli_env).stdout.split() == ["simple_objective", "simple_trainable"]
    assert run("hpo_config list *min_loss", cli_env).stdout.split() == ["bayesian_min_loss", "random_search_min_loss"]

    run("hpo_config update random_search_min_loss --algorithm hyperopt", cli_env)
    updated = json.loads(run("hpo_config show random_search_min_loss", cli_env).stdout)
    assert updated["algorithm"] == "hyperopt" and updated["num_trials"] == 200
    run("model_config remove simple_trainable_model", cli_env)
    assert "simple_trainable_model" not in run("model_config list", cli_env).stdout
    where = run("--where", cli_env).stdout
    assert cli_env["HPOGRID_HOME"] in where


BAD = [
    ("hpo_config create x --num_trials 0", 2, "num_trials >= 1"),
    ("hpo_config create x --max_concurrent 0", 2, "max_concurrent >= 1"),
    ("hpo_config create x --algorithm nope", 2, "'nope' is not one of"),
    ("hpo_config create x --scheduler nope", 2, "'nope' is not one of"),
    ("hpo_config create x --mode sideways", 2, "'sideways' is not one of"),
    ("hpo_config create x --stop {bad", 2, "not valid JSON"),
    ("hpo_config create a/b", 2, "invalid config name 'a/b'"),
    ("hpo_config create ..", 2, "invalid config name '..'"),
    (["hpo_config", "create", "with space"], 2, "invalid config name"),
    (["hpo_config", "create", ""], 2, "must not be empty"),
    ("hpo_config show missing", 1, "no hpo config named 'missing'"),
    ("hpo_config update missing --mode min", 1, "no hpo config named 'missing'"),
    ("hpo_config remove missing", 1, "no hpo config named 'missing'"),
    (["search_space", "create", "s", "{bad"], 2, "not valid JSON"),
    (["search_space", "create", "s", '{"x":{"method":"foo","dimension":{}}}'], 2, "unknown method 'foo'"),
    (["search_space", "create", "s", '{"x":{"method":"uniform","dimension":{"low":0,"hi":1}}}'], 2, "unknown dimension"),
    (["search_space", "create", "s", '{"x":{"method":"uniform","dimension":{"low":0}}}'], 2, "needs dimension(s) high"),
    (["search_space", "create", "s", '{"x":{"method":"uniform","dimension":{"low":3,"high":1}}}'], 2, "low < high"),
    (["search_space", "create", "s", '{"x":{"method":"quniform","dimension":{"low":0,"high":1,"q":0}}}'], 2, "q > 0"),
    (["search_space", "create", "s", '{"x":{"method":"normal","dimension":{"mu":0,"sigma":0}}}'], 2, "sigma > 0"),
    (["search_space", "create", "s", '{"x":{"method":"categorical","dimension":{"categories":[]}}}'], 2, "non-empty"),
    ("model_config create m --model f", 2, "needs 'script'"),
    ("project create p --scripts_path /does/not/exist --model_config m --search_space s --hpo_config h "
     "--grid_config g", 1, "does not exist"),
    ("bogus_command", 2, "No such command"),
]


@pytest.mark.parametrize("args, code, words", BAD)
def test_bad_input_is_one_line(cli_env, hpogrid_home: Path, args, code, words) -> None:
    before = sorted(str(p) for p in hpogrid_home.rglob("*"))
    proc = run(args, cli_env, check=False)
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert sorted(str(p) for p in hpogrid_home.rglob("*")) == before


def test_create_existing_and_project_with_missing_parts(cli_env, tmp_path: Path) -> None:
    run("hpo_config create h", cli_env)
    run("hpo_config create h", cli_env)  # the same create again (as pasting two README examples does)
    proc = run("hpo_config create h --num_trials 5", cli_env, check=False)
    assert proc.returncode == 1 and "exists" in proc.stderr
    script = tmp_path / "t.py"
    script.write_text("def f(config):\n    return {'loss': 1}\n")
    proc = run(f"project create p --scripts_path {script} --model_config missing --search_space s "
               "--hpo_config h --grid_config g", cli_env, check=False)
    assert proc.returncode == 1 and "no model config named 'missing'" in proc.stderr
    assert "p" not in run("project list", cli_env).stdout.split()
