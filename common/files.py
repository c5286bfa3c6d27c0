"""Files a reader may open at any moment: written whole or not at all; JSON read with one clear error."""

from __future__ import annotations

import enum
import json
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = [
    "JsonFileError",
    "JsonProblem",
    "atomic_write_json",
    "atomic_write_text",
    "current_umask",
    "read_json",
    "read_json_or_none",
]


def current_umask() -> int:
    """The process's umask, read without changing it where Linux tells it (``/proc``): setting it
    to read it would race with other threads creating files."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str, *, mode: int | None = None, durable: bool = False) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename, so a
    reader (or a crash) sees the old file or the whole new one, never a part.

    ``mode`` is the file's permission bits; by default those of an ordinary new file
    (``0o666`` less the umask; ``mkstemp``'s own files would be private). ``durable`` also
    flushes the data to disk before the rename (survives an OS crash; ~10 ms on a busy disk).
    The folder must exist. On any error the temporary file is removed and the error propagates.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, (0o666 & ~current_umask()) if mode is None else mode)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | Path, data: Any, *, indent: int | None = 2, mode: int | None = None,
                      durable: bool = False) -> None:
    """:func:`atomic_write_text` of ``data`` as JSON (indented, with a final newline, by default;
    ``indent=None``: one compact line without a newline)."""
    text = json.dumps(data) if indent is None else json.dumps(data, indent=indent) + "\n"
    atomic_write_text(path, text, mode=mode, durable=durable)


class JsonProblem(enum.Enum):
    """Why a JSON file could not be read."""

    MISSING = "missing"
    UNREADABLE = "unreadable"
    INVALID = "invalid"


class JsonFileError(ValueError):
    """A JSON file that is missing, unreadable or not valid JSON. ``str()`` is one line naming
    ``what`` the file is, the file and the problem (the line and column for bad JSON); each part
    translates it into its own error type at its boundary."""

    def __init__(self, path: Path, what: str, problem: JsonProblem, detail: str, cause: Exception):
        self.path, self.what, self.problem, self.detail, self.cause = path, what, problem, detail, cause
        if problem is JsonProblem.INVALID:
            message = f"the {what} {str(path)!r} is not valid JSON: {detail}"
        else:
            message = f"cannot read the {what} {str(path)!r}: {detail}"
        super().__init__(message)


def read_json(path: str | Path, what: str) -> Any:
    """The JSON value in ``path``; :class:`JsonFileError` if it is missing, unreadable or invalid.
    ``what`` names the file for the error line ("config", "%IN file", ...)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise JsonFileError(path, what, JsonProblem.MISSING, exc.strerror or str(exc), exc) from None
    except OSError as exc:
        raise JsonFileError(path, what, JsonProblem.UNREADABLE, exc.strerror or str(exc), exc) from None
    except UnicodeDecodeError as exc:
        raise JsonFileError(path, what, JsonProblem.UNREADABLE, f"not UTF-8 text ({exc.reason})", exc) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        detail = f"{exc.msg} at line {exc.lineno} column {exc.colno}"
        raise JsonFileError(path, what, JsonProblem.INVALID, detail, exc) from None


def read_json_or_none(path: str | Path) -> Any:
    """The JSON value in ``path``, or None when it is missing, unreadable or not (yet) valid JSON:
    for files another process writes, read again later."""
    try:
        return read_json(path, "file")
    except JsonFileError:
        return None
