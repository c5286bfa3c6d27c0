"""Damaged, read-only and full storage through the installed `hpogrid`, as a user meets them.

Every command that meets a bad store ends with one line on stderr naming the file and what to do,
exit status 1, and no traceback; one bad campaign never hides the others. Real stores, real
campaigns (`submit_idds`), a real read-only bind mount and a real full tmpfs (root only: they skip
with the reason when the machine refuses the mount).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, installed

SPACE = {"height": {"method": "uniform", "dimension": {"low": -100, "high": 100}},
         "width": {"method": "uniform", "dimension": {"low": 0, "high": 20}}}
DAMAGE_ADVICE = "move it aside or restore it from a backup"


def hpogrid(home: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, HPOGRID_HOME=str(home))
    return subprocess.run([installed("hpogrid"), *args], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=str(home.parent))


def make_home(home: Path, trials: int) -> None:
    """Configs and project `p` (random search of Example 1) in ``home``."""
    steps = [
        ("model_config", "create", "m", "--script", "simple_objective.py", "--model", "simple_objective"),
        ("search_space", "create", "s", json.dumps(SPACE)),
        ("hpo_config", "create", "h", "--algorithm", "random", "--metric", "loss", "--mode", "min",
         "--num_trials", str(trials), "--max_concurrent", "2", "--seed", "7"),
        ("grid_config", "create", "g"),
        ("project", "create", "p", "--scripts_path", str(REPO / "examples/scripts/simple_objective.py"),
         "--model_config", "m", "--search_space", "s", "--hpo_config", "h", "--grid_config", "g"),
    ]
    for step in steps:
        done = hpogrid(home, *step)
        assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with two finished 6-point campaigns (1 and 2), built once."""
    home = tmp_path_factory.mktemp("built") / "home"
    make_home(home, 6)
    for _ in range(2):
        done = hpogrid(home, "submit_idds", "p", "--progress", "none")
        assert done.returncode == 0, done.stderr
    return home


@pytest.fixture
def home(built: Path, tmp_path: Path) -> Path:
    """A copy of the built home (the registry holds relative paths: the copy acts on its own stores)."""
    copy = tmp_path / "home"
    shutil.copytree(built, copy)
    return copy


def store_of(home: Path, cid: int) -> Path:
    return home / "projects" / "p" / "campaigns" / str(cid) / "store.db"


def one_line_error(done: subprocess.CompletedProcess, *, names: str, code: int = 1) -> str:
    lines = done.stderr.strip().splitlines()
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout, done.stderr
    assert done.returncode == code, (done.returncode, done.stderr)
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("hpogrid: error: ") and names in lines[0], lines[0]
    return lines[0]


def truncate(path: Path) -> None:
    with open(path, "r+b") as f:
        f.truncate(5000)  # the header page survives, the tables do not


def scribble(path: Path) -> None:
    with open(path, "r+b") as f:
        f.write(b"this is not an SQLite header" * 4)


# ---- damaged stores ---------------------------------------------------------------------------
@pytest.mark.parametrize("damage", [truncate, scribble], ids=["truncated", "corrupt"])
def test_a_damaged_store_is_one_line_and_hides_no_other_campaign(home: Path, damage) -> None:
    bad = store_of(home, 1)
    damage(bad)

    listed = hpogrid(home, "tasks", "show", "--local")
    line = one_line_error(listed, names=str(bad))
    assert line.startswith("hpogrid: error: campaign 1 damaged: ") and DAMAGE_ADVICE in line
    rows = {r.split()[0]: r.split()[3] for r in listed.stdout.splitlines()[1:]}
    assert rows == {"2": "finished", "1": "damaged"}

    as_json = hpogrid(home, "tasks", "show", "--local", "--json")
    assert as_json.returncode == 1
    assert [(r["jeditaskid"], r["status"]) for r in json.loads(as_json.stdout)] == [(2, "finished"), (1, "damaged")]
    assert hpogrid(home, "tasks", "show", "--local", "--status", "finished").returncode == 0

    metadata = hpogrid(home, "tasks", "show", "--local", "-m")
    one_line_error(metadata, names=str(bad))
    assert metadata.stdout.count("  point ") == 6  # campaign 2's points, all of them

    for args in (("report", "p", "--campaign", "1"), ("submit_idds", "p", "--resume", "1", "--progress", "none"),
                 ("tasks", "retry", "1", "--progress", "none"), ("tasks", "kill", "1")):
        one_line_error(hpogrid(home, *args), names=str(bad))

    both = hpogrid(home, "report", "p", "--range", "1-2")
    assert both.returncode == 0 and "Traceback" not in both.stderr
    warnings = both.stderr.strip().splitlines()
    assert len(warnings) == 1 and warnings[0].startswith("hpogrid: warning: campaign 1 left out: ") and str(bad) in warnings[0]
    assert "campaign 2: 6 points, 6 finished" in both.stdout

    latest = hpogrid(home, "report", "p")  # campaign 2: untouched
    assert latest.returncode == 0 and latest.stderr == ""
    assert hpogrid(home, "project", "list").returncode == 0


def test_a_damaged_registry_is_one_line(home: Path) -> None:
    registry = home / "campaigns.db"
    scribble(registry)
    for args in (("tasks", "show", "--local"), ("report", "p"), ("submit_idds", "p", "--progress", "none")):
        one_line_error(hpogrid(home, *args), names=str(registry))


def test_a_campaign_left_running_by_a_dead_driver_reads_interrupted(home: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that has exited
    with sqlite3.connect(store_of(home, 1)) as conn:
        conn.execute("UPDATE campaign SET status = 'running', pid = ?", (dead.pid,))
    listed = hpogrid(home, "tasks", "show", "--local", "--json")
    assert listed.returncode == 0
    row = {r["jeditaskid"]: r for r in json.loads(listed.stdout)}[1]
    assert row["status"] == "interrupted" and "is gone" in row["message"]


# ---- registry paths ---------------------------------------------------------------------------
def test_a_copied_home_acts_on_its_own_stores(built: Path, home: Path) -> None:
    with sqlite3.connect(home / "campaigns.db") as conn:
        assert [r[0] for r in conn.execute("SELECT path FROM campaigns ORDER BY id")] == \
            ["projects/p/campaigns/1", "projects/p/campaigns/2"]
    scribble(store_of(home, 1))  # the copy's store, not the original's
    assert hpogrid(built, "tasks", "show", "--local").returncode == 0
    assert hpogrid(home, "tasks", "show", "--local").returncode == 1


def test_old_absolute_registry_entries_are_migrated_on_read(built: Path, home: Path) -> None:
    with sqlite3.connect(home / "campaigns.db") as conn:  # as hpogrid wrote it before: the original's paths
        conn.execute("UPDATE campaigns SET path = ? || '/projects/p/campaigns/' || id", (str(built),))
    scribble(store_of(built, 2))  # were the copy to follow the old paths, it would read this
    listed = hpogrid(home, "tasks", "show", "--local", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [r["status"] for r in json.loads(listed.stdout)] == ["finished", "finished"]
    with sqlite3.connect(home / "campaigns.db") as conn:
        assert [r[0] for r in conn.execute("SELECT path FROM campaigns ORDER BY id")] == \
            ["projects/p/campaigns/1", "projects/p/campaigns/2"]
    shutil.copy(store_of(home, 2), store_of(built, 2))  # the module's home, mended


# ---- a read-only home -------------------------------------------------------------------------
def _mount(*args: str) -> str | None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True)
    return None if done.returncode == 0 else (done.stderr.strip() or f"mount {' '.join(args)} failed")


def _unmount(path: Path) -> None:
    """Unmount once the last process of a command has let go of it (a job may take a moment)."""
    for _ in range(40):
        if subprocess.run(["umount", str(path)], capture_output=True).returncode == 0:
            return
        time.sleep(0.25)
    subprocess.run(["umount", "-l", str(path)], check=True)


@pytest.fixture
def readonly_home(home: Path, tmp_path: Path):
    """``home`` seen through a read-only bind mount (chmod does not stop root)."""
    if os.geteuid() != 0:
        for path in [home, *home.rglob("*")]:
            if path.is_dir():
                path.chmod(0o555)
        yield home
        for path in [home, *home.rglob("*")]:
            if path.is_dir():
                path.chmod(0o755)
        return
    view = tmp_path / "ro"
    view.mkdir()
    error = _mount("--bind", str(home), str(view)) or _mount("-o", "remount,bind,ro", str(view))
    if error is not None:
        subprocess.run(["umount", str(view)], capture_output=True)
        pytest.skip(f"cannot make a read-only mount here: {error}")
    try:
        yield view
    finally:
        _unmount(view)


READERS = [("tasks", "show", "--local"), ("tasks", "show", "--local", "-m"), ("report", "p"),
           ("report", "p", "--campaign", "1"), ("report", "p", "--range", "1-2"), ("project", "list"),
           ("project", "show", "p"), ("hpo_config", "list"), ("hpo_config", "show", "h"), ("--where",)]
WRITERS = [("submit_idds", "p", "--progress", "none"), ("submit_idds", "p", "--resume", "2", "--progress", "none"),
           ("tasks", "retry", "2", "--progress", "none"), ("hpo_config", "create", "x"),
           ("project", "create", "q", "--scripts_path", str(REPO / "examples/scripts/simple_objective.py"),
            "--model_config", "m", "--search_space", "s", "--hpo_config", "h", "--grid_config", "g")]


def test_a_read_only_home_is_read_and_refuses_writes_in_one_line(readonly_home: Path) -> None:
    for args in READERS:
        done = hpogrid(readonly_home, *args)
        assert done.returncode == 0 and "Traceback" not in done.stderr, (args, done.stderr)
    listed = hpogrid(readonly_home, "tasks", "show", "--local", "--json")
    assert [r["status"] for r in json.loads(listed.stdout)] == ["finished", "finished"]
    for args in WRITERS:
        line = one_line_error(hpogrid(readonly_home, *args), names=str(readonly_home))
        assert "cannot write" in line and "make it writable" in line, (args, line)
    assert not list(readonly_home.rglob("*-shm")) and not list(readonly_home.rglob("*-wal"))


# ---- a full disk ------------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path: Path):
    """A 2 MB tmpfs (root only)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0:
        pytest.skip("a full disk is simulated with a small tmpfs, which needs root")
    error = _mount("-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk))
    if error is not None:
        pytest.skip(f"cannot mount a small tmpfs here: {error}")
    try:
        yield disk
    finally:
        _unmount(disk)


def _fill(disk: Path, leave: int) -> Path:
    """A ballast file that leaves about ``leave`` bytes free on ``disk``."""
    ballast = disk / "ballast"
    with open(ballast, "wb") as f:
        free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        f.write(b"\0" * max(0, free - leave))
    return ballast


@pytest.mark.slow
def test_a_full_disk_fails_the_campaign_in_one_line_and_loses_nothing(small_disk: Path) -> None:
    home = small_disk / "home"
    make_home(home, 30)
    ballast = _fill(small_disk, 448 * 1024)
    run = hpogrid(home, "submit_idds", "p", "--progress", "none")
    line = one_line_error(run, names=str(home))
    assert "the disk is full" in line and "free space" in line

    listed = hpogrid(home, "tasks", "show", "--local", "--json")
    assert listed.returncode == 0, listed.stderr
    (row,) = json.loads(listed.stdout)
    assert row["status"] == "failed" and "the disk is full" in row["message"]  # never left `running`
    with sqlite3.connect(f"file:{store_of(home, 1)}?mode=ro", uri=True) as conn:
        before = {r[0]: r[1:] for r in conn.execute("SELECT id, loss, attempts FROM points WHERE state = 'finished'")}
    assert 0 < len(before) < 30

    one_line_error(hpogrid(home, "tasks", "retry", "1", "--progress", "none"), names=str(home))

    ballast.unlink()  # space freed: the campaign continues to its budget
    done = hpogrid(home, "tasks", "retry", "1", "--progress", "none")
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(f"file:{store_of(home, 1)}?mode=ro", uri=True) as conn:
        states = dict(conn.execute("SELECT state, COUNT(*) FROM points GROUP BY state").fetchall())
        after = {r[0]: r[1:] for r in conn.execute("SELECT id, loss, attempts FROM points WHERE state = 'finished'")}
    assert states == {"finished": 30}  # no point recorded failed because of the disk
    assert {k: after[k] for k in before} == before  # no finished result lost, none evaluated again
