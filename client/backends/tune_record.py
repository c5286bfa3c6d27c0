"""``local_run``'s store writer: each Ray Tune trial a point of the campaign, one progress line per
finished trial, and the end-of-run summary."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from hpogrid.common import metric_of
from hpogrid.steering.space import SearchSpace

from ..errors import HpogridError
from .tune_search import point_of

__all__ = ["LocalRunResult", "recorder", "Recorder", "summary_lines"]


@dataclass
class LocalRunResult:
    """What a finished ``local_run`` returns: its campaign, the trials as stored, the best one."""

    campaign_id: str
    campaign_dir: Path
    metric: str
    mode: str
    points: list[dict[str, Any]]
    best: dict[str, Any] | None
    seconds: float
    log_dir: Path
    counts: dict[str, int] = field(default_factory=dict)
    seed: int | None = None
    status: str = "finished"
    message: str | None = None


def recorder(*args: Any) -> "Recorder":
    """A :class:`Recorder` that is also a ``ray.tune.Callback`` (Ray is imported only now)."""
    from ray.tune import Callback

    cls = type("Recorder", (Recorder, Callback), {})
    return cls(*args)


class Recorder:
    """Ray Tune callback hooks that write each trial into the campaign store as a point and print
    one progress line per finished trial (mixed with ``ray.tune.Callback`` by :func:`recorder`)."""

    def __init__(self, store: Any, space: SearchSpace, mapper: Callable, metric: str, mode: str, total: int,
                 echo: Callable[[str], None]):
        self.store, self.space, self.mapper, self.metric, self.mode = store, space, mapper, metric, mode
        self.total, self.echo = total, echo
        self.ids: dict[str, int] = {}
        self.started: dict[str, float] = {}
        self.results: dict[str, list[dict[str, Any]]] = {}
        self.records: dict[str, list[dict[str, Any]]] = {}
        self.cut: dict[str, bool] = {}  # trial id -> stopped early by the scheduler
        self.done = 0
        self.best: float | None = None
        self.host = os.uname().nodename
        self.max_failures = 0
        self.stop: dict[str, float] = {}  # the run's stop criteria: a trial that meets them is not cut short
        self.failed_in_a_row = 0
        self.stopped_because: str | None = None

    def __getstate__(self) -> dict[str, Any]:
        """Ray pickles the run config (callbacks included) for its experiment state; the store
        connection and the printer stay with the live object."""
        state = dict(self.__dict__)
        state.update(store=None, echo=None, mapper=None)
        return state

    # Ray Tune callback hooks
    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if trial.trial_id in self.ids:
            return
        point = point_of(trial.config, self.space, self.mapper)
        (pid,) = self.store.add_points([point])
        self.store.start_point(pid, host=self.host, job_dir=str(getattr(trial, "local_path", "") or "") or None)
        self.ids[trial.trial_id] = pid
        self.started[trial.trial_id] = time.time()
        self.results[trial.trial_id] = []
        self.records[trial.trial_id] = []

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        from hpogrid.evaluator.runner import result_record

        if trial.trial_id not in self.ids:
            self.on_trial_start(iteration, trials, trial)
        self.results[trial.trial_id].append({k: v for k, v in result.items() if k != "config"})
        self.cut[trial.trial_id] = _cut_short(result, self.stop)
        self.records[trial.trial_id].append(result_record(result, time.time()))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        from hpogrid.evaluator.program import evaluate_results
        from hpogrid.evaluator.status import Status

        pid = self._pid(trial)
        status, loss, message = evaluate_results(self.results[trial.trial_id], self.metric, self.mode)
        records = self.records[trial.trial_id][-500:]
        if status == Status.OK and self.cut.get(trial.trial_id):
            metric = metric_of(loss, self.mode)
            self.store.stop_point(pid, loss=loss, metric=metric, reports=records, host=self.host,
                                  message=f"by the scheduler at iteration {len(records)}")
            self._progress(trial, f"stopped early, {self.metric}={_fmt(metric)}")
        elif status == Status.OK:
            metric = metric_of(loss, self.mode)
            self.store.finish_point(pid, loss=loss, metric=metric, reports=records, host=self.host)
            self.best = loss if self.best is None else min(self.best, loss)
            self.failed_in_a_row = 0
            self._progress(trial, f"{self.metric}={_fmt(metric)}")
        else:
            self._failed(trial, pid, message, records)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        pid = self._pid(trial)
        self._failed(trial, pid, _trial_error(trial), self.records[trial.trial_id][-500:])

    def _failed(self, trial: Any, pid: int, message: str, records: list) -> None:
        self.store.fail_point(pid, message, reports=records, host=self.host)
        self._progress(trial, f"failed: {message}")
        self.failed_in_a_row += 1
        if self.max_failures and self.failed_in_a_row >= self.max_failures and self.stopped_because is None:
            self.stopped_because = (f"stopped after {self.failed_in_a_row} trials failed in a row (max_failures "
                                    f"{self.max_failures}); last reason: {message}")

    # helpers
    def _pid(self, trial: Any) -> int:
        if trial.trial_id not in self.ids:
            self.on_trial_start(0, [], trial)
        return self.ids[trial.trial_id]

    def _progress(self, trial: Any, what: str) -> None:
        self.done += 1
        seconds = time.time() - self.started.get(trial.trial_id, time.time())
        n = len(self.records.get(trial.trial_id, []))
        best = "" if self.best is None else f"  best {self.metric}={_fmt(self.best if self.mode == 'min' else -self.best)}"
        self.echo(f"[{self.done}/{self.total}] trial {self.ids[trial.trial_id]}: {what} "
                  f"({n} iteration{'s' if n != 1 else ''}, {seconds:.1f} s){best}")

    def close_open(self, message: str) -> None:
        for tid, pid in self.ids.items():
            try:
                point = self.store.point(pid)
            except HpogridError:
                continue
            if point["state"] == "running":
                self.store.fail_point(pid, message, reports=self.records.get(tid, [])[-500:], host=self.host)



def _cut_short(result: dict, stop: Mapping[str, float]) -> bool:
    """Whether the scheduler stopped the trial at ``result``: Ray Tune marks a result ``done`` when
    it decides to stop the trial, which is the scheduler's doing unless the run's stop criteria are
    met (a trial that returns by itself ends after a result that is not ``done``)."""
    from hpogrid.evaluator.runner import stop_reached

    return bool(result.get("done")) and not (stop and stop_reached(result, stop))


def _trial_error(trial: Any) -> str:
    path = getattr(trial, "error_file", None)
    text = ""
    try:
        if path and os.path.exists(path):
            text = Path(path).read_text(errors="replace")
    except OSError:
        pass
    if not text:
        text = str(getattr(trial, "error_msg", "") or "the trial failed")
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    # Ray appends its own frames; the user's exception is the last "Name: message" line
    for line in reversed(lines):
        head = line.split(":", 1)[0]
        if head and head.replace(".", "").replace("_", "").isalnum() and (head.endswith("Error") or head.endswith("Exception") or head in ("SystemExit", "KeyboardInterrupt")):
            return line[:300]
    return (lines[-1] if lines else "the trial failed")[:300]


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.6g}"


def summary_lines(result: LocalRunResult, names: list[str], limit: int = 20) -> list[str]:
    """The end-of-run table: trials sorted by the metric (best first), then the best config."""
    finished = [p for p in result.points if p["state"] == "finished" and p["loss"] is not None]
    failed = [p for p in result.points if p["state"] != "finished" or p["loss"] is None]
    finished.sort(key=lambda p: (p["loss"], p["id"]))
    rows = finished + failed
    header = ["trial", *names, result.metric, "iterations", "state"]
    body = []
    for p in rows[:limit]:
        body.append([str(p["id"]), *(_cell(p["params"].get(n)) for n in names),
                     _fmt(p["metric"]) if p["metric"] is not None else "-", str(len(p.get("reports") or [])),
                     p["state"] if p["state"] == "finished" else f"{p['state']}: {(p.get('message') or '')[:40]}"])
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(header)]
    from ..engine import Progress, failure_lines

    stopped = sum(p["state"] == "stopped" for p in failed)  # cut short by the scheduler: not failures
    lines = [f"\n{len(finished)} finished, " + (f"{stopped} stopped early, " if stopped else "")
             + f"{len(failed) - stopped} failed in {result.seconds:.1f} s "
             f"(campaign {result.campaign_id}, seed {result.seed}; `hpogrid report` shows it again)"]
    if result.status != "finished" and result.message:
        lines.append(f"campaign {result.campaign_id} {result.status}: {result.message}")
    reasons = Progress(result.campaign_id, 0)
    for p in failed:
        if p["state"] != "stopped":
            reasons.count_failure(p.get("message"))
    lines += [line.replace("{id}", str(result.campaign_id)) for line in failure_lines(reasons.failure_reasons)]
    lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in body]
    if len(rows) > limit:
        lines.append(f"... {len(rows) - limit} more")
    if result.best is not None:
        lines.append(f"best {result.metric}: {_fmt(result.best['metric'])}  config: {result.best['params']}")
    else:
        lines.append("no trial finished with a value of the metric")
    return lines


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
