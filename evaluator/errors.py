"""Errors of the evaluator: one root, narrow subclasses.

Only problems hpogrid can name are raised as these (a missing input file, a project that cannot be
read, a script without the named function). Exceptions raised by the user's training code are not
wrapped: they become a failed evaluation (status 1) with the exception's last line as message.
"""

from __future__ import annotations

__all__ = ["EvaluatorError", "InputError", "ProjectError", "ScriptError"]


class EvaluatorError(Exception):
    """Root of every error the evaluator raises on purpose."""


class InputError(EvaluatorError, ValueError):
    """The job's inputs (input.json, input_ds.json, command-line paths) cannot be used."""


class ProjectError(EvaluatorError, ValueError):
    """The project (project.json and its scripts folder) cannot be read or breaks a rule."""


class ScriptError(EvaluatorError, ValueError):
    """The training script is missing, or lacks the named function/class, or has an unusable shape."""
