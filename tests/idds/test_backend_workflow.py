"""The pure parts of ``--backend idds``: the workflow builder, host and proxy rules, the steering runner's rules.

No server: the builder makes real idds-workflow objects; :class:`IddsSteering` runs against a small
in-memory iDDS (the real one is in test_idds_real.py).
"""

from __future__ import annotations

import base64
import json
import re
import shlex
from pathlib import Path

import pytest

pytest.importorskip("idds.atlas.workflowv2.atlashpowork", reason="idds-atlas (hpogrid[grid]) is not installed")

from hpogrid.client.backends.idds import HOST_ENV, IddsPoint, IddsSteering, idds_host, proxy_path  # noqa: E402
from hpogrid.client.errors import GridError, UsageError  # noqa: E402
from hpogrid.client.grid.idds_workflow import HpoWorkSpec, build_workflow, new_workload_id, work_spec  # noqa: E402
from hpogrid.client.store import FAILURE_LOSS, Store  # noqa: E402

SPACE = {"height": {"method": "uniform", "dimension": {"low": -100, "high": 100}},
         "width": {"method": "uniform", "dimension": {"low": 0, "high": 20}}}
PROJECT = {"project_name": "ex1", "search_space": SPACE,
           "hpo_config": {"algorithm": "bayesian", "algorithm_param": {"n_initial_points": 4}, "metric": "loss",
                          "mode": "min", "seed": 7, "num_trials": 30}}


def _config_in(arguments: str) -> dict:
    """The flat steering config carried (base64) inside the steering command."""
    encoded = re.search(r"echo ([A-Za-z0-9+/=]+) \| base64 -d", arguments).group(1)
    return json.loads(base64.b64decode(encoded))


def test_work_spec_holds_budget_round_size_space_and_our_steering() -> None:
    spec = work_spec(PROJECT, workload_id=1234567890, points_per_round=5, image="steer:1")
    assert (spec.workload_id, spec.max_points, spec.num_points_per_iteration) == (1234567890, 30, 5)
    assert spec.executable == "docker" and spec.es is True and spec.output_json == "output.json"
    assert spec.opt_space == SPACE
    argv = shlex.split(spec.arguments)
    assert argv[:5] == ["run", "--rm", "-v", "$(pwd):/HPOiDDS", "steer:1"]
    inner = argv[-1]
    for placeholder in ("--in /HPOiDDS/%IN", "--out /HPOiDDS/%OUT", "--num-points %NUM_POINTS",
                        "--max-points %MAX_POINTS"):
        assert placeholder in inner
    assert "exec hpogrid-steering" in inner
    assert _config_in(spec.arguments) == {"algorithm": "bayesian", "algorithm_param": {"n_initial_points": 4},
                                          "metric": "loss", "mode": "min", "seed": 7, "search_space": SPACE}
    # a seed given at submission wins over the project's
    assert _config_in(work_spec(PROJECT, workload_id=1, points_per_round=2, seed=11).arguments)["seed"] == 11
    # a project's own steeringExec is sent as it is
    own = {**PROJECT, "steering_exec": "run --rm img python opt.py %IN %OUT"}
    assert work_spec(own, workload_id=1, points_per_round=2).arguments == "run --rm img python opt.py %IN %OUT"


def test_build_workflow_is_one_hpo_work_that_idds_2_6_21_runs() -> None:
    from idds.atlas.workflowv2.atlashpowork import ATLASHPOWork
    from idds.workflowv2.workflow import Workflow

    spec = work_spec(PROJECT, workload_id=1234567890, points_per_round=5)
    workflow = build_workflow(spec)
    assert isinstance(workflow, Workflow)
    assert workflow.get_workload_id() == 1234567890
    works = list(workflow.template.works.values())
    assert len(works) == 1 and isinstance(works[0], ATLASHPOWork)
    work = works[0]
    assert work.es is True  # without it the 2.6.21 poller never sees the points of round 1
    assert work.task_name == "hpogrid.hpo.1234567890"
    assert (work.max_points, work.num_points_per_iteration) == (30, 5)
    assert work.primary_input_collection.name.startswith("hpo.1234567890.")  # points are found by the workflow's id
    assert (work.executable, work.arguments, work.method) == ("docker", spec.arguments, "docker")
    assert work.opt_space == SPACE and work.output_json == "output.json"
    assert work.sandbox is None  # else iDDS would wrap the command in a second `docker run`


def test_describe_is_json_and_names_every_field() -> None:
    spec = HpoWorkSpec(workload_id=5, executable="docker", arguments="run x", opt_space={}, max_points=3,
                       num_points_per_iteration=1)
    described = json.loads(json.dumps(spec.describe()))
    (work,) = described["workflow"]["works"]
    assert work == {"type": "ATLASHPOWork", "task_name": "hpogrid.hpo.5", "workload_id": 5, "executable": "docker",
                    "arguments": "run x", "opt_space": {}, "max_points": 3, "num_points_per_iteration": 1,
                    "output_json": "output.json", "es": True}


def test_new_workload_ids_fit_idds_32_bit_column() -> None:
    ids = {new_workload_id() for _ in range(200)}
    assert len(ids) >= 199 and all(1_000_000_000 <= i < 2**31 for i in ids)


def test_host_option_then_environment_then_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(HOST_ENV, "http://env:1/idds/")
    assert idds_host("https://opt:2/idds") == "https://opt:2/idds"
    assert idds_host(None) == "http://env:1/idds"
    monkeypatch.delenv(HOST_ENV)
    with pytest.raises(UsageError, match="--idds-host URL .* HPOGRID_IDDS_HOST"):
        idds_host(None)
    with pytest.raises(UsageError, match="http"):
        idds_host("x" * 5000)


def test_proxy_is_any_readable_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    proxy = tmp_path / "proxy.pem"
    monkeypatch.setenv("X509_USER_PROXY", str(proxy))
    with pytest.raises(GridError, match="no x509 proxy at .*proxy.pem"):
        proxy_path()
    proxy.write_text("anything")
    assert proxy_path() == str(proxy)


class MemoryIdds:
    """An in-memory HPO work: points with ids 1, 2, ...; counts every PUT."""

    def __init__(self) -> None:
        self.items: list[IddsPoint] = []
        self.puts: list[tuple[int, float]] = []
        self.request_id = 1
        self.state = "Transforming"

    def points(self) -> list[IddsPoint]:
        return list(self.items)

    def propose(self, n: int) -> None:
        for _ in range(n):
            i = len(self.items) + 1
            self.items.append(IddsPoint(i, {"x": float(i)}, None))

    def put_loss(self, point_id: int, loss: float) -> None:
        self.puts.append((point_id, loss))
        self.items[point_id - 1] = IddsPoint(point_id, self.items[point_id - 1].params, loss)

    def status(self) -> str:
        return self.state


def _store(tmp_path: Path) -> Store:
    return Store.create(tmp_path / "store.db", id="1", project="p", backend="idds", mode="min", max_points=10,
                        max_concurrent=2)


def _round(steering: IddsSteering, folder: Path, n: int) -> list[dict] | None:
    steering.begin(folder, n, 10)
    end = steering.poll()
    return None if end is None else json.loads((folder / "output.json").read_text()) if end.ok else end.error


def test_steering_hands_new_points_in_order_and_sends_each_loss_once(tmp_path: Path) -> None:
    idds, store = MemoryIdds(), _store(tmp_path)
    steering = IddsSteering(idds, store, interval=0)  # type: ignore[arg-type]
    assert _round(steering, tmp_path, 2) is None  # nothing proposed yet: the round waits
    idds.propose(3)
    assert _round(steering, tmp_path, 2) == [{"x": 1.0}, {"x": 2.0}]  # at most n; the rest next time
    assert store.add_points([{"x": 1.0}, {"x": 2.0}]) == [1, 2]
    assert _round(steering, tmp_path, 2) == [{"x": 3.0}]
    store.add_points([{"x": 3.0}])
    store.finish_point(1, loss=0.5)
    store.fail_point(2, "NaN")
    assert _round(steering, tmp_path, 2) is None
    assert idds.puts == [(1, 0.5), (2, FAILURE_LOSS)]  # a failed point gets the grid's failure loss
    for _ in range(3):
        steering.poll()
        steering.send_losses()
    assert len(idds.puts) == 2 and steering.puts == 2


def test_steering_refuses_points_not_numbered_on(tmp_path: Path) -> None:
    idds, store = MemoryIdds(), _store(tmp_path)
    idds.items = [IddsPoint(2, {"x": 2.0}, None)]
    assert "not numbered on from 1" in _round(IddsSteering(idds, store, interval=0), tmp_path, 2)  # type: ignore[arg-type]


def test_ended_request_is_an_empty_round_failed_one_an_error(tmp_path: Path) -> None:
    idds, store = MemoryIdds(), _store(tmp_path)
    idds.state = "Finished"
    assert _round(IddsSteering(idds, store, interval=0), tmp_path, 2) == []  # type: ignore[arg-type]
    idds.state = "Failed"
    assert _round(IddsSteering(idds, store, interval=0), tmp_path, 2) == "the iDDS request 1 is Failed"  # type: ignore[arg-type]


def test_reconcile_takes_idds_losses_and_never_reruns_them(tmp_path: Path) -> None:
    idds, store = MemoryIdds(), _store(tmp_path)
    idds.propose(3)
    store.add_points([p.params for p in idds.items])
    store.start_point(1)
    idds.put_loss(1, 0.25)  # sent by a client that died before recording it
    idds.put_loss(2, FAILURE_LOSS)
    store.finish_point(3, loss=0.75)  # recorded, not yet sent
    idds.puts.clear()
    IddsSteering(idds, store, interval=0).reconcile()  # type: ignore[arg-type]
    points = {p["id"]: p for p in store.points()}
    assert (points[1]["state"], points[1]["loss"]) == ("finished", 0.25)
    assert (points[2]["state"], points[2]["loss"]) == ("failed", None)
    assert idds.puts == [(3, 0.75)]
