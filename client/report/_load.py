"""Load a project's results into one table, whatever backend wrote them.

Every source (``local_run``, embedded ``submit_idds``, grid campaigns) writes the same campaign
store (``hpogrid.client.store``), so one loader reads them all: one row per point, the same
columns for every source. Grid campaigns are brought up to date first through their backend's
``refresh``.
"""

from __future__ import annotations

import datetime as _dt
import fnmatch
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from hpogrid.common import loss_of, metric_of

from .. import campaigns, projects
from ..errors import GridError, HpogridError, NotFoundError, UsageError
from ..campaigns import parse_range
from ..records import Campaign, Point, PointState, Registered
from ..store import Store, StorageError, registered
from ._deps import require

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["Results", "NoResultsError", "FIXED_COLUMNS", "STATUS_ORDER", "select_campaigns", "load",
           "load_stores", "parse_range"]

# Columns every report has, around the hyperparameters (which go between ``status`` and ``metric``).
LEAD_COLUMNS = ("campaign", "point", "backend", "status")
TAIL_COLUMNS = ("metric", "loss", "attempts", "site", "host", "started", "ended", "duration_s", "iterations",
                "message")
FIXED_COLUMNS = LEAD_COLUMNS + TAIL_COLUMNS
# ``stopped``: a local_run trial cut short by Ray Tune's scheduler; its metric is from fewer iterations
# than a full run, so it is listed and counted apart from ``finished`` and never ranked or plotted with them.
STATUS_ORDER = {PointState.FINISHED: 0, PointState.STOPPED: 1, PointState.FAILED: 2, PointState.RUNNING: 3,
                PointState.PROPOSED: 4}


class NoResultsError(HpogridError):
    """The selection holds nothing to report (no campaign, no point, nothing finished to plot)."""


@dataclass
class Results:
    """A project's results: one row per point in ``frame``, best first.

    ``frame`` columns: ``campaign, point, backend, status, <one per hyperparameter>, metric, loss,
    attempts, site, host, started, ended (epoch seconds), duration_s, iterations, message``, plus
    ``reports`` (the per-iteration results, for MLflow) and ``order`` (evaluation order).
    ``metric`` is the user's metric (``metric_name``, better when ``mode`` says so); ``loss`` is
    what the steering minimised. Finished points come first sorted by the metric (best first),
    then failed, running and waiting ones.
    """

    project: str
    metric_name: str
    mode: str
    params: list[str]
    param_columns: dict[str, str]
    categorical: set[str]
    campaigns: list[Campaign]
    frame: "pd.DataFrame"
    notes: list[str] = field(default_factory=list)

    # ---- views ------------------------------------------------------------------------
    @property
    def columns(self) -> list[str]:
        """The columns of the CSV/JSON files, in order (``metric`` as in ``frame``; see ``file_columns``)."""
        return [*LEAD_COLUMNS, *(self.param_columns[p] for p in self.params), *TAIL_COLUMNS]

    @property
    def metric_column(self) -> str:
        """The metric's column in the CSV/JSON files: named after the metric (``accuracy``), or
        ``metric:<name>`` when that name is taken by another column; ``loss`` when the metric is the
        loss itself (the two columns would be equal, so the files have one)."""
        if self.loss_is_metric:
            return "loss"
        taken = {*FIXED_COLUMNS, *self.param_columns.values()} - {"metric"}
        return f"metric:{self.metric_name}" if self.metric_name in taken else self.metric_name

    @property
    def finished(self) -> "pd.DataFrame":
        return self.frame[self.frame["status"] == PointState.FINISHED]

    @property
    def stopped(self) -> "pd.DataFrame":
        """Points stopped early by a scheduler (``local_run``), best first."""
        return self.frame[self.frame["status"] == PointState.STOPPED]

    @property
    def failed(self) -> "pd.DataFrame":
        return self.frame[self.frame["status"] == PointState.FAILED]

    @property
    def rated(self) -> "pd.DataFrame":
        """Finished points that have a metric (a non-finite loss is stored as missing)."""
        f = self.finished
        return f[f["metric"].notna()]

    def best(self) -> dict[str, Any] | None:
        rated = self.rated
        return None if rated.empty else rated.iloc[0].to_dict()

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(STATUS_ORDER, 0)
        for status, n in self.frame["status"].value_counts().items():
            out[str(status)] = int(n)
        return out

    @property
    def loss_is_metric(self) -> bool:
        """The metric is the loss itself (``loss``, minimised): one column says it all."""
        return self.metric_name == "loss" and self.mode == "min"

    def better(self, a: float, b: float) -> bool:
        """Whether metric ``a`` is better than ``b`` under the mode."""
        return loss_of(a, self.mode) < loss_of(b, self.mode)

    def wall_time(self) -> float | None:
        """Seconds from each campaign's start to its end (or to its last result), summed."""
        total, any_ = 0.0, False
        for c in self.campaigns:
            pts = self.frame[self.frame["campaign"] == c.id]
            start = c.started
            if start is None and pts["started"].notna().any():
                start = float(pts["started"].min())
            end = c.ended
            if end is None and pts["ended"].notna().any():
                end = float(pts["ended"].max())
            if start is not None and end is not None and end >= start:
                total += end - start
                any_ = True
        return total if any_ else None

    def evaluation_time(self) -> float:
        """Seconds of evaluation used (the last attempt of every point that has a start and an end)."""
        d = self.frame["duration_s"]
        return float(d[d.notna()].sum())

    def label(self) -> str:
        """``campaign 3`` or ``campaigns 1, 2, 5``."""
        ids = [str(c.id) for c in self.campaigns]
        return f"campaign {ids[0]}" if len(ids) == 1 else f"campaigns {', '.join(ids)}"

    def point_label(self, row: Any) -> str:
        return str(row["point"]) if len(self.campaigns) == 1 else f"{row['campaign']}:{row['point']}"

    def table(self) -> "pd.DataFrame":
        """The rows as written to CSV/JSON: ISO times (UTC), JSON text for non-scalar values."""
        out = self.frame[self.columns].copy()
        for col in ("started", "ended"):
            out[col] = [_iso(v) for v in self.frame[col]]
        for p in self.params:
            col = self.param_columns[p]
            out[col] = [_scalar(v) for v in out[col]]
        if self.loss_is_metric:
            return out.drop(columns=["metric"])
        return out.rename(columns={"metric": self.metric_column})


# ---- selection ------------------------------------------------------------------------------
def _task_names(entry: Registered, store: Store) -> list[str]:
    row = store.campaign()
    names = [str(entry.id)]
    for key in ("taskname", "task_name", "outDS"):  # a PanDA task is named after its output dataset
        if row.settings.get(key):
            names.append(str(row.settings[key]))
    if row.remote_id:
        names.append(str(row.remote_id))
    return names


def select_campaigns(project: str, *, campaign: int | str | None = None, limit: int | None = None,
                     days: float | None = None, taskname: str | None = None,
                     id_range: str | None = None) -> list[Registered]:
    """Registry entries of the campaigns to report, oldest first.

    ``campaign`` picks one; otherwise, without filters, the project's latest campaign; with
    filters (``days``, ``taskname``, ``id_range``, ``limit``), every matching campaign (the
    ``limit`` most recent ones).
    """
    projects.load(project)  # NotFoundError for an unknown project
    filters = [name for name, v in (("--limit", limit), ("--days", days), ("--taskname", taskname),
                                    ("--range", id_range)) if v is not None]
    if campaign is not None and filters:
        raise UsageError(f"--campaign picks one campaign; it cannot be combined with {', '.join(filters)}")
    if campaign is not None:
        entry = registered(campaign)
        if entry.project != project:
            raise NotFoundError(f"campaign {campaign} belongs to project {entry.project!r}, not {project!r}")
        if not campaigns.store_path(Path(entry.path)).exists():
            raise NotFoundError(f"campaign {campaign}'s store is gone ({entry.path})")
        return [entry]
    entries = campaigns.for_project(project)
    if not entries:
        raise NoResultsError(f"project {project!r} has no campaigns yet (run `hpogrid local_run {project}` "
                             f"or `hpogrid submit_idds {project}`)")
    if all(v is None for v in (limit, days, taskname, id_range)):
        return [entries[-1]]
    if limit is not None and limit < 1:
        raise UsageError(f"--limit must be >= 1, got {limit}")
    if days is not None and days <= 0:
        raise UsageError(f"--days must be > 0, got {days}")
    lo, hi = parse_range(id_range) if id_range is not None else (None, None)
    since = time.time() - days * 86400 if days is not None else None
    chosen = []
    for e in entries:
        if lo is not None and e.id < lo or hi is not None and e.id > hi:
            continue
        if since is not None and e.created < since:
            continue
        if taskname is not None:
            with campaigns.open_entry(e, readonly=True) as store:
                if not any(fnmatch.fnmatchcase(n, taskname) for n in _task_names(e, store)):
                    continue
        chosen.append(e)
    if limit is not None:
        chosen = chosen[-limit:]
    if not chosen:
        ids = ", ".join(str(e.id) for e in entries)
        raise NoResultsError(f"no campaign of project {project!r} matches the filters (its campaigns: {ids})")
    return chosen




def _refresh(store: Store, backend_name: str) -> str | None:
    """Let a grid backend bring an unsettled campaign's store up to date; returns a warning or None.

    Local backends write their store as they go, and a settled grid campaign has nothing new. When
    the grid cannot be reached (no credential, server down) the stored results are reported, with
    the reason as a warning.
    """
    from ..backends import BACKENDS, get_backend, runs_here

    row = store.campaign()
    if backend_name not in BACKENDS or runs_here(backend_name) or row.status.final:
        return None

    try:
        with Store(store.path) as writable:  # ``store`` is a reader's, read-only
            get_backend(backend_name).refresh(writable)
    except GridError as exc:
        return f"campaign {row.id} not refreshed from the grid ({exc}); showing what was stored"
    return None


def load(project: str, *, campaign: int | str | None = None, limit: int | None = None, days: float | None = None,
         taskname: str | None = None, id_range: str | None = None, refresh: bool = True) -> Results:
    """The results of a project's campaigns (see :func:`select_campaigns`) as one table."""
    entries = select_campaigns(project, campaign=campaign, limit=limit, days=days, taskname=taskname,
                               id_range=id_range)
    stores: list[Store] = []
    notes: list[str] = []
    try:
        for e in entries:  # read-only: a report writes nothing; a damaged store is named, the others reported
            store = None
            try:
                store = campaigns.open_entry(e, readonly=True)
                store.counts()
                note = _refresh(store, e.backend) if refresh else None
            except StorageError as exc:
                if store is not None:
                    store.close()
                if len(entries) == 1:
                    raise
                notes.append(f"campaign {e.id} left out: {exc}")
                continue
            stores.append(store)
            if note is not None:
                notes.append(note)
        results = load_stores(stores, project=project)
        results.notes.extend(notes)
        return results
    finally:
        for s in stores:
            s.close()


def load_stores(stores: Sequence[Store], *, project: str | None = None) -> Results:
    """One table from open campaign stores (all of one project, measuring one metric)."""
    pd = require("pandas")
    if not stores:
        raise NoResultsError("no campaign to report")
    rows_c = [s.campaign() for s in stores]
    project = project or rows_c[0].project
    try:
        proj = projects.load(project)
    except NotFoundError:
        proj = {}
    hpo = proj.get("hpo_config", {})
    space = proj.get("search_space", {}) or {}
    metric_name, mode = _metric_and_mode(rows_c, hpo)

    records: list[dict[str, Any]] = []
    order_keys: list[str] = list(space)
    for store, crow in zip(stores, rows_c):
        for p in store.points():
            for k in p.params:
                if k not in order_keys:
                    order_keys.append(k)
            records.append(_record(p, crow, mode))
    if not records:
        raise NoResultsError(f"{_label(rows_c)} of project {project!r} has no points yet")

    appeared = {k for r in records for k in r["_params"]}
    params = [k for k in order_keys if k in appeared]  # the search space's order, then any others
    param_columns = {p: (f"param:{p}" if p in FIXED_COLUMNS or p in ("reports", "order") else p) for p in params}
    categorical = {p for p, spec in space.items() if isinstance(spec, dict) and spec.get("method") == "categorical"}
    for r in records:
        for p, v in r.pop("_params").items():
            r[param_columns[p]] = v
            if not _is_number(v):
                categorical.add(p)
    for r in records:
        for p in params:
            r.setdefault(param_columns[p], None)

    frame = pd.DataFrame.from_records(records)
    # Evaluation order: by end time (then start, then id); used for "best so far".
    frame["order"] = 0
    done = frame.sort_values(["ended", "started", "campaign_n", "point"], na_position="last", kind="stable").index
    frame.loc[done, "order"] = range(1, len(done) + 1)
    frame["_status"] = frame["status"].map(STATUS_ORDER).fillna(9)
    fin = frame["status"].isin((PointState.FINISHED, PointState.STOPPED))
    frame["_key"] = loss_of(frame["metric"].where(fin), mode)
    frame = frame.sort_values(["_status", "_key", "campaign_n", "point"], na_position="last", kind="stable")
    frame = frame.drop(columns=["_status", "_key", "campaign_n"]).reset_index(drop=True)
    return Results(project=project, metric_name=metric_name, mode=mode, params=params, param_columns=param_columns,
                   categorical=categorical, campaigns=rows_c, frame=frame)


# ---- helpers --------------------------------------------------------------------------------
def _label(rows: Sequence[Campaign]) -> str:
    ids = [str(r.id) for r in rows]
    return f"campaign {ids[0]}" if len(ids) == 1 else f"campaigns {', '.join(ids)}"


def _metric_and_mode(rows: Sequence[Campaign], hpo: dict[str, Any]) -> tuple[str, str]:
    seen = {(r.metric or hpo.get("metric") or "loss", r.mode or hpo.get("mode") or "min") for r in rows}
    if len(seen) > 1:
        shown = ", ".join(f"{m} ({d})" for m, d in sorted(seen))
        raise UsageError(f"the selected campaigns measure different metrics ({shown}); report one with --campaign ID")
    metric, mode = seen.pop()
    if mode not in ("min", "max"):
        raise UsageError(f"mode must be 'min' or 'max', got {mode!r}")
    return metric, mode


def _record(p: Point, crow: Campaign, mode: str) -> dict[str, Any]:
    metric, loss = p.metric, p.loss
    if p.state in (PointState.FINISHED, PointState.STOPPED):
        if metric is None and loss is not None:  # grid results carry the loss only (L = metric, negated for max)
            metric = metric_of(loss, mode)
        if loss is None and metric is not None:
            loss = loss_of(metric, mode)
    started, ended = p.started, p.ended
    if not p.state.final:  # no result yet (a requeued point keeps an old end time)
        ended = None
    duration = ended - started if started is not None and ended is not None and ended >= started else None
    try:
        cn = int(crow.id)
    except (TypeError, ValueError):
        cn = 0
    return {
        "campaign": str(crow.id), "campaign_n": cn, "point": int(p.id), "backend": crow.backend,
        "status": p.state.value, "_params": p.params, "metric": _num(metric), "loss": _num(loss),
        "attempts": int(p.attempts or 0), "site": p.site, "host": p.host,
        "started": _num(started), "ended": _num(ended), "duration_s": _num(duration),
        "iterations": len(p.reports or []), "message": p.message or "", "reports": p.reports or [],
    }


def _num(v: Any) -> float:
    return float(v) if v is not None else math.nan


def _is_number(v: Any) -> bool:
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))


def _iso(v: Any) -> str | None:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return _dt.datetime.fromtimestamp(float(v), _dt.timezone.utc).isoformat(timespec="seconds")


def _scalar(v: Any) -> Any:
    if isinstance(v, (list, dict, tuple)):
        return json.dumps(v)
    return v


def point_params(results: Results, row: Any) -> dict[str, Any]:
    """A row's hyperparameters as plain Python values (numpy scalars unwrapped)."""
    out = {}
    for p in results.params:
        v = row[results.param_columns[p]]
        if hasattr(v, "item") and not isinstance(v, (str, bytes)) and getattr(v, "ndim", 0) == 0:
            v = v.item()
        out[p] = v
    return out


def iter_reports(reports: Iterable[dict[str, Any]]) -> Iterable[tuple[int, float | None, dict[str, float]]]:
    """``(step, timestamp, {metric: value})`` per reported result, numbers only.

    Accepts the evaluator's records (``{"training_iteration", "timestamp", "metrics": {...}}``)
    and flat dicts of metrics.
    """
    skip = {"training_iteration", "timestamp", "time_this_iter_s", "time_total_s", "checkpoint", "metrics",
            "done", "trial_id", "date", "pid", "hostname", "node_ip", "config", "time_since_restore",
            "iterations_since_restore"}
    for i, rec in enumerate(reports, start=1):
        if not isinstance(rec, dict):
            continue
        values = rec.get("metrics") if isinstance(rec.get("metrics"), dict) else {k: v for k, v in rec.items()
                                                                                  if k not in skip}
        step = rec.get("training_iteration")
        step = int(step) if isinstance(step, (int, float)) and not isinstance(step, bool) else i
        ts = rec.get("timestamp")
        ts = float(ts) if isinstance(ts, (int, float)) and not isinstance(ts, bool) else None
        nums = {str(k): float(v) for k, v in values.items()
                if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
        yield step, ts, nums
