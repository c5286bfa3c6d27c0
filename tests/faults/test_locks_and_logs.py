"""Unit tests of the pieces the fault suite relies on: the driver lock, a job folder's lock, the log cap."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hpogrid.client.engine import driver_pid, driving
from hpogrid.client.engine._jobs import JobState, claim_job, copy_capped, job_state, mark_started
from hpogrid.client.errors import CampaignError

HOLD = "import sys, time\nfrom hpogrid.client.engine import driving\nwith driving(sys.argv[1], 5):\n    print('held', flush=True)\n    time.sleep(60)\n"


def test_driver_lock_refuses_a_second_driver_and_is_released_by_death(tmp_path: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert driver_pid(tmp_path) == holder.pid
        with pytest.raises(CampaignError) as err:
            with driving(tmp_path, 5):
                pass
        assert str(err.value) == (f"campaign 5 is being driven by pid {holder.pid}; wait for it to end or stop it "
                                  f"with `hpogrid tasks kill 5`")
    finally:
        holder.kill()
        holder.wait()
    assert driver_pid(tmp_path) is None  # the OS released it: no stale pid to check
    with driving(tmp_path, 5):
        with driving(tmp_path, 5):  # re-entrant in one process
            assert driver_pid(tmp_path) == os.getpid()
        assert driver_pid(tmp_path) == os.getpid()
    assert driver_pid(tmp_path) is None


def test_job_lock_states(tmp_path: Path) -> None:
    assert job_state(tmp_path) == (JobState.NOT_STARTED, None)
    fd = claim_job(tmp_path)
    assert job_state(tmp_path) == (JobState.RUNNING, None)  # taken, pid not written yet
    with pytest.raises(BlockingIOError):
        claim_job(tmp_path)  # a live job's folder is never taken twice
    proc = subprocess.Popen(["sleep", "30"], pass_fds=(fd,), start_new_session=True)
    mark_started(fd, proc.pid)
    os.close(fd)  # the job alone holds it now
    assert job_state(tmp_path) == (JobState.RUNNING, proc.pid)
    proc.kill()
    proc.wait()
    assert job_state(tmp_path) == (JobState.ENDED, proc.pid)


def test_job_whose_leader_died_has_ended_and_its_leftovers_are_killed(tmp_path: Path) -> None:
    """The job's process exits, a process it started (holding the lock) lives on: ended, leftover killed."""
    fd = claim_job(tmp_path)
    script = "import subprocess, sys; subprocess.Popen(['sleep', '30'], close_fds=False); print('ok', flush=True)"
    os.set_inheritable(fd, True)
    leader = subprocess.Popen([sys.executable, "-c", script], pass_fds=(fd,), start_new_session=True,
                              stdout=subprocess.PIPE, text=True)
    mark_started(fd, leader.pid)
    os.close(fd)
    assert leader.stdout.readline().strip() == "ok"
    leader.wait()
    assert job_state(tmp_path) == (JobState.ENDED, leader.pid)
    time.sleep(0.2)
    assert _live_in_group(leader.pid) == []


def _live_in_group(pgid: int) -> list[int]:
    live = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
                live.append(int(entry.name))
    return live


@pytest.mark.parametrize("size", [0, 999, 1000, 5000, 123_457])
def test_log_cap_keeps_head_and_tail(tmp_path: Path, size: int) -> None:
    data = bytes(i % 251 for i in range(size))
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        for i in range(0, len(data), 333):
            os.write(w, data[i:i + 333])
        os._exit(0)
    os.close(w)
    copy_capped(r, str(tmp_path / "log"), cap=1000)
    os.waitpid(pid, 0)
    log = (tmp_path / "log").read_bytes()
    if size <= 1000:
        assert log == data
        return
    head, rest = log[:500], log[500:]
    marker, tail = rest.split(b"]\n", 1)
    assert head == data[:500] and tail == data[-500:]
    assert int(marker.split()[1]) == size - 1000
