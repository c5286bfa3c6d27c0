"""Job runners: how the engine starts one evaluation job (one point, one attempt) and learns it ended.

A runner knows processes, not points: the engine prepares the job folder (``input.json``), asks the
runner to start the job there, and later reads ``output.json`` itself when the runner reports the
exit. Runners:

- :class:`ForkServerRunner` (default): a warm parent that imported the evaluator once forks one
  child per job; each job is still its own process, in its own folder, with its own log.
- :class:`ProcessRunner`: one fresh ``hpogrid-evaluate`` (or custom command) process per job.
- ``hpogrid.client.engine.RayRunner`` (in ``_ray.py``): one Ray task per job.
"""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hpogrid.evaluator.program import SENT_AT_ENV
from ..errors import CampaignError
from ._wire import LineReader, send

PRELOAD_PROJECT_ENV = "HPOGRID_FORKSERVER_PROJECT"  # the project whose training module the fork server preloads

__all__ = ["Job", "JobExit", "BaseJobRunner", "ForkServerRunner", "ProcessRunner", "evaluate_command"]


@dataclass
class Job:
    """One attempt at evaluating one point. ``evaluate`` = arguments of ``hpogrid-evaluate``;
    ``argv`` = a custom evaluation command instead (run as is, in ``workdir``)."""

    key: str
    point_id: int
    attempt: int
    workdir: Path
    evaluate: list[str] | None = None
    argv: list[str] | None = None
    env: dict[str, str] = field(default_factory=dict)
    log: str = "log"


@dataclass
class JobExit:
    """A job's process ended: exit status or signal; ``error`` when the runner itself lost it.
    ``files`` (Ray) = output files the runner brought back, already written into the job folder."""

    key: str
    rc: int | None = None
    signal: int | None = None
    error: str | None = None
    host: str | None = None


def evaluate_command() -> list[str]:
    """argv prefix that runs ``hpogrid-evaluate`` with this interpreter (no PATH needed)."""
    script = Path(sys.executable).parent / "hpogrid-evaluate"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from hpogrid.evaluator.program import main; sys.exit(main())"]


class BaseJobRunner(ABC):
    """Starts jobs and reports their exits. Called from one thread (the engine's loop)."""

    #: Jobs of this runner run on this machine, in the job folder (False: files come back at exit).
    local: bool = True

    def open(self) -> None:
        """Get ready (start helpers); called once before the first job."""

    @abstractmethod
    def start(self, job: Job) -> None:
        """Start the job; its exit is reported later by :meth:`poll`."""

    @abstractmethod
    def kill(self, key: str, sig: int = signal.SIGTERM) -> None:
        """Ask a running job to stop (SIGTERM, then SIGKILL after a grace period)."""

    @abstractmethod
    def poll(self) -> list[JobExit]:
        """Exits since the last call; never blocks."""

    def fileno(self) -> int | None:
        """A file descriptor readable when :meth:`poll` has news, or None (the engine then polls)."""
        return None

    def close(self) -> None:
        """Stop helpers; jobs still running are terminated."""

    @property
    def host(self) -> str:
        return socket.gethostname()


class ProcessRunner(BaseJobRunner):
    """One fresh process per job (``hpogrid-evaluate`` or the custom command)."""

    def __init__(self, grace: float = 3.0):
        self.grace = grace
        self._procs: dict[str, subprocess.Popen] = {}
        self._kill_at: dict[str, float] = {}

    def start(self, job: Job) -> None:
        argv = job.argv or [*evaluate_command(), *(job.evaluate or [])]
        with open(job.workdir / job.log, "ab") as log:
            try:
                proc = subprocess.Popen(argv, cwd=job.workdir, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                        env={**os.environ, **job.env}, start_new_session=True)
            except OSError as exc:
                self._procs[job.key] = exc  # type: ignore[assignment]
                return
        self._procs[job.key] = proc

    def kill(self, key: str, sig: int = signal.SIGTERM) -> None:
        proc = self._procs.get(key)
        if isinstance(proc, subprocess.Popen) and proc.poll() is None:
            signal_group(proc.pid, sig)
            if sig != signal.SIGKILL:
                self._kill_at.setdefault(key, time.monotonic() + self.grace)

    def poll(self) -> list[JobExit]:
        out = []
        now = time.monotonic()
        for key, proc in list(self._procs.items()):
            if isinstance(proc, OSError):
                del self._procs[key]
                out.append(JobExit(key, error=f"cannot start the job: {proc}"))
                continue
            rc = proc.poll()
            if rc is None:
                if key in self._kill_at and self._kill_at[key] <= now:
                    signal_group(proc.pid, signal.SIGKILL)
                    del self._kill_at[key]
                continue
            del self._procs[key]
            self._kill_at.pop(key, None)
            out.append(JobExit(key, rc=rc if rc >= 0 else None, signal=-rc if rc < 0 else None))
        return out

    def close(self) -> None:
        for key in list(self._procs):
            self.kill(key, signal.SIGKILL)
        for proc in self._procs.values():
            if isinstance(proc, subprocess.Popen):
                proc.wait()
        self._procs.clear()


class ForkServerRunner(BaseJobRunner):
    """A pre-started parent that ``preload()``s the evaluator and forks one child per job.

    Falls back to exec-ing ``hpogrid-evaluate`` in the forked child when the evaluator cannot be
    preloaded (the reason is in the server's log). ``log`` is the server's own stderr file.
    """

    def __init__(self, log: Path | None = None, grace: float = 3.0, preload: bool = True,
                 project_dir: Path | None = None):
        self.log = log
        self.grace = grace
        self.preload = preload
        self.project_dir = project_dir  # its training module is preloaded too (None: the evaluator only)
        self.project: dict[str, Any] | None = None  # the server's preload outcome {"loaded", "reason"}
        self.preloaded = False
        self._proc: subprocess.Popen | None = None
        self._reader: LineReader | None = None
        self._running: set[str] = set()
        self._pending: list[JobExit] = []
        self._ready = False

    def open(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            return
        log = open(self.log, "ab") if self.log is not None else subprocess.DEVNULL
        env = {**os.environ, "HPOGRID_FORKSERVER_PRELOAD": "1" if self.preload else "0"}
        if self.project_dir is not None:
            env[PRELOAD_PROJECT_ENV] = str(self.project_dir)
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "hpogrid.client.engine._forkserver"], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=log, env=env, start_new_session=True, bufsize=0,
            )
        finally:
            if log is not subprocess.DEVNULL:
                log.close()
        assert self._proc.stdout is not None
        self._reader = LineReader(self._proc.stdout.fileno())
        self._ready = False  # the server imports the evaluator meanwhile; the first job waits for it

    def _wait_ready(self) -> None:
        assert self._reader is not None
        fd = self._reader.fd
        sel = selectors.DefaultSelector()
        sel.register(fd, selectors.EVENT_READ)
        deadline = time.monotonic() + 300
        try:
            while True:
                if not sel.select(max(0.0, deadline - time.monotonic())):
                    self.close()
                    raise CampaignError(f"the fork server did not start within 300 s (see {self.log})")
                for msg in self._reader.read():
                    if msg.get("ev") == "ready":
                        self.preloaded = bool(msg.get("preloaded"))
                        self.project = msg.get("project")
                        os.set_blocking(fd, False)
                        self._ready = True
                        return
                    self._handle(msg)
                if self._reader.closed:
                    raise CampaignError(f"the fork server exited at start (see {self.log})")
        finally:
            sel.close()

    def start(self, job: Job) -> None:
        if self._proc is None or self._proc.poll() is not None:
            self.open()
        if not self._ready:
            self._wait_ready()
        req: dict[str, Any] = {"op": "run", "key": job.key, "cwd": str(job.workdir), "log": job.log,
                               "env": {**job.env, SENT_AT_ENV: f"{time.time():.6f}"}}
        if job.argv:
            req["exec"] = job.argv
        elif self.preloaded:
            req["evaluate"] = list(job.evaluate or [])
        else:
            req["exec"] = [*evaluate_command(), *(job.evaluate or [])]
        self._running.add(job.key)
        try:
            send(self._proc.stdin.fileno(), req)  # type: ignore[union-attr]
        except BrokenPipeError:
            self._lost("the fork server died")

    def kill(self, key: str, sig: int = signal.SIGTERM) -> None:
        if key in self._running and self._proc is not None:
            try:
                send(self._proc.stdin.fileno(), {"op": "kill", "key": key, "signal": int(sig), "grace": self.grace})  # type: ignore[union-attr]
            except BrokenPipeError:
                self._lost("the fork server died")

    def fileno(self) -> int | None:
        return self._reader.fd if self._ready and self._reader is not None and not self._reader.closed else None

    def poll(self) -> list[JobExit]:
        if self._ready and self._reader is not None and not self._reader.closed:
            for msg in self._reader.read():
                self._handle(msg)
            if self._reader.closed:
                self._lost("the fork server died")
        out, self._pending = self._pending, []
        return out

    def _handle(self, msg: dict[str, Any]) -> None:
        if msg.get("ev") == "exited" and msg["key"] in self._running:
            self._running.discard(msg["key"])
            self._pending.append(JobExit(msg["key"], rc=msg.get("rc"), signal=msg.get("signal")))

    def _lost(self, why: str) -> None:
        for key in sorted(self._running):
            self._pending.append(JobExit(key, error=why))
        self._running.clear()
        if self._proc is not None:
            self._proc.poll()
        self._reader = None
        self._proc = None
        self._ready = False

    def close(self) -> None:
        if self._proc is None:
            return
        proc, self._proc = self._proc, None
        try:
            proc.stdin.close()  # type: ignore[union-attr]  # EOF: the server terminates its children and exits
        except OSError:
            pass
        try:
            proc.wait(timeout=self.grace + 5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        self._reader = None
        self._ready = False


def signal_group(pid: int, sig: int) -> None:
    """Signal a job's whole session (its process group), or the process alone if it has none."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def clean_dir(path: Path) -> None:
    """An empty job folder (a folder left by an attempt the store never recorded as started)."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
