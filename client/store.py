"""The campaign store: one SQLite file (WAL) per campaign, plus a registry of campaign ids.

Every backend (embedded, Ray, grid, local_run) writes campaigns, rounds and points in this one
shape, so ``tasks`` and ``report`` read them alike. Each transition is committed before the caller
acts on it: a driver killed at any moment leaves a store that says what had happened.

Point states (DESIGN.md): ``proposed -> running -> finished | failed``, and ``stopped`` for a
``local_run`` trial cut short by Ray Tune's scheduler (its loss is the last iteration it ran).
Finished, stopped and failed are final; a running point whose job was lost goes back to ``proposed`` with its attempt counted.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from .errors import NotFoundError
from .home import registry_path

__all__ = [
    "POINT_STATES",
    "FINAL_STATES",
    "CAMPAIGN_STATES",
    "Store",
    "register_campaign",
    "registered",
    "list_registered",
    "forget_campaign",
    "idds_loss",
    "FAILURE_LOSS",
]

POINT_STATES = ("proposed", "running", "finished", "failed", "stopped")
FINAL_STATES = ("finished", "failed", "stopped")
CAMPAIGN_STATES = ("created", "running", "finished", "failed", "killed", "interrupted")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS campaign (
    id TEXT PRIMARY KEY,
    project TEXT NOT NULL,
    backend TEXT NOT NULL,
    status TEXT NOT NULL,
    algorithm TEXT,
    metric TEXT,
    mode TEXT,
    max_points INTEGER,
    max_concurrent INTEGER,
    points_per_round INTEGER,
    min_unevaluated INTEGER,
    max_attempts INTEGER,
    created REAL,
    started REAL,
    ended REAL,
    pid INTEGER,
    remote_id TEXT,
    message TEXT,
    settings TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS rounds (
    id INTEGER PRIMARY KEY,
    started REAL,
    ended REAL,
    n_requested INTEGER,
    n_proposed INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL,
    seconds REAL,
    message TEXT
);
CREATE TABLE IF NOT EXISTS points (
    id INTEGER PRIMARY KEY,
    round INTEGER,
    params TEXT NOT NULL,
    state TEXT NOT NULL,
    loss REAL,
    metric REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    created REAL,
    started REAL,
    ended REAL,
    host TEXT,
    site TEXT,
    message TEXT,
    reports TEXT,
    job_dir TEXT
);
CREATE INDEX IF NOT EXISTS points_state ON points(state);
"""

_CAMPAIGN_COLUMNS = (
    "id", "project", "backend", "status", "algorithm", "metric", "mode", "max_points", "max_concurrent",
    "points_per_round", "min_unevaluated", "max_attempts", "created", "started", "ended", "pid", "remote_id",
    "message", "settings",
)


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), timeout=30.0, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def _finite(value: float | None) -> float | None:
    """SQLite has no NaN: a NaN or infinite loss is stored as NULL (the point says why in ``message``)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


class Store:
    """One campaign's state. Cheap to open; safe to open from several processes at once."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.exists():
            raise NotFoundError(f"no campaign store at {self.path}")
        self._conn = _connect(self.path)

    # ---- lifecycle ----------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, **campaign: Any) -> "Store":
        """Create the store with its campaign row (``id``, ``project`` and ``backend`` required)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        row = {"status": "created", "created": time.time(), **campaign}
        row["settings"] = json.dumps(row.get("settings") or {})
        unknown = set(row) - set(_CAMPAIGN_COLUMNS)
        if unknown:
            raise ValueError(f"unknown campaign field(s) {sorted(unknown)}")
        # Built under a temporary name, then renamed: a reader (`tasks show`, a test polling the
        # store) never opens a store that has no tables yet.
        staging = path.with_name(f".{path.name}.{os.getpid()}.new")
        try:
            with closing(_connect(staging)) as conn:
                conn.executescript(_SCHEMA)
                cols = ", ".join(row)
                conn.execute(f"INSERT INTO campaign ({cols}) VALUES ({', '.join('?' * len(row))})",
                             list(row.values()))
            os.replace(staging, path)  # closing the only connection checkpointed and removed the WAL
        finally:
            for leftover in (staging, Path(f"{staging}-wal"), Path(f"{staging}-shm")):
                leftover.unlink(missing_ok=True)
        return cls(path)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ---- campaign -----------------------------------------------------------------------
    def campaign(self) -> dict[str, Any]:
        row = self._conn.execute("SELECT * FROM campaign").fetchone()
        data = dict(row)
        data["settings"] = json.loads(data["settings"] or "{}")
        return data

    def update_campaign(self, **fields: Any) -> None:
        unknown = set(fields) - set(_CAMPAIGN_COLUMNS)
        if unknown:
            raise ValueError(f"unknown campaign field(s) {sorted(unknown)}")
        if "settings" in fields:
            fields["settings"] = json.dumps(fields["settings"])
        sets = ", ".join(f"{k} = ?" for k in fields)
        self._conn.execute(f"UPDATE campaign SET {sets}", list(fields.values()))

    # ---- rounds -------------------------------------------------------------------------
    def start_round(self, n_requested: int) -> int:
        cur = self._conn.execute(
            "INSERT INTO rounds (started, n_requested, status) VALUES (?, ?, 'running')", (time.time(), n_requested)
        )
        return int(cur.lastrowid)

    def end_round(self, round_id: int, status: str, *, n_proposed: int = 0, attempts: int = 1,
                  message: str | None = None) -> None:
        now = time.time()
        self._conn.execute(
            "UPDATE rounds SET ended = ?, status = ?, n_proposed = ?, attempts = ?, message = ?, "
            "seconds = ? - started WHERE id = ?",
            (now, status, n_proposed, attempts, message, now, round_id),
        )

    def rounds(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._conn.execute("SELECT * FROM rounds ORDER BY id")]

    # ---- points -------------------------------------------------------------------------
    def add_points(self, params: Sequence[Mapping[str, Any]], round_id: int | None = None,
                   ids: Sequence[int] | None = None) -> list[int]:
        """Record new points (state ``proposed``) in one transaction; returns their ids."""
        now = time.time()
        out: list[int] = []
        with self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            for i, p in enumerate(params):
                pid = ids[i] if ids is not None else None
                cur = self._conn.execute(
                    "INSERT INTO points (id, round, params, state, created) VALUES (?, ?, ?, 'proposed', ?)",
                    (pid, round_id, json.dumps(dict(p)), now),
                )
                out.append(int(cur.lastrowid))
        return out

    def start_point(self, point_id: int, *, host: str | None = None, site: str | None = None,
                    job_dir: str | None = None) -> int:
        """Mark a point running and count the attempt; returns the attempt number (1, 2, ...)."""
        with self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.execute(
                "UPDATE points SET state = 'running', attempts = attempts + 1, started = ?, ended = NULL, "
                "host = COALESCE(?, host), site = COALESCE(?, site), job_dir = COALESCE(?, job_dir) "
                "WHERE id = ?",
                (time.time(), host, site, job_dir, point_id),
            )
            row = self._conn.execute("SELECT attempts FROM points WHERE id = ?", (point_id,)).fetchone()
        return int(row["attempts"])

    def finish_point(self, point_id: int, *, loss: float | None, metric: float | None = None,
                     reports: Sequence[Mapping[str, Any]] | None = None, message: str = "",
                     host: str | None = None, started: float | None = None, ended: float | None = None) -> None:
        """A final result with a loss."""
        self._final(point_id, "finished", loss, metric, reports, message, host, started, ended)

    def stop_point(self, point_id: int, *, loss: float | None, metric: float | None = None,
                   reports: Sequence[Mapping[str, Any]] | None = None, message: str = "",
                   host: str | None = None) -> None:
        """A result cut short by a scheduler (``local_run``): the loss of the last iteration it ran."""
        self._final(point_id, "stopped", loss, metric, reports, message, host, None, None)

    def fail_point(self, point_id: int, message: str, *, loss: float | None = None, metric: float | None = None,
                   reports: Sequence[Mapping[str, Any]] | None = None, host: str | None = None,
                   started: float | None = None, ended: float | None = None) -> None:
        """A final failure, with its reason (counts as evaluated and bad for the steering)."""
        self._final(point_id, "failed", loss, metric, reports, message, host, started, ended)

    def _final(self, point_id: int, state: str, loss: float | None, metric: float | None,
               reports: Sequence[Mapping[str, Any]] | None, message: str, host: str | None,
               started: float | None, ended: float | None) -> None:
        self._conn.execute(
            "UPDATE points SET state = ?, loss = ?, metric = ?, reports = ?, message = ?, "
            "host = COALESCE(?, host), started = COALESCE(?, started), ended = ? WHERE id = ?",
            (state, _finite(loss), _finite(metric), json.dumps(list(reports)) if reports is not None else None,
             message, host, started, ended if ended is not None else time.time(), point_id),
        )

    def requeue_point(self, point_id: int, message: str) -> None:
        """A running point whose job was lost (driver crash, interruption) waits for another attempt."""
        self._conn.execute(
            "UPDATE points SET state = 'proposed', message = ?, ended = ? WHERE id = ? AND state = 'running'",
            (message, time.time(), point_id),
        )

    def reopen_failed(self, message: str) -> list[int]:
        """``tasks retry`` of an ended campaign: its failed points wait for new attempts (the same
        points; attempts keep counting, so each new attempt has its own job folder). Returns their ids."""
        with self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            ids = [int(r["id"]) for r in self._conn.execute("SELECT id FROM points WHERE state = 'failed' ORDER BY id")]
            self._conn.execute(
                "UPDATE points SET state = 'proposed', loss = NULL, metric = NULL, message = ?, ended = NULL "
                "WHERE state = 'failed'", (message,))
        return ids

    def requeue_running(self, message: str) -> int:
        """Every running point goes back to proposed (used when a campaign resumes)."""
        cur = self._conn.execute(
            "UPDATE points SET state = 'proposed', message = ?, ended = ? WHERE state = 'running'",
            (message, time.time()),
        )
        return cur.rowcount

    def points(self, states: Iterable[str] | None = None) -> list[dict[str, Any]]:
        sql, args = "SELECT * FROM points", []
        if states is not None:
            states = list(states)
            sql += f" WHERE state IN ({', '.join('?' * len(states))})"
            args = states
        rows = self._conn.execute(sql + " ORDER BY id", args).fetchall()
        return [_point(r) for r in rows]

    def point(self, point_id: int) -> dict[str, Any]:
        row = self._conn.execute("SELECT * FROM points WHERE id = ?", (point_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no point {point_id} in {self.path}")
        return _point(row)

    def counts(self) -> dict[str, int]:
        """Points per state: every state but ``stopped`` always, ``stopped`` when there are some."""
        out = dict.fromkeys((s for s in POINT_STATES if s != "stopped"), 0)
        for row in self._conn.execute("SELECT state, COUNT(*) AS n FROM points GROUP BY state"):
            out[row["state"]] = int(row["n"])
        return out

    def best(self) -> dict[str, Any] | None:
        row = self._conn.execute(
            "SELECT * FROM points WHERE state = 'finished' AND loss IS NOT NULL ORDER BY loss, id LIMIT 1"
        ).fetchone()
        return _point(row) if row is not None else None

    def history(self) -> list[list[Any]]:
        """All points so far as iDDS's ``%IN`` lists them: ``[params, loss]`` with ``null`` pending.

        A failed point is reported with the grid's failure loss (1e5) unless it has a loss, the
        way PanDA reports a point whose attempts are exhausted.
        """
        return [[p["params"], idds_loss(p)] for p in self.points()]


FAILURE_LOSS = 1e5  # what PanDA reports to iDDS for a point whose job failed on every attempt


def idds_loss(point: Mapping[str, Any]) -> float | None:
    """The loss iDDS holds for a point: its loss once final (1e5 for a failure without one), else null."""
    if point["state"] in ("finished", "stopped"):
        return point["loss"]
    if point["state"] == "failed":
        return point["loss"] if point["loss"] is not None else FAILURE_LOSS
    return None


def _point(row: sqlite3.Row) -> dict[str, Any]:
    data = dict(row)
    data["params"] = json.loads(data["params"])
    data["reports"] = json.loads(data["reports"]) if data["reports"] else []
    return data


# ---- the registry: campaign ids across projects ------------------------------------------
_REGISTRY = """
CREATE TABLE IF NOT EXISTS campaigns (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project TEXT NOT NULL,
    backend TEXT NOT NULL,
    path TEXT NOT NULL,
    created REAL NOT NULL,
    remote_id TEXT
);
"""


def _registry() -> sqlite3.Connection:
    path = registry_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = _connect(path)
    conn.executescript(_REGISTRY)
    return conn


def register_campaign(project: str, backend: str, folder_for: Any, remote_id: str | None = None) -> tuple[int, Path]:
    """Allocate a campaign id and its folder. ``folder_for(id) -> Path`` names the folder."""
    with closing(_registry()) as conn:
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            cur = conn.execute(
                "INSERT INTO campaigns (project, backend, path, created, remote_id) VALUES (?, ?, '', ?, ?)",
                (project, backend, time.time(), remote_id),
            )
            cid = int(cur.lastrowid)
            folder = Path(folder_for(cid))
            conn.execute("UPDATE campaigns SET path = ? WHERE id = ?", (str(folder), cid))
    return cid, folder


def registered(campaign_id: int | str) -> dict[str, Any]:
    try:
        cid = int(campaign_id)
    except (TypeError, ValueError):
        raise NotFoundError(f"campaign id must be a number, got {campaign_id!r}") from None
    with closing(_registry()) as conn:
        row = conn.execute("SELECT * FROM campaigns WHERE id = ?", (cid,)).fetchone()
    if row is None:
        raise NotFoundError(f"no campaign with id {campaign_id} (see `hpogrid tasks show`)")
    return dict(row)


def list_registered(project: str | None = None) -> list[dict[str, Any]]:
    with closing(_registry()) as conn:
        if project is None:
            rows = conn.execute("SELECT * FROM campaigns ORDER BY id").fetchall()
        else:
            rows = conn.execute("SELECT * FROM campaigns WHERE project = ? ORDER BY id", (project,)).fetchall()
    return [dict(r) for r in rows]


def forget_campaign(campaign_id: int) -> None:
    with closing(_registry()) as conn:
        conn.execute("DELETE FROM campaigns WHERE id = ?", (int(campaign_id),))
