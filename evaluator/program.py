"""``hpogrid-evaluate``: evaluate one point, as a PanDA ``evaluationExec`` or a local job.

In its working directory (the job folder) it reads ``input.json`` (the point) and, optionally,
``input_ds.json`` (the training files), loads the project (``project.json`` + ``scripts/``), runs the
training in this process through Ray Tune's trainable machinery until the HPO config's ``stop``,
and writes ``output.json`` = ``{"status": S, "loss": L, "message": M}`` and a metadata file.

The loss is the **last** reported value of the metric (Ray Tune's default ``scope="last"``, the
value its searchers are told), negated for ``mode: max``; ``meta.json`` also keeps the best value
and every reported result. Status codes: :mod:`hpogrid.evaluator.status`.

Exit status: 0 when the evaluation ran and output.json was written (whatever its status); 1 for an
input problem (output.json is still written, status 7, when the job folder is writable); 2 for a
command-line usage error; 3 when output.json could not be written.

For warm fork servers: ``preload()`` once in the parent, then in each forked child
``os.chdir(job_dir); os._exit(main([...]))``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import signal
import socket
import sys
import tarfile
import threading
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from hpogrid.common import JsonFileError, JsonProblem, atomic_write_text, loss_of, read_json

from .errors import EvaluatorError, InputError
from .status import ExitCode, Status

if TYPE_CHECKING:
    from .preload import ProjectPreload

__all__ = ["main", "console_main", "preload", "evaluate_results", "SENT_AT_ENV", "OUTPUT_FILE", "INPUT_FILE", "INPUT_DS_FILE"]

INPUT_FILE = "input.json"
INPUT_DS_FILE = "input_ds.json"
OUTPUT_FILE = "output.json"
META_LIMIT = 1_000_000  # PanDA keeps job metadata under 1 MB
PROG = "hpogrid-evaluate"


class _Terminated(BaseException):
    """Raised in the main thread by the SIGTERM/SIGINT handler."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


# ---- public entry points --------------------------------------------------------------------------
def preload(project_dir: str | os.PathLike[str] | None = None) -> "ProjectPreload | None":
    """Import everything a job needs (Ray Tune's trainables, storage, the adapters), so a parent
    process can import once and ``os.fork()`` one child per job; the child pays milliseconds.

    With ``project_dir``, also import the project's training module (:mod:`.preload`: call again
    before each fork, an edited script is re-imported) and return the outcome: the module, or the
    reason jobs import it themselves."""
    from .adapters import ensure_train_report_compat, prepare_ray_environment

    prepare_ray_environment()
    import pyarrow.fs  # noqa: F401  (Ray's storage layer)
    import ray.train  # noqa: F401
    import ray.tune  # noqa: F401
    from ray.train._internal import session  # noqa: F401
    from ray.train._internal.checkpoint_manager import _TrainingResult  # noqa: F401
    from ray.train._internal.storage import StorageContext  # noqa: F401
    from ray.tune.trainable.function_trainable import FunctionTrainable, wrap_function  # noqa: F401

    from . import project, runner  # noqa: F401

    ensure_train_report_compat()
    _quiet_ray_logs()
    _version()
    if project_dir is None:
        return None
    from .preload import preload_project

    return preload_project(project_dir)


def console_main() -> None:  # pragma: no cover - exercised through the installed command
    """The console script: ``main()``, then exit with its status."""
    sys.exit(main())


def main(argv: Sequence[str] | None = None, *, hard_exit: bool = True) -> int:
    """Run one evaluation; returns the exit status and never calls ``sys.exit``.

    One exception: when the training thread is still running after a timeout or SIGTERM (a Python
    thread cannot be killed), output.json and the metadata are written first, then the process
    ends with ``os._exit(status)`` unless ``hard_exit=False``.
    """
    parser = _parser()
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code) if isinstance(exc.code, int) else ExitCode.USAGE
    if args.check:
        return _check(args.project)
    if args.workdir is not None:
        try:
            os.chdir(args.workdir)
        except OSError as exc:
            _say(f"cannot enter the job folder {args.workdir}: {exc.strerror}")
            return ExitCode.NO_OUTPUT
    job = _Job(args)
    rc = job.execute()
    if job.abandoned and hard_exit:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(rc)
    return rc


def _check(project_option: str | None) -> int:
    """``--check``: the pre-flight of a project, run before a campaign starts (the client runs it in
    a subprocess with a time limit, since importing a user's script can be slow or unsafe). Loads
    project.json, imports the training script and checks that the model has one of the five styles.
    Prints ``{"style": ...}`` and returns 0, or one line on stderr and :attr:`ExitCode.INPUT_ERROR`."""
    from .adapters import check_model
    from .project import load_project, resolve_project_dir

    try:
        project = load_project(resolve_project_dir(project_option))
        style = check_model(project.script_path, project.model)
    except EvaluatorError as exc:
        _say(_one_line(str(exc)))
        return ExitCode.INPUT_ERROR
    sys.stdout.write(json.dumps({"style": style, "script": project.script, "model": project.model}) + "\n")
    sys.stdout.flush()
    return ExitCode.EVALUATED


# ---- the job ---------------------------------------------------------------------------------------
class _Job:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.workdir = Path.cwd()
        self.output = self.workdir / OUTPUT_FILE
        self.meta_path = self.workdir / args.meta
        self.started = time.time()
        self.deadline = self.started + args.timeout if args.timeout is not None else None
        self.meta: dict[str, Any] = {
            "hpogrid_version": None,
            "project": None,
            "point": None,
            "metric": None,
            "mode": None,
            "rule": "last",
        }
        self.run: Any = None
        self.abandoned = False
        self.finishing = False
        self.timings: dict[str, float] = _launch_timings(self.started)
        self.trained_at: float | None = None

    # -- main flow --
    def execute(self) -> int:
        previous = self._install_signals()
        try:
            return self._execute()
        except _Terminated as term:
            kept = self._final_result()
            if kept is not None:  # the training had ended (cleanup was running): its metric stands
                self.abandoned = True
                _say(f"terminated by {signal.Signals(term.signum).name} after the training ended; its result is kept")
                return self._finish(*kept)
            return self._finish_interrupted(Status.TERMINATED, f"terminated by {signal.Signals(term.signum).name}")
        finally:
            self._restore_signals(previous)

    def _execute(self) -> int:
        try:
            self._remove_stale_output()
            point = _read_point(self.workdir / INPUT_FILE)
            self.meta["point"] = point
            training_files = _read_input_ds(self.workdir / INPUT_DS_FILE)
            from .project import load_project, resolve_project_dir

            project = load_project(resolve_project_dir(self.args.project, self.workdir))
            self.meta.update(project=project.name, metric=project.metric, mode=project.mode, stop=project.stop)
            if not project.script_path.is_file():
                raise InputError(f"training script {project.script_path} does not exist")
            unpacked = _unpack_inputs(self.workdir, training_files)
            self.meta.update(input_ds=training_files, unpacked=unpacked)
            ckpt_save = self._path_option(self.args.checkpoint_save)
            ckpt_load = self._path_option(self.args.checkpoint_load)
        except EvaluatorError as exc:
            return self._finish_input_error(exc)
        except Exception as exc:  # a bug of ours: keep the traceback, still leave a result
            traceback.print_exc()
            return self._finish(Status.INTERNAL_ERROR, None, f"internal error: {_last_line(exc)}")

        config = {**project.param, **point}
        overlap = sorted(set(project.param) & set(point))
        if overlap:
            _say(f"warning: hyperparameter(s) {', '.join(overlap)} override model_config.param of the same name")
        self.meta["config_param"] = _small(project.param)

        driver = _Driver(project, config, point, ckpt_save, ckpt_load)
        self.run = driver
        self.timings["prepare_s"] = time.time() - self.started
        self.meta["preload"] = _preload_note(project.script_path)
        thread = threading.Thread(target=driver.main, name="hpogrid-training", daemon=True)
        thread.start()
        while thread.is_alive():
            timeout = 1.0
            if self.deadline is not None:
                remaining = self.deadline - time.time()
                if remaining <= 0:
                    return self._finish_interrupted(Status.TIMEOUT, f"time limit of {self.args.timeout:g} s exceeded")
                timeout = min(timeout, remaining)
            thread.join(timeout)
        self.trained_at = time.time()

        self.meta["style"] = driver.style
        self.timings.update(driver.timings)
        if driver.input_error is not None:
            return self._finish_input_error(driver.input_error)
        if driver.error is not None:
            exc = driver.error
            sys.stderr.write(f"{PROG}: the training raised an exception:\n")
            traceback.print_exception(type(exc), exc, exc.__traceback__)
            return self._finish(Status.USER_ERROR, None, _last_line(exc))
        status, loss, message = evaluate_results(driver.raw_results(), project.metric, project.mode)
        code = driver.exit_code
        if code is not None and status is Status.METRIC_MISSING:  # deterministic: not retried
            message = f"the training called sys.exit({code!r}) before reporting the metric '{project.metric}'"
        elif code not in (None, 0):
            status, loss, message = Status.USER_ERROR, None, f"the training called sys.exit({code!r})"
        return self._finish(status, loss, message)

    def _final_result(self) -> tuple[Status, float | None, str] | None:
        """The evaluation's result when the training loop has ended with a usable metric (a stop
        during the trainable's cleanup must not cost the point its result), else None."""
        driver = self.run
        trial = getattr(driver, "trial", None)
        if trial is None or not trial.finished or trial.error is not None:
            return None
        status, loss, message = evaluate_results(driver.raw_results(), self.meta["metric"], self.meta["mode"])
        return (status, loss, message) if status is Status.OK else None

    # -- endings --
    def _finish_input_error(self, exc: BaseException) -> int:
        _say(_one_line(str(exc)))
        written = self._write_output(Status.INPUT_ERROR, None, _one_line(str(exc)))
        return ExitCode.INPUT_ERROR if written or not self.workdir.exists() else ExitCode.NO_OUTPUT

    def _finish_interrupted(self, status: Status, message: str) -> int:
        self.finishing = True
        self.abandoned = self.run is not None
        _say(message)
        return self._finish(status, None, message)

    def _finish(self, status: Status, loss: float | None, message: str) -> int:
        self.finishing = True
        written = self._write_output(status, loss, message)
        return ExitCode.EVALUATED if written else ExitCode.NO_OUTPUT

    # -- files --
    def _write_output(self, status: Status, loss: float | None, message: str) -> bool:
        self.meta.update(status=int(status), status_name=status.name, loss=loss, message=message)
        try:
            _write_meta(self.meta_path, self._meta())
        except OSError as exc:
            _say(f"cannot write {self.meta_path}: {exc.strerror}")
        try:
            # durable (fsync): output.json is the result; meta.json is informational
            atomic_write_text(self.output, json.dumps({"status": int(status), "loss": loss, "message": message}), durable=True)
            return True
        except OSError as exc:
            _say(f"cannot write {self.output}: {exc.strerror}")
            return False

    def _meta(self) -> dict[str, Any]:
        meta = dict(self.meta)
        meta["hpogrid_version"] = _version()
        end = time.time()
        run = self.run
        records: list[dict[str, Any]] = []
        if run is not None:
            records = run.records()
            if run.restored:
                meta["restored"] = {k: v for k, v in run.restored.items() if k != "records"}
                records = [dict(r, attempt="previous") for r in run.restored.get("records", [])] + records
            self.timings.update(run.timings)
        metric = meta.get("metric")
        meta["results"] = records
        meta["n_results"] = len(records)
        meta["best"] = _best(records, metric, meta.get("mode")) if metric else None
        if self.trained_at is not None:
            self.timings["finish_s"] = end - self.trained_at
        meta["timings"] = {
            "start": _iso(self.started),
            "end": _iso(end),
            "start_timestamp": round(self.started, 3),
            "total_s": round(end - self.started, 4),
            **{k: round(v, 4) for k, v in self.timings.items()},
        }
        meta["host"] = {
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "ray": _ray_version(),
            "cwd": str(self.workdir),
        }
        return meta

    def _remove_stale_output(self) -> None:
        try:
            self.output.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise InputError(f"cannot remove the stale {self.output}: {exc.strerror}") from exc

    def _path_option(self, value: str | None) -> Path | None:
        if value is None or value == "":
            return None
        path = Path(value)
        return path if path.is_absolute() else self.workdir / path

    # -- signals --
    def _install_signals(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}

        def handler(signum: int, _frame: Any) -> None:
            if not self.finishing:
                raise _Terminated(signum)

        previous = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, handler)
        return previous

    @staticmethod
    def _restore_signals(previous: Mapping[int, Any]) -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)


class _Driver:
    """Runs in the training thread: import the user's script (user code), then the trial."""

    def __init__(self, project: Any, config: dict, point: dict, ckpt_save: Path | None, ckpt_load: Path | None):
        self.project = project
        self.config = config
        self.point = point
        self.ckpt_save = ckpt_save
        self.ckpt_load = ckpt_load
        self.style: str | None = None
        self.trial: Any = None
        self.error: BaseException | None = None
        self.exit_code: int | str | None = None
        self.input_error: EvaluatorError | None = None
        self.timings: dict[str, float] = {}
        self.restored: dict[str, Any] | None = None

    def main(self) -> None:
        from .adapters import load_trainable
        from .errors import ScriptError
        from .preload import preloaded_module
        from .runner import TrialRun

        t0 = time.time()
        try:
            script = self.project.script_path
            trainable_cls, self.style = load_trainable(script, self.project.model, preloaded_module(script))
        except ScriptError as exc:
            self.input_error = exc
            return
        except BaseException as exc:  # the script's own top level failed: user code
            self.error = exc
            return
        finally:
            self.timings["load_s"] = time.time() - t0
        _quiet_ray_logs()
        self.trial = TrialRun(
            trainable_cls,
            self.config,
            self.project.stop,
            checkpoint_save=self.ckpt_save,
            checkpoint_load=self.ckpt_load,
            point=self.point,
        )
        self.trial.run()
        self.timings.update(self.trial.timings)
        self.restored = self.trial.restored
        self.error = self.trial.error
        self.exit_code = self.trial.exit_code

    def records(self) -> list[dict[str, Any]]:
        if self.trial is None:
            return []
        with self.trial.lock:
            return list(self.trial.records)

    def raw_results(self) -> list[Mapping[str, Any]]:
        results: list[Mapping[str, Any]] = []
        if self.restored:
            results += [r.get("metrics", {}) for r in self.restored.get("records", [])]
        if self.trial is not None:
            with self.trial.lock:
                results += list(self.trial.results)
        return results


# ---- the loss ------------------------------------------------------------------------------------
def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and value in ("nan", "inf", "-inf"):  # meta.json's spelling
        return float(value)
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        try:
            return _as_number(value.item())
        except (TypeError, ValueError):
            return None
    return None


def evaluate_results(results: Sequence[Mapping[str, Any]], metric: str, mode: str) -> tuple[Status, float | None, str]:
    """``(status, loss, message)`` from the reported results: the last value of ``metric``
    (``_metric`` when the script reported a bare number and ``metric`` is absent), negated for max."""
    values = [r[metric] for r in results if metric in r]
    name = metric
    if not values:
        fallback = [r["_metric"] for r in results if "_metric" in r]
        if fallback:
            values, name = fallback, "_metric"
    if not values:
        if not results:
            return Status.METRIC_MISSING, None, f"the training reported no result (expected the metric '{metric}')"
        keys = sorted({k for r in results for k in r if not str(k).startswith("_") and k not in _AUTO_KEYS})
        return Status.METRIC_MISSING, None, f"no reported result holds the metric '{metric}'; reported: {', '.join(keys) or 'nothing'}"
    value = _as_number(values[-1])
    if value is None:
        return Status.METRIC_MISSING, None, f"the metric '{name}' is not a number: {values[-1]!r}"
    if math.isnan(value):
        return Status.METRIC_NAN, None, f"the metric '{name}' is NaN"
    if math.isinf(value):
        return Status.METRIC_INF, None, f"the metric '{name}' is {'+' if value > 0 else '-'}inf"
    return Status.OK, loss_of(value, mode) + 0.0, ""


_AUTO_KEYS = frozenset({
    "done", "trial_id", "date", "timestamp", "time_this_iter_s", "time_total_s", "pid", "hostname", "node_ip",
    "config", "time_since_restore", "iterations_since_restore", "training_iteration", "checkpoint_dir_name",
    "should_checkpoint",
})


def _best(records: Sequence[Mapping[str, Any]], metric: str, mode: str | None) -> dict[str, Any] | None:
    best: dict[str, Any] | None = None
    for record in records:
        metrics = record.get("metrics") or {}
        value = _as_number(metrics.get(metric, metrics.get("_metric")))
        if value is None or not math.isfinite(value):
            continue
        better = best is None or (value < best["value"] if mode == "min" else value > best["value"])
        if better:
            best = {"value": value, "training_iteration": record.get("training_iteration")}
    return best


# ---- inputs --------------------------------------------------------------------------------------
def _read_json(path: Path, what: str) -> Any:
    """``hpogrid.common.read_json``, its error worded for a job's log (exit status 7)."""
    try:
        return read_json(path, what)
    except JsonFileError as exc:
        if exc.problem is JsonProblem.MISSING:
            raise InputError(f"no {path.name} in {path.parent} ({what})") from None
        if exc.problem is JsonProblem.UNREADABLE:
            raise InputError(f"cannot read {path}: {exc.cause}") from exc.cause
        raise InputError(f"{path.name} is not valid JSON: {exc.detail}") from None


def _read_point(path: Path) -> dict[str, Any]:
    point = _read_json(path, "the point to evaluate")
    if isinstance(point, list) and len(point) == 1 and isinstance(point[0], dict):
        point = point[0]  # hpogrid 1.x accepted a one-point list
    if not isinstance(point, dict):
        raise InputError(f"{path.name} must hold one point, a JSON object of hyperparameter values, got {json.dumps(point)[:80]}")
    return point


def _read_input_ds(path: Path) -> list[str]:
    if not path.exists():
        return []
    names = _read_json(path, "the training files")
    if isinstance(names, str):
        names = [n for n in names.split(",") if n]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise InputError(f"{path.name} must hold a JSON list of file names, got {json.dumps(names)[:80]}")
    return names


def _unpack_inputs(workdir: Path, names: Sequence[str]) -> list[str]:
    """Unpack the ``*.tar.gz``/``*.tgz`` training files (listed in input_ds.json, or lying in the job
    folder) into the job folder, refusing members that would land outside it."""
    archives: list[Path] = []
    for name in names:
        base = name.rsplit(":", 1)[-1]  # a Rucio "scope:name"
        path = workdir / base
        if not path.is_file() and (workdir / Path(base).name).is_file():
            path = workdir / Path(base).name
        if not path.is_file():
            _say(f"warning: training file {name} listed in {INPUT_DS_FILE} is not in {workdir}")
            continue
        if path.name.endswith((".tar.gz", ".tgz")) and path not in archives:
            archives.append(path)
    for path in sorted(workdir.glob("*.tar.gz")) + sorted(workdir.glob("*.tgz")):
        if path.is_file() and path not in archives:
            archives.append(path)
    done = []
    for path in archives:
        try:
            with tarfile.open(path, "r:gz") as tar:
                tar.extractall(workdir, filter="data")
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise InputError(f"cannot unpack training file {path.name}: {exc}") from exc
        done.append(path.name)
    return done


# ---- timings and preload (fork servers) ---------------------------------------------------------
#: Set by a runner to the time.time() it asked for the job: ``launch_s`` = fork (or exec + imports).
SENT_AT_ENV = "HPOGRID_JOB_SENT_AT"


def _launch_timings(started: float) -> dict[str, float]:
    try:
        sent = float(os.environ.get(SENT_AT_ENV, ""))
    except ValueError:
        return {}
    return {"launch_s": max(0.0, started - sent)} if 0 < sent <= started + 1 else {}


def _preload_note(script_path: Path) -> dict[str, Any]:
    """Whether this job got the training module from a warm parent; the reason it did not, logged."""
    from .preload import FALLBACK_ENV, preloaded_module

    if preloaded_module(script_path) is not None:
        return {"preloaded": True}
    reason = os.environ.get(FALLBACK_ENV) or None
    if reason:
        _say(f"the training module was not preloaded ({reason}); importing it in this job")
    return {"preloaded": False, "reason": reason}


# ---- helpers -------------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Evaluate one point of an hpogrid project in the current folder (a PanDA evaluationExec): "
            "read input.json (and input_ds.json), run the training through Ray Tune's trainable "
            "machinery, write output.json {status, loss, message} and a metadata file."
        ),
        epilog=(
            "loss = the last reported value of the metric, negated for mode max. "
            "output.json status: 0 ok, 1 exception in the training, 2 metric missing, 3 metric NaN, "
            "4 metric inf, 5 timeout, 6 terminated (SIGTERM/SIGINT), 7 input error, 8 internal error. "
            "Exit status: 0 evaluated (output.json written), 1 input error, 2 usage error, "
            "3 output.json could not be written."
        ),
    )
    p.add_argument("--project", metavar="DIR", help="project folder (project.json + scripts/); default $HPOGRID_PROJECT_DIR, else the working directory")
    p.add_argument("--timeout", metavar="SECONDS", type=_positive_float, help="time limit of the whole evaluation")
    p.add_argument("--meta", metavar="FILE", default="meta.json", help="metadata file for PanDA's --evaluationMeta (default meta.json)")
    p.add_argument("--checkpoint-save", metavar="PATH", help="keep the latest checkpoint in this folder (for a retried job)")
    p.add_argument("--checkpoint-load", metavar="PATH", help="resume from this checkpoint folder when it exists")
    p.add_argument("--workdir", metavar="DIR", help="job folder to work in (default: the working directory)")
    p.add_argument("--check", action="store_true",
                   help="pre-flight only: import the training script, check that the model exists with a supported "
                        "signature, print {\"style\": ...}; exit 0 if fine, else one line on stderr and exit 1")
    return p


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"the timeout must be a positive number of seconds, got {text!r}")
    return value


def _write_meta(path: Path, meta: dict[str, Any]) -> None:
    text = json.dumps(meta, default=str)
    if len(text.encode()) > META_LIMIT * 0.9:
        records = meta.get("results") or []
        meta = dict(meta, results=records[:100] + records[-100:], results_truncated=True)
        text = json.dumps(meta, default=str)
        if len(text.encode()) > META_LIMIT * 0.9:  # huge metrics: keep the ends, without metrics
            meta["results"] = [{k: v for k, v in r.items() if k != "metrics"} for r in meta["results"][-20:]]
            meta["config_param"] = None
            text = json.dumps(meta, default=str)
        if len(text.encode()) > META_LIMIT * 0.9:  # a huge point: keep the verdict only
            keep = ("hpogrid_version", "project", "metric", "mode", "rule", "status", "status_name", "loss", "message",
                    "n_results", "best", "timings", "host")
            meta = {k: meta.get(k) for k in keep}
            meta["truncated"] = True
            text = json.dumps(meta, default=str)
    atomic_write_text(path, text)


def _small(value: Any) -> Any:
    text = json.dumps(value, default=str)
    return value if len(text) < 20_000 else {"truncated": True, "keys": sorted(map(str, value))[:200]}


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="milliseconds")


def _last_line(exc: BaseException) -> str:
    lines = traceback.format_exception_only(type(exc), exc)
    return _one_line(lines[-1]) if lines else type(exc).__name__


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _say(message: str) -> None:
    sys.stderr.write(f"{PROG}: {message}\n")
    sys.stderr.flush()


_VERSION: str | None = None


def _version() -> str:
    global _VERSION
    if _VERSION is None:
        try:
            from importlib.metadata import version

            _VERSION = version("hpogrid")
        except Exception:  # not installed as a distribution (a source checkout)
            _VERSION = "unknown"
    return _VERSION


def _ray_version() -> str | None:
    ray = sys.modules.get("ray")
    return getattr(ray, "__version__", None)


def _quiet_ray_logs() -> None:
    import logging

    for name in ("ray.train", "ray.tune"):
        logging.getLogger(name).setLevel(logging.WARNING)


if __name__ == "__main__":  # pragma: no cover
    console_main()
