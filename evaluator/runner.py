"""Run one trial in this process through Ray Tune's trainable machinery: no ``ray.init``, no Tuner.

A Ray Tune trial is a ``Trainable`` whose ``train()`` is called until a stop criterion holds; a
function trainable (``wrap_function``) runs the user's function in a thread and hands over one
result per ``ray.tune.report``. Ray's trial actor does exactly this; here the driver loop is ours.
The one thing Ray needs from a running cluster is a session folder for its staging paths, which
:class:`LocalStorage` puts in a private temporary folder instead.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

__all__ = ["TrialRun", "make_storage", "stop_reached", "CHECKPOINT_STATE", "USER_CHECKPOINT"]

CHECKPOINT_STATE = "hpogrid_checkpoint.json"
USER_CHECKPOINT = "checkpoint"

# Ray's auto-filled result keys, kept out of "the user's metrics" in meta.json.
_RAY_KEYS = frozenset({
    "done", "trial_id", "date", "timestamp", "time_this_iter_s", "time_total_s", "pid", "hostname",
    "node_ip", "config", "time_since_restore", "iterations_since_restore", "timesteps_since_restore",
    "training_iteration", "checkpoint_dir_name", "should_checkpoint", "__duplicate__", "experiment_tag",
    "warmup_time", "episodes_total", "timesteps_total",
})


def make_storage(root: Path) -> Any:
    """A Ray ``StorageContext`` rooted in ``root`` that works without a Ray session."""
    from ray.train._internal.storage import StorageContext

    class LocalStorage(StorageContext):
        def _get_session_path(self) -> str:  # Ray's default asks the running Ray node
            return (Path(self.storage_fs_path) / "session").as_posix()

    return LocalStorage(storage_path=str(root), experiment_dir_name="trial", trial_dir_name="trial_0")


def stop_reached(result: Mapping[str, Any], stop: Mapping[str, float]) -> bool:
    """Ray Tune's dict stop rule: any ``result[key] >= value``."""
    for key, bound in stop.items():
        value = result.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= bound:
            return True
    return False


def _jsonable(value: Any, depth: int = 0) -> Any:
    """Small JSON-safe copies of reported values (numpy scalars to Python, long strings cut)."""
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0 and not isinstance(value, (str, bytes)):
        try:
            value = value.item()
        except (TypeError, ValueError):
            pass
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)  # 'nan', 'inf', '-inf' (JSON has none)
    if isinstance(value, str):
        return value if len(value) <= 200 else value[:197] + "..."
    if depth < 1 and isinstance(value, Mapping):
        return {str(k): _jsonable(v, depth + 1) for k, v in list(value.items())[:20]}
    if depth < 1 and isinstance(value, (list, tuple)) and len(value) <= 20:
        return [_jsonable(v, depth + 1) for v in value]
    return None


def result_record(result: Mapping[str, Any], received: float) -> dict[str, Any]:
    """What meta.json keeps of one Ray result: iteration, times, the user's metrics."""
    record: dict[str, Any] = {
        "training_iteration": result.get("training_iteration"),
        "timestamp": round(received, 3),
        "time_this_iter_s": result.get("time_this_iter_s"),
        "time_total_s": result.get("time_total_s"),
    }
    metrics = {}
    for key, value in result.items():
        if key in _RAY_KEYS or len(metrics) >= 50:
            continue
        cleaned = _jsonable(value)
        if cleaned is not None or value is None:
            metrics[str(key)] = cleaned
    record["metrics"] = metrics
    if result.get("checkpoint_dir_name") or result.get("should_checkpoint"):
        record["checkpoint"] = True
    return record


@dataclass
class TrialRun:
    """One trial of ``trainable_cls`` with ``config``, stepped until ``stop`` (or the trainable is done).

    ``results`` gets every raw Ray result (the function API's final duplicate excluded) as it
    arrives; ``records`` their meta.json form. Call :meth:`run` (in any thread); the outcome is in
    ``error`` (an exception from user code), ``exit_code`` (the training called ``sys.exit``) or
    ``finished``.
    """

    trainable_cls: type
    config: dict[str, Any]
    stop: dict[str, float]
    checkpoint_save: Path | None = None
    checkpoint_load: Path | None = None
    point: Mapping[str, Any] | None = None
    on_result: Callable[[dict[str, Any]], None] | None = None
    results: list[dict[str, Any]] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    restored: dict[str, Any] | None = None
    error: BaseException | None = None
    exit_code: int | str | None = None
    finished: bool = False
    timings: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self) -> None:
        t0 = time.time()
        workdir = Path(tempfile.mkdtemp(prefix="hpogrid-trial-"))
        trainable = None
        try:
            storage = make_storage(workdir)
            trainable = self.trainable_cls(config=dict(self.config), storage=storage)
            self.timings["setup_s"] = time.time() - t0
            if self.checkpoint_load is not None:
                self._restore(trainable)
            t1 = time.time()
            self._loop(trainable)
            self.timings["train_s"] = time.time() - t1
            self.finished = True
        except _FunctionExited:
            self.exit_code = 0
        except SystemExit as exc:
            self.exit_code = 0 if exc.code is None else exc.code
        except BaseException as exc:  # user code may raise anything
            self.error = exc
        finally:
            t2 = time.time()
            if trainable is not None:
                try:
                    trainable.stop()
                except BaseException as exc:  # an error in user cleanup is still the user's error
                    if self.error is None and not self.finished:
                        self.error = exc
            shutil.rmtree(workdir, ignore_errors=True)
            self.timings["teardown_s"] = time.time() - t2

    def _loop(self, trainable: Any) -> None:
        from ray.tune.result import RESULT_DUPLICATE

        is_function = _is_function_trainable(trainable)
        stop = dict(self.stop)
        if not is_function and not stop:
            stop = {"training_iteration": 1}  # a class trainable never stops by itself
        while True:
            try:
                result = trainable.train()
            except RuntimeError as exc:
                # Ray's function runner swallows SystemExit(0) (and StopIteration) in the training
                # thread, which then ends without its final result; the next train() says so.
                if is_function and "Should not have reached here" in str(exc):
                    raise _FunctionExited() from None
                raise
            if result.get(RESULT_DUPLICATE):
                return  # the function returned: its last result was already seen
            received = time.time()
            with self.lock:
                self.results.append(result)
                self.records.append(result_record(result, received))
            if self.on_result is not None:
                self.on_result(result)
            if self.checkpoint_save is not None:
                if is_function:
                    if result.get("should_checkpoint") or result.get("checkpoint_dir_name"):
                        self._save(trainable)
                else:
                    self._save(trainable)
            if result.get("done") or stop_reached(result, stop):
                return

    # ---- checkpoints for retried jobs ---------------------------------------------------------
    def _save(self, trainable: Any) -> None:
        """Keep ``checkpoint_save`` = the latest checkpoint + our state, replaced atomically."""
        saved = trainable.save()
        checkpoint = getattr(saved, "checkpoint", None)
        if checkpoint is None:
            return
        target = Path(self.checkpoint_save)
        fresh = target.with_name(target.name + ".tmp")
        old = target.with_name(target.name + ".old")
        shutil.rmtree(fresh, ignore_errors=True)
        fresh.mkdir(parents=True)
        shutil.copytree(checkpoint.path, fresh / USER_CHECKPOINT)
        metrics = saved.metrics or {}
        with self.lock:
            records = list(self.records)
        state = {
            "point": dict(self.point) if self.point is not None else None,
            "training_iteration": metrics.get("training_iteration", len(records)),
            "time_total_s": metrics.get("time_total_s"),
            "saved_at": time.time(),
            "records": records[-200:],
        }
        (fresh / CHECKPOINT_STATE).write_text(json.dumps(state), encoding="utf-8")
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            target.rename(old)
        fresh.rename(target)
        shutil.rmtree(old, ignore_errors=True)

    def _restore(self, trainable: Any) -> None:
        from ray.train._internal.checkpoint_manager import _TrainingResult
        from ray.tune import Checkpoint

        source = Path(self.checkpoint_load)
        state_file = source / CHECKPOINT_STATE
        if not state_file.is_file() or not (source / USER_CHECKPOINT).is_dir():
            return  # first attempt: nothing to resume
        state = json.loads(state_file.read_text(encoding="utf-8"))
        if self.point is not None and state.get("point") is not None and state["point"] != dict(self.point):
            sys.stderr.write(
                f"hpogrid-evaluate: warning: checkpoint {source} belongs to point {state['point']}, "
                f"not {dict(self.point)}; starting afresh\n"
            )
            return
        metrics = {"training_iteration": int(state.get("training_iteration") or 0)}
        if state.get("time_total_s") is not None:
            metrics["time_total_s"] = state["time_total_s"]
        trainable.restore(_TrainingResult(checkpoint=Checkpoint.from_directory(str(source / USER_CHECKPOINT)), metrics=metrics))
        self.restored = {"from": str(source), "training_iteration": metrics["training_iteration"], "records": state.get("records", [])}


class _FunctionExited(Exception):
    """A function trainable ended by ``sys.exit(0)`` before returning."""


def _is_function_trainable(trainable: Any) -> bool:
    from ray.tune.trainable.function_trainable import FunctionTrainable

    return isinstance(trainable, FunctionTrainable)
