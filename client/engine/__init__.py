"""The embedded campaign engine: iDDS rounds and PanDA jobs, run on this machine (or on Ray).

Library use (no CLI needed)::

    from hpogrid.client.store import Store
    from hpogrid.client.engine import Engine
    Engine(store, project_dir).run()          # run or resume the campaign of this store

Parts: :class:`Engine` (the loop), job runners (:class:`ForkServerRunner` default,
:class:`ProcessRunner`, :class:`RayRunner`), steering runners (:class:`WarmSteering` default,
:class:`CommandSteering`), and campaign helpers (create, detach, kill).
"""

from __future__ import annotations

from typing import Any

from ._campaign import (campaign_fields, check_resumable, create_campaign, driver_alive, kill_campaign,
                        project_dir_of, run_plan, spawn_detached)
from ._jobs import BaseJobRunner, ForkServerRunner, Job, JobExit, ProcessRunner
from ._lock import driver_pid, driving
from ._loop import DEFAULT_TIMEOUT, DEFAULTS, NOT_RETRIED, Engine, EngineSettings, Outcome, Progress, judge
from ._commands import evaluation_exec, steering_exec
from ._progress import failure_lines, make_display, summary_lines
from ._steering import IN_FILE, OUT_FILE, BaseSteering, CommandSteering, RoundEnd, WarmSteering

__all__ = [
    "Engine", "EngineSettings", "Progress", "Outcome", "judge", "DEFAULTS", "NOT_RETRIED", "DEFAULT_TIMEOUT",
    "driving", "driver_pid",
    "BaseJobRunner", "ForkServerRunner", "ProcessRunner", "RayRunner", "Job", "JobExit",
    "BaseSteering", "WarmSteering", "CommandSteering", "RoundEnd", "IN_FILE", "OUT_FILE",
    "create_campaign", "campaign_fields", "run_plan", "check_resumable", "driver_alive", "kill_campaign", "project_dir_of",
    "spawn_detached", "failure_lines",
    "make_display", "summary_lines", "steering_exec", "evaluation_exec",
]


def __getattr__(name: str) -> Any:
    if name == "RayRunner":  # imports nothing of Ray until used
        from ._ray import RayRunner

        return RayRunner
    raise AttributeError(name)
