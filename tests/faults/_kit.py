"""Helpers of the fault-injection suite: a project whose jobs keep a ledger, the processes of a
campaign found through an environment marker, and the books of a campaign read back from its
store and job folders.

Every process a campaign starts (driver, fork server, steering worker, jobs, what the training
starts, log copiers) inherits ``FAULTS_MARK``; a process that carries the marker after the campaign
ended is an orphan.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.conftest import installed

MARK = "FAULTS_MARK"

# Each job appends "start P A" when it begins and "done P A" when it has computed its loss (just
# before it reports it). A class trainable whose cleanup takes a while: the window in which a
# stopped job has its metric but no output.json yet. It also starts a process that must not
# outlive the job.
OBJECTIVE = '''
import os, subprocess, time

from ray import tune


def _ledger(word):
    with open(os.environ["FAULTS_LEDGER"], "a") as f:
        f.write(f"{word} {os.environ['HPOGRID_POINT_ID']} {os.environ['HPOGRID_ATTEMPT']} {os.getpid()}\\n")


class Objective(tune.Trainable):
    def setup(self, config):
        _ledger("start")
        self.x = float(config["x"])
        self.helper = subprocess.Popen(["sleep", "300"])  # ended with the job's process group
        time.sleep(float(os.environ.get("FAULTS_WORK", "0.3")) * (0.5 + (self.x % 1.0)))

    def step(self):
        _ledger("done")
        return {"loss": (self.x - 3.0) ** 2}

    def cleanup(self):
        time.sleep(float(os.environ.get("FAULTS_CLEANUP", "0.3")))
'''

SPACE = {"x": {"method": "uniform", "dimension": {"low": 0, "high": 10}}}


def hpogrid(args: list[str], env: dict[str, str], timeout: float = 180, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([installed("hpogrid"), *args], env=env, capture_output=True, text=True, timeout=timeout)
    if check:
        assert proc.returncode == 0, f"{args}: rc={proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def make_project(env: dict[str, str], tmp: Path, name: str, *, num_trials: int, concurrent: int,
                 script: str = OBJECTIVE, model: str = "Objective", space: dict | None = None) -> Path:
    """Configs and project made with the CLI, as a user does (seeded random search)."""
    scripts = tmp / f"{name}_scripts"
    scripts.mkdir(exist_ok=True)
    (scripts / "objective.py").write_text(script)
    hpogrid(["model_config", "recreate", f"{name}_m", "--script", "objective.py", "--model", model], env)
    hpogrid(["search_space", "recreate", f"{name}_s", json.dumps(space or SPACE)], env)
    hpogrid(["hpo_config", "recreate", f"{name}_h", "--algorithm", "random", "--metric", "loss", "--mode", "min",
             "--num_trials", str(num_trials), "--max_concurrent", str(concurrent), "--seed", "7"], env)
    hpogrid(["grid_config", "recreate", f"{name}_g"], env)
    hpogrid(["project", "recreate", name, "--scripts_path", str(scripts / "objective.py"), "--model_config",
             f"{name}_m", "--search_space", f"{name}_s", "--hpo_config", f"{name}_h", "--grid_config", f"{name}_g"], env)
    return Path(env["HPOGRID_HOME"]) / "projects" / name


def marked_env(cli_env: dict[str, str], tmp: Path) -> dict[str, str]:
    env = dict(cli_env)
    env[MARK] = uuid.uuid4().hex
    env["FAULTS_LEDGER"] = str(tmp / "ledger.txt")
    return env


def marked(env: dict[str, str]) -> list[tuple[int, str]]:
    """Live processes (zombies excluded) carrying this test's marker: (pid, command line)."""
    needle = f"{MARK}={env[MARK]}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except (OSError, IndexError):
            continue
        if state not in ("Z", "X"):
            found.append((int(entry.name), cmd))
    return found


def find(env: dict[str, str], word: str) -> list[int]:
    return [pid for pid, cmd in marked(env) if word in cmd]


def fork_server(project: Path, cid: int | str = 1) -> int | None:
    """The pid of the campaign's fork server (it holds forkserver.lock with its pid inside) when it
    is serving jobs (it has children), else None."""
    try:
        text = (project / "campaigns" / str(cid) / "forkserver.lock").read_text().strip()
    except OSError:
        return None
    if not text.isdigit():
        return None
    pid = int(text)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    return pid
            except (OSError, IndexError, ValueError):
                continue
    return None


def no_orphans(env: dict[str, str], settle: float = 10.0) -> list[tuple[int, str]]:
    """The marked processes still alive after ``settle`` seconds (log copiers drain, then exit)."""
    deadline = time.monotonic() + settle
    left = marked(env)
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = marked(env)
    return left


def kill9(pids: list[int]) -> int:
    n = 0
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
            n += 1
        except ProcessLookupError:
            pass
    return n


@dataclass
class Books:
    """A campaign read back: store rows, job folders, the jobs' ledger."""

    points: dict[int, dict[str, Any]]
    campaign: dict[str, Any]
    folders: dict[int, list[int]]  # point -> attempt folders
    ok_outputs: dict[int, list[int]]  # point -> attempts whose output.json holds a result (status 0)
    starts: Counter = field(default_factory=Counter)  # point -> job starts
    dones: Counter = field(default_factory=Counter)  # point -> losses computed

    @property
    def job_starts(self) -> int:
        return sum(self.starts.values())

    @property
    def evaluations(self) -> int:
        return sum(self.dones.values())

    def problems(self) -> list[str]:
        """Every way the books can be wrong: empty when each point finished once, no finished
        result was lost, and no point was evaluated again after it wrote its result."""
        out = []
        for pid, p in sorted(self.points.items()):
            ok = self.ok_outputs.get(pid, [])
            if p["state"] != "finished":
                out.append(f"point {pid} is {p['state']}: {p['message']}")
            if len(ok) != 1:
                out.append(f"point {pid}: {len(ok)} attempts wrote a result ({ok})")
            elif ok[0] != max(self.folders.get(pid, [0])):
                out.append(f"point {pid}: attempt {ok[0]} wrote its result, yet attempts {self.folders[pid]} exist")
            if self.folders.get(pid, []) != list(range(1, p["attempts"] + 1)):
                out.append(f"point {pid}: store says {p['attempts']} attempts, folders {self.folders.get(pid)}")
            if self.dones[pid] != 1:
                out.append(f"point {pid}: its loss was computed {self.dones[pid]} times")
            if ok and p["state"] == "finished":
                output = json.loads((self.job(pid, ok[0]) / "output.json").read_text())
                if p["loss"] != output["loss"]:
                    out.append(f"point {pid}: store loss {p['loss']} != output.json {output['loss']}")
        return out

    root: Path = Path()

    def job(self, pid: int, attempt: int) -> Path:
        return self.root / "jobs" / str(pid) / str(attempt)


def books(project: Path, cid: int | str, ledger: Path) -> Books:
    root = project / "campaigns" / str(cid)
    conn = sqlite3.connect(f"file:{root / 'store.db'}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        points = {r["id"]: dict(r) for r in conn.execute("SELECT * FROM points")}
        campaign = dict(conn.execute("SELECT * FROM campaign").fetchone())
    finally:
        conn.close()
    folders: dict[int, list[int]] = {}
    ok: dict[int, list[int]] = {}
    for pid in points:
        d = root / "jobs" / str(pid)
        attempts = sorted(int(a.name) for a in d.iterdir()) if d.is_dir() else []
        folders[pid] = attempts
        for a in attempts:
            try:
                out = json.loads((d / str(a) / "output.json").read_text())
            except (OSError, ValueError):
                continue
            if out.get("status") == 0:
                ok.setdefault(pid, []).append(a)
    starts, dones = Counter(), Counter()
    if ledger.exists():
        for line in ledger.read_text().splitlines():
            word, pid, _attempt, _ = line.split()
            (starts if word == "start" else dones)[int(pid)] += 1
    return Books(points, campaign, folders, ok, starts, dones, root=root)
