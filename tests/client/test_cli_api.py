"""``hpogrid.client.api``, the functions the CLI calls: typed rows and outcomes, dead drivers, damaged
stores, remote tasks through the backend contract (``list_tasks``, ``kill_remote``, ``retry_remote``,
``task_metadata``), and ``tasks retry`` of a campaign with nothing to retry."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from hpogrid.client import api, campaigns, projects
from hpogrid.client.backends import BACKENDS, Backend, RemoteTask, SubmitOptions
from hpogrid.client.cli import cli
from hpogrid.client.errors import CampaignError, GridError, NotFoundError


class GridLike(Backend):
    """A backend whose tasks live elsewhere: lists two (one a local campaign), knows task 4242."""

    name = "gridlike"
    runs_here = False
    driven_here = False
    acted: list[tuple[str, str]] = []

    def submit(self, project_name, options):  # pragma: no cover - not used here
        raise NotImplementedError

    def plan(self, project_name, options):  # pragma: no cover
        raise NotImplementedError

    def resume(self, store, options):  # pragma: no cover
        raise NotImplementedError

    def kill(self, store):  # pragma: no cover
        raise NotImplementedError

    def list_tasks(self, **filters):
        return [RemoteTask(4242, "remote_only", "running", 50.0),
                RemoteTask(777, "lib", "finished", 100.0)]

    def task_metadata(self, task_id):
        return [{"PandaID": 1, "metaData": {"loss": 0.5}}]

    def kill_remote(self, task_id):
        GridLike.acted.append(("kill", str(task_id)))
        return f"task {task_id}: kill requested" if str(task_id) == "4242" else None

    def retry_remote(self, task_id):
        GridLike.acted.append(("retry", str(task_id)))
        return f"task {task_id}: retry requested" if str(task_id) == "4242" else None


class Broken(GridLike):
    name = "broken"

    def list_tasks(self, **filters):
        raise GridError("PanDA is not answering")


@pytest.fixture
def grid_backends(monkeypatch):
    monkeypatch.setitem(BACKENDS, "gridlike", f"{__name__}:GridLike")
    GridLike.acted.clear()


def _campaign(tmp_path: Path, backend: str = "embedded", remote_id: str | None = None, failed: bool = True,
              status: str = "finished", pid: int | None = None):
    scripts = tmp_path / "scripts"
    scripts.mkdir(exist_ok=True)
    (scripts / "f.py").write_text("def f(config, reporter):\n    reporter(loss=0)\n")
    if "lib" not in projects.list_names():
        projects.create("lib", scripts_path=scripts / "f.py", model_config={"script": "f.py", "model": "f"},
                        search_space={"x": {"method": "uniform", "dimension": {"low": 0, "high": 1}}},
                        hpo_config={"metric": "loss", "mode": "min", "num_trials": 4}, grid_config={})
    store = campaigns.new("lib", backend, max_points=4, max_concurrent=1, metric="loss", mode="min",
                          remote_id=remote_id, pid=pid)
    ids = store.add_points([{"x": 0.5}, {"x": 0.25}, {"x": 0.75}])
    for pid_, loss in zip(ids[:2], (0.5, 0.0)):
        store.start_point(pid_)
        store.finish_point(pid_, loss=loss, metric=loss)
    if failed:
        store.start_point(ids[2])
        store.fail_point(ids[2], "exploded")
    store.update_campaign(status=status, started=1.0e9, ended=1.0e9 + 60)
    return store


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_rows_are_typed_and_filtered(tmp_path) -> None:
    _campaign(tmp_path)
    _campaign(tmp_path, failed=False)
    rows = api.task_rows(api.TaskFilter(days=None))
    assert [r.jeditaskid for r in rows] == [2, 1]  # newest first
    assert isinstance(rows[0], api.TaskRow) and rows[0].best_metric == 0.0  # a loss of 0.0 is a result
    assert (rows[0].progress, rows[1].progress) == (50.0, 75.0) and (rows[0].failed, rows[1].failed) == (0, 1)
    assert rows[1].as_dict()["timeout"] == 86400 and list(rows[1].as_dict())[:len(api.TASK_COLUMNS)] == list(
        api.TASK_COLUMNS)
    assert [r.jeditaskid for r in api.task_rows(api.TaskFilter(days=None, id_range="-1"))] == [1]
    assert api.task_rows(api.TaskFilter(days=None, taskname="li?", status=["running"])) == []
    assert len(api.task_rows(api.TaskFilter(days=None, limit=1))) == 1


def test_a_running_campaign_whose_driver_is_gone_is_interrupted(tmp_path, grid_backends) -> None:
    pid = _dead_pid()
    _campaign(tmp_path, status="running", pid=pid)
    _campaign(tmp_path, backend="gridlike", status="running", pid=pid)  # not run here: no driver to check
    rows = api.task_rows(api.TaskFilter(days=None))
    assert [r.status for r in rows] == ["running", "interrupted"]
    assert rows[1].message == f"the driver (pid {pid}) is gone; continue with `hpogrid tasks retry 1`"


def test_a_damaged_store_is_a_row_and_exit_1(tmp_path) -> None:
    store = _campaign(tmp_path)
    _campaign(tmp_path)
    store.close()
    store.path.write_bytes(b"not a database" * 100)
    rows = api.task_rows(api.TaskFilter(days=None))
    assert [(r.jeditaskid, r.status) for r in rows] == [(2, "finished"), (1, "damaged")]
    assert rows[1].message.startswith(f"damaged: {store.path}: ")
    assert [r.jeditaskid for r in api.task_rows(api.TaskFilter(days=None, status=["damaged"]))] == [1]
    result = CliRunner().invoke(cli, ["tasks", "show", "--local", "--days", "100000"])
    assert result.exit_code == 1
    assert result.stderr.count("hpogrid: error: campaign 1 damaged: ") == 1


def test_remote_tasks_records_and_mappings_minus_local_ones(tmp_path, grid_backends, monkeypatch) -> None:
    _campaign(tmp_path, remote_id="777")
    monkeypatch.setitem(BACKENDS, "broken", f"{__name__}:Broken")
    listing = api.show_tasks(api.TaskFilter(days=None), metadata=True)
    assert [(r.jeditaskid, r.backend) for r in listing.rows] == [(1, "embedded"), (4242, "gridlike")]
    assert listing.rows[1] == api.TaskRow(jeditaskid=4242, taskname="remote_only", backend="gridlike",
                                          status="running", progress=50.0)
    assert listing.warnings == ["broken: PanDA is not answering"]
    points, jobs = listing.details
    assert isinstance(points, api.PointsOf) and [p["state"] for p in points.points] == ["finished", "finished",
                                                                                        "failed"]
    assert isinstance(jobs, api.JobsOf) and jobs.jobs == [{"PandaID": 1, "metaData": {"loss": 0.5}}]
    assert api.show_tasks(api.TaskFilter(days=None), local_only=True).rows[-1].jeditaskid == 1
    shown = CliRunner().invoke(cli, ["tasks", "show", "--json", "--days", "100000"])
    assert [r["jeditaskid"] for r in json.loads(shown.stdout)] == [1, 4242]


def test_kill_and_retry_of_a_grid_task_id_go_to_the_backend_that_knows_it(tmp_path, grid_backends) -> None:
    _campaign(tmp_path)
    assert api.kill("4242") == api.Said("task 4242: kill requested")
    assert api.retry("4242", SubmitOptions()) == api.Said("task 4242: retry requested")
    assert GridLike.acted == [("kill", "4242"), ("retry", "4242")]
    killed = CliRunner().invoke(cli, ["tasks", "kill", "4242"])
    assert (killed.exit_code, killed.stdout) == (0, "task 4242: kill requested\n")
    with pytest.raises(NotFoundError, match="no campaign with id 99"):
        api.kill("99")
    assert GridLike.acted[-1] == ("kill", "99")


def test_retry_of_a_finished_campaign_with_no_failed_point(tmp_path) -> None:
    _campaign(tmp_path, failed=False)
    notes: list[str] = []
    assert api.retry("1", SubmitOptions(), note=notes.append) == api.Said(
        "campaign 1 finished with no failed point; nothing to retry")
    assert notes == []
    result = CliRunner().invoke(cli, ["tasks", "retry", "1", "--progress", "none"])
    assert (result.exit_code, result.stdout) == (0, "campaign 1 finished with no failed point; nothing to retry\n")


def test_retry_of_a_local_run_campaign_says_to_run_it_again(tmp_path) -> None:
    _campaign(tmp_path, backend="local_run")
    with pytest.raises(CampaignError, match=r"run `hpogrid local_run lib` again"):
        api.retry("1", SubmitOptions())


def test_outcome_and_its_error_line(tmp_path) -> None:
    store = _campaign(tmp_path)
    done = api.outcome(store, detached=False)
    assert (done.campaign_id, done.finished, done.failed, done.error()) == ("1", 2, 1, None)
    assert done.summary and any("exploded" in line for line in done.summary)
    store.update_campaign(status="failed", message="steering crashed")
    assert api.outcome(store, detached=True).error() == "campaign 1 failed: steering crashed"
    assert api.outcome(store, detached=True).summary == []


def test_submit_detached_then_kill_as_the_readme_shows(tmp_path) -> None:
    _campaign(tmp_path)  # creates the project `lib` (campaign 1)
    done = api.submit("lib", SubmitOptions(detach=True, n_points_per_iteration=1), overrides={"num_trials": 100000})
    assert isinstance(done, api.Outcome) and done.detached and done.campaign_id == "2" and done.summary == []
    assert done.pid is not None and done.log == campaigns.open_campaign("2").path.parent / "driver.log"
    rows = api.show_tasks(api.TaskFilter(days=None, jeditaskid="2")).rows
    assert [(r.jeditaskid, r.total, r.overrides) for r in rows] == [(2, 100000, {"num_trials": 100000})]
    assert api.kill("2") == api.Said("campaign 2 killed")
