"""Metric <-> loss: the one place where ``mode`` matters.

A training reports a *metric*; iDDS, the steering's algorithms and the store's ``loss`` column
hold a *loss*, always minimised: the metric for ``mode: min``, its negation for ``mode: max``.
"""

from __future__ import annotations

from typing import TypeVar

__all__ = ["FAILURE_LOSS", "MODES", "check_mode", "loss_of", "metric_of"]

#: The loss PanDA reports to iDDS for a point whose every attempt failed (docs/PROTOCOL.md).
FAILURE_LOSS = 1e5
#: The two optimisation modes of an hpo_config.
MODES = ("min", "max")

_Number = TypeVar("_Number", int, float)


def check_mode(mode: object) -> str:
    """``mode`` if it is ``"min"`` or ``"max"``; else ValueError naming the value seen."""
    if mode not in MODES:
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    return str(mode)


def loss_of(metric: _Number | None, mode: str) -> _Number | None:
    """The loss (minimised) of a metric value; ``None`` (no value) stays ``None``."""
    check_mode(mode)
    if metric is None:
        return None
    return -metric if mode == "max" else metric


def metric_of(loss: _Number | None, mode: str) -> _Number | None:
    """The metric value of a loss: the inverse of :func:`loss_of` (negation is its own inverse)."""
    return loss_of(loss, mode)
