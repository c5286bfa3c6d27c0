"""The exact ``steeringExec`` and ``evaluationExec`` strings of a project (placeholders left in):
the form that runs on this machine (``local``), or the one the grid backends submit (built by
:mod:`hpogrid.client.grid.taskparams`). Above both the engine and the grid, so neither imports the other."""

from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path

from . import projects
from .configs import DEFAULT_STEERING_CONTAINER

__all__ = ["steering_exec", "evaluation_exec", "STEERING_ARGS"]

STEERING_ARGS = "--in %IN --out %OUT --num-points %NUM_POINTS --max-points %MAX_POINTS"


def _script(name: str) -> str:
    """Absolute path of one of our console scripts (beside this interpreter, else on PATH)."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    return found or name


def steering_exec(project_name: str, local: bool = False, container: str | None = None) -> str:
    """``local``: runs here from any working directory (absolute paths); otherwise exactly what the
    grid backend submits as phpo's ``steeringExec`` (iDDS runs it as ``docker <steeringExec>``)."""
    project = projects.load(project_name)
    if project.get("steering_exec"):
        return project["steering_exec"]
    if local:
        config = projects.path(project_name) / "project.json"
        return f"{shlex.quote(_script('hpogrid-steering'))} {STEERING_ARGS} --config {shlex.quote(str(config))}"
    from .grid import taskparams

    return taskparams.steering_exec(project, container or DEFAULT_STEERING_CONTAINER)


def evaluation_exec(project_name: str, local: bool = False) -> str:
    """``local``: the evaluator with the project's absolute folder; otherwise exactly what the grid
    backend submits as phpo's ``evaluationExec``, run in the job's working directory (the sandbox)."""
    projects.load(project_name)
    if local:
        folder = projects.path(project_name)
        return f"{shlex.quote(_script('hpogrid-evaluate'))} --project {shlex.quote(str(folder))}"
    from .backends.base import SubmitOptions
    from .grid import taskparams

    return taskparams.evaluation_exec(SubmitOptions())
