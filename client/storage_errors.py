"""Storage failures as one line naming the file and what to do: the one rule (:func:`storage_error`)
that the store, the registry and every file write of the home (``hpogrid.client.home``) use.
Imports neither of them, so both can import it."""

from __future__ import annotations

import contextlib
import enum
import errno
import os
import sqlite3
from pathlib import Path
from typing import Iterator

from .errors import HpogridError

__all__ = ["StorageError", "StorageProblem", "storage_error", "translated"]


class StorageProblem(enum.Enum):
    """Why a store, the registry or a campaign file cannot be used; the value says what to do."""

    DAMAGED = "move it aside or restore it from a backup"
    FULL = "free space on that disk, then run the command again (a campaign continues with `hpogrid tasks retry ID`)"
    READ_ONLY = "make it writable (or set HPOGRID_HOME to a writable folder); read-only commands still work"
    IO = "check the disk (dmesg), then run the command again"
    BUSY = "another process holds it locked; wait for it, then run the command again"
    UNAVAILABLE = "check that it exists and is readable, then run the command again"


class StorageError(HpogridError):
    """A store, the registry or a campaign file cannot be read or written (damaged, read-only,
    full, failing disk). The message names the file and what to do, on one line."""

    def __init__(self, path: str | Path, problem: StorageProblem, what: str):
        self.path = Path(path)
        self.problem = problem
        self.what = what
        super().__init__(f"{self.path}: {what}; {problem.value}")

    @property
    def advice(self) -> str:
        """``<what>; <what to do>`` without the path (for a row that already names the file)."""
        return f"{self.what}; {self.problem.value}"


_SQLITE_PROBLEMS = {  # sqlite3's primary result codes (``sqlite_errorname`` prefix) -> problem
    "SQLITE_CORRUPT": StorageProblem.DAMAGED,
    "SQLITE_NOTADB": StorageProblem.DAMAGED,
    "SQLITE_FULL": StorageProblem.FULL,
    "SQLITE_READONLY": StorageProblem.READ_ONLY,
    "SQLITE_PERM": StorageProblem.READ_ONLY,
    "SQLITE_IOERR": StorageProblem.IO,
    "SQLITE_BUSY": StorageProblem.BUSY,
    "SQLITE_LOCKED": StorageProblem.BUSY,
    "SQLITE_CANTOPEN": StorageProblem.UNAVAILABLE,
}
_ERRNO_PROBLEMS = {
    errno.ENOSPC: StorageProblem.FULL,
    errno.EDQUOT: StorageProblem.FULL,
    errno.EROFS: StorageProblem.READ_ONLY,
    errno.EACCES: StorageProblem.READ_ONLY,
    errno.EPERM: StorageProblem.READ_ONLY,
    errno.EIO: StorageProblem.IO,
}
_WHAT = {
    StorageProblem.DAMAGED: "it is damaged",
    StorageProblem.FULL: "the disk is full",
    StorageProblem.READ_ONLY: "cannot write it",
    StorageProblem.IO: "disk I/O error",
    StorageProblem.BUSY: "it is locked",
    StorageProblem.UNAVAILABLE: "cannot open it",
}


def storage_error(exc: BaseException, path: str | Path | None = None) -> StorageError | None:
    """The one rule that turns a storage failure into a :class:`StorageError` naming the file:
    sqlite3's corrupt / not-a-database / full / read-only / I/O / busy errors, and ``OSError``
    ENOSPC, EDQUOT, EROFS, EACCES, EPERM, EIO. Anything else (a bug) gives ``None``."""
    if isinstance(exc, StorageError):
        return exc
    if isinstance(exc, sqlite3.Error):
        name = getattr(exc, "sqlite_errorname", "") or ""
        problem = next((p for code, p in _SQLITE_PROBLEMS.items() if name.startswith(code)), None)
        if problem is None and (str(exc).startswith("no such table") or (
                isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError))):
            problem = StorageProblem.DAMAGED  # e.g. a file truncated to nothing: an empty database
        if problem is None:
            return None
        if path is None:
            return None
        if problem is StorageProblem.UNAVAILABLE and not os.access(Path(path).parent, os.W_OK):
            problem = StorageProblem.READ_ONLY  # sqlite cannot make its journal files next to the file
        detail = " ".join(str(exc).split())
        return StorageError(path, problem, f"{_WHAT[problem]} (sqlite: {detail})")
    if isinstance(exc, OSError) and exc.errno in _ERRNO_PROBLEMS:
        problem = _ERRNO_PROBLEMS[exc.errno]
        where = exc.filename if exc.filename is not None else path
        if where is None:
            return None
        if not os.path.lexists(where) and os.path.isdir(os.path.dirname(where)):
            where = os.path.dirname(where)  # a file it could not make (a temporary name): its folder
        return StorageError(where, problem, f"{_WHAT[problem]} ({os.strerror(exc.errno)})")
    return None


@contextlib.contextmanager
def translated(path: str | Path) -> Iterator[None]:
    """Inside, a storage failure of ``path`` (see :func:`storage_error`) is raised as a
    :class:`StorageError`; other errors (bugs) pass unchanged."""
    try:
        yield
    except (sqlite3.Error, OSError) as exc:
        error = storage_error(exc, path)
        if error is None or error is exc:
            raise
        raise error from exc
