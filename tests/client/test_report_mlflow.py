"""MLflow export, read back with MLflow's own client: experiment, runs, params, learning curves
(with steps), tags; exporting again adds nothing; a half-written run is replaced."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import pytest

pytest.importorskip("mlflow", reason="mlflow is in the report extra: pip install 'hpogrid[report]'")

from mlflow.tracking import MlflowClient  # noqa: E402

from hpogrid.client import report  # noqa: E402
from hpogrid.client.cli import main  # noqa: E402
from tests.client.test_report_stores import embedded_campaign, grid_campaign, make_project  # noqa: E402

pytestmark = pytest.mark.slow


def _runs(client: MlflowClient, exp_id: str) -> dict[str, object]:
    runs = client.search_runs([exp_id], max_results=1000)
    return {r.data.tags["hpogrid.point_key"]: r for r in runs}


def test_export_read_back_and_idempotent(tmp_path: Path) -> None:
    make_project(tmp_path)
    store = embedded_campaign(running=1)
    points = {p["id"]: p for p in store.points()}
    store.close()
    grid_campaign().close()
    uri = "sqlite:///" + (tmp_path / "ml" / "mlflow.db").as_posix()
    (tmp_path / "ml").mkdir()
    res = report.load("demo", id_range="1-2")

    done = report.export_mlflow(res, uri)
    assert (done["created"], done["skipped"], done["unfinished"]) == (11 + 6, 0, 1)
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("demo")
    assert exp is not None and exp.tags["hpogrid.metric"] == "accuracy"
    runs = _runs(client, exp.experiment_id)
    assert len(runs) == 17 and "1:12" not in runs  # the running point waits for a later export

    best = res.best()
    run = runs[f"{best['campaign']}:{best['point']}"]
    p = points[best["point"]]
    assert run.info.status == "FINISHED" and run.info.run_name == f"point {best['campaign']}:{best['point']}"
    assert run.data.params == {"lr": str(p["params"]["lr"]), "layers": str(p["params"]["layers"]),
                               "optimizer": p["params"]["optimizer"]}
    assert run.data.tags["hpogrid.status"] == "finished" and run.data.tags["hpogrid.host"] == "worker-1"
    assert run.data.tags["hpogrid.campaign"] == "1" and run.data.tags["hpogrid.backend"] == "embedded"
    assert run.info.start_time == int(p["started"] * 1000) and run.info.end_time == int(p["ended"] * 1000)
    curve = client.get_metric_history(run.info.run_id, "accuracy")
    assert [m.step for m in curve] == [1, 2, 3, 4]  # the whole learning curve, with steps
    assert [m.value for m in curve] == [r["metrics"]["accuracy"] for r in p["reports"]]
    assert curve[-1].value == pytest.approx(p["metric"])
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_loss")] == [1, 2, 3, 4]
    assert run.data.metrics["hpo_loss"] == pytest.approx(p["loss"])

    failed = runs["1:4"]
    assert failed.info.status == "FAILED" and "bad batch" in failed.data.tags["hpogrid.message"]
    grid = runs["2:1"]  # losses only: the metric is the negated loss, at step 0
    assert grid.data.tags["hpogrid.site"] == "ANALY_MANC_GPU_TEST"
    assert [(m.step, m.value) for m in client.get_metric_history(grid.info.run_id, "accuracy")] == [
        (0, pytest.approx(-grid.data.metrics["hpo_loss"]))]

    again = report.export_mlflow(report.load("demo", id_range="1-2"), uri)
    assert (again["created"], again["skipped"]) == (0, 17)
    assert len(_runs(client, exp.experiment_id)) == 17
    assert len(client.get_metric_history(run.info.run_id, "accuracy")) == 4

    # an export interrupted half-way (no completion tag) is redone, not duplicated
    client.delete_run(runs["2:3"].info.run_id)
    half = client.create_run(exp.experiment_id, tags={"hpogrid.point_key": "2:3"})
    fixed = report.export_mlflow(report.load("demo", id_range="1-2"), uri)
    assert (fixed["created"], fixed["skipped"]) == (1, 16)
    now = _runs(client, exp.experiment_id)
    assert len(now) == 17 and now["2:3"].info.run_id != half.info.run_id
    assert now["2:3"].data.tags["hpogrid.exported"] == "1"


def test_cli_default_store_is_mlruns_in_the_working_folder(tmp_path: Path) -> None:
    make_project(tmp_path)
    embedded_campaign(n=4, failed=()).close()
    out, err = io.StringIO(), io.StringIO()
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["report", "demo", "--to_mlflow"])
    finally:
        os.chdir(old)
    assert code == 0, err.getvalue()
    db = tmp_path / "mlruns" / "mlflow.db"
    assert db.is_file() and "4 run(s) created" in err.getvalue()
    client = MlflowClient(tracking_uri="sqlite:///" + db.as_posix())
    exp = client.get_experiment_by_name("demo")
    assert len(client.search_runs([exp.experiment_id])) == 4
