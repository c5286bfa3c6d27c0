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

import enum
import fcntl
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

from hpogrid.common import LineReader, send
from hpogrid.evaluator.program import SENT_AT_ENV

from ..errors import CampaignError

PRELOAD_PROJECT_ENV = "HPOGRID_FORKSERVER_PROJECT"  # the project whose training module the fork server preloads

__all__ = ["Job", "JobExit", "BaseJobRunner", "ForkServerRunner", "ProcessRunner", "evaluate_command", "JobState",
           "job_state", "OrphanWatch", "LOG_CAP", "JOB_LOCK"]

#: Held (flock) by a job's process for its whole life; its first line is the job's pid (= process group).
JOB_LOCK = "job.lock"
#: A job's log keeps at most this many bytes: the first and the last half, a marker line in between.
LOG_CAP = 10 * 1024 * 1024


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
    not_started: bool = False  # the job never ran (its starter died first): not an attempt that failed


def evaluate_command() -> list[str]:
    """argv prefix that runs ``hpogrid-evaluate`` with this interpreter (no PATH needed)."""
    script = Path(sys.executable).parent / "hpogrid-evaluate"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from hpogrid.evaluator.program import main; sys.exit(main())"]


class JobState(enum.Enum):
    """What a job folder's ``job.lock`` says about its process."""

    NOT_STARTED = "not started"  # no process ever took the folder
    RUNNING = "running"  # a live process holds the lock
    ENDED = "ended"  # a process took it and is gone


def claim_job(workdir: Path) -> int:
    """Open and lock the job folder's ``job.lock`` for a job about to start; the caller hands the
    descriptor to the job's process (fork or ``pass_fds``), writes its pid with :func:`mark_started`,
    and closes its own copy. Raises OSError (BlockingIOError: a live job holds the folder)."""
    fd = os.open(workdir / JOB_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise
    return fd


def mark_started(fd: int, pid: int) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{pid}\n".encode(), 0)


def lock_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def process_alive(pid: int) -> bool:
    """Is ``pid`` a live process (not gone, not a zombie waiting for its parent)?"""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[:1] not in (["Z"], ["X"])


def job_state(workdir: Path) -> tuple[JobState, int | None]:
    """The state of the job in ``workdir`` and its pid, from its ``job.lock``. A job whose main process
    is gone while processes it started still hold the lock has ended: those leftovers are killed."""
    try:
        fd = os.open(workdir / JOB_LOCK, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return JobState.NOT_STARTED, None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = lock_pid(fd)
            if pid is not None and not process_alive(pid):
                end_group(pid)
                return JobState.ENDED, pid
            return JobState.RUNNING, pid
        pid = lock_pid(fd)
        return (JobState.ENDED if pid is not None else JobState.NOT_STARTED), pid
    finally:
        os.close(fd)


class OrphanWatch:
    """Jobs whose starter is gone (a fork server that died, the driver before a resume), followed
    through the ``job.lock`` they hold until they end, then reported like any other exit: the engine
    reads their ``output.json``. Their exit status is not known (they are not our children)."""

    def __init__(self, grace: float = 3.0):
        self.grace = grace
        self._jobs: dict[str, Path] = {}
        self._kill_at: dict[str, float] = {}

    def __contains__(self, key: str) -> bool:
        return key in self._jobs

    def __len__(self) -> int:
        return len(self._jobs)

    def watch(self, key: str, workdir: Path, why: str) -> JobExit | None:
        """Follow the job if it runs; else its exit now."""
        state, pid = job_state(workdir)
        if state is JobState.RUNNING:
            self._jobs[key] = workdir
            return None
        if pid is not None:
            end_group(pid)
        return self._exit(key, state, why)

    @staticmethod
    def _exit(key: str, state: JobState, why: str) -> JobExit:
        if state is JobState.NOT_STARTED:
            return JobExit(key, error=f"{why} before the job started", not_started=True)
        return JobExit(key, error=f"the job ended without writing output.json ({why}; its exit status is unknown)")

    def kill(self, key: str, sig: int) -> None:
        workdir = self._jobs.get(key)
        if workdir is None:
            return
        _, pid = job_state(workdir)
        if pid is not None:
            signal_group(pid, sig)
        if sig != signal.SIGKILL:
            self._kill_at.setdefault(key, time.monotonic() + self.grace)

    def poll(self, why: str = "its fork server died") -> list[JobExit]:
        out = []
        now = time.monotonic()
        for key, workdir in list(self._jobs.items()):
            state, pid = job_state(workdir)
            if state is JobState.RUNNING:
                if self._kill_at.get(key, now + 1) <= now and pid is not None:
                    signal_group(pid, signal.SIGKILL)
                    del self._kill_at[key]
                continue
            if pid is not None:
                end_group(pid)  # what the job started ends with it
            del self._jobs[key]
            self._kill_at.pop(key, None)
            out.append(self._exit(key, state, why))
        return out

    def close(self) -> None:
        for key in list(self._jobs):
            self.kill(key, signal.SIGKILL)
        self._jobs.clear()


class BaseJobRunner(ABC):
    """Starts jobs and reports their exits. Called from one thread (the engine's loop)."""

    #: Jobs of this runner run on this machine, in the job folder (False: files come back at exit).
    local: bool = True

    def open(self) -> None:
        """Get ready (start helpers); called once before the first job."""

    @abstractmethod
    def start(self, job: Job) -> None:
        """Start the job; its exit is reported later by :meth:`poll`."""

    def adopt(self, job: Job) -> bool:
        """Follow a job started by an earlier driver if it still runs (True); its exit comes from
        :meth:`poll`. Runners whose jobs do not hold a ``job.lock`` here return False."""
        return False

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
    """One fresh process per job (``hpogrid-evaluate`` or the custom command), in its own session,
    holding the job folder's ``job.lock`` (so a later driver can adopt it)."""

    def __init__(self, grace: float = 3.0):
        self.grace = grace
        self._procs: dict[str, subprocess.Popen] = {}
        self._kill_at: dict[str, float] = {}
        self._orphans = OrphanWatch(grace)

    def start(self, job: Job) -> None:
        argv = job.argv or [*evaluate_command(), *(job.evaluate or [])]
        try:
            lock = claim_job(job.workdir)
        except OSError as exc:
            self._procs[job.key] = exc  # type: ignore[assignment]
            return
        try:
            with open(job.workdir / job.log, "ab") as log:
                proc = subprocess.Popen(argv, cwd=job.workdir, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                        env={**os.environ, **job.env}, start_new_session=True, pass_fds=(lock,))
            mark_started(lock, proc.pid)
        except OSError as exc:
            self._procs[job.key] = exc  # type: ignore[assignment]
            return
        finally:
            os.close(lock)
        self._procs[job.key] = proc

    def adopt(self, job: Job) -> bool:
        return self._orphans.watch(job.key, job.workdir, "the driver stopped") is None

    def kill(self, key: str, sig: int = signal.SIGTERM) -> None:
        if key in self._orphans:
            self._orphans.kill(key, sig)
            return
        proc = self._procs.get(key)
        if isinstance(proc, subprocess.Popen) and proc.poll() is None:
            signal_group(proc.pid, sig)
            if sig != signal.SIGKILL:
                self._kill_at.setdefault(key, time.monotonic() + self.grace)

    def poll(self) -> list[JobExit]:
        out = self._orphans.poll("the driver stopped")
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
            end_group(proc.pid)  # what the job started ends with it
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
                end_group(proc.pid)
        self._procs.clear()
        self._orphans.close()


class ForkServerRunner(BaseJobRunner):
    """A pre-started parent that ``preload()``s the evaluator and forks one child per job.

    Falls back to exec-ing ``hpogrid-evaluate`` in the forked child when the evaluator cannot be
    preloaded (the reason is in the server's log). ``log`` is the server's own stderr file; the
    server holds ``forkserver.lock`` next to it while it lives.

    Jobs do not depend on the server: each is its own session and holds its folder's ``job.lock``.
    When the server dies, its running jobs go on; they are followed through their lock until they
    end (then ``output.json`` decides, as for any job) and the next job starts a new server.
    When the driver dies, the server exits and leaves the jobs running, for the next driver to adopt.
    """

    def __init__(self, log: Path | None = None, grace: float = 3.0, preload: bool = True,
                 project_dir: Path | None = None, server_lock: bool = True):
        self.log = log
        self.server_lock = server_lock  # False where several servers share a folder (Ray workers)
        self.grace = grace
        self.preload = preload
        self.project_dir = project_dir  # its training module is preloaded too (None: the evaluator only)
        self.project: dict[str, Any] | None = None  # the server's preload outcome {"loaded", "reason"}
        self.preloaded = False
        self._proc: subprocess.Popen | None = None
        self._reader: LineReader | None = None
        self._running: dict[str, Path] = {}  # key -> job folder
        self._pending: list[JobExit] = []
        self._ready = False
        self._orphans = OrphanWatch(grace)
        self.servers_started = 0

    @property
    def lock_path(self) -> Path | None:
        return self.log.with_name("forkserver.lock") if self.log is not None and self.server_lock else None

    def open(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            return
        self._wait_previous()
        log = open(self.log, "ab") if self.log is not None else subprocess.DEVNULL
        env = {**os.environ, "HPOGRID_FORKSERVER_PRELOAD": "1" if self.preload else "0"}
        if self.project_dir is not None:
            env[PRELOAD_PROJECT_ENV] = str(self.project_dir)
        if self.lock_path is not None:
            env["HPOGRID_FORKSERVER_LOCK"] = str(self.lock_path)
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "hpogrid.client.engine._forkserver"], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=log, env=env, start_new_session=True, bufsize=0,
            )
        finally:
            if log is not subprocess.DEVNULL:
                log.close()
        self.servers_started += 1
        assert self._proc.stdout is not None
        self._reader = LineReader(self._proc.stdout.fileno())
        self._ready = False  # the server imports the evaluator meanwhile; the first job waits for it

    def _wait_previous(self, patience: float = 10.0) -> None:
        """Wait until the server of an earlier driver has exited (it exits at once when its driver
        dies, after starting the jobs already asked for): only then does every job folder tell the
        truth. A server still there after ``patience`` seconds is killed (its jobs go on)."""
        path = self.lock_path
        if path is None:
            return
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError:
            return
        try:
            deadline = time.monotonic() + patience
            killed = False
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    fcntl.flock(fd, fcntl.LOCK_UN)
                    return
                except BlockingIOError:
                    pass
                if time.monotonic() > deadline:
                    pid = lock_pid(fd)
                    if killed or pid is None:
                        raise CampaignError(f"an earlier fork server (pid {pid}) still holds {path}")
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    killed, deadline = True, time.monotonic() + patience
                time.sleep(0.02)
        finally:
            os.close(fd)

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
                    raise _ServerGone()
        finally:
            sel.close()

    def start(self, job: Job) -> None:
        for tries in range(3, 0, -1):  # a server killed while it starts is replaced; one that cannot start is an error
            if self._proc is None or self._proc.poll() is not None:
                if self._proc is not None:
                    self._lost("the fork server died")
                self.open()
            if self._ready:
                break
            try:
                self._wait_ready()
                break
            except _ServerGone:
                self._lost("the fork server died")
                if tries == 1:
                    raise CampaignError(f"the fork server exited at start 3 times (see {self.log})") from None
        req: dict[str, Any] = {"op": "run", "key": job.key, "cwd": str(job.workdir), "log": job.log,
                               "env": {**job.env, SENT_AT_ENV: f"{time.time():.6f}"}}
        if job.argv:
            req["exec"] = job.argv
        elif self.preloaded:
            req["evaluate"] = list(job.evaluate or [])
        else:
            req["exec"] = [*evaluate_command(), *(job.evaluate or [])]
        self._running[job.key] = job.workdir
        try:
            send(self._proc.stdin.fileno(), req)  # type: ignore[union-attr]
        except BrokenPipeError:
            self._lost("the fork server died")

    def adopt(self, job: Job) -> bool:
        return self._orphans.watch(job.key, job.workdir, "the driver stopped") is None

    def kill(self, key: str, sig: int = signal.SIGTERM) -> None:
        if key in self._orphans:
            self._orphans.kill(key, sig)
        elif key in self._running and self._proc is not None:
            try:
                send(self._proc.stdin.fileno(), {"op": "kill", "key": key, "signal": int(sig), "grace": self.grace})  # type: ignore[union-attr]
            except BrokenPipeError:
                self._lost("the fork server died")
                self._orphans.kill(key, sig)

    def fileno(self) -> int | None:
        return self._reader.fd if self._ready and self._reader is not None and not self._reader.closed else None

    def poll(self) -> list[JobExit]:
        if self._ready and self._reader is not None and not self._reader.closed:
            for msg in self._reader.read():
                self._handle(msg)
            if self._reader.closed:
                self._lost("the fork server died")
        out, self._pending = self._pending, []
        return out + self._orphans.poll()

    def _handle(self, msg: dict[str, Any]) -> None:
        if msg.get("ev") == "exited" and msg["key"] in self._running:
            del self._running[msg["key"]]
            self._pending.append(JobExit(msg["key"], rc=msg.get("rc"), signal=msg.get("signal"), error=msg.get("error")))

    def _lost(self, why: str) -> None:
        """The server is gone: its jobs are not; follow them through their job.lock."""
        for key, workdir in sorted(self._running.items()):
            ex = self._orphans.watch(key, workdir, why)
            if ex is not None:
                self._pending.append(ex)
        self._running.clear()
        if self._proc is not None:
            self._proc.poll()
            if self._proc.stdout is not None:
                self._proc.stdout.close()
        self._reader = None
        self._proc = None
        self._ready = False

    def close(self) -> None:
        self._orphans.close()
        if self._proc is None:
            return
        proc, self._proc = self._proc, None
        try:  # the server kills the jobs still running, then exits (EOF alone leaves them running)
            send(proc.stdin.fileno(), {"op": "stop"})  # type: ignore[union-attr]
            proc.stdin.close()  # type: ignore[union-attr]
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


class _ServerGone(Exception):
    """The fork server exited before it was ready."""


def signal_group(pid: int, sig: int) -> None:
    """Signal a job's whole session (its process group), or the process alone if it has none."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def end_group(pgid: int) -> None:
    """SIGKILL what is left of an ended job's process group (processes its training started)."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# ---- capped job logs -------------------------------------------------------------------------------
def _marker(cut: int, cap: int) -> bytes:
    return (f"\n[hpogrid: {cut:>14d} bytes of output cut here; a job log keeps the first and the last "
            f"{cap // 2} bytes]\n").encode()


def copy_capped(read_fd: int, path: str, cap: int = LOG_CAP) -> None:
    """Append what comes from ``read_fd`` to ``path`` until EOF, keeping the file near ``cap`` bytes:
    the first ``cap/2``, a marker line with the number of bytes cut, the latest ``cap/2``."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
    head, tail = cap // 2, cap - cap // 2
    slack = max(cap // 8, 1 << 16)
    size = os.fstat(fd).st_size
    cut, marked = 0, 0

    def compact() -> None:
        nonlocal size, cut, marked
        keep = os.pread(fd, tail, size - tail)
        cut += size - head - marked - len(keep)
        os.ftruncate(fd, head)
        marker = _marker(cut, cap)
        _write_all(fd, marker + keep)
        marked, size = len(marker), head + len(marker) + len(keep)

    while True:
        try:
            chunk = os.read(read_fd, 1 << 16)
        except InterruptedError:
            continue
        if not chunk:
            break
        _write_all(fd, chunk)
        size += len(chunk)
        if size > head + marked + tail + slack:
            compact()
    if size > head + marked + tail:
        compact()
    os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]


def clean_dir(path: Path) -> None:
    """An empty job folder (a folder left by an attempt the store never recorded as started)."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
