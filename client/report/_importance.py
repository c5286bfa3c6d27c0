"""Hyperparameter importance: Optuna's fANOVA evaluator on the finished points' losses."""

from __future__ import annotations

import json
import math
import warnings
from typing import Any

from hpogrid.common import loss_of

from ._deps import require
from ._load import Results

__all__ = ["importance"]

_LOG_METHODS = ("loguniform", "qloguniform", "lognormal", "qlognormal")


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def importance(results: Results, *, min_points: int = 8, max_points: int = 400, seed: int = 0,
               log_params: set[str] | None = None) -> tuple[dict[str, float] | None, str]:
    """``({hyperparameter: importance}, note)``, importances summing to 1, most important first.

    ``None`` with the reason in ``note`` when fewer than ``min_points`` points finished with a
    metric or no hyperparameter varies. ``log_params`` are analysed on a log scale (by default the
    search space's log-scaled ones, when the project is known). Beyond ``max_points`` finished
    points a seeded random sample is analysed (fANOVA's cost grows fast with the points), with
    forests of 32 trees of depth 8.
    """
    rated = results.rated
    if len(rated) < min_points:
        return None, f"needs at least {min_points} finished points, have {len(rated)}"
    optuna = require("optuna")
    require("sklearn")  # Optuna's fANOVA grows scikit-learn forests
    total = len(rated)
    if total > max_points:
        rated = rated.sample(n=max_points, random_state=seed)
    if log_params is None:
        log_params = _log_params(results)

    distributions: dict[str, Any] = {}
    encode: dict[str, Any] = {}
    for p in results.params:
        values = list(rated[results.param_columns[p]])
        if any(_missing(v) for v in values):
            continue  # not every point has it (conditional parameter)
        if p in results.categorical:
            keys = sorted({_key(v) for v in values})
            if len(keys) < 2:
                continue
            distributions[p] = optuna.distributions.CategoricalDistribution(keys)
            encode[p] = _key
            continue
        lo, hi = min(values), max(values)
        if lo == hi:
            continue
        if all(isinstance(v, int) or float(v).is_integer() for v in values) and all(
                not isinstance(v, float) for v in values):
            distributions[p] = optuna.distributions.IntDistribution(int(lo), int(hi))
            encode[p] = int
        else:
            log = p in log_params and lo > 0
            distributions[p] = optuna.distributions.FloatDistribution(float(lo), float(hi), log=log)
            encode[p] = float
    if not distributions:
        return None, "no hyperparameter varies among the finished points"

    trials, losses = [], set()
    for _, row in rated.iterrows():
        loss = row["loss"] if not _missing(row["loss"]) else loss_of(row["metric"], results.mode)
        losses.add(float(loss))
        params = {p: encode[p](row[results.param_columns[p]]) for p in distributions}
        trials.append(optuna.trial.create_trial(params=params, distributions=distributions, value=float(loss)))
    if len(losses) < 2:  # fANOVA divides by the variance of the losses
        return None, (f"skipped: all {len(rated)} finished points have the same {results.metric_name}, "
                      "so no hyperparameter explains any of its variance")
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            study = optuna.create_study(direction="minimize")
            study.add_trials(trials)
            evaluator = optuna.importance.FanovaImportanceEvaluator(n_trees=32, max_depth=8, seed=seed)
            found = optuna.importance.get_param_importances(study, evaluator=evaluator, normalize=True)
    except RuntimeError as exc:  # fANOVA's own refusals (e.g. "zero total variance")
        return None, f"skipped: fANOVA cannot be computed here ({' '.join(str(exc).split())[:120]})"
    finally:
        optuna.logging.set_verbosity(verbosity)
    out = {str(k): float(v) for k, v in sorted(found.items(), key=lambda kv: -kv[1])}
    used = f"{len(rated)} of {total}" if len(rated) < total else str(total)
    return out, f"fANOVA on {used} finished points"


def _key(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v)


def _log_params(results: Results) -> set[str]:
    from .. import projects
    from ..errors import NotFoundError

    try:
        space = projects.load(results.project).get("search_space") or {}
    except NotFoundError:
        return set()
    return {p for p, spec in space.items() if isinstance(spec, dict) and spec.get("method") in _LOG_METHODS}
