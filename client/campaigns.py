"""Campaigns: allocate, find and open them, whatever their backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from . import projects
from .errors import NotFoundError, UsageError
from .records import Registered
from .store import Store, list_registered, register_campaign, registered

__all__ = ["new", "open_campaign", "open_entry", "latest", "for_project", "store_path", "parse_range"]


def store_path(folder: Path) -> Path:
    return folder / "store.db"


def new(project_name: str, backend: str, **fields: Any) -> Store:
    """Register a campaign of ``project_name`` and create its folder and store."""
    projects.load(project_name)  # a clear error for an unknown project, before anything is written
    base = projects.path(project_name) / "campaigns"
    cid, folder = register_campaign(project_name, backend, lambda i: base / str(i), fields.get("remote_id"))
    folder.mkdir(parents=True, exist_ok=True)
    return Store.create(store_path(folder), id=str(cid), project=project_name, backend=backend, **fields)


def open_campaign(campaign_id: int | str, *, readonly: bool = False) -> Store:
    entry = registered(campaign_id)
    path = store_path(Path(entry.path))
    if not path.exists():
        raise NotFoundError(f"campaign {campaign_id}'s store is gone ({path})")
    return Store(path, readonly=readonly)


def open_entry(entry: Registered | Mapping[str, Any], *, readonly: bool = False) -> Store:
    """The store of a registry entry (as :func:`for_project` lists them; or a row naming its
    ``path``). Readers (``tasks show``, ``report``) pass ``readonly=True``: nothing is written, so
    a read-only home can be read."""
    folder = entry.path if isinstance(entry, Registered) else entry["path"]
    return Store(store_path(Path(folder)), readonly=readonly)


def open_folder(folder: str | Path, *, readonly: bool = False) -> Store:
    """The store of the campaign in ``folder`` (a ``tasks show`` row's ``path``)."""
    return Store(store_path(Path(folder)), readonly=readonly)


def for_project(project_name: str | None = None) -> list[Registered]:
    """Registry entries (id, project, backend, path, created, remote_id) whose store still exists."""
    return [e for e in list_registered(project_name) if store_path(Path(e.path)).exists()]


def latest(project_name: str, backend: str | None = None, *, readonly: bool = False) -> Store | None:
    entries = [e for e in for_project(project_name) if backend is None or e.backend == backend]
    return open_entry(entries[-1], readonly=readonly) if entries else None


def parse_range(text: str | None) -> tuple[int | None, int | None]:
    """An id range as ``tasks show``/``report`` take it: ``A-B``, ``A-``, ``-B`` or ``A`` (ends included)."""
    if text is None or not text.strip():
        return None, None
    raw = text.strip()
    try:
        if "-" not in raw:
            return int(raw), int(raw)
        lo, hi = raw.split("-", 1)
        out = (int(lo) if lo.strip() else None, int(hi) if hi.strip() else None)
    except ValueError:
        raise UsageError(f"--range must look like A-B, A-, -B or A (ids), got {text!r}") from None
    if out == (None, None) or (out[0] is not None and out[1] is not None and out[0] > out[1]):
        raise UsageError(f"--range must look like A-B with A <= B, got {text!r}")
    return out
