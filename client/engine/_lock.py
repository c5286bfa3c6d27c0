"""One driver per campaign: the driving process holds ``driver.lock`` in the campaign folder.

The lock is an ``flock`` on an open file, so the OS releases it when the driver dies, however it
dies; taking it is the check (no "is the recorded pid alive?" followed by a write). The file holds
the driver's pid for the message of the process that was refused.
"""

from __future__ import annotations

import fcntl
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..errors import CampaignError
from ._jobs import lock_pid, mark_started

__all__ = ["LOCK_FILE", "driving", "driver_pid"]

LOCK_FILE = "driver.lock"
_HELD: dict[Path, list[int]] = {}  # campaign folder -> [descriptor, depth]: re-entrant in one process


@contextmanager
def driving(folder: Path, campaign_id: object) -> Iterator[None]:
    """Hold the campaign's driver lock for the block, or raise CampaignError naming the driver."""
    folder = Path(folder).resolve()
    held = _HELD.get(folder)
    if held is not None:
        held[1] += 1
        try:
            yield
        finally:
            held[1] -= 1
        return
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = lock_pid(fd)
        deadline = time.monotonic() + 2.0
        while pid is None and time.monotonic() < deadline:  # the winner writes its pid just after taking the lock
            time.sleep(0.01)
            pid = lock_pid(fd)
        os.close(fd)
        raise CampaignError(f"campaign {campaign_id} is being driven by pid {pid if pid is not None else '?'}; "
                            f"wait for it to end or stop it with `hpogrid tasks kill {campaign_id}`") from None
    mark_started(fd, os.getpid())
    _HELD[folder] = [fd, 1]
    try:
        yield
    finally:
        del _HELD[folder]
        os.close(fd)


def driver_pid(folder: Path) -> int | None:
    """The pid of the process driving the campaign in ``folder`` now, or None."""
    try:
        fd = os.open(Path(folder) / LOCK_FILE, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return lock_pid(fd) or -1
        return None
    finally:
        os.close(fd)
