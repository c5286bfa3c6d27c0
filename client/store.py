"""The campaign store: one SQLite file (WAL) per campaign, plus a registry of campaign ids.

Every backend (embedded, Ray, grid, local_run) writes campaigns, rounds and points in this one
shape, so ``tasks`` and ``report`` read them alike. Each transition is committed before the caller
acts on it: a driver killed at any moment leaves a store that says what had happened.

The rows come back as the typed, frozen records of :mod:`.records` (``Point``, ``Campaign``,
``Round``, ``Registered``) and the store guards their states' rules (they are written there, once):
a final point (finished, failed, stopped) is never started, finished or failed again -- that raises
:class:`TransitionError` -- only :meth:`Store.reopen_failed` and the ``requeue_*`` methods move a
point back; a running point whose job was lost goes back to ``proposed`` with its attempt counted.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import re
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence, TypeVar
from urllib.parse import quote

from hpogrid.common import FAILURE_LOSS

from .errors import NotFoundError
from .home import home, registry_path
from .storage_errors import StorageError, StorageProblem, storage_error, translated
from .records import (POINT_FINAL, POINT_MOVES, Campaign, CampaignState, Point, PointState, Registered, Round,
                      RoundState, TransitionError)

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
    "StorageError",
    "StorageProblem",
    "storage_error",
    "translated",
    "TransitionError",
]

POINT_STATES = tuple(PointState)
FINAL_STATES = tuple(s for s in PointState if s in POINT_FINAL)
CAMPAIGN_STATES = tuple(CampaignState)

#: Disk a running driver keeps aside to record its campaign's end on a full disk.
RESERVE_BYTES = 256 * 1024

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


_F = TypeVar("_F", bound=Callable[..., Any])


def _guarded(method: _F) -> _F:
    """A :class:`Store` method whose storage failures become a :class:`StorageError` naming the file."""

    @functools.wraps(method)
    def wrapper(self: "Store", *args: Any, **kwargs: Any) -> Any:
        with translated(self.path):
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _connect(path: Path, readonly: bool = False) -> sqlite3.Connection:
    """A connection to a store. ``readonly``: nothing is written, not even the journal mode, so a
    read-only home (chmod -w, a read-only mount) can still be read."""
    if readonly:
        conn = _connect_readonly(path)
    else:
        conn = sqlite3.connect(str(path), timeout=30.0, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout=30000")
    if not readonly:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def _connect_readonly(path: Path) -> sqlite3.Connection:
    if os.access(path.parent, os.W_OK):
        # A connection that may not write (query_only) but cleans up the WAL files of a store
        # it closes last, as a mode=ro one cannot: readers leave no litter in campaign folders.
        conn = sqlite3.connect(str(path), timeout=30.0, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA query_only=ON")
        return conn
    uri = f"file:{quote(str(path.absolute()))}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, timeout=30.0, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        return conn
    except sqlite3.OperationalError as exc:
        conn.close()
        # A WAL store in a folder nobody may write, or on a full disk: sqlite cannot make the
        # shared-memory file a reader needs. It is then read as it is on disk (immutable).
        name = getattr(exc, "sqlite_errorname", "")
        if not (name.startswith(("SQLITE_CANTOPEN", "SQLITE_IOERR")) and path.exists()):
            raise
    return sqlite3.connect(f"{uri}&immutable=1", uri=True, timeout=30.0, isolation_level=None,
                           check_same_thread=False)


def _finite(value: float | None) -> float | None:
    """SQLite has no NaN: a NaN or infinite loss is stored as NULL (the point says why in ``message``)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


class Store:
    """One campaign's state. Cheap to open; safe to open from several processes at once.

    ``readonly=True`` (what ``tasks show`` and ``report`` use) writes nothing, so a read-only home
    can be read. Every storage failure (damaged file, full or read-only disk, I/O error) is raised
    as a :class:`StorageError` naming the file and what to do.
    """

    def __init__(self, path: str | Path, *, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        if not self.path.exists():
            raise NotFoundError(f"no campaign store at {self.path}")
        self._reader: sqlite3.Connection | None = None
        with translated(self.path):
            self._conn = _connect(self.path, readonly)

    # ---- lifecycle ----------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, **campaign: Any) -> "Store":
        """Create the store with its campaign row (``id``, ``project`` and ``backend`` required)."""
        path = Path(path)
        row = {"status": "created", "created": time.time(), **campaign}
        row["settings"] = json.dumps(row.get("settings") or {})
        unknown = set(row) - set(_CAMPAIGN_COLUMNS)
        if unknown:
            raise ValueError(f"unknown campaign field(s) {sorted(unknown)}")
        with translated(path.parent):
            path.parent.mkdir(parents=True, exist_ok=True)
        # Built under a temporary name, then renamed: a reader (`tasks show`, a test polling the
        # store) never opens a store that has no tables yet.
        staging = path.with_name(f".{path.name}.{os.getpid()}.new")
        try:
            with translated(path), closing(_connect(staging)) as conn:
                conn.executescript(_SCHEMA)
                cols = ", ".join(row)
                conn.execute(f"INSERT INTO campaign ({cols}) VALUES ({', '.join('?' * len(row))})",
                             list(row.values()))
            with translated(path):
                os.replace(staging, path)  # closing the only connection checkpointed and removed the WAL
        finally:
            for leftover in (staging, Path(f"{staging}-wal"), Path(f"{staging}-shm")):
                try:
                    leftover.unlink(missing_ok=True)
                except OSError:  # a read-only folder: nothing was made there either
                    pass
        return cls(path)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        self._conn.close()

    @_guarded
    def checkpoint(self) -> None:
        """Copy the WAL into the store at a safe point (after a round, at the end), without
        waiting for readers (``PRAGMA wal_checkpoint(PASSIVE)``), so the WAL does not grow for a
        whole campaign and a copy of ``store.db`` alone is nearly current."""
        if not self.readonly:
            self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ---- campaign -----------------------------------------------------------------------
    @_guarded
    def campaign(self) -> Campaign:
        row = self._conn.execute("SELECT * FROM campaign").fetchone()
        if row is None:
            raise StorageError(self.path, StorageProblem.DAMAGED, "it is damaged (no campaign row)")
        data = dict(row)
        try:
            data["settings"] = json.loads(data["settings"] or "{}")
            data["status"] = CampaignState(data["status"])
        except ValueError:
            raise StorageError(self.path, StorageProblem.DAMAGED,
                               "it is damaged (campaign settings are not JSON, or an unknown status)") from None
        return Campaign(**data)

    @_guarded
    def update_campaign(self, **fields: Any) -> None:
        """Change campaign fields. A campaign that ended (finished, failed, killed) does not start
        again this way: that raises :class:`TransitionError`; :meth:`reopen_campaign` does it."""
        unknown = set(fields) - set(_CAMPAIGN_COLUMNS)
        if unknown:
            raise ValueError(f"unknown campaign field(s) {sorted(unknown)}")
        if "status" in fields:
            status = CampaignState(fields["status"])
            current = self.campaign()
            if current.status.final and not status.final:
                raise TransitionError(f"campaign {current.id} has ended ({current.status}); "
                                      f"`hpogrid tasks retry {current.id}` reopens it")
        self._update_campaign(fields)

    @_guarded
    def reopen_campaign(self, status: CampaignState | str = CampaignState.CREATED, **fields: Any) -> None:
        """``tasks retry``: a campaign that ended goes back to ``status`` (created or running)."""
        status = CampaignState(status)
        if status.final:
            raise TransitionError(f"a campaign reopens as created or running, not {status}")
        self._update_campaign({**fields, "status": status})

    @_guarded
    def follow_remote(self, status: CampaignState | str, **fields: Any) -> None:
        """A grid campaign takes the state of its remote task, whatever it was (the grid is the
        authority: a task retried on PanDA reopens its campaign)."""
        self._update_campaign({**fields, "status": CampaignState(status)})

    def _update_campaign(self, fields: dict[str, Any]) -> None:
        if "settings" in fields:
            fields["settings"] = json.dumps(fields["settings"])
        sets = ", ".join(f"{k} = ?" for k in fields)
        try:
            self._conn.execute(f"UPDATE campaign SET {sets}", list(fields.values()))
        except sqlite3.Error as exc:  # a full disk: give back the driver's reserve, then record (once)
            if storage_error(exc, self.path) is None or not self.release_reserve():
                raise
            self._conn.execute(f"UPDATE campaign SET {sets}", list(fields.values()))

    # ---- the driver's reserve of disk space -----------------------------------------------
    def keep_reserve(self) -> None:
        """Set :data:`RESERVE_BYTES` of disk aside next to the store (``store.db.reserve``), best
        effort. When the disk fills up, :meth:`update_campaign` gives it back and retries, so a
        driver can still record why its campaign ended instead of leaving it ``running``."""
        path = self.path.with_name(self.path.name + ".reserve")
        try:
            with open(path, "wb") as f:
                f.write(bytes(RESERVE_BYTES))
        except OSError:
            path.unlink(missing_ok=True)

    def release_reserve(self) -> bool:
        """Give the reserve back (at the end of a run, or to record it on a full disk)."""
        try:
            self.path.with_name(self.path.name + ".reserve").unlink()
            return True
        except FileNotFoundError:
            return False

    # ---- rounds -------------------------------------------------------------------------
    @_guarded
    def start_round(self, n_requested: int) -> int:
        cur = self._conn.execute(
            "INSERT INTO rounds (started, n_requested, status) VALUES (?, ?, 'running')", (time.time(), n_requested)
        )
        return int(cur.lastrowid)

    @_guarded
    def end_round(self, round_id: int, status: RoundState | str, *, n_proposed: int = 0, attempts: int = 1,
                  message: str | None = None) -> None:
        now = time.time()
        self._conn.execute(
            "UPDATE rounds SET ended = ?, status = ?, n_proposed = ?, attempts = ?, message = ?, "
            "seconds = ? - started WHERE id = ?",
            (now, str(status), n_proposed, attempts, message, now, round_id),
        )

    @_guarded
    def rounds(self) -> list[Round]:
        return [Round(**{**dict(r), "status": RoundState.of(r["status"])})
                for r in self._conn.execute("SELECT * FROM rounds ORDER BY id")]

    # ---- points -------------------------------------------------------------------------
    @_guarded
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

    @_guarded
    def start_point(self, point_id: int, *, host: str | None = None, site: str | None = None,
                    job_dir: str | None = None) -> int:
        """Mark a point running and count the attempt; returns the attempt number (1, 2, ...)."""
        with self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            self._check_move(point_id, PointState.RUNNING)
            self._conn.execute(
                "UPDATE points SET state = 'running', attempts = attempts + 1, started = ?, ended = NULL, "
                "host = COALESCE(?, host), site = COALESCE(?, site), job_dir = COALESCE(?, job_dir) "
                "WHERE id = ?",
                (time.time(), host, site, job_dir, point_id),
            )
            row = self._conn.execute("SELECT attempts FROM points WHERE id = ?", (point_id,)).fetchone()
        return int(row["attempts"])

    @_guarded
    def finish_point(self, point_id: int, *, loss: float | None, metric: float | None = None,
                     reports: Sequence[Mapping[str, Any]] | None = None, message: str = "",
                     host: str | None = None, started: float | None = None, ended: float | None = None) -> None:
        """A final result with a loss."""
        self._final(point_id, PointState.FINISHED, loss, metric, reports, message, host, started, ended)

    def stop_point(self, point_id: int, *, loss: float | None, metric: float | None = None,
                   reports: Sequence[Mapping[str, Any]] | None = None, message: str = "",
                   host: str | None = None) -> None:
        """A result cut short by a scheduler (``local_run``): the loss of the last iteration it ran."""
        self._final(point_id, PointState.STOPPED, loss, metric, reports, message, host, None, None)

    @_guarded
    def fail_point(self, point_id: int, message: str, *, loss: float | None = None, metric: float | None = None,
                   reports: Sequence[Mapping[str, Any]] | None = None, host: str | None = None,
                   started: float | None = None, ended: float | None = None) -> None:
        """A final failure, with its reason (counts as evaluated and bad for the steering)."""
        self._final(point_id, PointState.FAILED, loss, metric, reports, message, host, started, ended)

    @_guarded
    def _final(self, point_id: int, state: PointState, loss: float | None, metric: float | None,
               reports: Sequence[Mapping[str, Any]] | None, message: str, host: str | None,
               started: float | None, ended: float | None) -> None:
        with self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            self._check_move(point_id, state)
            self._conn.execute(
                "UPDATE points SET state = ?, loss = ?, metric = ?, reports = ?, message = ?, "
                "host = COALESCE(?, host), started = COALESCE(?, started), ended = ? WHERE id = ?",
                (state, _finite(loss), _finite(metric), json.dumps(list(reports)) if reports is not None else None,
                 message, host, started, ended if ended is not None else time.time(), point_id),
            )

    def _check_move(self, point_id: int, state: PointState) -> None:
        """Inside a write transaction: may point ``point_id`` enter ``state`` (records.POINT_MOVES)?"""
        row = self._conn.execute("SELECT state FROM points WHERE id = ?", (point_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no point {point_id} in {self.path}")
        if row["state"] not in POINT_MOVES[state]:
            raise TransitionError(f"point {point_id} is already {row['state']}; it cannot become {state} "
                                  f"(`hpogrid tasks retry` reopens failed points)")

    @_guarded
    def requeue_point(self, point_id: int, message: str) -> None:
        """A running point whose job was lost (driver crash, interruption) waits for another attempt."""
        self._conn.execute(
            "UPDATE points SET state = 'proposed', message = ?, ended = ? WHERE id = ? AND state = 'running'",
            (message, time.time(), point_id),
        )

    @_guarded
    def reopen_failed(self, message: str) -> list[int]:
        """``tasks retry`` of an ended campaign: its failed points wait for new attempts (the same
        points; attempts keep counting, so each new attempt has its own job folder). Returns their ids.

        The campaign reopens too (``created``) unless it finished with no failed point: then there
        is nothing to retry and it stays finished."""
        with self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            ids = [int(r["id"]) for r in self._conn.execute("SELECT id FROM points WHERE state = 'failed' ORDER BY id")]
            self._conn.execute(
                "UPDATE points SET state = 'proposed', loss = NULL, metric = NULL, message = ?, ended = NULL "
                "WHERE state = 'failed'", (message,))
            status = self.campaign().status
            if status.final and (ids or status is not CampaignState.FINISHED):
                self._conn.execute("UPDATE campaign SET status = ?", (CampaignState.CREATED,))
        return ids

    @_guarded
    def requeue_running(self, message: str) -> int:
        """Every running point goes back to proposed (used when a campaign resumes)."""
        cur = self._conn.execute(
            "UPDATE points SET state = 'proposed', message = ?, ended = ? WHERE state = 'running'",
            (message, time.time()),
        )
        return cur.rowcount

    @_guarded
    def points(self, states: Iterable[PointState | str] | None = None) -> list[Point]:
        sql, args = "SELECT * FROM points", []
        if states is not None:
            states = [PointState(s).value for s in states]
            sql += f" WHERE state IN ({', '.join('?' * len(states))})"
            args = states
        rows = self._conn.execute(sql + " ORDER BY id", args).fetchall()
        return [_point(r) for r in rows]

    @_guarded
    def point(self, point_id: int) -> Point:
        row = self._conn.execute("SELECT * FROM points WHERE id = ?", (point_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no point {point_id} in {self.path}")
        return _point(row)

    @_guarded
    def counts(self) -> dict[PointState, int]:
        """Points per state: every state but ``stopped`` always, ``stopped`` when there are some."""
        out = dict.fromkeys((s for s in PointState if s is not PointState.STOPPED), 0)
        for row in self._conn.execute("SELECT state, COUNT(*) AS n FROM points GROUP BY state"):
            out[PointState(row["state"])] = int(row["n"])
        return out

    @_guarded
    def best(self) -> Point | None:
        row = self._conn.execute(
            "SELECT * FROM points WHERE state = 'finished' AND loss IS NOT NULL ORDER BY loss, id LIMIT 1"
        ).fetchone()
        return _point(row) if row is not None else None

    @_guarded
    def history(self) -> list[list[Any]]:
        """All points so far as iDDS's ``%IN`` lists them: ``[params, loss]`` with ``null`` pending.

        A failed point is reported with the grid's failure loss (1e5) unless it has a loss, the
        way PanDA reports a point whose attempts are exhausted.
        """
        return [[p.params, idds_loss(p)] for p in self.points()]

    @_guarded
    def history_json(self) -> str:
        """:meth:`history` as JSON text (``[[params, loss], ...]``), built from the stored JSON of the
        parameters without decoding them (the engine writes it every round, for 10,000s of points).
        Read on a read-only connection of its own, so it never waits behind this store's writes."""
        if self._reader is None:
            self._reader = _connect(self.path, readonly=True)
        parts = []
        for params, state, loss in self._reader.execute("SELECT params, state, loss FROM points ORDER BY id"):
            value = _idds_loss(PointState(state), loss)
            parts.append(f"[{params}, {'null' if value is None else repr(float(value))}]")
        return "[" + ", ".join(parts) + "]"


def idds_loss(point: Point) -> float | None:
    """The loss iDDS holds for a point: its loss once final (1e5 for a failure without one), else null."""
    return _idds_loss(point.state, point.loss)


def _idds_loss(state: PointState, loss: float | None) -> float | None:
    if state in (PointState.FINISHED, PointState.STOPPED):
        return loss
    if state is PointState.FAILED:
        return loss if loss is not None else FAILURE_LOSS
    return None


def _point(row: sqlite3.Row) -> Point:
    data = dict(row)
    data["params"] = json.loads(data["params"])
    data["reports"] = json.loads(data["reports"]) if data["reports"] else []
    data["state"] = PointState(data["state"])
    return Point(**data)


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


_CAMPAIGN_FOLDER = re.compile(r"(?:^|/)(projects/[^/]+/campaigns/[^/]+)/?$")


def _relative(folder: str | Path) -> str:
    """How the registry stores a campaign folder: relative to ``$HPOGRID_HOME`` (a copied or
    moved home acts on its own stores). An old absolute entry (hpogrid before 2.x kept those)
    maps to the same ``projects/<p>/campaigns/<id>`` of this home; a folder elsewhere stays absolute."""
    text = str(folder)
    if not os.path.isabs(text):
        return text
    try:
        return str(Path(text).relative_to(home()))
    except ValueError:
        match = _CAMPAIGN_FOLDER.search(text)
        return match.group(1) if match else text


def _entry(row: sqlite3.Row) -> Registered:
    """A registry row with ``path`` resolved against this home."""
    data = dict(row)
    data["path"] = str(home() / _relative(data["path"])) if data["path"] else data["path"]
    return Registered(**data)


@contextlib.contextmanager
def _registry(write: bool = False) -> Iterator[sqlite3.Connection | None]:
    """The registry connection. Reading opens it read-only and writes nothing (``None`` when
    there is no registry yet); writing creates it and moves old absolute paths to relative ones."""
    path = registry_path()
    with translated(path):
        if not write:
            if not path.exists():
                yield None
                return
            with closing(_connect(path, readonly=True)) as conn:
                conn.execute("SELECT 1 FROM campaigns LIMIT 1").fetchall()  # damaged or not a registry: say so now
                yield conn
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        with closing(_connect(path)) as conn:
            conn.executescript(_REGISTRY)
            _migrate(conn)
            yield conn


def _migrate(conn: sqlite3.Connection) -> None:
    """Absolute folder paths (older registries) become relative to the home, once."""
    rows = conn.execute("SELECT id, path FROM campaigns WHERE path LIKE '/%'").fetchall()
    moved = [(_relative(r["path"]), r["id"]) for r in rows if _relative(r["path"]) != r["path"]]
    if moved:
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("UPDATE campaigns SET path = ? WHERE id = ?", moved)


def _migrate_quietly() -> None:
    """On read: migrate when the home is writable; a read-only home is read as it is."""
    try:
        with _registry(write=True):
            pass
    except StorageError:
        pass


def register_campaign(project: str, backend: str, folder_for: Any, remote_id: str | None = None) -> tuple[int, Path]:
    """Allocate a campaign id and its folder. ``folder_for(id) -> Path`` names the folder."""
    with _registry(write=True) as conn:
        assert conn is not None
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            cur = conn.execute(
                "INSERT INTO campaigns (project, backend, path, created, remote_id) VALUES (?, ?, '', ?, ?)",
                (project, backend, time.time(), remote_id),
            )
            cid = int(cur.lastrowid)
            folder = Path(folder_for(cid))
            conn.execute("UPDATE campaigns SET path = ? WHERE id = ?", (_relative(folder), cid))
    return cid, folder


def registered(campaign_id: int | str) -> Registered:
    try:
        cid = int(campaign_id)
    except (TypeError, ValueError):
        raise NotFoundError(f"campaign id must be a number, got {campaign_id!r}") from None
    with _registry() as conn:
        row = conn.execute("SELECT * FROM campaigns WHERE id = ?", (cid,)).fetchone() if conn is not None else None
    if row is None:
        raise NotFoundError(f"no campaign with id {campaign_id} (see `hpogrid tasks show`)")
    return _entry(row)


def list_registered(project: str | None = None) -> list[Registered]:
    with _registry() as conn:
        if conn is None:
            return []
        if conn.execute("SELECT 1 FROM campaigns WHERE path LIKE '/%' LIMIT 1").fetchone() is not None:
            _migrate_quietly()
        if project is None:
            rows = conn.execute("SELECT * FROM campaigns ORDER BY id").fetchall()
        else:
            rows = conn.execute("SELECT * FROM campaigns WHERE project = ? ORDER BY id", (project,)).fetchall()
    return [_entry(r) for r in rows]


def forget_campaign(campaign_id: int) -> None:
    with _registry(write=True) as conn:
        assert conn is not None
        conn.execute("DELETE FROM campaigns WHERE id = ?", (int(campaign_id),))
