"""``hpogrid submit_idds P --backend idds`` against the real iDDS 2.6.21 (REST app + agents), as a user types it.

Example 1 (examples/scripts/simple_objective.py: minimise (height-14)^2 - |width-3|, optimum -17 at
height 14, width 20) with Gaussian-process search. iDDS runs ``hpogrid-steering`` in its own round
folders through its ``docker`` stand-in; the installed ``hpogrid`` evaluates the points with 2
workers and PUTs the losses. Each test prints the round timings seen through the real agents.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, installed

# Each campaign waits for the real agents' rounds: minutes on a quiet machine, more on a busy one.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]

SPACE = {"height": {"method": "uniform", "dimension": {"low": -100, "high": 100}},
         "width": {"method": "uniform", "dimension": {"low": 0, "high": 20}}}


def hpogrid(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    proc = subprocess.run([installed("hpogrid"), *args], env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{args}: rc={proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def example1(env: dict[str, str], name: str) -> None:
    """Example 1's configs and project, with the CLI (bayesian search, 30 points, 2 at a time)."""
    hpogrid(["model_config", "create", "ex1_model", "--script", "simple_objective.py", "--model", "simple_objective"], env)
    hpogrid(["search_space", "create", "ex1_space", json.dumps(SPACE)], env)
    hpogrid(["hpo_config", "create", "ex1_gp", "--algorithm", "bayesian", "--metric", "loss", "--mode", "min",
             "--num_trials", "30", "--max_concurrent", "2", "--seed", "7"], env)
    hpogrid(["grid_config", "create", "ex1_idds", "--backend", "idds"], env)
    hpogrid(["project", "create", name, "--scripts_path", str(REPO / "examples/scripts/simple_objective.py"),
             "--model_config", "ex1_model", "--search_space", "ex1_space", "--hpo_config", "ex1_gp",
             "--grid_config", "ex1_idds"], env)


@pytest.fixture
def idds_env(cli_env: dict[str, str], real_idds: Any, tmp_path: Path) -> dict[str, str]:
    proxy = tmp_path / "proxy.pem"
    proxy.write_text("any file: the local REST app injects a test DN\n")
    return {**cli_env, "X509_USER_PROXY": str(proxy), "HPOGRID_IDDS_HOST": real_idds.url}


def campaign_folder(home: Path, project: str) -> Path:
    folders = sorted((home / "projects" / project / "campaigns").iterdir(), key=lambda p: int(p.name))
    assert len(folders) == 1, folders
    return folders[0]


def rows(folder: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(f"file:{folder / 'store.db'}?mode=ro", uri=True) as conn:
        return conn.execute(sql).fetchall()


def settings(folder: Path) -> dict[str, Any]:
    return json.loads(rows(folder, "SELECT settings FROM campaign")[0][0])


def idds_points(url: str, workload_id: int, proxy: str) -> list[dict[str, Any]]:
    """The work's points as iDDS holds them, read with idds-client."""
    os.environ.setdefault("IDDS_CLIENT_MODE", "1")
    from idds.client.client import Client

    client = Client(host=url, auth={"auth_type": "x509_proxy", "client_proxy": proxy})
    return sorted(client.get_hyperparameters(workload_id=workload_id, request_id=None), key=lambda p: int(p["id"]))


def puts_seen_by_server(server: Any, workload_id: int) -> list[str] | None:
    """Point ids of every ``PUT /idds/hpo/<workload_id>/...`` in the REST app's access log, if it keeps one."""
    log = getattr(server, "rest_log", None)
    if log is None or not Path(log).exists():
        return None
    return re.findall(rf'"PUT /idds/hpo/{workload_id}/null/(\d+)/', Path(log).read_text(errors="replace"))


def puts_sent_by_client(folder: Path) -> list[int]:
    return [int(m) for m in re.findall(r"PUT point (\d+) loss", (folder / "idds.log").read_text())]


def round_seconds(folder: Path) -> list[float]:
    return [round(s, 1) for (s,) in rows(folder, "SELECT seconds FROM rounds WHERE n_proposed > 0 ORDER BY id")]


def test_example1_runs_to_budget_through_the_real_idds(idds_env: dict[str, str], hpogrid_home: Path,
                                                      real_idds: Any) -> None:
    example1(idds_env, "ex1")
    t0 = time.monotonic()
    run = hpogrid(["submit_idds", "ex1", "--backend", "idds", "--idds-host", real_idds.url,
                   "--n_points_per_iteration", "5", "--progress", "plain"], idds_env, timeout=1800)
    wall = time.monotonic() - t0
    folder = campaign_folder(hpogrid_home, "ex1")
    idds = settings(folder)["idds"]
    assert idds["request_id"] is not None and idds["host"] == real_idds.url

    # 30 points, proposed by iDDS (its ids 1..30), each evaluated once, all finished in the store
    stored = rows(folder, "SELECT id, params, state, loss, attempts FROM points ORDER BY id")
    assert [r[0] for r in stored] == list(range(1, 31))
    assert {r[2] for r in stored} == {"finished"} and {r[4] for r in stored} == {1}
    assert rows(folder, "SELECT status FROM campaign") == [("finished",)]

    # ... and 30 losses held by iDDS, the same as the store's, point by point
    remote = idds_points(real_idds.url, idds["workload_id"], idds_env["X509_USER_PROXY"])
    assert len(remote) == 30
    for (pid, params, _state, loss, _attempts), point in zip(stored, remote):
        assert int(point["id"]) == pid and point["parameters"] == json.loads(params)
        assert point["loss"] == pytest.approx(loss, rel=1e-12, abs=1e-12)
    assert sorted(puts_sent_by_client(folder)) == list(range(1, 31))  # each loss sent once
    seen = puts_seen_by_server(real_idds, idds["workload_id"])
    if seen is not None:
        assert sorted(int(s) for s in seen) == list(range(1, 31))

    # the points came in rounds of 5 proposed by hpogrid-steering inside iDDS: they are exactly what
    # hpogrid-steering proposes from the same history with the campaign's config (seeded)
    for first in (1, 6):
        history = {"points": [[p["parameters"], p["loss"]] for p in remote[: first - 1]], "opt_space": SPACE}
        (folder / "check_in.json").write_text(json.dumps(history))
        subprocess.run([installed("hpogrid-steering"), "--in", str(folder / "check_in.json"), "--out",
                        str(folder / "check_out.json"), "--num-points", "5", "--max-points", "30", "--config",
                        str(folder / "project.json")], check=True, timeout=300)
        again = json.loads((folder / "check_out.json").read_text())
        proposed = [p["parameters"] for p in remote[first - 1: first + 4]]
        assert [sorted(p) for p in again] == [sorted(p) for p in proposed]
        for mine, theirs in zip(again, proposed):
            assert [mine[k] for k in sorted(mine)] == pytest.approx([theirs[k] for k in sorted(mine)], rel=1e-9)

    # report reads the campaign: 30 points, best near the optimum (-17)
    report = hpogrid(["report", "ex1"], idds_env, timeout=300).stdout
    assert "30 points, 30 finished, 0 failed" in report
    best = min(r[3] for r in stored)
    assert best < -15.0, f"best loss {best} is not near Example 1's optimum -17"
    assert "best loss = " in report
    shows = hpogrid(["tasks", "show", "--local", "--json"], idds_env).stdout
    (row,) = [r for r in json.loads(shows) if r["taskname"] == "ex1"]
    assert (row["backend"], row["status"], row["done"]) == ("idds", "finished", 30)
    print(f"\nexample 1 through the real iDDS: {wall:.0f} s for 30 points in rounds of 5; "
          f"seconds per round (new points after the losses): {round_seconds(folder)}; output tail:\n"
          + "\n".join(run.stdout.splitlines()[-3:]))


def test_kill_9_of_the_client_then_resume_evaluates_every_point_once(idds_env: dict[str, str], hpogrid_home: Path,
                                                                     real_idds: Any) -> None:
    example1(idds_env, "ex1k")
    argv = [installed("hpogrid"), "submit_idds", "ex1k", "--backend", "idds", "--n_points_per_iteration", "10",
            "--progress", "plain"]
    t0 = time.monotonic()
    driver = subprocess.Popen(argv, env=idds_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 1200
        folder = None
        while time.monotonic() < deadline and driver.poll() is None:  # into round 2, then kill -9
            time.sleep(0.2)
            if folder is None:
                try:
                    folder = campaign_folder(hpogrid_home, "ex1k")
                except (FileNotFoundError, AssertionError):
                    continue
            if (folder / "store.db").exists() and rows(folder, "SELECT COUNT(*) FROM points WHERE state = 'finished'")[0][0] >= 12:
                break
        assert driver.poll() is None, f"the client ended before it could be killed: {driver.stderr.read()[-2000:]}"
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
    assert folder is not None
    cid = rows(folder, "SELECT id FROM campaign")[0][0]
    before = rows(folder, "SELECT COUNT(*) FROM points WHERE state = 'finished'")[0][0]
    assert 12 <= before < 30
    shows = json.loads(hpogrid(["tasks", "show", "--local", "--json"], idds_env).stdout)
    assert [r["status"] for r in shows if str(r["jeditaskid"]) == cid] == ["interrupted"]
    # with no client running, report reads the campaign from iDDS (points it proposed meanwhile included)
    report = hpogrid(["report", "ex1k"], idds_env, timeout=300).stdout
    assert re.search(r"ex1k, campaign \d+: \d+ points, (\d+) finished", report)
    assert int(re.search(r"(\d+) finished", report).group(1)) >= before

    hpogrid(["submit_idds", "ex1k", "--resume", cid, "--progress", "none"], idds_env, timeout=1800)
    wall = time.monotonic() - t0

    stored = rows(folder, "SELECT id, state, loss FROM points ORDER BY id")
    assert [r[0] for r in stored] == list(range(1, 31)) and {r[1] for r in stored} == {"finished"}
    # every point evaluated exactly once: one output.json with a result per point; the only other
    # output.json files are those of the (at most 2) jobs the client's death interrupted (status 6,
    # SIGTERM from the fork server as it went), whose points ran again
    outputs = [(int(p.parent.parent.name), json.loads(p.read_text())["status"]) for p in folder.glob("jobs/*/*/output.json")]
    assert sorted(pid for pid, status in outputs if status == 0) == list(range(1, 31))
    interrupted = [pid for pid, status in outputs if status != 0]
    assert len(interrupted) <= 2 and all(status == 6 for _, status in outputs if status != 0), outputs
    idds = settings(folder)["idds"]
    remote = idds_points(real_idds.url, idds["workload_id"], idds_env["X509_USER_PROXY"])
    assert [int(p["id"]) for p in remote] == list(range(1, 31))
    assert [p["loss"] for p in remote] == pytest.approx([r[2] for r in stored], rel=1e-12, abs=1e-12)
    assert sorted(puts_sent_by_client(folder)) == list(range(1, 31))  # none sent twice, across both clients
    seen = puts_seen_by_server(real_idds, idds["workload_id"])
    if seen is not None:
        assert sorted(int(s) for s in seen) == list(range(1, 31))
    print(f"\nkill -9 after {before} finished points ({len(interrupted)} jobs interrupted), then resume: {wall:.0f} s in all; "
          f"seconds per round: {round_seconds(folder)}")


def test_tasks_kill_stops_the_client_and_aborts_the_idds_request(idds_env: dict[str, str], hpogrid_home: Path,
                                                                 real_idds: Any) -> None:
    from hpogrid.client.backends.idds import IddsService
    from hpogrid.client.engine import driver_alive

    example1(idds_env, "ex1x")
    hpogrid(["submit_idds", "ex1x", "--backend", "idds", "--detach"], idds_env)
    folder = campaign_folder(hpogrid_home, "ex1x")
    cid, pid = rows(folder, "SELECT id, pid FROM campaign")[0]
    idds = settings(folder)["idds"]
    assert idds["request_id"] is not None and pid
    killed = hpogrid(["tasks", "kill", cid], idds_env, timeout=300)
    assert killed.stdout.strip() == f"campaign {cid} killed"
    assert rows(folder, "SELECT status FROM campaign") == [("killed",)]
    assert not driver_alive(pid)
    service = IddsService(real_idds.url, idds["workload_id"], idds["request_id"])
    os.environ.setdefault("X509_USER_PROXY", idds_env["X509_USER_PROXY"])
    deadline, status = time.monotonic() + 300, None
    while time.monotonic() < deadline:
        status = service.status()
        if status in ("Cancelled", "Cancelling", "ToCancel"):
            break
        time.sleep(2)
    assert status in ("Cancelled", "Cancelling", "ToCancel"), status
