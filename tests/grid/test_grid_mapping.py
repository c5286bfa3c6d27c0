"""Pure pieces of the grid path: iDDS's docker-run steering mapped to a local command, the job
parameters the job wrapper reads, and grid results written into the campaign store."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from hpogrid.client.backends.panda import apply_grid_results, campaign_status
from hpogrid.client.store import FAILURE_LOSS, Store
from hpogrid.gridsim.commands import local_steering


@pytest.mark.parametrize("arguments, template, env, image", [
    ('run --rm -v "$(pwd)":/HPOiDDS steer:1 python /opt/opt.py --in /HPOiDDS/%IN --out /HPOiDDS/%OUT',
     "python /opt/opt.py --in ./%IN --out ./%OUT", {}, "steer:1"),
    ("run --rm -it --volume=$PWD:/work -e A=1 --env B=2 -w /work img python s.py /work/%IN /work",
     "python s.py ./%IN .", {"A": "1", "B": "2"}, "img"),
    ('run --rm -v "$(pwd)":/d img /bin/sh -c "cat /d/%IN > /d/%OUT"',
     "/bin/sh -c 'cat ./%IN > ./%OUT'", {}, "img"),
])
def test_docker_run_prefix_becomes_a_local_command(arguments, template, env, image):
    command = local_steering(arguments)
    assert shlex.split(command.template) == shlex.split(template)
    assert command.env == env and command.image == image


def test_steering_without_docker_run_is_kept_and_bad_ones_refused():
    assert local_steering("python opt.py %IN", executable="python3").template == "python3 python opt.py %IN"
    with pytest.raises(ValueError, match="image and the command"):
        local_steering("run --rm -v x:/y")
    with pytest.raises(ValueError, match="empty"):
        local_steering("  ")


def test_grid_results_into_the_store(tmp_path: Path):
    store = Store.create(tmp_path / "store.db", id="1", project="p", backend="panda", mode="max", metric="acc",
                         remote_id="500001", status="running", max_points=4)
    points = [{"id": "1", "parameters": {"x": 1}, "loss": -0.9}, {"id": "2", "parameters": {"x": 2}, "loss": FAILURE_LOSS},
              {"id": "3", "parameters": {"x": 3}, "loss": None}, {"id": "4", "parameters": {"x": 4}, "loss": 0.0}]
    meta = [{"PandaID": 11, "metaData": {"point": {"x": 1}, "best": {"value": 0.9}, "host": {"hostname": "wn1"},
                                         "timings": {"start_timestamp": 100.0, "total_s": 5.0}}}]
    apply_grid_results(store, "running", points, meta)
    by_id = {p["id"]: p for p in store.points()}
    assert by_id[1]["state"] == "finished" and by_id[1]["metric"] == 0.9 and by_id[1]["host"] == "wn1"
    assert by_id[1]["started"] == 100.0 and by_id[1]["ended"] == 105.0
    assert by_id[2]["state"] == "failed" and "1e5" in by_id[2]["message"]
    assert by_id[3]["state"] == "proposed"
    assert by_id[4]["state"] == "finished" and by_id[4]["loss"] == 0.0 and by_id[4]["metric"] == -0.0  # 0.0 is a result
    assert store.campaign()["status"] == "running" and store.campaign()["ended"] is None
    points[2]["loss"] = 0.5
    apply_grid_results(store, "done", points, meta)  # idempotent, and the final state is recorded once
    assert store.point(3)["state"] == "finished" and store.campaign()["status"] == "finished"
    assert store.campaign()["ended"] is not None
    assert [campaign_status(s) for s in ("running", "done", "finished", "failed", "aborted", "broken")] == \
        ["running", "finished", "finished", "failed", "killed", "failed"]


def test_run_job_metadata_into_the_store(tmp_path: Path):
    from hpogrid.client.backends.panda import RUN_POINT_STRIDE, apply_run_results

    store = Store.create(tmp_path / "store.db", id="2", project="p", backend="panda", mode="min", metric="loss",
                         remote_id="500002", status="running", settings={"kind": "run"})
    job = {"hyperparameters": ["x"], "metric": "loss",
           "result": {"0": {"x": 1, "loss": 0.0, "state": "finished"},
                      "1": {"x": 2, "loss": None, "state": "failed", "message": "boom"}}}
    meta = [{"PandaID": 500002001, "metaData": job}, {"PandaID": 500002002, "metaData": {}}]  # one still running
    apply_run_results(store, "running", meta)
    apply_run_results(store, "running", meta)  # idempotent
    points = store.points()
    assert [p["id"] for p in points] == [RUN_POINT_STRIDE + 1, RUN_POINT_STRIDE + 2]
    assert points[0]["state"] == "finished" and points[0]["loss"] == 0.0 and points[0]["params"] == {"x": 1}
    assert points[1]["state"] == "failed" and points[1]["message"] == "boom"
    apply_run_results(store, "done", meta)
    assert store.campaign()["status"] == "finished"


def test_a_non_finite_loss_from_idds_is_a_failure_with_its_reason(tmp_path: Path):
    """A payload that returned NaN (or inf) has a result: the point is failed with the reason, never pending."""
    store = Store.create(tmp_path / "store.db", id="3", project="p", backend="panda", mode="min", metric="loss",
                         remote_id="500003", status="running", max_points=2)
    points = [{"id": "1", "parameters": {"x": 1}, "loss": float("nan")},
              {"id": "2", "parameters": {"x": 2}, "loss": float("inf")}]
    apply_grid_results(store, "running", points, [])
    first, second = store.points()
    assert (first.state, second.state) == ("failed", "failed")
    assert "non-finite loss (nan)" in first.message and "non-finite loss (inf)" in second.message
    assert first.loss is None and store.counts()["failed"] == 2


def test_a_run_trial_cut_short_by_its_scheduler_is_stopped(tmp_path: Path):
    from hpogrid.client.backends.panda import apply_run_results

    store = Store.create(tmp_path / "store.db", id="4", project="p", backend="panda", mode="min", metric="loss",
                         remote_id="500004", status="running", settings={"kind": "run"})
    job = {"hyperparameters": ["x"], "metric": "loss",
           "result": {"0": {"x": 1, "loss": 2.0, "state": "stopped", "message": "by the scheduler at iteration 1"}}}
    apply_run_results(store, "running", [{"PandaID": 500004001, "metaData": job}])
    (point,) = store.points()
    assert point.state == "stopped" and point.loss == 2.0 and point.message == "by the scheduler at iteration 1"
