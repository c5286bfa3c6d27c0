"""The fork server: imports the evaluator once, then forks one child process per evaluation job.

Run as ``python -m hpogrid.client.engine._forkserver`` by :class:`ForkServerRunner`. It speaks JSON
lines: requests on stdin, events on the stdout it was started with (fd 1 is then pointed at stderr,
so nothing the evaluator prints can corrupt the protocol).

Requests::
    {"op": "run", "key": K, "cwd": DIR, "log": FILE, "env": {...}, "evaluate": [args]}   # evaluator main(args)
    {"op": "run", "key": K, "cwd": DIR, "log": FILE, "env": {...}, "exec": [argv]}       # any command
    {"op": "kill", "key": K, "signal": 15}
    {"op": "stop"}                                   # kill the jobs still running, then exit
Events::
    {"ev": "ready", "preloaded": bool, "error": str|null, "project": {"loaded": bool, "reason": str|null}|null}
    {"ev": "started", "key": K, "pid": P}
    {"ev": "exited", "key": K, "rc": int|null, "signal": int|null, "error": str|null}

A job does not depend on the server: each child is its own session (``setsid``) in its own working
directory, holds the folder's ``job.lock`` (its pid inside) for its whole life, and writes its
stdout and stderr through a capped copier (``LOG_CAP``) into the job's log. When a job ends, what is
left of its process group is killed. At EOF on stdin (the driver died) the server exits at once and
the jobs go on: the next driver adopts them through their lock. ``$HPOGRID_FORKSERVER_LOCK`` names
a file the server holds while it lives (a new driver waits for the old server to be gone).
"""

from __future__ import annotations

import fcntl
import os
import selectors
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from hpogrid.common import LineReader, send

from ._jobs import LOG_CAP, PRELOAD_PROJECT_ENV, claim_job, copy_capped, end_group, evaluate_command, mark_started, signal_group

GRACE = 3.0  # seconds between SIGTERM and SIGKILL


class _ProjectPreloader:
    """The project's training module, imported in this server once per campaign (and again when a
    file of the scripts folder changed, checked before each fork): see ``hpogrid.evaluator.preload``.
    A module that cannot be preloaded is imported by each job; one that left this process unsafe to
    fork from (threads, CUDA) makes jobs fresh ``hpogrid-evaluate`` processes. Reasons go to the log."""

    def __init__(self, project_dir: str | None):
        self.project_dir = project_dir or None
        self.state: Any = None
        if self.project_dir is not None:
            self.refresh()

    def refresh(self) -> Any:
        from hpogrid.evaluator.preload import preload_project

        self.state = preload_project(self.project_dir)
        if self.state.fresh:
            print(f"hpogrid fork server: {self.state.describe()}", file=sys.stderr, flush=True)
            import gc

            gc.collect()
            gc.freeze()
        return self.state

    def prepare(self, req: dict[str, Any]) -> dict[str, Any]:
        """The run request to fork for: unchanged when the module is preloaded and current."""
        if self.project_dir is None or "evaluate" not in req:
            return req
        from hpogrid.evaluator.preload import FALLBACK_ENV

        state = self.refresh()
        if state.loaded:
            return req
        job = {k: v for k, v in req.items() if k != "evaluate"}
        job["env"] = {**(req.get("env") or {}), FALLBACK_ENV: state.reason or "unknown"}
        if state.fork_safe:
            job["evaluate"] = req["evaluate"]
        else:
            job["exec"] = [*evaluate_command(), *req["evaluate"]]
        return job


def _child(request: dict[str, Any], evaluate: Any, lock_fd: int, inherited: tuple[int, ...]) -> None:
    """In the forked child: become a job, never return. ``inherited``: the server's own descriptors."""
    rc = 70
    try:
        os.setsid()
        mark_started(lock_fd, os.getpid())
        os.set_inheritable(lock_fd, True)  # an exec'd command keeps holding its folder
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        os.chdir(request["cwd"])
        os.environ.update(request.get("env") or {})
        log = _log_pipe(request.get("log") or "log", (*inherited, lock_fd))
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        for fd in {log, null, *inherited} - {0, 1, 2, lock_fd}:
            try:
                os.close(fd)
            except OSError:
                pass
        sys.stdout = open(1, "w", buffering=1, closefd=False)
        sys.stderr = open(2, "w", buffering=1, closefd=False)
        if request.get("exec"):
            argv = request["exec"]
            signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # as subprocess does for a new program
            os.execvp(argv[0], argv)
        if evaluate is None:
            print("hpogrid fork server: the evaluator could not be imported", file=sys.stderr)
            rc = 71
        else:
            rc = int(evaluate(request["evaluate"]))
    except SystemExit as exc:
        rc = exc.code if isinstance(exc.code, int) else 1
    except BaseException as exc:
        try:
            os.write(2, f"hpogrid fork server: the job raised {type(exc).__name__}: {exc}\n".encode())
            os.write(2, "".join(traceback.format_exc()).encode())
        except OSError:
            pass
        rc = 70
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(rc)


def _log_pipe(path: str, close: tuple[int, ...]) -> int:
    """The write end of a pipe whose reader, a copier in its own session (so that ending the job's
    process group does not cut the log's last lines), appends to ``path`` within ``LOG_CAP`` bytes."""
    r, w = os.pipe()
    first = os.fork()
    if first == 0:  # double fork: the copier is nobody's child here (a job's shell never waits for it)
        try:
            os.setsid()
            if os.fork() == 0:
                null = os.open(os.devnull, os.O_RDWR)
                for fd in (0, 1, 2):
                    os.dup2(null, fd)
                for fd in {w, null, *close} - {0, 1, 2}:
                    try:
                        os.close(fd)
                    except OSError:
                        pass
                try:
                    copy_capped(r, path, LOG_CAP)
                finally:
                    os._exit(0)
        finally:
            os._exit(0)
    os.waitpid(first, 0)
    os.close(r)
    return w


def serve() -> int:
    out_fd = os.dup(1)  # the protocol channel
    os.dup2(2, 1)  # anything printed from here on goes to stderr
    sys.stdout = sys.stderr
    server = _Server(out_fd, _hold_lock(os.environ.get("HPOGRID_FORKSERVER_LOCK")))
    if os.environ.get("HPOGRID_FORKSERVER_PRELOAD", "1") != "0":
        server.preload()
    server.run()
    return 0


class _Server:
    """The server's state and its steps: preload, then a loop that reads requests, forks jobs,
    ends overdue ones and reports the ones that exited."""

    def __init__(self, out_fd: int, lock: int | None):
        self.out_fd = out_fd
        self.lock = lock
        self.in_fd = 0
        self.evaluate: Any = None
        self.error: str | None = None
        self.project = _ProjectPreloader(None)
        self.broken = False  # the driver is gone: no more events
        self.stop = False
        self.children: dict[int, str] = {}  # pid -> key
        self.pids: dict[str, int] = {}  # key -> pid
        self.kill_at: dict[int, float] = {}  # pid -> when to SIGKILL
        self.wake: tuple[int, int] = (-1, -1)

    def preload(self) -> None:
        """Import the evaluator (and the campaign's project) once; an error is reported to the
        driver, which then runs fresh processes."""
        try:
            from hpogrid.evaluator import program

            program.preload()
            self.evaluate = program.main
            self.project = _ProjectPreloader(os.environ.get(PRELOAD_PROJECT_ENV))
            import gc

            gc.collect()
            gc.freeze()  # children do not touch (copy) the preloaded objects' pages when they collect
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()

    def emit(self, msg: dict[str, Any]) -> None:
        if self.broken:
            return
        try:
            send(self.out_fd, msg)
        except BrokenPipeError:  # the driver is gone; EOF on stdin follows
            self.broken = True

    def run(self) -> None:
        """Serve until EOF on stdin (at once) or, after a ``stop``, until the last job exited."""
        wake_r, wake_w = self.wake = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver decides when jobs stop
        os.set_blocking(self.in_fd, False)
        state = self.project.state
        self.emit({"ev": "ready", "preloaded": self.evaluate is not None, "error": self.error,
                   "project": None if state is None else {"loaded": state.loaded, "reason": state.reason}})
        requests = LineReader(self.in_fd)
        sel = selectors.DefaultSelector()
        sel.register(self.in_fd, selectors.EVENT_READ, "in")
        sel.register(wake_r, selectors.EVENT_READ, "wake")
        while not (requests.closed and (not self.stop or not self.children)):
            timeout = max(0.0, min(self.kill_at.values()) - time.monotonic()) if self.kill_at else None
            for skey, _ in sel.select(timeout):
                if skey.data == "wake":
                    _drain(wake_r)
                    continue
                for req in requests.read():
                    self.handle(req)
                if requests.closed:  # the driver is gone: the jobs are not ours to end
                    sel.unregister(self.in_fd)
            self.kill_overdue()
            self.reap()

    def handle(self, req: dict[str, Any]) -> None:
        if req["op"] == "run":
            self.start(req)
        elif req["op"] == "stop":
            self.stop = True
            for pid in list(self.children):
                signal_group(pid, signal.SIGKILL)
        elif req["op"] == "kill":
            pid = self.pids.get(req["key"])
            if pid is not None:
                sig = int(req.get("signal", signal.SIGTERM))
                signal_group(pid, sig)
                if sig != signal.SIGKILL:
                    self.kill_at.setdefault(pid, time.monotonic() + float(req.get("grace", GRACE)))

    def start(self, req: dict[str, Any]) -> None:
        """Fork one job (it takes its folder's lock first)."""
        try:
            job_lock = claim_job(Path(req["cwd"]))
        except OSError as exc:
            self.emit({"ev": "exited", "key": req["key"], "rc": None, "signal": None,
                       "error": f"cannot take the job folder {req['cwd']}: {exc.strerror or exc}"})
            return
        req = self.project.prepare(req)
        pid = os.fork()
        if pid == 0:
            own = (self.out_fd, *self.wake, self.lock)
            _child(req, self.evaluate, job_lock, tuple(fd for fd in own if fd is not None))
        os.close(job_lock)
        self.children[pid] = req["key"]
        self.pids[req["key"]] = pid
        self.emit({"ev": "started", "key": req["key"], "pid": pid})

    def kill_overdue(self) -> None:
        now = time.monotonic()
        for pid, when in list(self.kill_at.items()):
            if when <= now and pid in self.children:
                signal_group(pid, signal.SIGKILL)
                self.kill_at.pop(pid, None)

    def reap(self) -> None:
        """Report each job that exited; what is left of its process group ends with it."""
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            key = self.children.pop(pid, None)
            self.kill_at.pop(pid, None)
            if key is None:
                continue
            end_group(pid)  # processes the training started end with the job
            self.pids.pop(key, None)
            if os.WIFSIGNALED(status):
                self.emit({"ev": "exited", "key": key, "rc": None, "signal": os.WTERMSIG(status)})
            else:
                self.emit({"ev": "exited", "key": key, "rc": os.WEXITSTATUS(status), "signal": None})


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


def _hold_lock(path: str | None) -> int | None:
    """Hold ``path`` (flock) while the server lives, with our pid inside; None without a path."""
    if not path:
        return None
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    mark_started(fd, os.getpid())
    return fd


if __name__ == "__main__":
    sys.exit(serve())
