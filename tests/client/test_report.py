"""Reports from campaign stores written through the real Store API: loader, table, CSV/JSON, HTML,
importance, campaign selection and the bad cases of ``hpogrid report``."""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from hpogrid.client import campaigns, report
from hpogrid.client.cli import cli
from hpogrid.client.errors import GridError, NotFoundError, UsageError
from hpogrid.client.store import Store

from tests.client.test_report_stores import (
    embedded_campaign,
    grid_campaign,
    local_run_campaign,
    make_project,
    only_failed_campaign,
)


def run(*args: str, cwd: Path | None = None) -> Any:
    runner = CliRunner()
    if cwd is None:
        return runner.invoke(cli, ["report", *args], catch_exceptions=False)
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return runner.invoke(cli, ["report", *args], catch_exceptions=False)
    finally:
        os.chdir(old)


def main(*args: str, cwd: Path) -> tuple[int, str, str]:
    """The console script's entry (errors as one line, exit status), in-process."""
    import contextlib

    from hpogrid.client.cli import main as entry

    out, err = io.StringIO(), io.StringIO()
    old = os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = entry(["report", *args])
    finally:
        os.chdir(old)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def project(tmp_path: Path) -> str:
    make_project(tmp_path)
    return "demo"


# ---- the loader -----------------------------------------------------------------------------
def test_embedded_campaign_loads_best_first_failed_last(project: str) -> None:
    embedded_campaign(project).close()
    res = report.load(project)
    assert (res.metric_name, res.mode) == ("accuracy", "max")
    assert res.params == ["lr", "layers", "optimizer"]
    assert "optimizer" in res.categorical and "lr" not in res.categorical
    f = res.frame
    assert list(f["status"]) == ["finished"] * 10 + ["failed"] * 2
    metrics = list(f["metric"][:10])
    assert metrics == sorted(metrics, reverse=True)  # mode max: higher is better
    assert all(math.isclose(m, -l) for m, l in zip(f["metric"][:10], f["loss"][:10]))
    assert set(f["point"][10:]) == {4, 9}
    assert all("ValueError" in m for m in f["message"][10:])
    assert list(f["attempts"][10:]) == [2, 2]
    assert res.best()["metric"] == max(metrics)
    assert res.counts() == {"finished": 10, "stopped": 0, "failed": 2, "running": 0, "proposed": 0}
    assert res.evaluation_time() == pytest.approx(sum(10.0 + p for p in range(1, 13)))
    assert list(f["iterations"][:10]) == [4] * 10


def test_min_mode_sorts_ascending(tmp_path: Path) -> None:
    make_project(tmp_path, "mini", metric="loss", mode="min")
    store = campaigns.new("mini", "embedded", metric="loss", mode="min")
    ids = store.add_points([{"lr": 0.1, "layers": 1, "optimizer": "sgd"}, {"lr": 0.2, "layers": 2, "optimizer": "adam"},
                            {"lr": 0.3, "layers": 3, "optimizer": "sgd"}])
    for pid, loss in zip(ids, [0.5, 0.0, 2.0]):  # a loss of 0.0 is a result, and the best one
        store.start_point(pid)
        store.finish_point(pid, loss=loss, metric=loss)
    store.close()
    res = report.load("mini")
    assert list(res.frame["metric"]) == [0.0, 0.5, 2.0]
    assert res.best()["point"] == 2
    page = report.write_html(res, tmp_path / "mini.html").read_text()
    assert "<th>loss</th>" in page and "loss (minimised)" not in page  # the metric is the loss: one column
    assert "needs at least 8 finished points, have 3" in page


def test_grid_campaign_metric_from_loss_and_failure_loss_not_rated(project: str) -> None:
    grid_campaign(project).close()
    res = report.load(project)
    f = res.frame
    fin = f[f["status"] == "finished"]
    assert all(math.isclose(m, -l) for m, l in zip(fin["metric"], fin["loss"]))  # mode max: metric = -loss
    failed = f[f["status"] == "failed"].iloc[0]
    assert math.isnan(failed["metric"]) and failed["loss"] == 1e5
    assert set(f["site"]) == {"ANALY_MANC_GPU_TEST"}
    assert res.best()["metric"] == fin["metric"].max()


def test_running_points_are_listed_after_results(project: str) -> None:
    embedded_campaign(project, running=2).close()
    res = report.load(project)
    assert list(res.frame["status"][-2:]) == ["running", "running"]
    assert res.frame["ended"][-2:].isna().all()
    assert "2 running" in report.summary(res)


# ---- files ----------------------------------------------------------------------------------
@pytest.mark.parametrize("builder", [embedded_campaign, local_run_campaign, grid_campaign])
def test_csv_and_json_have_the_same_columns_for_every_source(project: str, tmp_path: Path, builder: Any) -> None:
    store = builder(project)
    cid = store.campaign()["id"]
    points = {p["id"]: p for p in store.points()}
    store.close()
    res = report.load(project, campaign=cid)
    expected = ["campaign", "point", "backend", "status", "lr", "layers", "optimizer", "accuracy", "loss", "attempts",
                "site", "host", "started", "ended", "duration_s", "iterations", "message"]
    csv_path = report.write_csv(res, tmp_path / "out" / "r.csv")
    json_path = report.write_json(res, tmp_path / "out" / "r.json")
    rows = list(csv.DictReader(csv_path.open()))
    recs = json.loads(json_path.read_text())
    assert list(rows[0]) == expected and list(recs[0]) == expected
    assert len(rows) == len(recs) == len(points)
    for row, rec in zip(rows, recs):
        p = points[rec["point"]]
        assert rec["campaign"] == row["campaign"] == cid
        assert rec["status"] == row["status"] == p["state"]
        assert rec["lr"] == pytest.approx(p["params"]["lr"]) and float(row["lr"]) == pytest.approx(p["params"]["lr"])
        assert rec["optimizer"] == row["optimizer"] == p["params"]["optimizer"]
        if p["state"] == "finished":
            assert rec["loss"] == pytest.approx(p["loss"]) and float(row["loss"]) == pytest.approx(p["loss"])
            assert rec["accuracy"] == pytest.approx(-p["loss"])  # the column is named after the metric
            assert rec["duration_s"] == pytest.approx(p["ended"] - p["started"])
        else:
            assert rec["accuracy"] is None and row["accuracy"] == ""
            assert rec["message"] == p["message"] != ""
        assert rec["started"].endswith("+00:00")
        assert (rec["site"] or rec["host"])
    assert os.stat(csv_path).st_mode & 0o044  # readable like any new file, not private
    assert sorted(x.name for x in (tmp_path / "out").iterdir()) == ["r.csv", "r.json"]  # no temp files left


def test_cli_writes_files_under_outname(project: str, tmp_path: Path) -> None:
    embedded_campaign(project).close()
    result = run(project, "--to_csv", "--to-json", "-o", str(tmp_path / "res" / "mine"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "res" / "mine.csv").is_file() and (tmp_path / "res" / "mine.json").is_file()
    default = run(project, "--to_json", cwd=tmp_path)
    assert default.exit_code == 0 and (tmp_path / "hpo_result.json").is_file()


# ---- terminal -------------------------------------------------------------------------------
def test_terminal_table_summary_and_importance(project: str) -> None:
    embedded_campaign(project, n=14).close()
    result = run(project, "-e", "loss,duration", "--extra", "host")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "★ 1" in out and "accuracy ↑" in out
    assert "failed points (2)" in out and "bad batch (point 4)" in out
    res = report.load(project)
    best = res.best()
    assert f"best accuracy = {best['metric']:.6g} (max) at point {best['point']}" in out
    assert "14 points, 12 finished, 2 failed" in out and "wall time" in out and "evaluation time" in out
    assert "hyperparameter importance (fANOVA on 12 finished points): lr" in out
    assert out.index("★ 1") < out.index("failed points") < out.index("best accuracy")


def test_importance_needs_enough_points_and_finds_the_important_one(project: str) -> None:
    embedded_campaign(project, n=6, failed=()).close()
    imp, note = report.importance(report.load(project))
    assert imp is None and "at least 8" in note
    embedded_campaign(project, n=30, failed=(), seed=3).close()
    imp, note = report.importance(report.load(project))
    assert imp is not None and set(imp) == {"lr", "layers", "optimizer"}
    assert next(iter(imp)) == "lr" and sum(imp.values()) == pytest.approx(1.0)


# ---- HTML -----------------------------------------------------------------------------------
def _external_resources(page: str) -> list[str]:
    """Every src/href of a script, link, img or iframe tag (the inlined plotly.js is not parsed as tags)."""
    from html.parser import HTMLParser

    found: list[str] = []

    class Parser(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag in ("script", "link", "img", "iframe"):
                found.extend(v or "" for k, v in attrs if k in ("src", "href"))

    Parser().feed(page)
    return found


def test_html_report_is_self_contained_with_every_plot(project: str, tmp_path: Path) -> None:
    embedded_campaign(project).close()
    result = run(project, "--to_html", "--to_pcp", "-o", str(tmp_path / "r"))
    assert result.exit_code == 0, result.output
    page = (tmp_path / "r.html").read_text()
    assert _external_resources(page) == [] and len(page) > 3_000_000  # plotly.js inlined: opens offline
    for div in ("plot-parallel_coordinates", "plot-best_so_far", "plot-metric_vs_params", "plot-importance"):
        assert f'id="{div}"' in page
    assert page.count('<tr class="') == 12 and 'class="results sortable"' in page
    assert "bad batch (point 4)" in page
    pcp = (tmp_path / "r_parallel_coordinate_plot.html").read_text()
    assert "parcoords" in pcp and _external_resources(pcp) == [] and "plot-best_so_far" not in pcp
    figs = report.figures(report.load(project), importance=None)
    dims = figs["parallel_coordinates"].data[0].dimensions
    assert [d.label for d in dims] == ["lr (log)", "layers", "optimizer", "accuracy (max)"]
    assert list(dims[2].ticktext) == ["adam", "sgd"]  # categorical axis, labelled


# ---- selection ------------------------------------------------------------------------------
def test_campaign_selection(project: str) -> None:
    embedded_campaign(project).close()  # 1
    local_run_campaign(project).close()  # 2
    grid_campaign(project).close()  # 3
    assert [c["id"] for c in report.load(project).campaigns] == ["3"]
    assert [c["id"] for c in report.load(project, campaign=1).campaigns] == ["1"]
    assert [c["id"] for c in report.load(project, id_range="1-2").campaigns] == ["1", "2"]
    assert [c["id"] for c in report.load(project, id_range="2-").campaigns] == ["2", "3"]
    assert [c["id"] for c in report.load(project, days=1).campaigns] == ["1", "2", "3"]
    assert [c["id"] for c in report.load(project, days=1, limit=2).campaigns] == ["2", "3"]
    assert [c["id"] for c in report.load(project, taskname="user.me.*").campaigns] == ["3"]
    assert [c["id"] for c in report.load(project, taskname="4242").campaigns] == ["3"]
    res = report.load(project, id_range="1-3")
    assert len(res.frame) == 12 + 10 + 6 and set(res.frame["backend"]) == {"embedded", "local_run", "panda"}
    assert res.point_label(res.frame.iloc[0]).count(":") == 1
    with pytest.raises(UsageError):
        report.load(project, id_range="x-y")
    with pytest.raises(UsageError, match="cannot be combined with --days"):
        report.load(project, campaign=1, days=3)
    with pytest.raises(report.NoResultsError):
        report.load(project, id_range="7-9")


def test_campaigns_with_different_metrics_are_not_mixed(project: str) -> None:
    embedded_campaign(project).close()
    other = campaigns.new(project, "embedded", metric="loss", mode="min")
    other.add_points([{"lr": 0.1, "layers": 1, "optimizer": "sgd"}])
    other.close()
    with pytest.raises(UsageError, match="different metrics"):
        report.load(project, id_range="1-2")


class _FakeBackend:
    def __init__(self, error: Exception | None = None):
        self.error = error
        self.calls = 0

    def refresh(self, store: Store) -> None:
        self.calls += 1
        if self.error is not None:
            raise self.error
        for p in store.points(["running", "proposed"]):
            store.finish_point(p["id"], loss=-0.5)
        store.update_campaign(status="finished")


def test_unsettled_grid_campaign_is_refreshed_first(project: str, monkeypatch: pytest.MonkeyPatch) -> None:
    store = campaigns.new(project, "panda", metric="accuracy", mode="max", status="running", remote_id="77")
    (pid,) = store.add_points([{"lr": 0.01, "layers": 2, "optimizer": "adam"}])
    store.start_point(pid, site="ANALY_X")
    store.close()
    fake = _FakeBackend()
    monkeypatch.setattr("hpogrid.client.backends.get_backend", lambda name: fake)
    res = report.load(project)
    assert fake.calls == 1 and list(res.frame["status"]) == ["finished"] and res.frame["metric"][0] == 0.5
    report.load(project)
    assert fake.calls == 1  # settled now: nothing to ask the grid


def test_grid_unreachable_reports_stored_results_with_a_warning(project: str, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    store = campaigns.new(project, "panda", metric="accuracy", mode="max", status="running", remote_id="77")
    ids = store.add_points([{"lr": 0.01, "layers": 2, "optimizer": "adam"}, {"lr": 0.02, "layers": 1, "optimizer": "sgd"}])
    store.start_point(ids[0])
    store.finish_point(ids[0], loss=-0.7)
    store.close()
    fake = _FakeBackend(GridError("no grid credential: no readable x509 proxy"))
    monkeypatch.setattr("hpogrid.client.backends.get_backend", lambda name: fake)
    code, out, err = main(project, cwd=tmp_path)
    assert code == 0 and "not refreshed from the grid (no grid credential" in err
    assert "1 finished" in out and "1 waiting" in out
    code, out, err = main(project, "--no-refresh", cwd=tmp_path)
    assert code == 0 and fake.calls == 1 and err == ""


# ---- bad cases: one line on stderr, non-zero exit, no traceback, no file ----------------------
def _one_error_line(code: int, err: str, expected: str) -> None:
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hpogrid: error: ") and expected in lines[0], err
    assert "Traceback" not in err


def test_unknown_project(tmp_path: Path) -> None:
    code, out, err = main("nope", "--to_csv", cwd=tmp_path)
    _one_error_line(code, err, "no project named 'nope'")
    assert list(tmp_path.iterdir()) == []


def test_project_without_campaigns(project: str, tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    code, out, err = main(project, "--to_json", cwd=tmp_path / "run")
    _one_error_line(code, err, "has no campaigns yet")
    assert list((tmp_path / "run").iterdir()) == []


def test_campaign_without_points(project: str, tmp_path: Path) -> None:
    campaigns.new(project, "embedded", metric="accuracy", mode="max").close()
    code, out, err = main(project, cwd=tmp_path)
    _one_error_line(code, err, "has no points yet")


def test_unknown_campaign_and_campaign_of_another_project(project: str, tmp_path: Path) -> None:
    embedded_campaign(project).close()
    code, out, err = main(project, "--campaign", "99", cwd=tmp_path)
    _one_error_line(code, err, "no campaign with id 99")
    code, out, err = main(project, "--campaign", "abc", cwd=tmp_path)
    _one_error_line(code, err, "campaign id must be a number")
    make_project(tmp_path, "other")
    code, out, err = main("other", "--campaign", "1", cwd=tmp_path)
    _one_error_line(code, err, "belongs to project 'demo'")


def test_only_failed_points_table_of_failures_and_no_plot_files(project: str, tmp_path: Path) -> None:
    only_failed_campaign(project).close()
    (tmp_path / "run").mkdir()
    code, out, err = main(project, cwd=tmp_path / "run")
    assert code == 0 and err == ""
    assert "failed points (3)" in out and "No module named 'torch'" in out and "no finished point" in out
    code, out, err = main(project, "--to_csv", "--to_html", cwd=tmp_path / "run")
    _one_error_line(code, err, "no finished point to plot")
    assert list((tmp_path / "run").iterdir()) == []  # not even the CSV: nothing half done
    code, out, err = main(project, "--to_csv", "--to_json", cwd=tmp_path / "run")
    assert code == 0
    rows = list(csv.DictReader((tmp_path / "run" / "hpo_result.csv").open()))
    assert [r["status"] for r in rows] == ["failed"] * 3 and all("torch" in r["message"] for r in rows)
    with pytest.raises(report.NoResultsError):
        report.write_html(report.load(project), tmp_path / "x.html")
    assert not (tmp_path / "x.html").exists()


def test_bad_options(project: str, tmp_path: Path) -> None:
    embedded_campaign(project).close()
    code, out, err = main(project, "--extra", "nonsense", cwd=tmp_path)
    assert code == 2 and "nonsense" in err and "Traceback" not in err
    code, out, err = main(project, "--range", "5-1", cwd=tmp_path)
    assert code == 2 and "A <= B" in err
    code, out, err = main(project, "--mlflow-uri", "sqlite:///x.db", cwd=tmp_path)
    assert code == 2 and "--to_mlflow" in err
    assert list(tmp_path.iterdir()) != [] and not (tmp_path / "x.db").exists()


def test_unknown_campaign_api_error_is_not_found(project: str) -> None:
    with pytest.raises(NotFoundError):
        report.load(project, campaign=5)


def test_heavy_libraries_load_only_when_a_report_is_made() -> None:
    """``hpogrid --help`` and every other command stay fast: pandas, plotly, MLflow, Optuna load at first use."""
    import subprocess
    import sys

    code = ("import sys, hpogrid.client.cli, hpogrid.client.report; "
            "print(sorted(m for m in ('pandas', 'plotly', 'mlflow', 'optuna', 'sklearn') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"


def test_list_valued_hyperparameters_stay_json(tmp_path: Path) -> None:
    make_project(tmp_path, "lists", metric="loss", mode="min")
    store = campaigns.new("lists", "embedded", metric="loss", mode="min")
    ids = store.add_points([{"lr": 0.1, "layers": 1, "optimizer": "sgd", "shape": [64, 32]},
                            {"lr": 0.2, "layers": 2, "optimizer": "adam", "shape": [128]}])
    for pid, loss in zip(ids, [1.0, 0.5]):
        store.start_point(pid)
        store.finish_point(pid, loss=loss)
    store.close()
    res = report.load("lists")
    assert "shape" in res.categorical
    recs = json.loads(report.write_json(res, tmp_path / "l.json").read_text())
    assert [r["shape"] for r in recs] == [[128], [64, 32]]
    rows = list(csv.DictReader(report.write_csv(res, tmp_path / "l.csv").open()))
    assert [json.loads(r["shape"]) for r in rows] == [[128], [64, 32]]
    assert 'ticktext' in report.write_pcp(res, tmp_path / "l.html").read_text()
