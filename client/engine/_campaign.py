"""A campaign's life outside the loop: create it from a project, find its driver, detach, kill."""

from __future__ import annotations

import json
import os
import shlex
import signal
import time
from pathlib import Path
from typing import Any

from .. import campaigns, projects
from ..errors import CampaignError, UsageError
from ..home import atomic_write_json
from ..records import CampaignState, PointState
from ..store import Store
from ._jobs import JobState, job_state, signal_group
from ._lock import driver_pid
from ._loop import DEFAULT_TIMEOUT, DEFAULTS

__all__ = ["create_campaign", "campaign_fields", "run_plan", "driver_alive", "check_resumable",
           "kill_campaign", "project_dir_of"]


def run_plan(project_name: str, backend: str, options: Any) -> Any:
    """This run's :class:`~hpogrid.client.preflight.RunPlan`: the one the caller checked (``options.
    run_plan``), else checked now (library use: the same pre-flight, overrides from ``options.overrides``)."""
    from ..preflight import plan_run

    plan = getattr(options, "run_plan", None)
    if plan is None:
        plan = plan_run(project_name, getattr(options, "overrides", None), backend=backend,
                        timeout=getattr(options, "timeout", None), seed=getattr(options, "seed", None))
        options.run_plan = plan
    return plan


def campaign_fields(project: dict[str, Any], backend: str, options: Any, plan: Any = None) -> dict[str, Any]:
    """The campaign row of a new campaign: the project's budget and pace, the options' overrides
    (``plan``: the run's :class:`~hpogrid.client.preflight.RunPlan`, whose hpo_config wins)."""
    if plan is not None:
        project = plan.project
    hpo = project["hpo_config"]
    for name in ("n_points_per_iteration", "min_unevaluated_points", "max_attempts"):
        value = getattr(options, name, None)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < (0 if name == "min_unevaluated_points" else 1)):
            low = 0 if name == "min_unevaluated_points" else 1
            raise UsageError(f"{name} >= {low} must hold, got {name}={value!r}")
    timeout = getattr(options, "timeout", None)
    if timeout is not None and not (isinstance(timeout, (int, float)) and timeout > 0):
        raise UsageError(f"timeout > 0 must hold, got timeout={timeout!r}")
    command = getattr(options, "steering_command", None) or project.get("steering_exec")
    if command is not None:
        try:
            argv = shlex.split(command)
        except ValueError as exc:
            raise UsageError(f"the steering command cannot be split into arguments ({exc}): {command!r}") from None
        if not argv:
            raise UsageError("the steering command is empty")
    settings = {
        "timeout": float(timeout) if timeout is not None else DEFAULT_TIMEOUT,
        "steering_command": command,
        "seed": options.seed if getattr(options, "seed", None) is not None else hpo.get("seed"),
        "ray_address": getattr(options, "ray_address", None),
        "project_dir": str(projects.path(project["project_name"])),
    }
    if plan is not None:
        settings.update(plan.settings())
    return {
        "algorithm": "custom command" if command else hpo.get("algorithm"),
        "metric": hpo.get("metric"),
        "mode": hpo.get("mode"),
        "max_points": int(hpo["num_trials"]),
        "max_concurrent": int(hpo["max_concurrent"]),
        "points_per_round": options.n_points_per_iteration or DEFAULTS["points_per_round"],
        "min_unevaluated": options.min_unevaluated_points if options.min_unevaluated_points is not None
        else DEFAULTS["min_unevaluated"],
        "max_attempts": options.max_attempts or DEFAULTS["max_attempts"],
        "settings": settings,
    }


def create_campaign(project_name: str, backend: str, options: Any) -> Store:
    """Register a new campaign of the project and write its folder: store.db and project.json (the
    project as this campaign runs it: per-run overrides and seed applied, scripts by absolute path).
    That folder is the campaign's project folder: the steering's ``--config`` and the evaluator's
    ``--project`` (so a ``--stop`` override reaches every job)."""
    plan = run_plan(project_name, backend, options)  # the pre-flight: nothing written on bad input
    fields = campaign_fields(plan.project, backend, options, plan)
    store = campaigns.new(project_name, backend, **fields)
    snapshot = json.loads(json.dumps(plan.project))
    snapshot["hpo_config"]["seed"] = fields["settings"]["seed"]
    snapshot["scripts"] = str(projects.scripts_dir(project_name).resolve())
    atomic_write_json(store.path.parent / "project.json", snapshot)
    settings = dict(fields["settings"], project_dir=str(store.path.parent.resolve()))
    store.update_campaign(settings=settings)
    return store


def project_dir_of(store: Store) -> Path:
    campaign = store.campaign()
    folder = campaign.settings.get("project_dir")
    return Path(folder) if folder else projects.path(campaign.project)


def driver_alive(pid: int | None) -> bool:
    """Is ``pid`` a live hpogrid driver (not a zombie, not a recycled pid of another program)?"""
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, IndexError):
        return True
    return b"hpogrid" in cmdline or b"_detached" in cmdline


def check_resumable(store: Store) -> None:
    """Raise when another process drives the campaign (its driver lock is held: ``_lock``)."""
    campaign = store.campaign()
    pid = driver_pid(store.path.parent)
    if pid is not None and pid != os.getpid():
        raise CampaignError(f"campaign {campaign.id} is being driven by pid {pid}; "
                            f"wait for it to end or stop it with `hpogrid tasks kill {campaign.id}`")


def kill_campaign(store: Store, wait: float = 30.0) -> str:
    """Stop a campaign: its driver (if alive) terminates the running jobs and records them; a campaign
    whose driver is gone is marked killed here. Returns the final status."""
    campaign = store.campaign()
    if campaign.status.final:
        raise CampaignError(f"campaign {campaign.id} has already ended ({campaign.status})")
    store.update_campaign(settings={**campaign.settings, "kill_requested": True})
    pid = campaign.pid
    if driver_alive(pid) and pid != os.getpid():
        os.kill(int(pid), signal.SIGTERM)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not store.campaign().status.active or not driver_alive(pid):
                break
            time.sleep(0.1)
        else:
            os.kill(int(pid), signal.SIGKILL)
        # wait for the process to go (it is not our child: poll)
        for _ in range(100):
            if not driver_alive(pid):
                break
            time.sleep(0.05)
    status = store.campaign().status
    if not status.final:
        # the driver is gone: its jobs outlive it (they are adopted at resume); a kill ends them
        _stop_orphans(store, wait)
        # jobs without a result go back to proposed; a job that wrote its
        # output.json stays running, for the next resume to harvest (never evaluated twice)
        for p in store.points([PointState.RUNNING]):
            if not (p.job_dir and (Path(p.job_dir) / "output.json").exists()):
                store.requeue_point(p.id, "the campaign was killed while the job ran")
        store.update_campaign(status=CampaignState.KILLED, ended=time.time(), message="killed by `hpogrid tasks kill`")
    return store.campaign().status


def _stop_orphans(store: Store, wait: float) -> None:
    """SIGTERM the jobs of a dead driver that still run (a job with its final metric keeps it),
    SIGKILL those still there after ``wait`` seconds."""
    folders = [Path(p.job_dir) for p in store.points([PointState.RUNNING]) if p.job_dir]
    for sig, patience in ((signal.SIGTERM, wait), (signal.SIGKILL, 5.0)):
        live = [(f, pid) for f in folders for state, pid in [job_state(f)] if state is JobState.RUNNING and pid]
        for _, pid in live:
            signal_group(pid, sig)
        deadline = time.monotonic() + patience
        while live and time.monotonic() < deadline:
            time.sleep(0.05)
            live = [(f, pid) for f, pid in live if job_state(f)[0] is JobState.RUNNING]
        if not live:
            return
