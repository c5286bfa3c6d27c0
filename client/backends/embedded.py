"""The embedded backend: iDDS rounds and PanDA jobs run by :class:`hpogrid.client.engine.Engine` here."""

from __future__ import annotations

from typing import Any, Callable

from ..engine import (BaseJobRunner, BaseSteering, Engine, ForkServerRunner, create_campaign,
                      driving, kill_campaign, project_dir_of, spawn_detached)
from ..store import Store
from .base import BaseBackend, SubmitOptions

__all__ = ["EmbeddedBackend"]


class EmbeddedBackend(BaseBackend):
    """Campaigns on this machine: a warm steering worker and a fork server of evaluation jobs."""

    name = "embedded"

    def make_runner(self, store: Store, options: SubmitOptions) -> BaseJobRunner:
        return ForkServerRunner(log=store.path.parent / "forkserver.log", project_dir=project_dir_of(store))

    def make_steering(self, store: Store, options: SubmitOptions) -> BaseSteering | None:
        """How rounds run; None: the engine's default (warm worker, or the campaign's own command)."""
        return None

    def submit(self, project_name: str, options: SubmitOptions) -> Store:
        if options.dry_run:  # what would run, nothing written
            import json

            from ..engine import campaign_fields, run_plan
            from ..engine._commands import evaluation_exec, steering_exec

            plan = run_plan(project_name, self.name, options)  # the same pre-flight as a real submit
            fields = campaign_fields(plan.project, self.name, options, plan)
            fields["backend"] = self.name
            fields["steering_exec"] = fields["settings"]["steering_command"] or steering_exec(project_name, local=True)
            fields["evaluation_exec"] = evaluation_exec(project_name, local=True)
            print(json.dumps(fields, indent=2))
            return None  # type: ignore[return-value]
        store = create_campaign(project_name, self.name, options)
        return self._start(store, options)

    def resume(self, store: Store, options: SubmitOptions) -> Store:
        with driving(store.path.parent, store.campaign().id):  # one driver: the loser changes nothing
            self._prepare_resume(store, options)
            if not options.detach:
                return self._start(store, options)
        return self._start(store, options)  # the background driver takes the lock itself

    def _prepare_resume(self, store: Store, options: SubmitOptions) -> None:
        campaign = store.campaign()
        settings = dict(campaign.settings)
        settings.pop("kill_requested", None)
        if options.timeout is not None:
            settings["timeout"] = float(options.timeout)
        if options.ray_address is not None:
            settings["ray_address"] = options.ray_address
        fields: dict[str, Any] = {"settings": settings, "status": "created", "message": None}
        if options.max_attempts is not None:
            fields["max_attempts"] = options.max_attempts
        if options.n_points_per_iteration is not None:
            fields["points_per_round"] = options.n_points_per_iteration
        if options.min_unevaluated_points is not None:
            fields["min_unevaluated"] = options.min_unevaluated_points
        store.update_campaign(**fields)

    def _start(self, store: Store, options: SubmitOptions) -> Store:
        if options.detach:
            spawn_detached(store, self.name)
            return store
        return self.run(store, options, progress=options.extra.get("progress"))

    def run(self, store: Store, options: SubmitOptions, progress: Callable[..., Any] | str | None = None) -> Store:
        """Run the campaign in this process until it ends (or is stopped). ``progress``: a callback
        taking :class:`~hpogrid.client.engine.Progress`, or ``"plain"``/``"live"`` for a display
        (which then also prints the summary at the end)."""
        from ..engine._progress import make_display, summary_lines

        display = make_display(progress) if isinstance(progress, str) else progress
        engine = Engine(store, project_dir_of(store), runner=self.make_runner(store, options),
                        steering=self.make_steering(store, options), on_progress=display)
        try:
            engine.run()
        finally:
            close = getattr(display, "close", None)
            if close is not None:
                close()
        if isinstance(progress, str):
            for line in summary_lines(engine.progress):
                print(line, flush=True)
        return store

    def kill(self, store: Store) -> None:
        kill_campaign(store)
