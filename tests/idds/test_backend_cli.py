"""``submit_idds --backend idds`` as a user types it, without a server: dry run, and the one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO, installed

pytest.importorskip("idds.atlas.workflowv2.atlashpowork", reason="idds-atlas (hpogrid[grid]) is not installed")

SPACE = '{"height": {"method": "uniform", "dimension": {"low": -100, "high": 100}}}'


def hpogrid(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([installed("hpogrid"), *args], env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("idds_cli_home")


@pytest.fixture(scope="module")
def project(home: Path) -> dict[str, str]:
    """One project for the module (each command costs seconds on a busy machine)."""
    env = {k: v for k, v in os.environ.items() if k not in ("HPOGRID_IDDS_HOST", "X509_USER_PROXY")}
    env["HPOGRID_HOME"] = str(home)
    env["PATH"] = f"{Path(installed('hpogrid')).parent}{os.pathsep}{env.get('PATH', '')}"
    for args in (["model_config", "create", "m", "--script", "simple_objective.py", "--model", "simple_objective"],
                 ["search_space", "create", "s", SPACE],
                 ["hpo_config", "create", "h", "--algorithm", "random", "--metric", "loss", "--mode", "min",
                  "--num_trials", "12", "--max_concurrent", "2"],
                 ["grid_config", "create", "g", "--backend", "idds"],
                 ["project", "create", "p", "--scripts_path", str(REPO / "examples/scripts/simple_objective.py"),
                  "--model_config", "m", "--search_space", "s", "--hpo_config", "h", "--grid_config", "g"]):
        proc = hpogrid(args, env)
        assert proc.returncode == 0, proc.stderr
    env["X509_USER_PROXY"] = str(home / "no-proxy-here.pem")
    return env


def test_grid_config_takes_backend_idds(project: dict[str, str], home: Path) -> None:
    assert json.loads((home / "configs/grid/g.json").read_text())["backend"] == "idds"


def test_dry_run_prints_the_workflow_and_sends_nothing(project: dict[str, str], home: Path) -> None:
    proc = hpogrid(["submit_idds", "p", "--dry-run", "--n_points_per_iteration", "4", "--seed", "3",
                    "--idds-host", "http://127.0.0.1:9/idds"], project)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert (out["backend"], out["idds_host"]) == ("idds", "http://127.0.0.1:9/idds")
    (work,) = out["workflow"]["works"]
    assert (work["type"], work["max_points"], work["num_points_per_iteration"], work["es"]) == ("ATLASHPOWork", 12, 4, True)
    assert work["workload_id"] == out["workflow"]["workload_id"]
    assert "hpogrid-steering --in /HPOiDDS/%IN --out /HPOiDDS/%OUT" in work["arguments"]
    assert not (home / "projects/p/campaigns").exists()  # no campaign, no store


@pytest.mark.parametrize("args, message", [
    ([], "no iDDS server: pass --idds-host URL (e.g. http://127.0.0.1:8080/idds) or set HPOGRID_IDDS_HOST"),
    (["--idds-host", "ftp://x/" + "y" * 3000], "--idds-host must be an http(s) URL, got 'ftp://x/yyy"),
    (["--idds-host", "http://127.0.0.1:9/idds"], "no x509 proxy at "),
    (["--idds-host", "http://127.0.0.1:9/idds", "--steering-command", "python s.py %IN %OUT"],
     "--steering-command does not apply to --backend idds"),
])
def test_bad_input_is_one_line_and_writes_nothing(project: dict[str, str], home: Path, args: list[str],
                                                  message: str) -> None:
    proc = hpogrid(["submit_idds", "p", "--backend", "idds", *args], project)
    assert proc.returncode != 0 and proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and message in lines[0] and len(lines[0]) < 400, proc.stderr
    assert not (home / "projects/p/campaigns").exists()
