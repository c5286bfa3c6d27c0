"""Campaign stores for the report tests, written through the real ``Store`` API.

Each builder writes a project's campaign the way its backend does: an embedded ``submit_idds``
campaign (rounds of proposed points, jobs on this host, per-iteration reports), a ``local_run``
campaign (Ray Tune trials recorded as points), and a grid campaign (PanDA sites, losses only,
failed jobs with the grid's failure loss). Imported by the other ``test_report*`` files.
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

from hpogrid.client import campaigns, projects
from hpogrid.client.store import Store

SPACE = {
    "lr": {"method": "loguniform", "dimension": {"low": 1e-4, "high": 1e-1}},
    "layers": {"method": "uniformint", "dimension": {"low": 1, "high": 5}},
    "optimizer": {"method": "categorical", "dimension": {"categories": ["adam", "sgd"]}},
}
T0 = 1_795_000_000.0  # a fixed clock: 2026-11-19


def make_project(tmp_path: Path, name: str = "demo", *, metric: str = "accuracy", mode: str = "max") -> dict[str, Any]:
    script = tmp_path / f"{name}_scripts" / "train.py"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text("def train(config):\n    return {'accuracy': 0.5}\n")
    return projects.create(
        name, scripts_path=script.parent, model_config={"script": "train.py", "model": "train"},
        search_space=SPACE, hpo_config={"metric": metric, "mode": mode, "algorithm": "random", "num_trials": 20},
        grid_config={"backend": "embedded"},
    )


def accuracy(params: dict[str, Any]) -> float:
    """The synthetic objective: best near lr=3e-3, 3 layers, adam."""
    acc = 0.92 - 0.06 * (math.log10(params["lr"]) + 2.5) ** 2 - 0.02 * abs(params["layers"] - 3)
    return round(acc + (0.03 if params["optimizer"] == "adam" else 0.0), 6)


def sample(rng: random.Random) -> dict[str, Any]:
    return {"lr": 10 ** rng.uniform(-4, -1), "layers": rng.randint(1, 5), "optimizer": rng.choice(["adam", "sgd"])}


def reports_for(acc: float, start: float, n: int = 4) -> list[dict[str, Any]]:
    """The evaluator's per-iteration records (meta.json's ``results``)."""
    out = []
    for i in range(1, n + 1):
        value = acc * (1 - 0.5 ** (i + 1)) / (1 - 0.5 ** (n + 1))
        out.append({"training_iteration": i, "timestamp": start + 2.0 * i, "time_this_iter_s": 2.0,
                    "time_total_s": 2.0 * i, "metrics": {"accuracy": round(value, 6), "val_loss": round(1 - value, 6)}})
    return out


def embedded_campaign(project: str = "demo", *, n: int = 12, failed: tuple[int, ...] = (4, 9), seed: int = 0,
                      per_round: int = 4, running: int = 0) -> Store:
    """An embedded ``submit_idds`` campaign: rounds of points, jobs on this host, metric = accuracy (max)."""
    rng = random.Random(seed)
    store = campaigns.new(project, "embedded", algorithm="random", metric="accuracy", mode="max", max_points=n,
                          max_concurrent=2, points_per_round=per_round, max_attempts=2, status="running",
                          started=T0)
    clock = T0
    made = 0
    while made < n:
        k = min(per_round, n - made)
        rid = store.start_round(k)
        ids = store.add_points([sample(rng) for _ in range(k)], round_id=rid)
        store.end_round(rid, "finished", n_proposed=k)
        for pid in ids:
            made += 1
            store.start_point(pid, host="worker-1", job_dir=f"jobs/{pid}")
            params = store.point(pid)["params"]
            if made > n - running:
                continue  # still running
            start, end = clock, clock + 10.0 + pid
            clock = end
            if pid in failed:
                store.start_point(pid, host="worker-1")  # a second attempt
                store.fail_point(pid, f"training raised ValueError: bad batch (point {pid})", started=start, ended=end)
                continue
            acc = accuracy(params)
            store.finish_point(pid, loss=-acc, metric=acc, reports=reports_for(acc, start), host="worker-1",
                               started=start, ended=end)
    if not running:
        store.update_campaign(status="finished", ended=clock + 1.0)
    return store


def local_run_campaign(project: str = "demo", *, n: int = 10, seed: int = 1) -> Store:
    """A ``local_run`` campaign: Ray Tune trials recorded as points (ids given), one report each."""
    rng = random.Random(seed)
    store = campaigns.new(project, "local_run", algorithm="random", metric="accuracy", mode="max", max_points=n,
                          status="running", started=T0 + 5000)
    ids = store.add_points([sample(rng) for _ in range(n)], ids=list(range(1, n + 1)))
    for pid in ids:
        start = T0 + 5000 + 3.0 * pid
        store.start_point(pid, host="laptop")
        acc = accuracy(store.point(pid)["params"])
        store.finish_point(pid, loss=-acc, metric=acc, reports=[{"accuracy": acc, "training_iteration": 1}],
                           started=start, ended=start + 3.0)
    store.update_campaign(status="finished", ended=T0 + 5000 + 3.0 * n + 5)
    return store


def grid_campaign(project: str = "demo", *, n: int = 6, seed: int = 2) -> Store:
    """A grid campaign read back from iDDS/PanDA: losses only (no metric), sites, a failed job with loss 1e5."""
    rng = random.Random(seed)
    store = campaigns.new(project, "panda", algorithm="random", metric="accuracy", mode="max", max_points=n,
                          status="running", started=T0 + 9000, remote_id="4242",
                          settings={"taskname": "user.me.demo.grid"})
    rid = store.start_round(n)
    ids = store.add_points([sample(rng) for _ in range(n)], round_id=rid, ids=list(range(1, n + 1)))
    store.end_round(rid, "finished", n_proposed=n)
    for pid in ids:
        start = T0 + 9000 + 60.0 * pid
        store.start_point(pid, site="ANALY_MANC_GPU_TEST")
        if pid == 2:
            store.fail_point(pid, "pilot: lost heartbeat", loss=1e5, started=start, ended=start + 30)
            continue
        acc = accuracy(store.point(pid)["params"])
        store.finish_point(pid, loss=-acc, started=start, ended=start + 120.0)
    store.update_campaign(status="finished", ended=T0 + 9000 + 60.0 * n + 200)
    return store


def only_failed_campaign(project: str = "demo", *, n: int = 3) -> Store:
    store = campaigns.new(project, "embedded", metric="accuracy", mode="max", max_points=n, status="failed")
    ids = store.add_points([sample(random.Random(7)) for _ in range(n)])
    for pid in ids:
        store.start_point(pid, host="worker-1")
        store.fail_point(pid, f"ModuleNotFoundError: No module named 'torch' (point {pid})",
                         started=T0 + pid, ended=T0 + pid + 1)
    return store


def test_builders_write_what_the_store_reads(tmp_path: Path) -> None:
    make_project(tmp_path)
    with embedded_campaign(running=2) as s:
        assert s.counts() == {"proposed": 0, "running": 2, "finished": 8, "failed": 2}
    with grid_campaign() as s:
        assert s.campaign()["backend"] == "panda" and s.counts()["failed"] == 1
