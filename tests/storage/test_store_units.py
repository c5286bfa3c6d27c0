"""The store's storage rules as units: the WAL checkpoint, read-only opening, the error rule."""

from __future__ import annotations

import errno
import shutil
import sqlite3
from pathlib import Path

import pytest

from hpogrid.client.store import Store, StorageError, StorageProblem, storage_error


def _store(tmp_path: Path) -> Store:
    store = Store.create(tmp_path / "c" / "store.db", id="1", project="p", backend="embedded")
    store.add_points([{"x": i} for i in range(50)])
    return store


def _points_in_copy(store: Store, tmp_path: Path) -> int:
    """Points seen in a copy of store.db alone (what a backup without the WAL holds)."""
    copy = tmp_path / "copy.db"
    shutil.copy(store.path, copy)
    with sqlite3.connect(copy) as conn:
        return conn.execute("SELECT COUNT(*) FROM points").fetchone()[0]


def test_a_checkpoint_moves_the_wal_into_the_store(tmp_path: Path) -> None:
    store = _store(tmp_path)
    holder = Store(store.path)  # another connection keeps the WAL alive, as a running driver's readers do
    assert _points_in_copy(store, tmp_path) == 0
    store.checkpoint()
    assert _points_in_copy(store, tmp_path) == 50
    holder.close()
    store.close()


def test_a_reader_writes_nothing(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.close()
    reader = Store(store.path, readonly=True)
    assert reader.counts()["proposed"] == 50
    with pytest.raises(StorageError) as caught:
        reader.add_points([{"x": 99}])
    assert caught.value.problem is StorageProblem.READ_ONLY and caught.value.path == store.path
    reader.close()
    assert sorted(p.name for p in store.path.parent.iterdir()) == ["store.db"]  # no WAL litter


@pytest.mark.parametrize("exc, problem", [
    (sqlite3.DatabaseError("file is not a database"), StorageProblem.DAMAGED),
    (sqlite3.OperationalError("no such table: campaign"), StorageProblem.DAMAGED),
    (OSError(errno.ENOSPC, "No space left on device", "/x/f"), StorageProblem.FULL),
    (OSError(errno.EROFS, "Read-only file system", "/x/f"), StorageProblem.READ_ONLY),
    (OSError(errno.EIO, "Input/output error", "/x/f"), StorageProblem.IO),
])
def test_the_error_rule(exc: Exception, problem: StorageProblem) -> None:
    error = storage_error(exc, "/x/f")
    assert error is not None and error.problem is problem and str(error).startswith("/x/f: ")
    assert error.problem.value in str(error) and "\n" not in str(error)


def test_bugs_are_not_storage_errors() -> None:
    assert storage_error(sqlite3.OperationalError("near \"SELEC\": syntax error"), "/x/f") is None
    assert storage_error(OSError(errno.ENOENT, "No such file", "/x/f")) is None
    assert storage_error(ValueError("x"), "/x/f") is None
