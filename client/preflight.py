"""Before any campaign starts: what this run will use (per-run overrides, its seed) and the checks
that would otherwise fail every point.

:func:`plan_run` is called once per new campaign by every backend (embedded, ray, panda incl.
``--dry-run``, ``local_run``, ``run``). A failure is one :class:`PreflightError` line (exit 1)
raised before anything is written or submitted. The checks:

- the per-run overrides (``--algorithm``, ``--num_trials``, ...) pass the hpo_config field rules
  (:mod:`hpogrid.client.configs`), the algorithm suits the backend (``ray:*`` is ``local_run``'s);
- the search space parses;
- options are sane (a job time limit is finite and > 0; counts are checked by their options);
- the training script imports and the model exists with one of the five styles. Importing a
  user's script can be slow or unsafe (top-level training, ``sys.exit``), so it runs in a
  subprocess, ``hpogrid-evaluate --check``, with a time limit (:data:`CHECK_TIMEOUT` seconds,
  ``$HPOGRID_PREFLIGHT_TIMEOUT`` overrides), never in the client process.

Seeds: a run without a seed (none in the hpo_config, none given) draws a fresh one
(:func:`draw_seed`); the campaign stores it and shows it, and ``--seed N`` reproduces it.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from hpogrid.steering.errors import SteeringError
from hpogrid.steering.space import SearchSpace

from . import configs, projects
from .errors import CampaignError

__all__ = ["RunPlan", "PreflightError", "OVERRIDABLE", "plan_run", "check_script", "check_seconds", "draw_seed",
           "CHECK_TIMEOUT"]

#: hpo_config fields a user may change for one run (``submit_idds``/``local_run`` options).
OVERRIDABLE = ("algorithm", "num_trials", "max_concurrent", "seed", "stop", "max_failures")
CHECK_TIMEOUT = 120.0
LOCAL_ONLY_BACKENDS = ("local_run",)


class PreflightError(CampaignError):
    """A campaign would fail every point (or could not start): refused before anything is written."""


@dataclass(frozen=True)
class RunPlan:
    """What one run of a project uses: the project with this run's hpo_config (overrides and seed
    applied), the overrides as given, the seed and whether it was drawn, the script's style."""

    project: dict[str, Any]
    overrides: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    seed_drawn: bool = False
    style: str | None = None

    @property
    def hpo(self) -> dict[str, Any]:
        return self.project["hpo_config"]

    def settings(self) -> dict[str, Any]:
        """What a campaign records about this run (its ``settings``)."""
        return {"seed": self.seed, "seed_drawn": self.seed_drawn, "overrides": dict(self.overrides),
                "max_failures": self.hpo.get("max_failures", configs.DEFAULT_MAX_FAILURES),
                "stop": self.hpo.get("stop") or {}}


def draw_seed() -> int:
    """A fresh seed for a campaign that was given none (stored with it, so it can be reproduced)."""
    return secrets.randbelow(2**31 - 1)


def check_seconds(value: Any, what: str = "timeout") -> float | None:
    """A time limit: ``None``, or a finite number of seconds > 0 (``inf``, ``nan``, 0, < 0 refused)."""
    if value is None:
        return None
    try:
        seconds = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        shown = value if not isinstance(value, str) else value[:40]
        raise PreflightError(f"{what} must be a finite number of seconds > 0, got {shown!r}")
    return seconds


def plan_run(project_name: str, overrides: Mapping[str, Any] | None = None, *, backend: str,
             timeout: Any = None, script: bool = True, seed: int | None = None) -> RunPlan:
    """Check a new run of ``project_name`` on ``backend`` and return its :class:`RunPlan`.

    ``overrides``: hpo_config fields for this run only (``None`` values ignored); ``seed`` is the
    same as ``overrides["seed"]``. ``script=False`` skips the subprocess check of the script.
    """
    project = projects.load(project_name)
    given = {k: v for k, v in dict(overrides or {}).items() if v is not None}
    if seed is not None:
        given["seed"] = seed
    unknown = sorted(set(given) - set(OVERRIDABLE))
    if unknown:
        raise PreflightError(f"cannot override {unknown} for one run; valid: {', '.join(OVERRIDABLE)}")
    hpo = configs.validate("hpo", {**project["hpo_config"], **given})  # the field rules, one place
    overrides_used = {k: hpo[k] for k in given}
    algorithm = hpo["algorithm"]
    if algorithm in configs.RAY_ALGORITHMS and backend not in LOCAL_ONLY_BACKENDS:
        raise PreflightError(f"algorithm {algorithm!r} is Ray Tune's own searcher, for `hpogrid local_run` only; "
                             f"the {backend} backend runs hpogrid's steering ({algorithm.split(':', 1)[1]!r})")
    try:
        space = SearchSpace.parse(project["search_space"])
    except SteeringError as exc:
        raise PreflightError(f"project {project_name!r}: the search space is not valid: {exc}") from None
    if algorithm == "grid" and not space.grid_dims:
        raise PreflightError("algorithm 'grid' needs a categorical hyperparameter with \"grid_search\": 1")
    check_seconds(timeout)
    drawn = hpo.get("seed") is None
    hpo["seed"] = draw_seed() if drawn else int(hpo["seed"])
    snapshot = json.loads(json.dumps(project))
    snapshot["hpo_config"] = hpo
    style = check_script(projects.path(project_name)) if script else None
    return RunPlan(snapshot, overrides_used, hpo["seed"], drawn, style)


def check_script(project_dir: Path, timeout: float | None = None) -> str:
    """Run ``hpogrid-evaluate --check`` on the project folder in a subprocess (its own process
    group, killed at the time limit); returns the model's style or raises :class:`PreflightError`."""
    limit = timeout if timeout is not None else float(os.environ.get("HPOGRID_PREFLIGHT_TIMEOUT") or CHECK_TIMEOUT)
    argv = [sys.executable, "-m", "hpogrid.evaluator.program", "--check", "--project", str(project_dir)]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    try:
        out, err = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.communicate()
        raise PreflightError(f"pre-flight: importing the training script took longer than {limit:g} s "
                             f"(does it train at import time? set $HPOGRID_PREFLIGHT_TIMEOUT to wait longer)") from None
    if proc.returncode == 0:
        try:
            return str(json.loads(out.decode().strip().splitlines()[-1])["style"])
        except (ValueError, KeyError, IndexError):
            pass
    lines = [ln.strip() for ln in err.decode(errors="replace").splitlines() if ln.strip()]
    said = [ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("hpogrid-evaluate:")]
    reason = said[-1] if said else (lines[-1] if lines else f"exit status {proc.returncode}")
    raise PreflightError(f"pre-flight: {reason[:400]}")
