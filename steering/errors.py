"""Errors of the steering: one root, narrow subclasses."""

from __future__ import annotations

__all__ = ["SteeringError", "SpaceError", "UnknownAlgorithmError", "MissingDependencyError", "InputError"]


class SteeringError(Exception):
    """Root of every error the steering raises on purpose (user input, missing extras)."""


class SpaceError(SteeringError, ValueError):
    """A search space, or a point checked against it, breaks a rule."""


class UnknownAlgorithmError(SteeringError, ValueError):
    """An algorithm name that is not registered."""


class MissingDependencyError(SteeringError, ImportError):
    """An optional library an algorithm needs is not installed."""


class InputError(SteeringError, ValueError):
    """A steering input (%IN file, config) that cannot be read."""
