"""The campaign of ``submit_idds --backend idds`` as an iDDS workflow (idds-workflow 2.6.21). Pure: no server.

One ``Workflow`` holds one HPO work (idds-atlas's ``ATLASHPOWork``), which iDDS 2.6.21 carries
round after round: its transformer runs the steering command (``docker <arguments>`` in the
round's folder, ``%IN``/``%OUT`` substituted), and its poller waits for every loss before the next
round. hpogrid's steering command is the grid form (:func:`hpogrid.client.grid.taskparams.steering_exec`):
iDDS mounts only the round folder, so the algorithm settings travel inside the command.

What iDDS 2.6.21 needs beyond the constructor (docs/IDDS_BACKEND.md):

- ``work.es = True``: the 2.6.21 poller's paged update keeps only outputs that carry a PanDA id;
  HPO points have none, so without it round 2 never comes (the poller then takes the path that
  loads every point);
- ``work.task_name``: workflowv2 orders works by it and ``ATLASHPOWork`` sets none;
- the same ``workload_id`` on the workflow and the work: the points (``/hpo/<workload_id>/...``)
  are found by it.
"""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass
from typing import Any, Mapping

from ..configs import DEFAULT_STEERING_CONTAINER
from .taskparams import steering_exec

__all__ = ["OUTPUT_JSON", "HpoWorkSpec", "work_spec", "build_workflow", "new_workload_id"]

OUTPUT_JSON = "output.json"  # %OUT: the file iDDS reads the new points from, in the round folder


@dataclass(frozen=True)
class HpoWorkSpec:
    """Everything the iDDS HPO work of one campaign holds (``--dry-run`` prints it)."""

    workload_id: int
    executable: str  # iDDS runs `executable arguments` in the round folder
    arguments: str  # the steering command (placeholders %IN %OUT %NUM_POINTS %MAX_POINTS)
    opt_space: dict[str, Any]  # the search space (also in %IN; the steering reads its own config)
    max_points: int  # the budget: points in all rounds
    num_points_per_iteration: int  # points per round
    output_json: str = OUTPUT_JSON
    es: bool = True  # required on iDDS 2.6.21 (module docstring)

    @property
    def task_name(self) -> str:
        return f"hpogrid.hpo.{self.workload_id}"

    def describe(self) -> dict[str, Any]:
        return {"workflow": {"workload_id": self.workload_id, "works": [{"type": "ATLASHPOWork",
                                                                         "task_name": self.task_name,
                                                                         **asdict(self)}]}}


def new_workload_id() -> int:
    """A workload id for a new request (iDDS stores it as a 32-bit integer; hpogrid never reuses one)."""
    return 1_000_000_000 + secrets.randbelow(1_000_000_000)


def work_spec(project: Mapping[str, Any], *, workload_id: int, points_per_round: int,
              image: str | None = None, seed: int | None = None) -> HpoWorkSpec:
    """The HPO work of a project: its budget (``num_trials``), space, algorithm, points per round."""
    hpo = project["hpo_config"]
    command = project.get("steering_exec") or steering_exec(project, image or DEFAULT_STEERING_CONTAINER, seed=seed)
    return HpoWorkSpec(workload_id=int(workload_id), executable="docker", arguments=command,
                       opt_space=dict(project["search_space"]), max_points=int(hpo["num_trials"]),
                       num_points_per_iteration=int(points_per_round))


def build_workflow(spec: HpoWorkSpec) -> Any:
    """The idds-workflow ``Workflow`` of a spec (what ``ClientManager.submit`` sends)."""
    from idds.atlas.workflowv2.atlashpowork import ATLASHPOWork
    from idds.workflowv2.workflow import Workflow

    work = ATLASHPOWork(executable=spec.executable, arguments=spec.arguments, exec_type="local",
                        opt_space=spec.opt_space, workload_id=spec.workload_id, max_points=spec.max_points,
                        num_points_per_iteration=spec.num_points_per_iteration, output_json=spec.output_json)
    work.task_name = spec.task_name
    work.es = spec.es
    workflow = Workflow(name=spec.task_name)
    workflow.set_workload_id(spec.workload_id)
    workflow.add_work(work)
    return workflow
