"""The store's typed records and the transitions it guards: every illegal move raises
``TransitionError``, every legal one works, and nothing is written by a refused move."""

from __future__ import annotations

import dataclasses
import json
import sqlite3

import pytest

from hpogrid.client.errors import CampaignError, NotFoundError
from hpogrid.client.records import (POINT_FINAL, Campaign, CampaignState, Point, PointState, Registered, Round,
                                    RoundState, TransitionError, as_dict)
from hpogrid.client.store import Store, register_campaign, registered

MOVES = {  # the store's method for each target state
    PointState.RUNNING: lambda s, i: s.start_point(i),
    PointState.FINISHED: lambda s, i: s.finish_point(i, loss=1.0),
    PointState.FAILED: lambda s, i: s.fail_point(i, "boom"),
    PointState.STOPPED: lambda s, i: s.stop_point(i, loss=2.0),
}


def _store(tmp_path, n: int = 1) -> Store:
    store = Store.create(tmp_path / "store.db", id="1", project="p", backend="embedded", max_points=n)
    store.add_points([{"x": i} for i in range(n)])
    return store


def _put(store: Store, point_id: int, state: PointState) -> None:
    """Bring a proposed point to ``state`` by legal moves."""
    if state is not PointState.PROPOSED:
        store.start_point(point_id)
    if state.final:
        MOVES[state](store, point_id)


def _raw(store: Store, point_id: int) -> tuple:
    with sqlite3.connect(store.path) as conn:
        return conn.execute("SELECT * FROM points WHERE id = ?", (point_id,)).fetchone()


def test_states_keep_their_strings_and_rules() -> None:
    assert [s.value for s in PointState] == ["proposed", "running", "finished", "failed", "stopped"]
    assert [s.value for s in CampaignState] == ["created", "running", "finished", "failed", "killed", "interrupted"]
    assert PointState.FINISHED == "finished" and json.dumps(PointState.FAILED) == '"failed"'
    assert {s for s in PointState if s.final} == POINT_FINAL == {"finished", "failed", "stopped"}
    assert {s for s in CampaignState if s.final} == {"finished", "failed", "killed"}
    assert {s for s in CampaignState if s.active} == {"created", "running"}
    assert issubclass(TransitionError, CampaignError)


@pytest.mark.parametrize("start", list(PointState))
@pytest.mark.parametrize("target", list(MOVES))
def test_every_point_transition(tmp_path, start: PointState, target: PointState) -> None:
    """5 x 4 moves: into running/finished/failed/stopped from each state. The 12 from a final
    state raise and write nothing; the 8 others work."""
    store = _store(tmp_path)
    _put(store, 1, start)
    before = _raw(store, 1)
    if start.final:
        with pytest.raises(TransitionError, match=f"point 1 is already {start}; it cannot become {target}"):
            MOVES[target](store, 1)
        assert _raw(store, 1) == before
    else:
        MOVES[target](store, 1)
        assert store.point(1).state is target


def test_reopen_and_requeue_are_the_ways_back(tmp_path) -> None:
    store = _store(tmp_path, 4)
    for pid, state in zip((1, 2, 3, 4), (PointState.FINISHED, PointState.FAILED, PointState.STOPPED, PointState.RUNNING)):
        _put(store, pid, state)
    assert store.reopen_failed("again") == [2]
    assert store.requeue_running("driver died") == 1
    assert [p.state for p in store.points()] == ["finished", "proposed", "stopped", "proposed"]
    assert store.point(2).loss is None and store.point(2).attempts == 1
    assert store.start_point(2) == 2  # attempts keep counting
    store.finish_point(2, loss=0.5)
    store.requeue_point(1, "nothing: only a running point is requeued")
    assert store.point(1).state is PointState.FINISHED


def test_unknown_point_is_not_found(tmp_path) -> None:
    store = _store(tmp_path)
    for move in MOVES.values():
        with pytest.raises(NotFoundError):
            move(store, 99)


@pytest.mark.parametrize("start", list(CampaignState))
def test_campaign_transitions(tmp_path, start: CampaignState) -> None:
    """An ended campaign (finished, failed, killed) does not run again by update_campaign: from
    each of them the 3 moves to created/running/interrupted are refused (and write nothing);
    reopen_campaign is the way back. Every other move works."""
    store = _store(tmp_path)
    store.update_campaign(status=start)
    refused = 0
    for target in CampaignState:
        if start.final and not target.final:
            with pytest.raises(TransitionError, match=f"campaign 1 has ended \\({start}\\)"):
                store.update_campaign(status=target, message="x")
            assert store.campaign().status is start and store.campaign().message is None
            refused += 1
            continue
        store.update_campaign(status=target)
        assert store.campaign().status is target
        if target.final and not start.final:
            store.reopen_campaign(start)
        else:
            store.update_campaign(status=start)
    assert refused == (3 if start.final else 0)
    store.reopen_campaign(CampaignState.RUNNING, message="retry")
    assert store.campaign().status is CampaignState.RUNNING and store.campaign().message == "retry"
    with pytest.raises(TransitionError):
        store.reopen_campaign(CampaignState.FINISHED)


@pytest.mark.parametrize("status, failed, reopened", [
    (CampaignState.FINISHED, False, CampaignState.FINISHED),  # nothing to retry: stays finished
    (CampaignState.FINISHED, True, CampaignState.CREATED),
    (CampaignState.FAILED, False, CampaignState.CREATED),
    (CampaignState.KILLED, True, CampaignState.CREATED),
    (CampaignState.INTERRUPTED, True, CampaignState.INTERRUPTED),
])
def test_reopen_failed_reopens_the_campaign(tmp_path, status, failed, reopened) -> None:
    store = _store(tmp_path)
    _put(store, 1, PointState.FAILED if failed else PointState.FINISHED)
    store.update_campaign(status=status)
    assert store.reopen_failed("again") == ([1] if failed else [])
    assert store.campaign().status is reopened


def test_records_are_typed_and_frozen(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HPOGRID_HOME", str(tmp_path))
    store = _store(tmp_path)
    rid = store.start_round(1)
    store.end_round(rid, RoundState.FINISHED, n_proposed=1)
    _put(store, 1, PointState.FINISHED)
    point, campaign, rnd = store.point(1), store.campaign(), store.rounds()[0]
    assert isinstance(point, Point) and point.state is PointState.FINISHED and point.params == {"x": 0}
    assert point.loss == 1.0 and point.attempts == 1 and point.reports == []
    assert isinstance(campaign, Campaign) and campaign.status is CampaignState.CREATED and campaign.settings == {}
    assert isinstance(rnd, Round) and rnd.status is RoundState.FINISHED and rnd.n_proposed == 1
    assert store.best() == point and store.points([PointState.FINISHED]) == [point]
    with pytest.raises(dataclasses.FrozenInstanceError):
        point.loss = 0.0  # type: ignore[misc]
    cid, _ = register_campaign("p", "embedded", lambda i: tmp_path / str(i))
    entry = registered(cid)
    assert isinstance(entry, Registered) and entry.id == cid and entry.backend == "embedded"
    row = as_dict(point)  # the one serialisation: the row as the store always gave it
    assert row["state"] == "finished" and type(row["state"]) is str and list(row)[:4] == ["id", "round", "params", "state"]
    assert point["loss"] == point.loss and point.get("nope", 7) == 7  # read access by key, for older callers


def test_history_json_is_history(tmp_path) -> None:
    """The engine's %IN text (built from the stored JSON without decoding it) says what history()
    says: a loss once final, 1e5 for a failure without one, null while pending or NaN."""
    store = _store(tmp_path, 5)
    _put(store, 1, PointState.FINISHED)
    _put(store, 2, PointState.FAILED)
    store.start_point(3)
    store.finish_point(3, loss=float("nan"), message="NaN")
    _put(store, 4, PointState.STOPPED)
    assert json.loads(store.history_json()) == store.history() == [
        [{"x": 0}, 1.0], [{"x": 1}, 1e5], [{"x": 2}, None], [{"x": 3}, 2.0], [{"x": 4}, None]]
