"""Helpers for the evaluator tests: a project folder built by hand (docs/CONTRACTS.md) and a job
folder, evaluated by the installed ``hpogrid-evaluate`` in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "scripts"
BIN = Path(sys.executable).parent


def installed(command: str) -> str:
    path = BIN / command
    if not path.exists():
        raise RuntimeError(f"{command} is not installed in {BIN}; run `make test`")
    return str(path)


def write_project(
    root: Path,
    *,
    script: str,
    model: str,
    source: str | None = None,
    metric: str = "loss",
    mode: str = "min",
    stop: dict | None = None,
    param: dict | None = None,
    helpers: dict[str, str] | None = None,
    search_space: dict | None = None,
) -> Path:
    """A project folder: project.json + scripts/ (the example of that name, or ``source``)."""
    scripts = root / "scripts"
    scripts.mkdir(parents=True, exist_ok=True)
    text = textwrap.dedent(source) if source is not None else (EXAMPLES / script).read_text()
    (scripts / script).write_text(text)
    for name, body in (helpers or {}).items():
        (scripts / name).write_text(textwrap.dedent(body))
    project = {
        "project_name": root.name,
        "hpo_config": {
            "algorithm": "random", "metric": metric, "mode": mode, "scheduler": "asynchyperband",
            "num_trials": 10, "max_concurrent": 1, "log_dir": "./log", "verbose": False,
            "stop": {"training_iteration": 1} if stop is None else stop,
            "scheduler_param": {}, "algorithm_param": {}, "seed": None,
        },
        "search_space": search_space or {"x": {"method": "uniform", "dimension": {"low": 0, "high": 1}}},
        "model_config": {"script": script, "model": model, "param": param or {}},
        "grid_config": {"site": ["ANALY_TEST"], "container": None, "retry": False, "inDS": None, "outDS": None,
                        "backend": "embedded"},
        "scripts": "scripts",
        "created": "2026-11-28T17:00:00+00:00",
        "hpogrid_version": "2.0.0",
    }
    (root / "project.json").write_text(json.dumps(project, indent=1))
    return root


@dataclass
class Evaluation:
    rc: int
    stdout: str
    stderr: str
    job: Path

    @property
    def output(self) -> dict[str, Any] | None:
        path = self.job / "output.json"
        return json.loads(path.read_text()) if path.exists() else None

    @property
    def meta(self) -> dict[str, Any] | None:
        path = self.job / "meta.json"
        return json.loads(path.read_text()) if path.exists() else None


def make_job(job: Path, point: Any, raw: str | None = None) -> Path:
    job.mkdir(parents=True, exist_ok=True)
    if raw is not None:
        (job / "input.json").write_text(raw)
    elif point is not None:
        (job / "input.json").write_text(json.dumps(point))
    return job


def evaluate(job: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120) -> Evaluation:
    proc = subprocess.run(
        [installed("hpogrid-evaluate"), *args], cwd=job, env=env, capture_output=True, text=True, timeout=timeout
    )
    return Evaluation(proc.returncode, proc.stdout, proc.stderr, job)




@dataclass
class Case:
    """One job to evaluate: a project (``write_project`` keywords), a point, extra arguments."""

    project: dict[str, Any]
    point: Any = None
    raw_input: str | None = None
    args: tuple[str, ...] = ()
    files: dict[str, bytes] | None = None


FORK_RUNNER = r"""
import json, os, sys
from hpogrid.evaluator import program

program.preload()
codes = {}
for name, job, args in json.loads(sys.stdin.read()):
    pid = os.fork()
    if pid == 0:
        os.chdir(job)
        for fd, fname in ((1, "stdout.txt"), (2, "stderr.txt")):
            target = os.open(os.path.join("..", fname), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(target, fd)
        code = program.main(args)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    codes[name] = os.waitstatus_to_exitcode(status)
print(json.dumps(codes))
"""


def run_cases(root: Path, cases: dict[str, Case], env: dict[str, str], parallel: int = 3, timeout: float = 180,
              via: str = "command") -> dict[str, Evaluation]:
    """Evaluate many independent jobs.

    ``via="command"``: the installed ``hpogrid-evaluate``, ``parallel`` processes at a time (each pays
    Ray's import). ``via="fork"``: one process imports once (``program.preload()``) and forks a child
    per job that calls ``program.main(argv)``, as the embedded engine's fork server does; the same
    code path but the import, so the failure matrix stays quick.
    """
    import time

    pending = []
    for name, case in cases.items():
        project = write_project(root / name / "project", **case.project) if case.project else root / name / "project"
        job = make_job(root / name / "job", case.point, case.raw_input)
        for fname, data in (case.files or {}).items():
            (job / fname).write_bytes(data)
        args = [a.replace("{project}", str(project)) for a in case.args]
        if not any(a.startswith("--project") for a in case.args):
            args = ["--project", str(project), *args]
        pending.append((name, job, args))
    if via == "fork":
        proc = subprocess.run([sys.executable, "-c", FORK_RUNNER], input=json.dumps([[n, str(j), a] for n, j, a in pending]),
                              env=env, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"fork runner failed:\n{proc.stderr}")
        codes = json.loads(proc.stdout.strip().splitlines()[-1])
        return {
            name: Evaluation(codes[name], (job.parent / "stdout.txt").read_text(), (job.parent / "stderr.txt").read_text(), job)
            for name, job, _ in pending
        }
    running: dict[str, tuple[subprocess.Popen, Path]] = {}
    done: dict[str, Evaluation] = {}
    deadline = time.time() + timeout
    while pending or running:
        while pending and len(running) < parallel:
            name, job, args = pending.pop(0)
            proc = subprocess.Popen(
                [installed("hpogrid-evaluate"), *args], cwd=job, env=env,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )
            running[name] = (proc, job)
        for name, (proc, job) in list(running.items()):
            if proc.poll() is not None:
                out, err = proc.communicate()
                done[name] = Evaluation(proc.returncode, out, err, job)
                del running[name]
        if time.time() > deadline:
            for proc, _ in running.values():
                proc.kill()
            raise TimeoutError(f"jobs still running: {sorted(running)}")
        time.sleep(0.05)
    return done
