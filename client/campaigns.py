"""Campaigns: allocate, find and open them, whatever their backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import projects
from .errors import NotFoundError
from .store import Store, list_registered, register_campaign, registered

__all__ = ["new", "open_campaign", "latest", "for_project", "store_path"]


def store_path(folder: Path) -> Path:
    return folder / "store.db"


def new(project_name: str, backend: str, **fields: Any) -> Store:
    """Register a campaign of ``project_name`` and create its folder and store."""
    projects.load(project_name)  # a clear error for an unknown project, before anything is written
    base = projects.path(project_name) / "campaigns"
    cid, folder = register_campaign(project_name, backend, lambda i: base / str(i), fields.get("remote_id"))
    folder.mkdir(parents=True, exist_ok=True)
    return Store.create(store_path(folder), id=str(cid), project=project_name, backend=backend, **fields)


def open_campaign(campaign_id: int | str) -> Store:
    entry = registered(campaign_id)
    path = store_path(Path(entry["path"]))
    if not path.exists():
        raise NotFoundError(f"campaign {campaign_id}'s store is gone ({path})")
    return Store(path)


def for_project(project_name: str | None = None) -> list[dict[str, Any]]:
    """Registry entries (id, project, backend, path, created, remote_id) whose store still exists."""
    return [e for e in list_registered(project_name) if store_path(Path(e["path"])).exists()]


def latest(project_name: str, backend: str | None = None) -> Store | None:
    entries = [e for e in for_project(project_name) if backend is None or e["backend"] == backend]
    return Store(store_path(Path(entries[-1]["path"]))) if entries else None
