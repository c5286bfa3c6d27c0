"""The backend contract (client/backends/base.py), the same tests against every backend.

embedded and ray run here (fork server / Ray tasks), local_run is Ray Tune's loop here, panda runs
on the grid sandbox, idds on the real local iDDS. Each test drives the backend only through the
contract: submit a tiny project (2 points) to its budget, plan, results, kill, refresh,
list_tasks and retry, with a script that fails every point until the test "heals" it.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from hpogrid.client import campaigns
from hpogrid.client.backends import Backend, Plan, RemoteTask, available, get_backend, runs_here
from hpogrid.client.errors import CampaignError, HpogridError
from hpogrid.client.store import Store

from .conftest import BUDGET, Project, Side

FINAL = ("finished", "failed", "killed")


def _snapshot(store: Store) -> tuple[str, list[tuple[int, str, Any]]]:
    return store.campaign()["status"], [(p["id"], p["state"], p["loss"]) for p in store.points()]


def _to_the_end(backend: Backend, store: Store, side: Side, timeout: float = 150.0) -> None:
    """A grid campaign runs elsewhere: refresh until the campaign has ended (local ones have already)."""
    deadline = time.monotonic() + timeout
    while side.remote and store.campaign()["status"] not in FINAL:
        assert time.monotonic() < deadline, f"{side.name}: still {store.campaign()['status']} after {timeout} s"
        time.sleep(2)
        backend.refresh(store)


def test_every_backend_is_in_the_suite() -> None:
    assert sorted(available()) == ["embedded", "idds", "local_run", "panda", "ray"]
    assert [n for n in available() if runs_here(n)] == ["embedded", "ray", "local_run"]


def test_plan_is_typed_and_starts_nothing(side: Side, project: Project) -> None:
    backend = get_backend(side.name)
    plan = backend.plan(project.name, side.options)
    assert isinstance(plan, Plan)
    assert (plan.backend, plan.project, plan.max_points) == (side.name, project.name, BUDGET)
    assert plan.describe() and plan.as_json().startswith("{")
    assert campaigns.for_project(project.name) == []  # nothing registered, nothing written
    import sys

    ray = sys.modules.get("ray")
    assert ray is None or not ray.is_initialized()  # no Ray started


def test_lifecycle(side: Side, project: Project) -> None:
    backend = get_backend(side.name)
    assert backend.name == side.name and backend.runs_here is runs_here(side.name)

    # submit to the budget: every point failed (the script fails until healed), none lost
    store = backend.submit(project.name, side.options)
    _to_the_end(backend, store, side)
    points = backend.results(store)
    assert len(points) == BUDGET and {p["state"] for p in points} == {"failed"}, points
    assert store.campaign()["status"] in FINAL
    assert len(campaigns.for_project(project.name)) == 1

    # refresh is safe (twice: nothing changes on a campaign that has ended)
    before = _snapshot(store)
    backend.refresh(store)
    backend.refresh(store)
    assert _snapshot(store) == before

    # kill on an ended campaign is harmless: a clear refusal or nothing, and nothing changes
    try:
        backend.kill(store)
    except HpogridError:
        pass
    assert _snapshot(store) == before

    # the backend side's own tasks: a list of RemoteTask (the grid lists this campaign's task)
    tasks = backend.list_tasks(days=1)
    assert isinstance(tasks, list) and all(isinstance(t, RemoteTask) for t in tasks)
    if side.name == "panda":
        assert store.campaign()["remote_id"] in {t.remote_id for t in tasks}
    elif backend.runs_here:
        assert tasks == []

    _retry(backend, store, side, project)


def _retry(backend: Backend, store: Store, side: Side, project: Project) -> None:
    """retry reopens the failed points (run again, now healed) -- where the backend can."""
    project.heal()
    before = _snapshot(store)
    if side.name == "local_run":  # Ray Tune's run cannot be continued: one clear line, nothing changed
        with pytest.raises(CampaignError, match="run `hpogrid local_run contract` again"):
            backend.retry(store, side.options)
        assert _snapshot(store) == before
        return
    store = backend.retry(store, side.options)
    if side.name == "panda":  # PanDA retries the task (later); the campaign runs again until it says so
        assert store.campaign()["status"] == "running"
        assert "retry requested" in (store.campaign()["message"] or "")
    _to_the_end(backend, store, side)
    points = backend.results(store)
    assert [p["id"] for p in points] == [p[0] for p in before[1]]  # the same points, none added
    if side.name == "panda":  # iDDS keeps the loss 1e5 the failed jobs reported: the points stay failed
        assert {p["state"] for p in points} == {"failed"}, points
    elif side.name == "idds":  # iDDS holds the final losses (1e5): a point it has one for is never re-run
        assert {p["state"] for p in points} == {"failed"} and {p["attempts"] for p in points} == {1}
    else:
        assert {p["state"] for p in points} == {"finished"}, points
        assert all(p["loss"] == pytest.approx(p["params"]["x"]) for p in points)
        assert store.campaign()["status"] == "finished"
