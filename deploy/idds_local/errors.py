"""Errors of the local iDDS: one root; the command prints them as one line."""

from __future__ import annotations

__all__ = ["IddsLocalError", "Unavailable", "StartError"]


class IddsLocalError(Exception):
    """Root of every error ``hpogrid.iddslocal`` raises on purpose."""


class Unavailable(IddsLocalError):
    """The iDDS environment cannot be built or used on this machine (no PyPI, no uv/venv, ...).
    ``reason`` says why, in one line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class StartError(IddsLocalError):
    """A part of the local iDDS did not start (or is already running); the message names the log."""
