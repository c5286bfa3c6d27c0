"""The sandbox: the project folder (project.json + scripts/) as the gzipped tarball jobs unpack."""

from __future__ import annotations

import tarfile
from pathlib import Path

__all__ = ["make_sandbox", "SANDBOX_EXCLUDE"]

SANDBOX_EXCLUDE = ("campaigns", "__pycache__", ".git", ".ipynb_checkpoints")


def make_sandbox(project_dir: Path, target: Path) -> Path:
    """Write ``target`` (tar.gz) with project.json and scripts/ at its root; campaigns stay home."""
    project_dir = Path(project_dir)

    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        parts = Path(info.name).parts
        if any(p in SANDBOX_EXCLUDE or p.endswith(".pyc") for p in parts):
            return None
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info

    target.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(target, "w:gz") as tar:
        tar.add(project_dir / "project.json", arcname="project.json", filter=keep)
        if (project_dir / "scripts").is_dir():
            tar.add(project_dir / "scripts", arcname="scripts", filter=keep)
    return target
