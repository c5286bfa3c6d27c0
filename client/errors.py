"""Errors of the client: one root, narrow subclasses. The CLI prints them as one line."""

from __future__ import annotations

__all__ = [
    "HpogridError",
    "UsageError",
    "ConfigError",
    "NotFoundError",
    "AlreadyExistsError",
    "CampaignError",
    "GridError",
]


class HpogridError(Exception):
    """Root of every error the client raises on purpose. ``exit_code`` is the CLI's status."""

    exit_code = 1


class UsageError(HpogridError, ValueError):
    """The user asked for something malformed (bad name, bad JSON, bad option value)."""

    exit_code = 2


class ConfigError(UsageError):
    """A config value breaks a rule (unknown algorithm, num_trials < 1, ...)."""


class NotFoundError(HpogridError, LookupError):
    """A config, project, campaign or file that does not exist."""


class AlreadyExistsError(HpogridError):
    """``create`` of a name that is taken (use ``recreate`` to replace it)."""


class CampaignError(HpogridError):
    """A campaign cannot be started, resumed or acted on."""


class GridError(HpogridError):
    """PanDA, iDDS or Rucio refused or could not be reached."""
