"""The campaign store: transitions, history as iDDS sees it, and the registry."""

from __future__ import annotations

import math
import sqlite3

import pytest

from hpogrid.client.errors import NotFoundError
from hpogrid.client.store import FAILURE_LOSS, Store, list_registered, register_campaign, registered


def test_point_lifecycle_and_history(tmp_path) -> None:
    store = Store.create(tmp_path / "store.db", id="1", project="p", backend="embedded", max_points=4)
    rid = store.start_round(3)
    ids = store.add_points([{"x": 1}, {"x": 2}, {"x": 3}], round_id=rid)
    store.end_round(rid, "done", n_proposed=3)
    assert ids == [1, 2, 3]
    assert store.start_point(1, host="h") == 1
    store.finish_point(1, loss=0.0, metric=0.0, reports=[{"loss": 0.0, "training_iteration": 1}])
    store.start_point(2)
    store.fail_point(2, "ValueError: boom")
    store.start_point(3)
    store.requeue_point(3, "interrupted")
    assert store.start_point(3) == 2  # the lost attempt is counted
    store.finish_point(3, loss=float("nan"), message="NaN")  # SQLite has no NaN: stored as NULL
    assert store.history() == [[{"x": 1}, 0.0], [{"x": 2}, FAILURE_LOSS], [{"x": 3}, None]]
    assert store.counts() == {"proposed": 0, "running": 0, "finished": 2, "failed": 1}
    assert store.best()["id"] == 1  # a loss of 0.0 is a result
    assert store.point(1)["reports"][0]["training_iteration"] == 1
    assert store.rounds()[0]["n_proposed"] == 3
    with pytest.raises(NotFoundError):
        store.point(99)


def test_state_is_visible_to_another_connection(tmp_path) -> None:
    store = Store.create(tmp_path / "store.db", id="1", project="p", backend="embedded")
    store.add_points([{"x": 1}])
    store.start_point(1)
    other = Store(tmp_path / "store.db")  # e.g. `hpogrid tasks show` while the driver runs
    assert other.counts()["running"] == 1
    assert other.requeue_running("driver died") == 1
    assert store.point(1)["state"] == "proposed" and store.point(1)["attempts"] == 1
    mode = sqlite3.connect(tmp_path / "store.db").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_campaign_row(tmp_path) -> None:
    store = Store.create(tmp_path / "s.db", id="7", project="p", backend="ray", settings={"timeout": 5})
    store.update_campaign(status="running", pid=123)
    row = store.campaign()
    assert row["status"] == "running" and row["settings"] == {"timeout": 5} and row["created"] > 0
    with pytest.raises(ValueError):
        store.update_campaign(nonsense=1)
    assert math.isfinite(row["created"])


def test_registry_ids(tmp_path) -> None:
    a, folder_a = register_campaign("p", "embedded", lambda i: tmp_path / str(i))
    b, _ = register_campaign("q", "panda", lambda i: tmp_path / str(i), remote_id="500004")
    assert b == a + 1 and folder_a == tmp_path / str(a)
    assert registered(b)["remote_id"] == "500004"
    assert [e["project"] for e in list_registered()] == ["p", "q"]
    with pytest.raises(NotFoundError):
        registered(999)
    with pytest.raises(NotFoundError):
        registered("abc")


def test_create_is_atomic(tmp_path) -> None:
    Store.create(tmp_path / "store.db", id="1", project="p", backend="embedded")
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("store.db-")) == ["store.db"]
    tables = {r[0] for r in sqlite3.connect(tmp_path / "store.db").execute("SELECT name FROM sqlite_master")}
    assert {"campaign", "rounds", "points"} <= tables
