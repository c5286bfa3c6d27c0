"""`hpogrid local_run` as a user types it, then `hpogrid report` reading the same campaign."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.conftest import REPO, installed


def hpogrid(*args: str, env: dict[str, str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([installed("hpogrid"), *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def test_local_run_then_report(cli_env, tmp_path: Path) -> None:
    steps = [
        ["model_config", "create", "m", "--script", "simple_objective.py", "--model", "simple_objective"],
        ["search_space", "create", "s", '{"height":{"method":"uniform","dimension":{"low":-100,"high":100}},'
                                        '"width":{"method":"uniform","dimension":{"low":0,"high":20}}}'],
        ["hpo_config", "create", "h", "--algorithm", "hyperopt", "--metric", "loss", "--mode", "min",
         "--num_trials", "12", "--max_concurrent", "2", "--scheduler", "fifo", "--seed", "3"],
        ["grid_config", "create", "g"],
        ["project", "create", "ex1", "--scripts_path", str(REPO / "examples/scripts/simple_objective.py"),
         "--model_config", "m", "--search_space", "s", "--hpo_config", "h", "--grid_config", "g"],
    ]
    for step in steps:
        proc = hpogrid(*step, env=cli_env, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
    run = hpogrid("local_run", "ex1", env=cli_env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "height" in run.stdout and "best" in run.stdout.lower()

    report = hpogrid("report", "ex1", "--to_json", "--to_csv", "--to_html", "--to_pcp", "--to_mlflow",
                     "--outname", "res", env=cli_env, cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert (tmp_path / "res.csv").read_text().count("\n") == 13  # header + one row per trial
    assert "plotly" in (tmp_path / "res.html").read_text()
    assert list(tmp_path.glob("res*parallel*.html")) and (tmp_path / "mlruns").is_dir()
    rows = json.loads((tmp_path / "res.json").read_text())
    assert len(rows) == 12 and all(r["status"] == "finished" for r in rows)
    for r in rows:  # the stored loss is the objective of the stored point
        assert abs(r["loss"] - ((r["height"] - 14) ** 2 - abs(r["width"] - 3))) < 1e-6

    missing = hpogrid("local_run", "nope", env=cli_env, cwd=tmp_path)
    assert missing.returncode != 0 and len(missing.stderr.strip().splitlines()) == 1
    assert "nope" in missing.stderr and "Traceback" not in missing.stderr
