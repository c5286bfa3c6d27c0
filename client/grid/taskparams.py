"""Pure builders of what hpogrid sends to PanDA: the HPO task (phpo's) and the ``run`` task (prun's).

Nothing here talks to a server. The task parameters are built by panda-client itself
(``PhpoScript.main`` / ``PrunScript.main`` in their dry, get-taskparams mode), from options
derived from the project, so the task is exactly what ``phpo``/``prun`` would send; hpogrid only
chooses the options. ``--dry-run`` prints the result of these functions.

The project folder (project.json + scripts/) is the sandbox: in every grid job it is the working
directory, so ``hpogrid-evaluate`` finds the project there without options.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as _dt
import json
import os
import re
import shlex
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

from ..backends.base import GridOptions, SubmitOptions
from ..configs import DEFAULT_STEERING_CONTAINER
from ..errors import ConfigError, GridError

__all__ = [
    "STEERING_MOUNT",
    "STEERING_CONFIG",
    "META_FILE",
    "RUN_META_FILE",
    "GridTask",
    "output_dataset",
    "steering_config",
    "steering_exec",
    "evaluation_exec",
    "phpo_args",
    "build_hpo_task",
    "build_run_task",
    "sandbox_name",
]

STEERING_MOUNT = "/HPOiDDS"  # where the steering container sees iDDS's round folder
STEERING_CONFIG = "hpogrid_steering.json"  # written into the round folder by the steering command
META_FILE = "meta.json"  # the evaluator's metadata file -> PanDA job metadata (--evaluationMeta)
RUN_META_FILE = "userJobMetadata.json"  # what a `run` job leaves for PanDA's job metadata


@dataclass
class GridTask:
    """One task to send: its parameters, the commands inside, the phpo/prun options used."""

    kind: str  # "hpo" | "run"
    task_params: dict[str, Any]
    out_ds: str
    sandbox: str  # the archive name the jobs download (-a)
    evaluation_exec: str
    steering_exec: str | None = None
    cli_args: list[str] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        """What ``--dry-run`` prints."""
        out: dict[str, Any] = {"kind": self.kind, "outDS": self.out_ds, "sandbox": self.sandbox}
        if self.steering_exec is not None:
            out["steeringExec"] = self.steering_exec
        out["evaluationExec"] = self.evaluation_exec
        out["panda_client_args"] = self.cli_args
        out["task_parameters"] = self.task_params
        return out


def output_dataset(pattern: str, *, nickname: str, project: str, now: _dt.datetime | None = None) -> str:
    """The grid config's outDS pattern filled in (``{nickname}``, ``{project}``, ``{timestamp}``)."""
    now = now or _dt.datetime.now(_dt.timezone.utc)
    try:
        name = pattern.format(nickname=nickname, project=project, timestamp=now.strftime("%Y%m%d%H%M%S"))
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(
            f"outDS pattern {pattern!r} may only use {{nickname}}, {{project}} and {{timestamp}} ({exc!r})"
        ) from None
    name = name.rstrip("/")
    if not re.fullmatch(r"[A-Za-z0-9_.\-:]+", name) or len(name) > 200:
        raise ConfigError(f"outDS must be a Rucio dataset name (letters, digits, _ . - :), got {name!r}")
    return name


def steering_config(project: Mapping[str, Any], seed: int | None = None) -> dict[str, Any]:
    """The flat steering config (CONTRACTS.md): algorithm, its parameters, metric, mode, seed, space."""
    hpo = project["hpo_config"]
    return {
        "algorithm": hpo["algorithm"],
        "algorithm_param": hpo.get("algorithm_param") or {},
        "metric": hpo.get("metric"),
        "mode": hpo.get("mode"),
        "seed": seed if seed is not None else hpo.get("seed"),
        "search_space": project["search_space"],
    }


def steering_exec(project: Mapping[str, Any], image: str = DEFAULT_STEERING_CONTAINER,
                  seed: int | None = None) -> str:
    """phpo's ``steeringExec``: arguments of ``docker`` that run ``hpogrid-steering`` in the steering image.

    iDDS mounts only its round folder (``$(pwd)``, holding ``%IN``) into the container, so the
    algorithm settings travel inside the command: the flat steering config, base64-encoded (no
    quoting issues in iDDS's bash script), is written next to ``%IN`` before the steering runs.
    """
    config = base64.b64encode(json.dumps(steering_config(project, seed), sort_keys=True).encode()).decode()
    cfg = f"{STEERING_MOUNT}/{STEERING_CONFIG}"
    inner = (
        f"echo {config} | base64 -d > {cfg} && exec hpogrid-steering --in {STEERING_MOUNT}/%IN "
        f"--out {STEERING_MOUNT}/%OUT --num-points %NUM_POINTS --max-points %MAX_POINTS --config {cfg}"
    )
    return f'run --rm -v "$(pwd)":{STEERING_MOUNT} {image} /bin/sh -c "{inner}"'


def evaluation_exec(options: SubmitOptions) -> str:
    """phpo's ``evaluationExec``: ``hpogrid-evaluate`` in the job's working directory (the sandbox)."""
    argv = ["hpogrid-evaluate", "--meta", META_FILE]
    if options.timeout is not None:
        argv += ["--timeout", str(int(options.timeout))]
    grid = options.grid
    if grid.checkpoint_save:
        argv += ["--checkpoint-save", str(grid.checkpoint_save)]
    if grid.checkpoint_load:
        argv += ["--checkpoint-load", str(grid.checkpoint_load)]
    return shlex.join(argv)


def _architecture(grid: GridOptions) -> str | None:
    if grid.architecture:
        return str(grid.architecture)
    if grid.gpu:
        return "#&nvidia"
    return None


def _sites(project: Mapping[str, Any], options: SubmitOptions) -> list[str]:
    sites = options.site if options.site is not None else project["grid_config"].get("site") or []
    return [] if [s.upper() for s in sites] == ["ANY"] else list(sites)


def phpo_args(project: Mapping[str, Any], options: SubmitOptions, *, out_ds: str, space_file: str,
              steering_image: str = DEFAULT_STEERING_CONTAINER) -> tuple[list[str], str, str]:
    """phpo's command line for this project: (args, steeringExec, evaluationExec)."""
    hpo, grid = project["hpo_config"], project["grid_config"]
    flags = options.grid
    steer = options.steering_command or steering_exec(project, flags.steering_container or steering_image,
                                                      options.seed)
    evaluate = evaluation_exec(options)
    per_round = options.n_points_per_iteration if options.n_points_per_iteration is not None else hpo["max_concurrent"]
    args = [
        "--outDS", out_ds,
        "--evaluationContainer", grid["container"],
        "--evaluationExec", evaluate,
        "--steeringExec", steer,
        "--searchSpaceFile", space_file,
        "--maxPoints", str(hpo["num_trials"]),
        "--nParallelEvaluation", str(hpo["max_concurrent"]),
        "--nPointsPerIteration", str(per_round),
        "--evaluationMeta", META_FILE,
    ]
    if options.min_unevaluated_points is not None:
        args += ["--minUnevaluatedPoints", str(options.min_unevaluated_points)]
    if flags.max_evaluation_jobs is not None:
        args += ["--maxEvaluationJobs", str(flags.max_evaluation_jobs)]
    if grid.get("inDS"):
        args += ["--trainingDS", grid["inDS"]]
    sites = _sites(project, options)
    if sites:
        args += ["--site", ",".join(sites)]
    arch = _architecture(flags)
    if arch:
        args += ["--architecture", arch]
    if flags.checkpoint_save:
        args += ["--checkPointToSave", str(flags.checkpoint_save)]
        if flags.checkpoint_interval is not None:
            args += ["--checkPointInterval", str(int(flags.checkpoint_interval))]
    if flags.checkpoint_load:
        args += ["--checkPointToLoad", str(flags.checkpoint_load)]
    return args, steer, evaluate


@contextlib.contextmanager
def _panda_client_call(tool: str) -> Iterator[Path]:
    """Run a panda-client ``main()`` hermetically: own cwd, argv restored, exits turned into errors."""
    from .panda import captured

    saved_argv, saved_cwd = list(sys.argv), os.getcwd()
    with tempfile.TemporaryDirectory(prefix=f"hpogrid-{tool}-") as tmp, captured() as said:
        os.chdir(tmp)
        try:
            yield Path(tmp)
        except SystemExit as exc:  # panda-client exits on invalid options; its logger said why
            errors = [line.split(" : ", 1)[-1] for line in said.getvalue().splitlines() if line.startswith("ERROR")]
            why = "; ".join(errors) or said.getvalue().strip()[-300:] or f"exit status {exc.code}"
            raise GridError(f"{tool} rejected the options: {why}") from None
        finally:
            os.chdir(saved_cwd)
            sys.argv[:] = saved_argv


def sandbox_name(task_params: Mapping[str, Any]) -> str:
    """The archive name panda-client put in ``-a NAME`` (the sandbox the jobs download)."""
    for param in task_params.get("jobParameters", []):
        m = re.match(r"^-a (\S+)", str(param.get("value", "")))
        if m:
            return m.group(1)
    raise GridError("panda-client built no sandbox parameter (-a); cannot attach the project")


def build_hpo_task(project: Mapping[str, Any], options: SubmitOptions, *, nickname: str,
                   now: _dt.datetime | None = None, steering_image: str = DEFAULT_STEERING_CONTAINER) -> GridTask:
    """The HPO task phpo builds for this project (no network, no credential)."""
    os.environ.setdefault("PANDA_BEHIND_REAL_LB", "1")  # else importing pandaclient.Client does DNS look-ups
    from pandaclient import PhpoScript  # imported late: it reads the environment at import

    out_ds = output_dataset(project["grid_config"]["outDS"], nickname=nickname,
                            project=project["project_name"], now=now)
    with _panda_client_call("phpo") as tmp:
        space_file = tmp / "search_space.json"
        space_file.write_text(json.dumps(project["search_space"]))
        args, steer, evaluate = phpo_args(project, options, out_ds=out_ds, space_file=space_file.name,
                                          steering_image=steering_image)
        params = PhpoScript.main(get_taskparams=True, dry_mode=True, ext_args=list(args))
    if not isinstance(params, dict):
        raise GridError("phpo returned no task parameters")
    # phpo names the round size num_points_per_generation, but iDDS 2.6.21 reads
    # num_points_per_iteration (default 10) and ignores phpo's key: send both, so the size holds.
    hrd = params["hpoRequestData"]
    hrd["num_points_per_iteration"] = hrd["num_points_per_generation"]
    printable = [a if a != space_file.name else "search_space.json" for a in args]
    return GridTask("hpo", params, out_ds, sandbox_name(params), evaluate, steer, printable)


def run_exec(project_name: str) -> str:
    """What each ``run`` job executes: the whole search (``hpogrid local_run``) on the job's node.
    ``%RNDM:0`` is prun's per-job sequence number (1, 2, ...): a project's seed is offset by it, so the
    jobs of one task search differently, and the same task run again searches the same way."""
    return shlex.join(["python3", "-m", "hpogrid.client.grid.job", "--project", project_name,
                       "--meta", RUN_META_FILE, "--job", "%RNDM:0"])


def build_run_task(project: Mapping[str, Any], *, n_jobs: int, nickname: str, site: list[str] | None = None,
                   retry: bool | None = None, architecture: str | None = None,
                   now: _dt.datetime | None = None) -> GridTask:
    """``hpogrid run``: one prun task of ``n_jobs`` jobs, each running the project's whole search."""
    os.environ.setdefault("PANDA_BEHIND_REAL_LB", "1")
    from pandaclient import MiscUtils, PrunScript

    if n_jobs < 1:
        raise ConfigError(f"n_jobs >= 1 must hold, got n_jobs={n_jobs}")
    grid = project["grid_config"]
    out_ds = output_dataset(grid["outDS"], nickname=nickname, project=project["project_name"], now=now)
    exec_line = run_exec(project["project_name"])
    args = ["--exec", exec_line, "--outDS", out_ds, "--containerImage", grid["container"], "--alrb",
            "--useSandbox", "--noBuild", "--nJobs", str(n_jobs)]
    sites = site if site is not None else grid.get("site") or []
    if [s.upper() for s in sites] == ["ANY"]:
        sites = []
    if sites:
        args += ["--site", ",".join(sites)]
    if not (grid.get("retry") if retry is None else retry):
        args += ["--disableAutoRetry"]
    if grid.get("inDS"):
        args += ["--inDS", grid["inDS"], "--forceStaged"]
    if architecture:
        args += ["--architecture", architecture]
    with _panda_client_call("prun"):
        params = PrunScript.main(get_taskparams=True, dry_mode=True, ext_args=list(args))
    if not isinstance(params, dict):
        raise GridError("prun returned no task parameters")
    # prun leaves the sandbox out in dry mode (``-a None``): name it the way prun does.
    name = f"jobO.{MiscUtils.wrappedUuidGen()}.tar.gz"
    for param in params.get("jobParameters", []):
        if param.get("value") == "-a None":
            param["value"] = f"-a {name}"
    params["cliParams"] = "prun " + shlex.join(args)
    return GridTask("run", params, out_ds, sandbox_name(params), exec_line, None, args)
