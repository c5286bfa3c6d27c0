"""`hpogrid tasks show` in-process (CliRunner): local campaigns from the registry and the hook through
which a backend lists its remote tasks (``list_tasks``), as the grid backend does."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from hpogrid.client import campaigns, projects
from hpogrid.client.backends import BACKENDS, BaseBackend
from hpogrid.client.cli import cli


class ListingBackend(BaseBackend):
    """A backend with remote tasks: one known locally (same remote id), one only remote."""

    name = "listing"
    runs_here = False
    calls: list[dict] = []

    def submit(self, project_name, options):  # pragma: no cover - not used here
        raise NotImplementedError

    def resume(self, store, options):  # pragma: no cover
        raise NotImplementedError

    def kill(self, store):  # pragma: no cover
        raise NotImplementedError

    def list_tasks(self, **filters):
        ListingBackend.calls.append(filters)
        return [{"jeditaskid": 4242, "taskname": "remote_only", "status": "running", "progress": 50.0},
                {"jeditaskid": 777, "taskname": "lib", "status": "finished", "progress": 100.0}]


def _campaign(tmp_path: Path, remote_id: str | None = None):
    scripts = tmp_path / "scripts"
    scripts.mkdir(exist_ok=True)
    (scripts / "f.py").write_text("def f(config, reporter):\n    reporter(loss=0)\n")
    if "lib" not in projects.list_names():
        projects.create("lib", scripts_path=scripts / "f.py", model_config={"script": "f.py", "model": "f"},
                        search_space={"x": {"method": "uniform", "dimension": {"low": 0, "high": 1}}},
                        hpo_config={"metric": "loss", "mode": "min", "num_trials": 4}, grid_config={})
    store = campaigns.new("lib", "embedded", max_points=4, max_concurrent=1, metric="loss", mode="min",
                          remote_id=remote_id)
    ids = store.add_points([{"x": 0.5}, {"x": 0.25}, {"x": 0.75}])
    for pid, loss in zip(ids[:2], (0.5, 0.0)):
        store.start_point(pid)
        store.finish_point(pid, loss=loss, metric=loss)
    store.start_point(ids[2])
    store.fail_point(ids[2], "exploded")
    store.update_campaign(status="finished", started=1.0e9, ended=1.0e9 + 60)
    return store


def test_tasks_show_local_rows_metadata_and_remote_hook(tmp_path, monkeypatch) -> None:
    _campaign(tmp_path)
    _campaign(tmp_path, remote_id="777")
    monkeypatch.setitem(BACKENDS, "listing", f"{__name__}:ListingBackend")
    runner = CliRunner()
    result = runner.invoke(cli, ["tasks", "show", "--json", "--days", "100000"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["jeditaskid"] for r in rows] == [2, 1, 4242]  # local, newest first; 777 is campaign 2
    assert rows[0]["progress"] == 75.0 and rows[0]["best_metric"] == 0.0  # a loss of 0.0 is a result
    assert rows[2]["backend"] == "listing" and rows[2]["taskname"] == "remote_only"
    assert ListingBackend.calls[-1]["limit"] == 1000
    local = json.loads(runner.invoke(cli, ["tasks", "show", "--json", "--local", "--days", "100000"]).output)
    assert [r["jeditaskid"] for r in local] == [2, 1]
    meta = runner.invoke(cli, ["tasks", "show", "--local", "--metadata", "--jeditaskid", "1", "--days", "100000"])
    assert meta.exit_code == 0
    assert "exploded" in meta.output and "point     3  failed" in meta.output
    ranged = json.loads(runner.invoke(cli, ["tasks", "show", "--json", "--local", "--range", "2-", "--days", "100000"]).output)
    assert [r["jeditaskid"] for r in ranged] == [2]
