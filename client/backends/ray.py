"""The Ray backend: the embedded engine's campaign, each evaluation job a Ray task."""

from __future__ import annotations

from ..engine import BaseJobRunner, project_dir_of
from ..store import Store
from .base import SubmitOptions
from .embedded import EmbeddedBackend

__all__ = ["RayBackend"]


class RayBackend(EmbeddedBackend):
    """``submit_idds --backend ray [--ray-address ADDR]``: same rounds, store and retries; jobs on Ray."""

    name = "ray"

    def make_runner(self, store: Store, options: SubmitOptions) -> BaseJobRunner:
        from ..engine._ray import RayRunner

        address = options.ray_address or (store.campaign().get("settings") or {}).get("ray_address")
        return RayRunner(project_dir_of(store), address=address)
