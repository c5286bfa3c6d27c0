"""Export a project's results to MLflow: one experiment named after the project, one run per point.

Each run has the point's hyperparameters as params, its learning curve (every number of every
per-iteration report, with its step) and final metric as metrics, and tags saying where it came
from. Runs are found again by the tag ``hpogrid.point_key`` (campaign:point), so exporting twice
adds nothing; a run left half-written by an interrupted export is replaced.
"""

from __future__ import annotations

import logging
import math
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from ..errors import HpogridError
from ..records import PointState
from ._deps import require
from ._load import Results, iter_reports, point_params

__all__ = ["MlflowExportError", "default_uri", "export", "POINT_KEY_TAG"]

POINT_KEY_TAG = "hpogrid.point_key"
DONE_TAG = "hpogrid.exported"
_BATCH = 1000  # MLflow's log_batch limit for metrics


class MlflowExportError(HpogridError):
    """The MLflow tracking server or store refused the export."""


def default_uri() -> str:
    """``./mlruns``: an SQLite store ``./mlruns/mlflow.db`` (MLflow 3 no longer writes plain-folder stores)."""
    return "sqlite:///" + (Path.cwd() / "mlruns" / "mlflow.db").as_posix()


def _default_artifacts() -> str:
    return (Path.cwd() / "mlruns" / "artifacts").as_uri()


@contextmanager
def _quiet() -> Iterator[None]:
    """MLflow and alembic log each schema step of a new store at INFO; keep the terminal for the report."""
    loggers = [logging.getLogger(n) for n in ("mlflow", "alembic")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def point_key(campaign: Any, point: Any) -> str:
    return f"{campaign}:{point}"


def export(results: Results, tracking_uri: str | None = None, *, experiment: str | None = None) -> dict[str, Any]:
    """Export the finished, stopped and failed points; returns ``{experiment, experiment_id, tracking_uri,
    created, skipped, unfinished}``. Running and waiting points are left for a later export."""
    require("mlflow")
    from mlflow.entities import Metric, Param, RunStatus, ViewType
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    default = tracking_uri is None
    uri = default_uri() if default else tracking_uri
    name = experiment or results.project
    if default:
        (Path.cwd() / "mlruns").mkdir(exist_ok=True)
    created = skipped = unfinished = 0
    try:
        with _quiet():
            client = MlflowClient(tracking_uri=uri)
            exp = client.get_experiment_by_name(name)
            if exp is None:
                exp_id = client.create_experiment(
                    name, artifact_location=_default_artifacts() if default else None,
                    tags={"hpogrid.project": results.project, "hpogrid.metric": results.metric_name,
                          "hpogrid.mode": results.mode})
            else:
                exp_id = exp.experiment_id
                if exp.lifecycle_stage == "deleted":
                    client.restore_experiment(exp_id)
            existing: dict[str, list[Any]] = {}
            token = None
            while True:
                page = client.search_runs([exp_id], run_view_type=ViewType.ACTIVE_ONLY, max_results=1000,
                                          page_token=token)
                for run in page:
                    key = run.data.tags.get(POINT_KEY_TAG)
                    if key is not None:
                        existing.setdefault(key, []).append(run)
                token = page.token
                if not token:
                    break

            for _, row in results.frame.iterrows():
                if not PointState(row["status"]).final:
                    unfinished += 1
                    continue
                key = point_key(row["campaign"], row["point"])
                runs = existing.get(key, [])
                if any(r.data.tags.get(DONE_TAG) == "1" for r in runs):
                    skipped += 1
                    continue
                for r in runs:  # half-written by an interrupted export: write it again
                    client.delete_run(r.info.run_id)
                _export_point(client, exp_id, results, row, key, Metric, Param, RunStatus)
                created += 1
    except MlflowException as exc:
        raise MlflowExportError(f"MLflow at {uri} refused the export: {exc.message}") from exc
    return {"experiment": name, "experiment_id": exp_id, "tracking_uri": uri, "created": created,
            "skipped": skipped, "unfinished": unfinished}


def _ms(t: Any) -> int | None:
    return None if t is None or (isinstance(t, float) and math.isnan(t)) else int(float(t) * 1000)


def _text(v: Any) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)


def _export_point(client: Any, exp_id: str, results: Results, row: Any, key: str, Metric: Any, Param: Any,
                  RunStatus: Any) -> None:
    start, end = _ms(row["started"]), _ms(row["ended"])
    tags = {
        POINT_KEY_TAG: key, "hpogrid.project": results.project, "hpogrid.campaign": str(row["campaign"]),
        "hpogrid.point": str(row["point"]), "hpogrid.backend": _text(row["backend"]),
        "hpogrid.status": str(row["status"]), "hpogrid.attempts": str(row["attempts"]),
        "hpogrid.metric": results.metric_name, "hpogrid.mode": results.mode,
    }
    for col in ("site", "host"):
        if _text(row[col]):
            tags[f"hpogrid.{col}"] = _text(row[col])
    if _text(row["message"]):
        tags["hpogrid.message"] = _text(row["message"])[:5000]
    run = client.create_run(exp_id, start_time=start, tags=tags, run_name=f"point {results.point_label(row)}")
    run_id = run.info.run_id

    params = [Param(str(k), _text(v)[:6000]) for k, v in point_params(results, row).items()]
    metrics = []
    last_step, seen = 0, set()
    for step, ts, values in iter_reports(row["reports"]):
        stamp = _ms(ts) or start or end or 0
        for k, v in values.items():
            metrics.append(Metric(k, v, stamp, step))
            seen.add(k)
        last_step = max(last_step, step)
    stamp = end or start or 0
    if results.metric_name not in seen and not math.isnan(row["metric"]):
        metrics.append(Metric(results.metric_name, float(row["metric"]), stamp, last_step))
    if not math.isnan(row["loss"]):
        metrics.append(Metric("hpo_loss", float(row["loss"]), stamp, last_step))
    for i in range(0, max(len(params), 1), 100):
        client.log_batch(run_id, params=params[i:i + 100])
    for i in range(0, len(metrics), _BATCH):
        client.log_batch(run_id, metrics=metrics[i:i + _BATCH])
    # a point stopped early by the scheduler is MLflow's KILLED (its tag hpogrid.status says "stopped")
    status = RunStatus.to_string({"finished": RunStatus.FINISHED, "stopped": RunStatus.KILLED}.get(
        row["status"], RunStatus.FAILED))
    client.set_terminated(run_id, status=status, end_time=end)
    client.set_tag(run_id, DONE_TAG, "1")  # last: a run without it is an interrupted export
