"""Fault injection on the embedded backend, as a user runs it: ``kill -9`` of the fork server, the
steering worker and the driver at seeded random moments, repeated, and two concurrent resumes.

Each test asserts exact counts (docs: README "Retries, kill -9 and time limits"): every point
finished once, no finished result lost, no point evaluated again after it wrote its result (the
jobs' own ledger: each loss computed exactly once), store attempts = job folders, no process of
the campaign left behind. The figures of each run are printed (``pytest -s``) for the report.
"""

from __future__ import annotations

import random
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import installed
from tests.faults._kit import books, find, fork_server, kill9, make_project, marked_env, no_orphans

pytestmark = pytest.mark.slow  # 45-140 s each on a busy 2-core machine

POINTS = 24
CONCURRENT = 4
KILLS = 3  # per test: each restart of a warm helper costs its imports (seconds on a busy machine)


def _driver(env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen([installed("hpogrid"), "submit_idds", *args, "--progress", "plain"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _done(project: Path, cid: int, ledger: Path) -> int:
    try:
        return sum(1 for p in books(project, cid, ledger).points.values() if p["state"] in ("finished", "failed"))
    except Exception:  # the store is being created
        return 0


def _running(project: Path, ledger: Path, timeout: float = 120) -> None:
    """Wait until the campaign has a job running (its store exists, a point is running)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if any(p["state"] == "running" for p in books(project, 1, ledger).points.values()):
                return
        except Exception:  # the store is being created
            pass
        time.sleep(0.1)
    raise AssertionError("no job started")


def _check(project: Path, env: dict[str, str], tmp: Path, label: str, **figures: int) -> None:
    b = books(project, 1, tmp / "ledger.txt")
    print(f"\n[{label}] points {len(b.points)}, job starts {b.job_starts}, losses computed {b.evaluations}, "
          f"re-evaluations {b.evaluations - len(b.points)}, " + ", ".join(f"{k} {v}" for k, v in figures.items()))
    assert b.campaign["status"] == "finished", b.campaign
    assert len(b.points) == POINTS
    assert b.problems() == []
    assert b.evaluations == POINTS  # each point's loss computed once: nothing evaluated twice
    assert no_orphans(env) == []


def test_kill9_fork_server_repeatedly(cli_env, tmp_path) -> None:
    """With one attempt per point, a fork server killed under running jobs must cost nothing:
    its jobs go on, are harvested, and a new server runs the next jobs."""
    env = marked_env(cli_env, tmp_path)
    project = make_project(env, tmp_path, "fs", num_trials=POINTS, concurrent=CONCURRENT)
    rng = random.Random(13)
    driver = _driver(env, "fs", "--max_attempts", "1")
    kills, servers = 0, set()
    while driver.poll() is None:
        time.sleep(rng.uniform(0.3, 1.2))
        pid = fork_server(project)
        if pid is not None and kills < KILLS and _done(project, 1, tmp_path / "ledger.txt") < POINTS - 2:
            servers.add(pid)
            kills += kill9([pid])
    out, err = driver.communicate()
    assert driver.returncode == 0, out + err
    assert kills == KILLS, f"only {kills} kills landed"
    _check(project, env, tmp_path, "fork server kill -9", kills=kills, fork_servers=len(servers))


def test_kill9_steering_worker_repeatedly(cli_env, tmp_path) -> None:
    env = marked_env(cli_env, tmp_path)
    project = make_project(env, tmp_path, "sw", num_trials=POINTS, concurrent=CONCURRENT)
    rng = random.Random(17)
    driver = _driver(env, "sw")
    kills = 0
    while driver.poll() is None:
        time.sleep(rng.uniform(0.5, 1.5))
        if kills < KILLS and _done(project, 1, tmp_path / "ledger.txt") < POINTS - 4:
            kills += kill9(find(env, "_steering_worker")[:1])
    out, err = driver.communicate()
    assert driver.returncode == 0, out + err
    assert kills == KILLS, f"only {kills} kills landed"
    _check(project, env, tmp_path, "steering worker kill -9", kills=kills)


def test_kill9_driver_repeatedly_then_resume(cli_env, tmp_path) -> None:
    """The driver killed at random moments (jobs in their cleanup window included), resumed each
    time: running jobs are adopted and harvested, none is killed or run again."""
    env = marked_env(cli_env, tmp_path)
    env["FAULTS_CLEANUP"] = "0.8"
    project = make_project(env, tmp_path, "dr", num_trials=POINTS, concurrent=CONCURRENT)
    rng = random.Random(11)
    driver = _driver(env, "dr", "--max_attempts", "1")
    kills = resumes = 0
    while True:
        _running(project, tmp_path / "ledger.txt")
        time.sleep(rng.uniform(0.2, 2.0))
        if driver.poll() is not None or kills == KILLS:
            break
        driver.kill()
        driver.wait()
        kills += 1
        driver = _driver(env, "dr", "--resume", "1")
        resumes += 1
    out, err = driver.communicate()
    assert driver.returncode == 0, out + err
    assert kills == KILLS, f"only {kills} kills landed"
    _check(project, env, tmp_path, "driver kill -9", kills=kills, resumes=resumes)


def test_two_concurrent_resumes(cli_env, tmp_path) -> None:
    """Two resumes at once: one drives, the other says who does in one line and exits 1, changing
    nothing. Repeated (the winner is killed, two more resumes race)."""
    env = marked_env(cli_env, tmp_path)
    project = make_project(env, tmp_path, "cr", num_trials=POINTS, concurrent=CONCURRENT)
    first = _driver(env, "cr")
    _running(project, tmp_path / "ledger.txt")
    first.kill()
    first.wait()
    races = 0
    while True:
        a, b = _driver(env, "cr", "--resume", "1"), _driver(env, "cr", "--resume", "1")
        procs = {a.pid: a, b.pid: b}
        # the loser ends quickly; the winner goes on
        deadline = time.monotonic() + 120
        while all(p.poll() is None for p in procs.values()) and time.monotonic() < deadline:
            time.sleep(0.05)
        losers = [p for p in procs.values() if p.poll() is not None and p.returncode == 1]
        if not losers:  # the first to end finished the campaign before the other started: no race left
            for p in procs.values():
                p.communicate()
            break
        (loser,) = losers
        (winner,) = [p for p in procs.values() if p is not loser]
        _, err = loser.communicate()
        assert err.strip().splitlines() == [
            f"hpogrid: error: campaign 1 is being driven by pid {winner.pid}; wait for it to end or stop it "
            f"with `hpogrid tasks kill 1`"], err
        races += 1
        if races == 2:
            out, err = winner.communicate()
            assert winner.returncode == 0, out + err
            break
        _running(project, tmp_path / "ledger.txt")
        winner.kill()
        winner.wait()
    assert races >= 2
    _check(project, env, tmp_path, "concurrent resumes", races=races)
