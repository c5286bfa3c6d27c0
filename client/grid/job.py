"""What one ``hpogrid run`` grid job executes: the project's whole search on the job's node.

``python3 -m hpogrid.client.grid.job --project NAME --meta userJobMetadata.json`` in the job's
working directory (the unpacked sandbox: project.json + scripts/): the project is registered in a
private ``HPOGRID_HOME`` under the working directory, ``hpogrid local_run NAME`` runs the search
(``hpogrid submit_idds NAME --backend embedded`` where ``local_run`` is not installed), and a
summary of the campaign (every point, the best one) is written for PanDA's job metadata (< 1 MB).
The exit status is the search's.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ..records import Point, PointState

META_LIMIT = 1_000_000


def _hpogrid() -> list[str]:
    script = Path(sys.executable).parent / "hpogrid"
    return [str(script)] if script.exists() else [sys.executable, "-m", "hpogrid.client.cli"]


def summary(project: dict[str, Any], points: list[Point], started: float, ended: float,
            status: int) -> dict[str, Any]:
    hpo = project["hpo_config"]
    finished = [p for p in points if p.state is PointState.FINISHED and p.loss is not None]
    best = min(finished, key=lambda p: (p.loss, p.id)) if finished else None
    metric = hpo.get("metric", "loss")
    result = {}
    for i, p in enumerate(points):
        row = dict(p.params)
        row[metric] = p.metric if p.metric is not None else p.loss
        row.update(loss=p.loss, state=p.state.value, message=p.message or "")
        if p.started is not None and p.ended is not None:
            row["time_s"] = round(p.ended - p.started, 4)
        result[str(i)] = row
    return {
        "project_name": project["project_name"],
        "start_datetime": _dt.datetime.fromtimestamp(started, _dt.timezone.utc).isoformat(timespec="seconds"),
        "end_datetime": _dt.datetime.fromtimestamp(ended, _dt.timezone.utc).isoformat(timespec="seconds"),
        "start_timestamp": round(started, 3), "task_time_s": round(ended - started, 3),
        "hyperparameters": sorted(project["search_space"]), "metric": metric, "mode": hpo.get("mode"),
        "seed": hpo.get("seed"),
        "best_config": best.params if best else None,
        "best_metric_score": (best.metric if best.metric is not None else best.loss) if best else None,
        "status": status, "result": result,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m hpogrid.client.grid.job")
    p.add_argument("--project", required=True, help="project name (the sandbox's project.json)")
    p.add_argument("--meta", default="userJobMetadata.json", help="metadata file PanDA keeps for the job")
    p.add_argument("--job", default="1", help="the job's number in its task (prun's %%RNDM:0): offsets the seed")
    args = p.parse_args(argv)
    here = Path.cwd()
    os.environ["HPOGRID_HOME"] = str(here / ".hpogrid")
    os.environ.pop("HPOGRID_PROJECT_DIR", None)
    from hpogrid.client import campaigns, projects

    data = json.loads((here / "project.json").read_text())
    hpo = data["hpo_config"]
    if hpo.get("seed") is not None and args.job.isdigit():  # job 1 keeps the project's seed
        hpo["seed"] = int(hpo["seed"]) + max(0, int(args.job) - 1)
    name = args.project
    meta_path = here / args.meta
    meta_path.write_text("{}")  # something is there even if the search dies (looping-job detection)
    projects.create(name, scripts_path=here / (data.get("scripts") or "scripts"), model_config=data["model_config"],
                    search_space=data["search_space"], hpo_config=data["hpo_config"],
                    grid_config={**data["grid_config"], "backend": "embedded"}, replace=True)
    started = time.time()
    help_text = subprocess.run([*_hpogrid(), "--help"], capture_output=True, text=True).stdout
    if " local_run" in help_text:
        command = [*_hpogrid(), "local_run", name]
    else:
        command = [*_hpogrid(), "submit_idds", name, "--backend", "embedded", "--progress", "plain"]
    print(f"=== {' '.join(command)}", flush=True)
    status = subprocess.call(command)
    ended = time.time()
    store = campaigns.latest(name)
    points = store.points() if store is not None else []
    meta = summary(data, points, started, ended, status)
    text = json.dumps(meta, default=str)
    if len(text) > META_LIMIT:
        meta["result"] = {k: v for k, v in list(meta["result"].items())[:200]}
        meta["result_truncated"] = True
        text = json.dumps(meta, default=str)
    meta_path.write_text(text)
    return status


if __name__ == "__main__":
    sys.exit(main())
