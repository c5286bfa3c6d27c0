"""``ax``: Bayesian optimisation with Ax (Meta's adaptive experimentation platform, on BoTorch).

Each step builds a fresh Ax experiment from the history, as every hpogrid algorithm does:

- every numeric dimension is a float ``RangeParameter`` on [0, 1], read through
  :meth:`Dimension.to_unit` / :meth:`Dimension.from_unit`, so priors (normal family), logs, ints
  and ``q`` come for free; every categorical one is an unordered ``ChoiceParameter`` over the
  category indices; a dimension with one value (fixed, one category) stays out of Ax;
- evaluated points are COMPLETED trials with their loss (minimised), pending points RUNNING
  trials, so Ax's own pending-point handling (fantasies in BoTorch's qLogNEI) keeps a batch
  apart from them and from each other;
- with fewer than ``n_initial_points`` results the step draws a scrambled Sobol design (seeded
  per step, so it does not restart the same sequence every step); afterwards Ax's modular
  BoTorch generator (a GP, log noisy expected improvement) proposes the whole batch, with a
  small acquisition optimiser (``num_restarts``, ``raw_samples``) to keep a step in seconds.

Ax, BoTorch and torch are imported when this module is, that is lazily by the registry; the
registry refuses ``ax`` with ``pip install 'hpogrid[ax]'`` (and the CPU-torch note) when Ax or
torch is missing. Randomness comes from :attr:`BaseAlgorithm.step_seed` only (Ax's
``random_seed`` forks and seeds torch's RNG for the generation), and Ax's INFO logging and
warnings are silenced during a step, then restored.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from typing import Any, Iterator, Sequence


@contextlib.contextmanager
def _quiet_logging() -> Iterator[None]:
    """Drop log records below WARNING (Ax logs INFO lines on import and per trial), then restore."""
    previous = logging.root.manager.disable
    logging.disable(max(previous, logging.WARNING))
    try:
        yield
    finally:
        logging.disable(previous)


# Ax announces its SQL storage at import time, and torch and Ax warn about their own deprecations
with _quiet_logging(), warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import torch
    from ax.adapter.registry import Generators
    from ax.api.client import Client
    from ax.api.configs import ChoiceParameterConfig, RangeParameterConfig
    from ax.exceptions.core import OptimizationComplete
    from ax.generation_strategy.generation_node import GenerationNode
    from ax.generation_strategy.generation_strategy import GenerationStrategy
    from ax.generation_strategy.generator_spec import GeneratorSpec
    from ax.utils.common.logger import ROOT_STREAM_HANDLER

from ..errors import InputError
from ..space import Dimension, SearchSpace, point_key
from ._params import check_params
from .base import BaseAlgorithm, Evaluated

_DEFAULTS = {"n_initial_points": 5, "num_restarts": 4, "raw_samples": 256}
_METRIC = "loss"
#: An unbounded (normal-family) dimension is searched on [_TAIL, 1 - _TAIL] of its CDF, i.e.
#: within 3.1 sigma: an acquisition optimum often sits on the cube's boundary, and the full
#: [0, 1] would put it at 7 sigma.
_TAIL = 1e-3


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence Ax (its own stderr handler, INFO by default) and the numerics' warnings."""
    level = ROOT_STREAM_HANDLER.level
    ROOT_STREAM_HANDLER.setLevel(logging.ERROR)
    try:
        with _quiet_logging(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        ROOT_STREAM_HANDLER.setLevel(level)


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """Run torch on ``n`` threads (the models are small; threads only contend), then restore."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class AxSearch(BaseAlgorithm):
    """``algorithm_param``: n_initial_points (Sobol points before the GP takes over; default 5),
    num_restarts and raw_samples (the acquisition optimiser's starts and raw candidates)."""

    history_limit = 300  # BoTorch's GP fit is cubic in the results it models
    pending_limit = 200

    def __init__(self, space: SearchSpace, seed: int | None = None, **params: Any):
        super().__init__(space, seed)
        self.params = check_params("ax", params, _DEFAULTS)
        for key in _DEFAULTS:
            value = self.params[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"algorithm 'ax': algorithm_param {key} must be an integer >= 1, got {value!r}")
        # Ax sees x0, x1, ... (any hpogrid name is valid JSON; not every one is a valid Ax name)
        self.searched = [d for d in space if d.cardinality() != 1]
        self.ax_names = {d.name: f"x{i}" for i, d in enumerate(self.searched)}
        self.client: Client | None = None
        self.n_evaluated = 0
        self.seen: set[str] = set()

    # ---- mapping ------------------------------------------------------------------------------
    def _parameters(self) -> list[RangeParameterConfig | ChoiceParameterConfig]:
        out: list[RangeParameterConfig | ChoiceParameterConfig] = []
        for dim in self.searched:
            name = self.ax_names[dim.name]
            if dim.is_categorical:
                indices = list(range(len(dim.categories)))
                out.append(ChoiceParameterConfig(name=name, values=indices, parameter_type="int", is_ordered=False))
            else:
                out.append(RangeParameterConfig(name=name, bounds=self._unit_bounds(dim), parameter_type="float"))
        return out

    @staticmethod
    def _unit_bounds(dim: Dimension) -> tuple[float, float]:
        return (0.0, 1.0) if dim.bounded else (_TAIL, 1.0 - _TAIL)

    def _to_ax(self, point: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for d in self.searched:
            if d.is_categorical:
                out[self.ax_names[d.name]] = d.index(point[d.name])
            else:
                lo, hi = self._unit_bounds(d)
                out[self.ax_names[d.name]] = min(max(float(d.to_unit(point[d.name])), lo), hi)
        return out

    def _from_ax(self, parameters: dict[str, Any]) -> dict[str, Any]:
        point = {d.name: d.from_unit(0.5) for d in self.space if d.cardinality() == 1}  # its one value
        for d in self.searched:
            value = parameters[self.ax_names[d.name]]
            point[d.name] = d.categories[int(value)] if d.is_categorical else d.from_unit(float(value))
        return {name: point[name] for name in self.space.names}

    def _generation_strategy(self, seed: int) -> GenerationStrategy:
        if self.n_evaluated < self.params["n_initial_points"]:
            spec = GeneratorSpec(generator_enum=Generators.SOBOL, generator_kwargs={"seed": seed})
            name = "Sobol"
        else:
            options = {"num_restarts": self.params["num_restarts"], "raw_samples": self.params["raw_samples"]}
            spec = GeneratorSpec(
                generator_enum=Generators.BOTORCH_MODULAR,
                generator_gen_kwargs={"model_gen_options": {"optimizer_kwargs": options}},
            )
            name = "MBM"
        return GenerationStrategy(name=f"hpogrid-{name}", nodes=[GenerationNode(name=name, generator_specs=[spec])])

    # ---- the step -----------------------------------------------------------------------------
    def rebuild(self, evaluated: Sequence[Evaluated]) -> None:
        self.client = None
        self.n_evaluated = len(evaluated)
        self.seen = {point_key(e.point) for e in evaluated}
        if not self.searched:
            return
        seed = self.step_seed % 2**31
        with _quiet():
            client = Client(random_seed=seed)
            client.configure_experiment(parameters=self._parameters(), name="hpogrid")
            client.configure_optimization(objective=f"-{_METRIC}")
            client.set_generation_strategy(self._generation_strategy(seed))
            for e in evaluated:
                index = client.attach_trial(parameters=self._to_ax(e.point))
                client.complete_trial(trial_index=index, raw_data={_METRIC: float(e.loss)})
        self.client = client

    def suggest(self, n: int, pending: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        if self.client is None:  # nothing to search: the one point there is, or none
            return [self._from_ax({})]
        size = self.space.cardinality()
        if size is not None:
            # a finite space: ask Ax for no more than what is left, or its Sobol generator
            # redraws for a minute before it reports the space exhausted
            n = min(n, size - len(self.seen | {point_key(p) for p in pending}))
            if n <= 0:
                return []
        with _quiet(), _torch_threads(1):
            for point in pending:  # attached trials stay RUNNING: Ax's pending points
                self.client.attach_trial(parameters=self._to_ax(point))
            try:
                trials = self.client.get_next_trials(max_trials=n)
            except OptimizationComplete:
                # Ax found no new point (SearchSpaceExhausted, repeated points): the base
                # fills the batch from what is left, or returns fewer points
                return []
        return [self._from_ax(dict(p)) for p in trials.values()]
