"""Steering runners: how the engine runs one round (``%IN`` -> steering -> ``%OUT``).

A round always goes through real files in the round's folder, as iDDS runs it: ``idds_input.json``
(%IN: every point so far, with its loss or null) and ``output.json`` (%OUT: a JSON list of new
points). The engine writes %IN and reads %OUT; a runner only makes the steering run.

- :class:`WarmSteering` (default): a long-lived worker process that imported the steering once
  and calls ``hpogrid.steering.program.run_step`` per round (exactly one ``hpogrid-steering`` run).
- :class:`CommandSteering`: a project's own ``steeringExec``, one process per round; placeholders
  ``%IN %OUT %NUM_POINTS %MAX_POINTS`` substituted as plain text, argv by ``shlex.split``.
"""

from __future__ import annotations

import os
import selectors
import shlex
import signal
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from hpogrid.common import LineReader, send

__all__ = ["IN_FILE", "OUT_FILE", "RoundEnd", "BaseSteering", "WarmSteering", "CommandSteering", "substitute"]

IN_FILE = "idds_input.json"  # the names ATLAS's iDDS gives %IN and %OUT
OUT_FILE = "output.json"


@dataclass
class RoundEnd:
    ok: bool
    error: str | None = None
    seconds: float | None = None


class BaseSteering(ABC):
    """Runs one round at a time; the engine calls :meth:`begin`, then :meth:`poll` until it answers."""

    @abstractmethod
    def begin(self, round_dir: Path, num_points: int, max_points: int) -> None:
        """Start the steering on ``round_dir/idds_input.json``; it must write ``round_dir/output.json``."""

    @abstractmethod
    def poll(self) -> RoundEnd | None:
        """None while the round runs; then how it ended (the engine reads and checks %OUT)."""

    def fileno(self) -> int | None:
        return None

    def cancel(self) -> None:
        """Abandon the round in progress (timeout, stop)."""

    def close(self) -> None:
        self.cancel()


def substitute(template: str, num_points: int, max_points: int) -> list[str]:
    """A steeringExec with its placeholders replaced as plain text (iDDS's way), split into argv."""
    text = (template.replace("%NUM_POINTS", str(num_points)).replace("%MAX_POINTS", str(max_points))
            .replace("%IN", IN_FILE).replace("%OUT", OUT_FILE))
    return shlex.split(text)


class CommandSteering(BaseSteering):
    """A steering command run as one process per round, in the round folder (never through a shell)."""

    def __init__(self, template: str, env: dict[str, str] | None = None):
        if not shlex.split(template):
            raise ValueError("the steering command is empty")
        self.template = template
        self.env = env or {}
        self._proc: subprocess.Popen | None = None
        self._t0 = 0.0

    def begin(self, round_dir: Path, num_points: int, max_points: int) -> None:
        argv = substitute(self.template, num_points, max_points)
        self._t0 = time.perf_counter()
        with open(round_dir / "log", "ab") as log:
            try:
                self._proc = subprocess.Popen(argv, cwd=round_dir, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                              env={**os.environ, **self.env}, start_new_session=True)
                self._error = None
            except OSError as exc:
                self._proc = None
                self._error = f"cannot run the steering command {argv[0]!r}: {exc.strerror or exc}"

    def poll(self) -> RoundEnd | None:
        if self._proc is None:
            return RoundEnd(False, self._error or "no round in progress")
        rc = self._proc.poll()
        if rc is None:
            return None
        self._proc = None
        seconds = time.perf_counter() - self._t0
        if rc != 0:
            what = f"status {rc}" if rc > 0 else f"signal {signal.Signals(-rc).name}"
            return RoundEnd(False, f"the steering command exited with {what} (see its log)", seconds)
        return RoundEnd(True, None, seconds)

    def cancel(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            try:
                os.killpg(self._proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._proc.wait()
        self._proc = None


class WarmSteering(BaseSteering):
    """A long-lived worker that calls ``run_step`` per round (imports once; restarted if it dies)."""

    def __init__(self, config_path: Path | None, log: Path | None = None):
        self.config_path = config_path
        self.log = log
        self._proc: subprocess.Popen | None = None
        self._reader: LineReader | None = None
        self._busy = False
        self._t0 = 0.0
        self.start_error: str | None = None

    def _start(self) -> None:
        log = open(self.log, "ab") if self.log is not None else subprocess.DEVNULL
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "hpogrid.client.engine._steering_worker"], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=log, start_new_session=True, bufsize=0,
            )
        finally:
            if log is not subprocess.DEVNULL:
                log.close()
        fd = self._proc.stdout.fileno()  # type: ignore[union-attr]
        self._reader = LineReader(fd)
        sel = selectors.DefaultSelector()
        sel.register(fd, selectors.EVENT_READ)
        ready = None
        deadline = time.monotonic() + 120
        while ready is None and not self._reader.closed and time.monotonic() < deadline:
            if sel.select(max(0.0, deadline - time.monotonic())):
                for msg in self._reader.read():
                    ready = msg
        sel.close()
        os.set_blocking(fd, False)
        if ready is None:
            self._kill()
            self.start_error = "the steering worker did not start"
        else:
            self.start_error = ready.get("error")

    def begin(self, round_dir: Path, num_points: int, max_points: int) -> None:
        if self._proc is None or self._proc.poll() is not None:
            self._start()
        self._t0 = time.perf_counter()
        self._busy = True
        if self._proc is None:
            return
        req = {"in": str(round_dir / IN_FILE), "out": str(round_dir / OUT_FILE), "num_points": num_points,
               "max_points": max_points, "config": str(self.config_path) if self.config_path else None}
        try:
            send(self._proc.stdin.fileno(), req)  # type: ignore[union-attr]
        except BrokenPipeError:
            pass  # seen as EOF by poll()

    def fileno(self) -> int | None:
        return self._reader.fd if self._busy and self._reader is not None and not self._reader.closed else None

    def poll(self) -> RoundEnd | None:
        if not self._busy:
            return RoundEnd(False, "no round in progress")
        if self._proc is None or self._reader is None:
            self._busy = False
            return RoundEnd(False, self.start_error or "the steering worker is not running")
        msgs = self._reader.read()
        if msgs:
            self._busy = False
            msg = msgs[-1]
            return RoundEnd(bool(msg.get("ok")), msg.get("error"), msg.get("seconds"))
        if self._reader.closed:
            self._busy = False
            rc = self._proc.wait()
            self._proc = None
            return RoundEnd(False, f"the steering worker died (exit status {rc}; see {self.log})")
        return None

    def cancel(self) -> None:
        if self._busy:
            self._busy = False
            self._kill()  # a round cannot be interrupted: the worker restarts for the next one

    def _kill(self) -> None:
        if self._proc is not None:
            try:
                os.killpg(self._proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._proc.wait()
            for pipe in (self._proc.stdin, self._proc.stdout):
                if pipe is not None:
                    pipe.close()
        self._proc = None
        self._reader = None

    def close(self) -> None:
        self._busy = False
        if self._proc is not None:
            try:
                self._proc.stdin.close()  # type: ignore[union-attr]
                self._proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                pass
            self._kill()
