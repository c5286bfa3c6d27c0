"""The grid backend: a campaign is one PanDA task with ``hpoWorkflow`` (iDDS runs the rounds).

``submit`` builds the task phpo builds (``hpogrid.client.grid.taskparams``), checks the credential
and the input dataset, uploads the project folder as the sandbox and sends the task through
panda-client; the campaign store keeps the jediTaskID in ``remote_id``. The grid runs the rounds
and jobs; ``refresh`` reads points and losses from iDDS and job metadata from PanDA into the same
store shape every backend writes, so ``tasks`` and ``report`` need nothing grid-specific.
"""

from __future__ import annotations

import json
import math
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from hpogrid.common import FAILURE_LOSS, metric_of

from .. import campaigns, projects
from ..errors import CampaignError
from ..grid.auth import voms_nickname
from ..records import PointState
from ..store import Store
from .base import Backend, Plan, RemoteTask, SubmitOptions

__all__ = ["PandaBackend", "campaign_status", "FINAL_TASK_STATES"]

GRID_MAX_ATTEMPTS = 5  # PanDA's retries of a point before it reports loss 1e5

# PanDA task status -> campaign status (docs/DESIGN.md §3)
_TASK_STATES = {
    "finished": "finished", "done": "finished",
    "failed": "failed", "broken": "failed", "exhausted": "failed",
    "aborted": "killed", "aborting": "killed", "toabort": "killed", "killed": "killed",
}
FINAL_TASK_STATES = ("finished", "done", "failed", "broken", "exhausted", "aborted")


def campaign_status(task_status: str) -> str:
    return _TASK_STATES.get(task_status, "running")


def _echo(line: str) -> None:
    print(line, file=sys.stderr)


class PandaBackend(Backend):
    """Campaigns on PanDA + iDDS, through panda-client and idds-client."""

    name = "panda"
    runs_here = False
    driven_here = False

    def __init__(self, echo: Callable[[str], None] = _echo):
        self.echo = echo

    # ---- building (no network) -----------------------------------------------------------
    def grid_task(self, project_name: str, options: SubmitOptions, nickname: str | None = None) -> Any:
        """The task this submission would send (``GridTask``); nothing is contacted."""
        from ..grid.auth import nickname_hint
        from ..grid.taskparams import build_hpo_task

        project = projects.load(project_name)
        nick = nickname or nickname_hint() or "NICKNAME"
        return build_hpo_task(project, options, nickname=nick)

    def plan(self, project_name: str, options: SubmitOptions) -> Plan:
        """What ``submit_idds --dry-run`` prints: task parameters and the exact commands."""
        task = self.grid_task(project_name, options)
        return Plan(self.name, project_name, int(task.task_params["hpoRequestData"]["max_points"]),
                    details=task.describe(), task=task, sort_keys=True,
                    commands={"steering_exec": task.steering_exec, "evaluation_exec": task.evaluation_exec})

    # ---- the contract ---------------------------------------------------------------------
    def submit(self, project_name: str, options: SubmitOptions) -> Store:
        from ..grid import auth, panda, rucio
        from ..grid.sandbox import make_sandbox

        project = projects.load(project_name)
        credential = auth.check_credential()
        nickname = credential.nickname or voms_nickname()
        in_ds = project["grid_config"].get("inDS")
        if in_ds:
            rucio.check_dataset(in_ds)
        task = self.grid_task(project_name, options, nickname=nickname)
        with tempfile.TemporaryDirectory(prefix="hpogrid-sandbox-") as tmp:
            archive = make_sandbox(projects.path(project_name), Path(tmp) / task.sandbox)
            uploaded = panda.upload_sandbox(archive)
        if uploaded != task.sandbox:
            _rename_sandbox(task.task_params, task.sandbox, uploaded)
        if options.min_unevaluated_points:
            self.echo("note: iDDS 2.6.21 does not read minUnevaluatedPoints; it is sent for newer iDDS versions")
        if options.max_attempts is not None and options.max_attempts != GRID_MAX_ATTEMPTS:
            self.echo(f"note: on the grid PanDA retries a point {GRID_MAX_ATTEMPTS} times; "
                      f"--max_attempts {options.max_attempts} does not apply")
        task_id = panda.submit_task(task.task_params)
        hpo = project["hpo_config"]
        store = campaigns.new(
            project_name, self.name, remote_id=str(task_id), status="running", algorithm=hpo["algorithm"],
            metric=hpo["metric"], mode=hpo["mode"], max_points=hpo["num_trials"],
            max_concurrent=hpo["max_concurrent"],
            points_per_round=task.task_params["hpoRequestData"]["num_points_per_generation"],
            min_unevaluated=options.min_unevaluated_points, max_attempts=GRID_MAX_ATTEMPTS,
            started=time.time(),
            settings={"jediTaskID": task_id, "outDS": task.out_ds, "sandbox": uploaded,
                      "steeringExec": task.steering_exec, "evaluationExec": task.evaluation_exec,
                      "site": task.task_params.get("site") or task.task_params.get("includedSite"),
                      "seed": options.seed if options.seed is not None else hpo.get("seed")},
        )
        self.echo(f"submitted jediTaskID={task_id} (outDS {task.out_ds}); campaign {store.campaign().id}")
        return store

    def resume(self, store: Store, options: SubmitOptions) -> Store:
        """On the grid, continuing a campaign is PanDA's task retry."""
        return self.retry(store, options)

    def kill(self, store: Store) -> None:
        from ..grid import auth, panda

        task_id = _task_id(store)
        auth.check_credential()
        message = panda.kill_task(task_id)
        store.update_campaign(message=f"kill requested: {message}")
        self.echo(f"task {task_id}: kill requested ({message})")

    def retry(self, store: Store, options: SubmitOptions | None = None) -> Store:
        """PanDA's task retry (its failed jobs run again; the grid reopens the points)."""
        from ..grid import auth, panda

        task_id = _task_id(store)
        auth.check_credential()
        message = panda.retry_task(task_id)
        store.follow_remote("running", ended=None, message=f"retry requested: {message}")
        self.echo(f"task {task_id}: retry requested ({message})")
        return store

    def list_tasks(self, limit: int = 1000, days: float | None = 30, taskname: str | None = None,
                   jeditaskid: str | None = None, status: list[str] | None = None,
                   **_: Any) -> list[RemoteTask]:
        """The user's PanDA tasks (``hpogrid tasks show``).

        Nothing is asked when no grid is set up (no PanDA URL, no credential in the environment).
        """
        from ..grid import monitor

        if not _grid_configured():
            return []
        rows = monitor.grid_tasks(limit=limit, days=int(days) + 1 if days is not None else None,
                                  taskname=taskname, jeditaskid=int(jeditaskid) if jeditaskid else None,
                                  status=status)
        out = []
        for r in rows:
            m = re.match(r"^user\.[^.]+\.hpogrid\.(.+)\.out\.\d{14}/?$", r["taskname"] or "")
            name = m.group(1) if m else r["taskname"]  # the project, when the default outDS pattern names it
            out.append(RemoteTask(r["jeditaskid"], name, r["status"], progress=float(r.get("pctfinished") or 0),
                                  remote_id=str(r["jeditaskid"]),
                                  message=f"{r['taskname']} at {r.get('site') or 'any site'}"))
        return out

    # ---- grid tasks that are not local campaigns (e.g. `hpogrid run` tasks) -----------------------
    def task_metadata(self, task_id: int | str) -> list[dict[str, Any]]:
        """Per-job metadata of a grid task: ``[{"PandaID": ..., "metaData": {...}}, ...]``."""
        from ..grid import auth, panda

        auth.check_credential()
        return panda.job_metadata(int(task_id))

    def kill_remote(self, task_id: int | str) -> str | None:
        """Kill a grid task by its jediTaskID (through its campaign when it has one); None: no grid set up."""
        return self._act_remote(int(task_id), "kill") if _grid_configured() else None

    def retry_remote(self, task_id: int | str) -> str | None:
        """Retry a grid task by its jediTaskID (through its campaign when it has one); None: no grid set up."""
        return self._act_remote(int(task_id), "retry") if _grid_configured() else None

    def _act_remote(self, task_id: int, verb: str) -> str:
        """Kill or retry a grid task: through its campaign when we have one (so the store follows)."""
        from ..grid import auth, monitor, panda

        auth.check_credential()
        entry = monitor.campaign_for_task(task_id)
        if entry is not None:
            quiet = PandaBackend(echo=lambda _line: None)
            with campaigns.open_campaign(entry["id"]) as store:
                if verb == "kill":
                    quiet.kill(store)
                else:
                    quiet.retry(store)
            return f"task {task_id} (campaign {entry['id']}): {verb} requested"
        action = panda.kill_task if verb == "kill" else panda.retry_task
        return f"task {task_id}: {action(task_id)}"

    def refresh(self, store: Store) -> None:
        """Task state from PanDA, points and losses from iDDS, job metadata from PanDA."""
        from ..grid import auth, idds, panda

        task_id = _task_id(store)
        credential = auth.check_credential()
        status = panda.task_status(task_id)
        metadata = panda.job_metadata(task_id)
        if store.campaign().settings.get("kind") == "run":  # `hpogrid run`: no iDDS request
            apply_run_results(store, status, metadata)
            return
        points = idds.hyperparameters(task_id, credential)
        apply_grid_results(store, status, points, metadata)


def _grid_configured() -> bool:
    import os

    env = os.environ
    return bool(env.get("PANDA_URL_SSL") or env.get("PANDA_URL") or env.get("PANDA_AUTH")
                or env.get("X509_USER_PROXY") or os.access(f"/tmp/x509up_u{os.getuid()}", os.R_OK))


def _task_id(store: Store) -> int:
    remote = store.campaign().remote_id
    if not remote:
        raise CampaignError(f"campaign {store.campaign().id} has no PanDA task id")
    return int(remote)


def _rename_sandbox(task_params: dict[str, Any], old: str, new: str) -> None:
    for param in task_params.get("jobParameters", []):
        value = param.get("value")
        if isinstance(value, str) and value.startswith(f"-a {old}"):
            param["value"] = value.replace(f"-a {old}", f"-a {new}", 1)


def _job_results(metadata: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Job metadata (the evaluator's meta.json) keyed by the canonical JSON of the point it evaluated."""
    out: dict[str, dict[str, Any]] = {}
    for row in metadata:
        meta = row.get("metaData")
        if not isinstance(meta, dict):
            continue
        point = meta.get("point")
        if isinstance(point, dict):
            out[json.dumps(point, sort_keys=True)] = meta
    return out


def apply_grid_results(store: Store, task_status: str, points: list[dict[str, Any]],
                       metadata: list[dict[str, Any]]) -> None:
    """Write what PanDA and iDDS report into the store (idempotent; finished points stay as they are)."""
    campaign = store.campaign()
    mode = campaign.mode or "min"
    known = {p.id: p for p in store.points()}
    results = _job_results(metadata)
    new = [p for p in points if p["id"].isdigit() and int(p["id"]) not in known]
    if new:
        store.add_points([p["parameters"] for p in new], ids=[int(p["id"]) for p in new])
    for p in points:
        if not p["id"].isdigit():
            continue
        pid, loss = int(p["id"]), p["loss"]
        current = known.get(pid)
        if current is not None and current.state in (PointState.FINISHED, PointState.FAILED):
            continue
        if loss is None:
            continue
        meta = results.get(json.dumps(p["parameters"], sort_keys=True), {})
        host_info = meta.get("host")
        host = host_info.get("hostname") if isinstance(host_info, dict) else host_info
        reports = meta.get("results") if isinstance(meta.get("results"), list) else None
        best = meta.get("best")
        metric = best.get("value") if isinstance(best, dict) and isinstance(best.get("value"), (int, float)) else None
        if metric is None:
            metric = metric_of(loss, mode)
        timings = meta.get("timings") if isinstance(meta.get("timings"), dict) else {}
        started = timings.get("start_timestamp") if isinstance(timings.get("start_timestamp"), (int, float)) else None
        total = timings.get("total_s") if isinstance(timings.get("total_s"), (int, float)) else None
        ended = started + total if started is not None and total is not None else None
        if not math.isfinite(loss):  # what the job's payload returned: a recorded failure, with its reason
            store.fail_point(pid, meta.get("message") or f"the evaluation returned a non-finite loss ({loss})",
                             loss=None, host=host, started=started, ended=ended)
        elif loss >= FAILURE_LOSS:
            store.fail_point(pid, meta.get("message") or "every attempt failed (PanDA reported loss 1e5)",
                             loss=loss, host=host, started=started, ended=ended)
        else:
            store.finish_point(pid, loss=loss, metric=metric, reports=reports, host=host,
                               message=meta.get("message") or "", started=started, ended=ended)
    state = campaign_status(task_status)
    fields: dict[str, Any] = {"status": state, "message": f"PanDA task status: {task_status}"}
    if task_status in FINAL_TASK_STATES and not campaign.ended:
        fields["ended"] = time.time()
    store.follow_remote(**fields)


RUN_POINT_STRIDE = 100_000  # point id of trial i of the j-th job in a `run` campaign: j * stride + i + 1


def apply_run_results(store: Store, task_status: str, metadata: list[dict[str, Any]]) -> None:
    """An ``hpogrid run`` campaign: every trial of every job (its ``userJobMetadata.json``) as a point."""
    campaign = store.campaign()
    known = {p.id for p in store.points()}
    # jobs are numbered 1, 2, ... by PandaID (new PandaIDs only grow: the numbers of known jobs stay)
    rank = {pid: n for n, pid in enumerate(sorted(int(r["PandaID"]) for r in metadata), start=1)}
    for row in metadata:
        meta = row.get("metaData")
        if not isinstance(meta, dict) or not isinstance(meta.get("result"), dict):
            continue  # a job still running has an empty metadata file
        names = meta.get("hyperparameters") or []
        metric_name = meta.get("metric") or campaign.metric or "loss"
        job = rank[int(row["PandaID"])]
        for key, trial in sorted(meta["result"].items(), key=lambda kv: int(kv[0])):
            pid = job * RUN_POINT_STRIDE + int(key) + 1
            if pid in known or not isinstance(trial, dict):
                continue
            store.add_points([{n: trial.get(n) for n in names}], ids=[pid])
            loss, metric = trial.get("loss"), trial.get(metric_name)
            loss = float(loss) if isinstance(loss, (int, float)) else None
            metric = float(metric) if isinstance(metric, (int, float)) else None
            host = f"PanDA job {row['PandaID']}"
            if trial.get("state") == "finished" and loss is not None:
                store.finish_point(pid, loss=loss, metric=metric, message=trial.get("message") or "", host=host)
            elif trial.get("state") == "stopped":  # cut short by the job's Ray Tune scheduler: a result
                store.stop_point(pid, loss=loss, metric=metric, message=trial.get("message") or "", host=host)
            else:
                store.fail_point(pid, trial.get("message") or "the trial failed", loss=loss, metric=metric, host=host)
    state = campaign_status(task_status)
    fields: dict[str, Any] = {"status": state, "message": f"PanDA task status: {task_status}"}
    if task_status in FINAL_TASK_STATES and not campaign.ended:
        fields["ended"] = time.time()
    store.follow_remote(**fields)
