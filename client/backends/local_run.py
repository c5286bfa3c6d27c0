"""The ``local_run`` backend: a project's whole search on this machine (or a Ray cluster) with Ray Tune.

The project's hpo_config decides everything (per-run overrides: ``--algorithm``, ``--num_trials``,
``--max_concurrent``, ``--seed``, ``--stop``, ``--max_failures``): the algorithm (hpogrid's steering
algorithm wrapped as a Ray Tune ``Searcher``, the same as ``submit_idds`` runs; Ray Tune's own
searchers by the names ``ray:hyperopt``, ``ray:optuna``, ``ray:nevergrad``, ``ray:bohb``), the
scheduler (with ``scheduler_param``), ``num_trials``, ``max_concurrent``, ``stop`` (none: each
training runs until it returns), ``max_failures``, ``log_dir``, ``verbose``, ``seed`` (a fresh one,
stored and shown, when none is given). The pre-flight of :mod:`hpogrid.client.preflight` runs first.
The training script is adapted exactly as ``hpogrid-evaluate`` adapts it
(:mod:`hpogrid.evaluator.adapters`), so the five script styles behave the same in both.

Each trial is recorded in a new campaign of the project (backend ``local_run``) as a point:
``running`` at start, then ``finished`` with its last reported metric (loss = metric, negated for
``mode: max``), ``stopped`` when the scheduler cut it short, or ``failed`` with the reason;
``hpogrid report`` reads it like any other campaign. Ray Tune's run cannot be continued: ``resume``
and ``retry`` say to run the project again.

Parts: :mod:`.tune_search` (search space, searcher, scheduler), :mod:`.tune_fit` (trainable, Ray's
start, ``Tuner.fit``), :mod:`.tune_record` (the store writer and the summary).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from hpogrid.steering.space import SearchSpace

from .. import campaigns, projects
from ..errors import CampaignError, ConfigError
from ..store import Store
from .base import Backend, Plan, SubmitOptions
from .tune_fit import RAY_LOG_NAME, fit, make_trainable, quiet, stopper, token_auth_for
from .tune_record import LocalRunResult, recorder, summary_lines
from .tune_search import check_combination, make_config_mapper, make_scheduler, make_search_alg

__all__ = ["LocalRunBackend", "local_run", "LocalRunResult"]


@dataclass
class _Run:
    """One run's pieces, built by the pre-flight before anything is written."""

    project_name: str
    plan: Any  # the pre-flight's RunPlan
    space: SearchSpace
    options: SubmitOptions
    address: str | None
    verbose: bool
    stop: dict[str, Any]
    echo: Callable[[str], None]
    tune: dict[str, Any]  # search_alg, param_space, unit, num_samples, scheduler, mapper
    trainable: Any = None
    module: Any = None
    style: str = ""

    @property
    def hpo(self) -> dict[str, Any]:
        return self.plan.hpo

    @property
    def num_trials(self) -> int:
        return int(self.hpo.get("num_trials") or 1)


def _overrides(options: SubmitOptions) -> dict[str, Any]:
    overrides = dict(options.overrides or {})
    if options.seed is not None:
        overrides["seed"] = options.seed
    return overrides


def _checked(project_name: str, options: SubmitOptions) -> tuple[Any, SearchSpace]:
    """The cheap pre-flight (no Ray, no script import): the plan and the parsed search space."""
    from hpogrid.steering.errors import SteeringError

    from ..preflight import plan_run

    plan = plan_run(project_name, _overrides(options), backend="local_run", script=False)
    try:
        space = SearchSpace.parse(plan.project["search_space"])
    except SteeringError as exc:
        raise ConfigError(str(exc)) from exc
    check_combination(dict(plan.hpo), space)
    if options.cpus_per_trial <= 0 or options.gpus_per_trial < 0:
        raise ConfigError(f"cpus_per_trial > 0 and gpus_per_trial >= 0 must hold, got {options.cpus_per_trial}, "
                          f"{options.gpus_per_trial}")
    return plan, space


def _prepare(project_name: str, options: SubmitOptions) -> _Run:
    """The whole pre-flight: searcher, scheduler and the user's trainable; nothing written on failure."""
    from hpogrid.steering.errors import SteeringError

    from ..preflight import check_script

    plan, space = _checked(project_name, options)
    hpo = dict(plan.hpo)
    address = options.ray_address or os.environ.get("RAY_ADDRESS") or None
    if address:
        token_auth_for(address)  # before Ray is imported: its core reads the mode once
    try:
        search_alg, param_space, unit, num_samples = make_search_alg(hpo, space, hpo["metric"], hpo["mode"],
                                                                     int(hpo.get("num_trials") or 1))
    except SteeringError as exc:
        raise ConfigError(str(exc)) from exc
    tune = {"search_alg": search_alg, "param_space": param_space, "num_samples": num_samples,
            "scheduler": make_scheduler(hpo, space), "mapper": make_config_mapper(space, unit)}
    run = _Run(project_name, plan, space, options, address,
               bool(hpo.get("verbose")) if options.verbose is None else options.verbose,
               dict(hpo.get("stop") or {}), options.echo or print, tune)
    check_script(projects.path(project_name))  # before this process imports the script itself
    run.trainable, run.style, run.module = make_trainable(plan.project, projects.scripts_dir(project_name),
                                                          tune["mapper"], os.getcwd())
    if not run.stop and run.style.startswith("trainable"):
        run.stop = {"training_iteration": 1}  # as hpogrid-evaluate: a Trainable class never returns by itself
        run.echo("note: a Trainable class without `stop` runs one iteration (set --stop to train longer)")
    return run


def _open_campaign(run: _Run) -> tuple[Store, Path]:
    """The new campaign (registered, running) and its Ray Tune log folder."""
    hpo, options = run.hpo, run.options
    store = campaigns.new(
        run.project_name, "local_run", algorithm=hpo.get("algorithm"), metric=hpo["metric"], mode=hpo["mode"],
        max_points=run.num_trials, max_concurrent=int(hpo.get("max_concurrent") or 1), pid=os.getpid(),
        settings={**run.plan.settings(), "scheduler": hpo.get("scheduler"), "stop": run.stop, "style": run.style,
                  "ray_address": run.address, "cpus_per_trial": options.cpus_per_trial,
                  "gpus_per_trial": options.gpus_per_trial},
    )
    log_dir = Path(hpo.get("log_dir") or "log")
    log_dir = log_dir if log_dir.is_absolute() else store.path.parent / log_dir
    log_dir.mkdir(parents=True, exist_ok=True)
    store.update_campaign(status="running", started=time.time())
    return store, log_dir


def _announce(run: _Run, campaign_id: Any) -> None:
    hpo, stop = run.hpo, run.stop
    run.echo(f"local_run {run.project_name}: campaign {campaign_id}, algorithm {hpo.get('algorithm')}, "
             f"scheduler {hpo.get('scheduler')}, {run.num_trials} trials, {hpo.get('max_concurrent')} at once, "
             f"stop {stop or 'none (each training runs until it returns)'}, seed {run.plan.seed}"
             + (f", Ray at {run.address}" if run.address else ""))
    samples, space = run.tune["num_samples"], run.space
    if hpo.get("algorithm") == "tune" and samples * max(1, len(space.grid_combinations()) if space.grid_dims else 1) > run.num_trials:
        run.echo(f"note: algorithm 'tune' repeats the whole grid: {samples} x {len(space.grid_combinations())} trials")


def _execute(run: _Run, store: Store, log_dir: Path) -> LocalRunResult:
    """``Tuner.fit`` with the store writer; the campaign ends finished, failed or interrupted."""
    hpo, options, tune = run.hpo, run.options, run.tune
    campaign = store.campaign()
    started = campaign["started"]
    rec = recorder(store, run.space, tune["mapper"], hpo["metric"], hpo["mode"], run.num_trials, run.echo)
    rec.max_failures = int(hpo.get("max_failures") or 0)
    rec.stop = dict(run.stop)
    status, message = "failed", ""
    try:
        with quiet(log_dir / RAY_LOG_NAME, enabled=not run.verbose):
            fit(run.trainable, run.module, projects.scripts_dir(run.project_name), tune["param_space"],
                dict(run.plan.project["model_config"].get("param") or {}), tune["search_alg"], tune["scheduler"],
                hpo["metric"], hpo["mode"], tune["num_samples"], stopper(run.stop, rec), log_dir, run.verbose,
                run.address, options.num_cpus, options.cpus_per_trial, options.gpus_per_trial, rec)
        status = "finished"
        if rec.stopped_because:
            status, message = "failed", rec.stopped_because
    except KeyboardInterrupt:
        status, message = "interrupted", "interrupted by the user"
        raise
    except Exception as exc:
        message = f"{type(exc).__name__}: {exc}"
        raise CampaignError(f"the Ray Tune run failed: {' '.join(str(exc).split())[:300]}"
                            + ("" if run.verbose else f" (Ray's log: {log_dir / RAY_LOG_NAME})")) from exc
    finally:
        rec.close_open(message or "the run ended before this trial finished")
        store.update_campaign(status=status, ended=time.time(), message=message or None)
    return LocalRunResult(str(campaign["id"]), store.path.parent, hpo["metric"], hpo["mode"], store.points(),
                          store.best(), time.time() - started, log_dir, store.counts(), seed=run.plan.seed,
                          status=status, message=message or None)


class LocalRunBackend(Backend):
    """``hpogrid local_run P``: Ray Tune's own loop on this machine; each trial a point of the campaign."""

    name = "local_run"
    runs_here = True
    driven_here = False  # Ray Tune's run cannot be continued: a dead one is not resumed

    def plan(self, project_name: str, options: SubmitOptions) -> Plan:
        """The run's settings after the cheap pre-flight; Ray is not started, the script not imported."""
        plan, _space = _checked(project_name, options)
        hpo = plan.hpo
        details = {"backend": self.name, "project": project_name, "algorithm": hpo.get("algorithm"),
                   "scheduler": hpo.get("scheduler"), "num_trials": int(hpo.get("num_trials") or 1),
                   "max_concurrent": int(hpo.get("max_concurrent") or 1), "stop": hpo.get("stop") or {},
                   "seed": plan.seed, "ray_address": options.ray_address or os.environ.get("RAY_ADDRESS") or None,
                   "cpus_per_trial": options.cpus_per_trial, "gpus_per_trial": options.gpus_per_trial}
        return Plan(self.name, project_name, details["num_trials"], details=details)

    def submit(self, project_name: str, options: SubmitOptions) -> Store:
        result = self.run(project_name, options)
        return campaigns.open_campaign(result.campaign_id)

    def run(self, project_name: str, options: SubmitOptions) -> LocalRunResult:
        """Run the search; returns the trials as stored (the summary is printed through ``options.echo``)."""
        run = _prepare(project_name, options)
        store, log_dir = _open_campaign(run)
        try:
            _announce(run, store.campaign()["id"])
            result = _execute(run, store, log_dir)
        finally:
            store.close()
        for line in summary_lines(result, run.space.names):
            run.echo(line)
        return result

    def resume(self, store: Store, options: SubmitOptions) -> Store:
        raise self._not_continued(store)

    def retry(self, store: Store, options: SubmitOptions) -> Store:
        raise self._not_continued(store)

    def kill(self, store: Store) -> None:
        from ..engine import kill_campaign

        kill_campaign(store)

    @staticmethod
    def _not_continued(store: Store) -> CampaignError:
        c = store.campaign()
        return CampaignError(f"campaign {c['id']} is a local_run (Ray Tune ran it); run `hpogrid local_run "
                             f"{c['project']}` again")


def local_run(project_name: str, *, ray_address: str | None = None, verbose: bool | None = None,
              cpus_per_trial: float = 1.0, gpus_per_trial: float = 0.0, num_cpus: int | None = None,
              echo: Callable[[str], None] = print, overrides: Mapping[str, Any] | None = None) -> LocalRunResult:
    """Run the search of ``project_name`` with Ray Tune and record it as a ``local_run`` campaign.

    ``ray_address`` (else ``$RAY_ADDRESS``) joins an existing Ray cluster; without it a private Ray
    instance is started (``num_cpus`` CPUs, default all) and stopped. ``verbose`` (default: the
    hpo_config's) shows Ray's own output; otherwise it goes to ``<log_dir>/ray-stderr.log``.
    ``overrides``: hpo_config fields for this run only (:data:`hpogrid.client.preflight.OVERRIDABLE`).
    """
    options = SubmitOptions(ray_address=ray_address, verbose=verbose, cpus_per_trial=cpus_per_trial,
                            gpus_per_trial=gpus_per_trial, num_cpus=num_cpus, echo=echo,
                            overrides=dict(overrides or {}))
    return LocalRunBackend().run(project_name, options)
