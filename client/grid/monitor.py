"""Grid tasks for ``tasks show/kill/retry``: the user's PanDA tasks, their job metadata, kill and retry.

``tasks`` lists local campaigns and grid tasks together; the grid half comes from here (PanDA's
task API, hpogrid 1.x's options: docs/HPOGRID1.md). Kill and retry of a grid task are the panda backend's
``kill_remote``/``retry_remote`` (through the task's campaign when it has one, so its store records them).
"""

from __future__ import annotations

import fnmatch
from typing import Any

from .. import campaigns
from ..campaigns import parse_range
from ..records import Registered
from . import auth, panda

__all__ = ["grid_tasks", "campaign_for_task", "GRID_COLUMNS"]

GRID_COLUMNS = ("jeditaskid", "status", "pctfinished", "taskname", "site", "campaign")


def campaign_for_task(task_id: int) -> Registered | None:
    for entry in campaigns.for_project(None):
        if entry.backend == "panda" and str(entry.remote_id) == str(task_id):
            return entry
    return None


def grid_tasks(*, username: str | None = None, limit: int = 1000, days: int | None = 30,
               taskname: str | None = None, jeditaskid: int | None = None, id_range: str | None = None,
               status: list[str] | None = None, metadata: bool = False) -> list[dict[str, Any]]:
    """The user's grid tasks as rows (``GRID_COLUMNS``, plus ``metadata`` when asked)."""
    auth.check_credential()
    filters: dict[str, str] = {}
    if jeditaskid is not None:
        filters["jediTaskID"] = str(jeditaskid)
        days = None
    if username:
        filters["userName"] = username
    tasks = panda.list_tasks(days=days, limit=limit, filters=filters or None)
    low, high = parse_range(id_range)
    local = {str(e.remote_id): e for e in campaigns.for_project(None) if e.backend == "panda"}
    rows = []
    for t in tasks:
        tid = int(t.get("jediTaskID"))
        name = str(t.get("taskName") or "")
        if low is not None and tid < low or high is not None and tid > high:
            continue
        if taskname and not fnmatch.fnmatchcase(name, taskname):
            continue
        if status and str(t.get("status")) not in status:
            continue
        entry = local.get(str(tid))
        row = {"jeditaskid": tid, "status": t.get("status"), "pctfinished": t.get("pctFinished"),
               "taskname": name, "site": t.get("site"),
               "campaign": f"{entry.project}#{entry.id}" if entry else None}
        if metadata:
            row["metadata"] = panda.job_metadata(tid)
        rows.append(row)
    return sorted(rows, key=lambda r: r["jeditaskid"], reverse=True)
