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

    def submit(self, project_name: str, options: SubmitOptions) -> Store:
        from ..engine import RayRunner

        RayRunner.check_reachable(options.ray_address)  # before anything is written
        return super().submit(project_name, options)

    def make_runner(self, store: Store, options: SubmitOptions) -> BaseJobRunner:
        from ..engine import RayRunner

        address = options.ray_address or store.campaign().settings.get("ray_address")
        return RayRunner(project_dir_of(store), address=address)
