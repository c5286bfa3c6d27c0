"""``hpogrid local_run PROJECT``: the whole search on this machine (or a Ray cluster) with Ray Tune."""

from __future__ import annotations

import click

from .. import api
from .campaigns import override_options

__all__ = ["local_run", "command", "commands"]


@click.command("local_run")
@click.argument("project")
@click.option("--ray-address", envvar="RAY_ADDRESS", default=None, metavar="ADDRESS",
              help="Run on an existing Ray cluster (e.g. 127.0.0.1:6379); default $RAY_ADDRESS, else a private "
                   "Ray instance on this machine.")
@click.option("-v", "--verbose", is_flag=True, default=None,
              help="Show Ray's own output (default: the hpo_config's verbose; otherwise it goes to the "
                   "campaign's log folder).")
@click.option("--cpus-per-trial", type=float, default=1.0, show_default=True, help="CPUs reserved for each trial.")
@click.option("--gpus-per-trial", type=float, default=0.0, show_default=True, help="GPUs reserved for each trial.")
@click.option("--num-cpus", type=int, default=None,
              help="CPUs of the private Ray instance (default: all); ignored with --ray-address.")
@click.option("--seed", type=int, default=None,
              help="seed of the search (overrides the hpo config's) [default: the hpo config's, else a fresh one, "
                   "stored with the campaign and shown]")
@override_options
def local_run(project: str, ray_address: str | None, verbose: bool | None, cpus_per_trial: float,
              gpus_per_trial: float, num_cpus: int | None, seed: int | None, algorithm: str | None,
              num_trials: int | None, max_concurrent: int | None, stop: str | None, max_failures: int | None) -> None:
    """Run PROJECT's search here with Ray Tune and store it as a campaign (backend local_run).

    Algorithm, scheduler, num_trials, max_concurrent, stop, max_failures, log_dir and seed come from
    the project's hpo_config (the options above change them for this run only). Points are proposed
    by hpogrid's steering algorithms, as in `submit_idds`; Ray Tune's own searchers are
    `--algorithm ray:hyperopt|ray:optuna|ray:nevergrad|ray:bohb`. The training script is run exactly
    as `hpogrid-evaluate` runs it (the same five script styles), after the same pre-flight check.
    Prints one line per finished trial, then the trials sorted by the metric and the best config;
    `hpogrid report PROJECT` reads the results again later. Exits 1 when every trial failed or
    max_failures stopped the run.
    """
    overrides = {"algorithm": algorithm, "num_trials": num_trials, "max_concurrent": max_concurrent, "stop": stop,
                 "max_failures": max_failures, "seed": seed}
    api.local_run(project, ray_address=ray_address, verbose=verbose, cpus_per_trial=cpus_per_trial,
                  gpus_per_trial=gpus_per_trial, num_cpus=num_cpus, overrides=overrides, echo=click.echo)


command = local_run
commands = [local_run]
