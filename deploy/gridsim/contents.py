"""iDDS's side of an HPO request in the sandbox: its points ("contents"), in SQLite.

iDDS 2.6.21 keeps each point as a content of the request's output collection: ``name`` = the
point id ("1", "2", ...), ``path`` = ``json.dumps((point, loss))`` and status ``New`` (no loss yet)
or ``Available`` (a loss was PUT). The sandbox keeps the same: the loss travels inside the JSON
text, so ``NaN`` and ``inf`` survive as iDDS keeps them (SQLite would turn a NaN REAL into NULL).
PanDA's bookkeeping of the point (attempts, given up) sits beside it.
"""

from __future__ import annotations

import enum
import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ContentStatus", "Point", "Contents"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS contents (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL,
    status TEXT NOT NULL,
    round INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    given_up INTEGER NOT NULL DEFAULT 0
);
"""


class ContentStatus(str, enum.Enum):
    NEW = "New"
    AVAILABLE = "Available"


@dataclass(frozen=True)
class Point:
    id: int
    parameters: Any  # a dict, or [model_id, dict] in segmented HPO
    loss: float | None
    status: ContentStatus
    round: int
    attempts: int  # evaluation jobs that ended without a loss
    given_up: bool  # PanDA stopped retrying and reported its failure loss

    @property
    def model_id(self) -> int | None:
        if isinstance(self.parameters, list) and len(self.parameters) == 2 and isinstance(self.parameters[0], int):
            return self.parameters[0]
        return None


class Contents:
    """One request's points; safe to share between the HTTP threads and the task's scheduler."""

    def __init__(self, path: Path):
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def add(self, points: list[Any], round_no: int) -> list[int]:
        with self._lock:
            ids = []
            self._db.execute("BEGIN IMMEDIATE")
            for point in points:
                cur = self._db.execute("INSERT INTO contents (path, status, round) VALUES (?, ?, ?)",
                                       (json.dumps((point, None)), ContentStatus.NEW.value, round_no))
                ids.append(int(cur.lastrowid))
            self._db.execute("COMMIT")
            return ids

    def points(self) -> list[Point]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, path, status, round, attempts, given_up FROM contents ORDER BY id").fetchall()
        out = []
        for pid, path, status, round_no, attempts, given_up in rows:
            parameters, loss = json.loads(path)
            out.append(Point(pid, parameters, loss, ContentStatus(status), round_no, attempts, bool(given_up)))
        return out

    def get(self, point_id: int) -> Point | None:
        return next((p for p in self.points() if p.id == point_id), None)

    def set_loss(self, point_id: int, loss: float, *, given_up: bool = False) -> None:
        """iDDS's PUT: the loss replaces whatever was there and the point is Available.
        Raises ``IndexError`` (iDDS's "list index out of range") for an unknown point."""
        with self._lock:
            row = self._db.execute("SELECT path FROM contents WHERE id = ?", (point_id,)).fetchone()
            if row is None:
                raise IndexError("list index out of range")
            parameters, _ = json.loads(row[0])
            self._db.execute("UPDATE contents SET path = ?, status = ?, given_up = ? WHERE id = ?",
                             (json.dumps((parameters, loss)), ContentStatus.AVAILABLE.value, int(given_up), point_id))

    def count_attempt(self, point_id: int) -> int:
        """One more evaluation job of this point ended without a loss; returns the attempts so far."""
        with self._lock:
            self._db.execute("UPDATE contents SET attempts = attempts + 1 WHERE id = ?", (point_id,))
            return int(self._db.execute("SELECT attempts FROM contents WHERE id = ?", (point_id,)).fetchone()[0])

    def rounds(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COALESCE(MAX(round), 0) FROM contents").fetchone()[0])
