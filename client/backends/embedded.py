"""The embedded backend: iDDS rounds and PanDA jobs run by :class:`hpogrid.client.engine.Engine` here."""

from __future__ import annotations

from typing import Any

from ..engine import (BaseJobRunner, BaseSteering, Engine, ForkServerRunner, campaign_fields, create_campaign,
                      driving, kill_campaign, make_display, project_dir_of, run_plan, summary_lines)
from ..execs import evaluation_exec, steering_exec
from ..store import Store
from .base import Backend, Plan, SubmitOptions
from .detached import spawn

__all__ = ["EmbeddedBackend"]


class EmbeddedBackend(Backend):
    """Campaigns on this machine: a warm steering worker and a fork server of evaluation jobs."""

    name = "embedded"
    runs_here = True
    driven_here = True

    def make_runner(self, store: Store, options: SubmitOptions) -> BaseJobRunner:
        return ForkServerRunner(log=store.path.parent / "forkserver.log", project_dir=project_dir_of(store))

    def make_steering(self, store: Store, options: SubmitOptions) -> BaseSteering | None:
        """How rounds run; None: the engine's default (warm worker, or the campaign's own command)."""
        return None

    def plan(self, project_name: str, options: SubmitOptions) -> Plan:
        """The campaign row and the commands a submit would use (the same pre-flight); nothing written."""
        run = run_plan(project_name, self.name, options)
        fields = campaign_fields(run.project, self.name, options, run)
        fields["backend"] = self.name
        commands = {"steering_exec": fields["settings"]["steering_command"] or steering_exec(project_name, local=True),
                    "evaluation_exec": evaluation_exec(project_name, local=True)}
        fields.update(commands)
        return Plan(self.name, project_name, fields["max_points"], details=fields, commands=commands)

    def submit(self, project_name: str, options: SubmitOptions) -> Store:
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
        if campaign.status.final:  # `--resume` of an ended campaign (e.g. killed) continues it to its budget
            store.reopen_campaign(**fields)
        else:
            store.update_campaign(**fields)

    def _start(self, store: Store, options: SubmitOptions) -> Store:
        if options.detach:
            spawn(store, self.name)
            return store
        return self.run(store, options)

    def run(self, store: Store, options: SubmitOptions) -> Store:
        """Run the campaign in this process until it ends (or is stopped). ``options.progress``: a
        callback taking :class:`~hpogrid.client.engine.Progress`, or ``"plain"``/``"live"`` for a
        display (which then also prints the summary at the end)."""
        progress = options.progress
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
