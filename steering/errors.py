"""Errors of the steering: one root, narrow subclasses."""

from __future__ import annotations

from typing import Any

# Every error message that echoes a user's value shows at most this many characters of it.
SHOWN_CHARS = 80


def shorten(text: str, limit: int = SHOWN_CHARS) -> str:
    """``text`` cut to ``limit`` characters, ending in an ellipsis and the full length when cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit - 1]}… ({len(text)} characters)"


def shown(value: Any, limit: int = SHOWN_CHARS) -> str:
    """A user's value as an error message echoes it: its ``repr``, cut to ``limit`` characters.

    A 2 MB value (or a whole file) is never written back to the terminal.
    """
    return shorten(repr(value), limit)


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
