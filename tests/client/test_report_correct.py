"""Reports that are correct by default: points stopped early by a scheduler apart from finished
ones, learning curves, the metric's own column name, a terminal table of the best 20, and
importance skipped (with its reason) where fANOVA cannot be computed.

Unit tests read stores written through the real ``Store`` API; the end-to-end tests run the
installed ``hpogrid`` (a real ``local_run`` with Ray Tune's ASHA scheduler, and ``report``).
"""

from __future__ import annotations

import csv
import io
import json
import random
import re
import subprocess
from pathlib import Path

import pytest

from hpogrid.client import campaigns, report
from hpogrid.client.store import Store
from tests.client.test_report_stores import T0, accuracy, make_project, reports_for, sample
from tests.conftest import REPO, installed


def stopped_campaign(project: str = "demo", *, finished: int = 9, stopped: int = 4, seed: int = 5) -> Store:
    """A local_run campaign under a scheduler: full runs of 4 iterations, and runs stopped after 1."""
    rng = random.Random(seed)
    store = campaigns.new(project, "local_run", algorithm="random", metric="accuracy", mode="max",
                          max_points=finished + stopped, status="running", started=T0)
    ids = store.add_points([sample(rng) for _ in range(finished + stopped)])
    for i, pid in enumerate(ids):
        start = T0 + 10.0 * pid
        store.start_point(pid, host="laptop")
        acc = accuracy(store.point(pid)["params"])
        if i < stopped:  # cut short: its metric after one iteration is far below a full run's
            records = reports_for(acc, start)[:1]
            value = records[0]["metrics"]["accuracy"]
            store.stop_point(pid, loss=-value, metric=value, reports=records, message="by the scheduler at iteration 1")
        else:
            store.finish_point(pid, loss=-acc, metric=acc, reports=reports_for(acc, start), started=start,
                               ended=start + 8.0)
    store.update_campaign(status="finished", ended=T0 + 1000)
    return store


def render_text(results: report.Results, **kwargs) -> str:
    from rich.console import Console

    buf = io.StringIO()
    report.render(results, console=Console(file=buf, width=300), **kwargs)
    return buf.getvalue()


# ---- stopped -------------------------------------------------------------------------------
def test_stopped_points_are_apart_from_finished_ones(tmp_path: Path) -> None:
    make_project(tmp_path)
    stopped_campaign().close()
    res = report.load("demo")
    assert res.counts() == {"finished": 9, "stopped": 4, "failed": 0, "running": 0, "proposed": 0}
    assert len(res.rated) == 9 and set(res.rated["status"]) == {"finished"}  # ranked, plotted, best-of
    assert list(res.frame["status"]) == ["finished"] * 9 + ["stopped"] * 4
    assert res.best()["status"] == "finished"

    text = render_text(res)
    assert "9 finished, 4 stopped early by the scheduler, 0 failed" in text
    stopped_rows = [ln for ln in text.splitlines() if "stopped " in ln and "│" in ln]
    assert len(stopped_rows) == 4 and not any(re.match(r"│\s+\d", ln) for ln in stopped_rows)  # no rank

    recs = json.loads(report.write_json(res, tmp_path / "r.json").read_text())
    assert [r["status"] for r in recs].count("stopped") == 4
    assert all(r["iterations"] == 1 for r in recs if r["status"] == "stopped")

    figs = report.figures(res, importance=None)
    parcoords = figs["parallel_coordinates"].data[0]
    assert len(parcoords.dimensions[-1].values) == 9  # finished points only
    assert len(figs["best_so_far"].data[0].y) == 9
    curves = figs["learning_curves"].data
    dashed = [t for t in curves if t.line.dash == "dash"]
    assert len(curves) == 13 and len(dashed) == 4 and all(len(t.x) == 1 for t in dashed)
    assert all(len(t.x) == 4 for t in curves if t.line.dash != "dash")

    page = report.write_html(res, tmp_path / "r.html", importance=None).read_text()
    assert "4 points stopped early by the scheduler are not plotted with the finished ones" in page
    assert page.count('<tr class="stopped">') == 4 and 'id="plot-learning_curves"' in page


def test_stop_point_is_final_and_counts_only_when_present(tmp_path: Path) -> None:
    make_project(tmp_path)
    with campaigns.new("demo", "local_run", metric="accuracy", mode="max") as store:
        (a, b) = store.add_points([{"lr": 0.1}, {"lr": 0.2}])
        assert "stopped" not in store.counts()
        store.start_point(a)
        store.stop_point(a, loss=-0.5, metric=0.5, message="by the scheduler at iteration 2")
        assert store.counts() == {"proposed": 1, "running": 0, "finished": 0, "failed": 0, "stopped": 1}
        assert store.history() == [[{"lr": 0.1}, -0.5], [{"lr": 0.2}, None]]
        assert store.best() is None  # a cut-short run is never the best


def test_learning_curves_need_more_than_one_iteration(tmp_path: Path) -> None:
    from tests.client.test_report_stores import local_run_campaign

    make_project(tmp_path)
    local_run_campaign().close()  # one report per trial
    assert "learning_curves" not in report.figures(report.load("demo"), importance=None)


# ---- the metric's column -------------------------------------------------------------------
@pytest.mark.parametrize(("metric", "mode", "column", "dropped"), [
    ("accuracy", "max", "accuracy", "metric"),
    ("loss", "min", "loss", "metric"),          # the metric is the loss: one column
    ("site", "max", "metric:site", "metric"),  # a name another column has
])
def test_the_metric_column_is_named_after_the_metric(tmp_path: Path, metric: str, mode: str, column: str,
                                                     dropped: str) -> None:
    make_project(tmp_path, metric=metric, mode=mode)
    with campaigns.new("demo", "embedded", metric=metric, mode=mode) as store:
        (pid,) = store.add_points([{"lr": 0.01, "layers": 2, "optimizer": "adam"}])
        store.start_point(pid)
        store.finish_point(pid, loss=0.25 if mode == "min" else -0.25, metric=0.25)
    res = report.load("demo")
    rows = list(csv.DictReader(report.write_csv(res, tmp_path / "r.csv").open()))
    recs = json.loads(report.write_json(res, tmp_path / "r.json").read_text())
    assert column in rows[0] and dropped not in rows[0] and list(rows[0]) == list(recs[0])
    assert float(rows[0][column]) == recs[0][column] == 0.25
    assert list(rows[0]).count("loss") == 1


# ---- the terminal table ------------------------------------------------------------------------
def many_points(n: int, failed: int = 0, *, same: float | None = None) -> None:
    rng = random.Random(11)
    with campaigns.new("demo", "embedded", metric="accuracy", mode="max", max_points=n) as store:
        for i, pid in enumerate(store.add_points([sample(rng) for _ in range(n)])):
            store.start_point(pid, host="h")
            if i < failed:
                store.fail_point(pid, f"ValueError: bad point {pid}")
                continue
            acc = same if same is not None else accuracy(store.point(pid)["params"])
            store.finish_point(pid, loss=-acc, metric=acc)


def test_the_table_shows_the_best_20_and_says_how_many_more(tmp_path: Path) -> None:
    make_project(tmp_path)
    many_points(60, failed=25)
    res = report.load("demo")
    text = render_text(res)
    ranks = re.findall(r"^│\s+(?:★ )?(\d+) │", text.split("failed points")[0], re.M)
    assert ranks == [str(i) for i in range(1, 21)]
    assert "… and 15 more points (--rows 0 shows all)" in text
    assert "… and 5 more failed (--rows 0 shows all)" in text
    full = render_text(res, rows=0)
    assert len(re.findall(r"^│\s+(?:★ )?(\d+) │", full.split("failed points")[0], re.M)) == 35
    assert "more" not in full and full.count("ValueError: bad point") == 25


# ---- importance ------------------------------------------------------------------------------
def test_importance_is_skipped_with_a_reason_when_every_loss_is_equal(tmp_path: Path) -> None:
    make_project(tmp_path)
    many_points(9, same=0.5)
    imp, note = report.importance(report.load("demo"))
    assert imp is None
    assert note == ("skipped: all 9 finished points have the same accuracy, so no hyperparameter explains any "
                    "of its variance")


# ---- end to end: the installed hpogrid ------------------------------------------------------------
def hpogrid(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    done = subprocess.run([installed("hpogrid"), *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, check=False)
    assert done.returncode == 0, f"hpogrid {' '.join(args)}: {done.stderr[-3000:]}"
    assert "Traceback" not in done.stderr
    return done


def test_report_of_equal_losses_and_many_points_through_the_command(tmp_path: Path, cli_env) -> None:
    make_project(tmp_path)
    many_points(30, same=0.5)
    done = hpogrid(["report", "demo", "--to_csv", "-o", "out"], cli_env, tmp_path)
    assert "hyperparameter importance: skipped: all 30 finished points have the same accuracy" in done.stdout
    assert "… and 10 more points (--rows 0 shows all)" in done.stdout
    header = (tmp_path / "out.csv").read_text().splitlines()[0].split(",")
    assert "accuracy" in header and "metric" not in header


@pytest.mark.slow
def test_local_run_with_asha_records_stopped_trials_and_report_keeps_them_apart(tmp_path: Path, cli_env) -> None:
    """A real local_run (Ray Tune, ASHA with grace period 1): trials it cuts short are `stopped`
    with fewer iterations, full runs `finished` with all 6; report, CSV and HTML keep them apart."""
    run = lambda *a, **k: hpogrid(list(a), cli_env, tmp_path, **k)  # noqa: E731
    run("model_config", "create", "m", "--script", "tune_report.py", "--model", "quadratic", "--param",
        '{"epochs": 6}')
    run("search_space", "create", "s", '{"x": {"method": "uniform", "dimension": {"low": -5, "high": 5}}, '
                                       '"y": {"method": "uniform", "dimension": {"low": -5, "high": 5}}}')
    run("hpo_config", "create", "h", "--algorithm", "random", "--metric", "loss", "--mode", "min",
        "--num_trials", "10", "--max_concurrent", "2", "--scheduler", "asynchyperband",
        "--scheduler_param", '{"grace_period": 1, "reduction_factor": 2}', "--stop", '{"training_iteration": 6}',
        "--seed", "1")
    run("grid_config", "create", "g")
    run("project", "create", "asha", "--scripts_path", str(REPO / "examples" / "scripts" / "tune_report.py"),
        "-m", "m", "-s", "s", "-o", "h", "-g", "g")
    lr = run("local_run", "asha", "--num-cpus", "2", timeout=600)
    done = run("report", "asha", "--to_csv", "--to_html", "-o", "out", "--extra", "iterations", "--rows", "0")

    rows = list(csv.DictReader((tmp_path / "out.csv").open()))
    assert len(rows) == 10
    stopped = [r for r in rows if r["status"] == "stopped"]
    finished = [r for r in rows if r["status"] == "finished"]
    assert len(stopped) + len(finished) == 10 and stopped and finished
    assert all(int(r["iterations"]) == 6 for r in finished)
    assert all(int(r["iterations"]) < 6 and r["message"].startswith("by the scheduler at iteration") for r in stopped)
    assert f"{len(finished)} finished, {len(stopped)} stopped early, 0 failed" in lr.stdout + lr.stderr
    assert f"{len(finished)} finished, {len(stopped)} stopped early by the scheduler, 0 failed" in done.stdout
    page = (tmp_path / "out.html").read_text()
    assert page.count('<tr class="stopped">') == len(stopped) and 'id="plot-learning_curves"' in page


def test_mlflow_marks_stopped_points_killed(tmp_path: Path) -> None:
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    make_project(tmp_path)
    stopped_campaign(finished=2, stopped=2).close()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = report.export_mlflow(report.load("demo"), uri)
    assert (done["created"], done["unfinished"]) == (4, 0)
    runs = MlflowClient(uri).search_runs([done["experiment_id"]])
    by_status = sorted((r.data.tags["hpogrid.status"], r.info.status) for r in runs)
    assert by_status == [("finished", "FINISHED")] * 2 + [("stopped", "KILLED")] * 2
