"""Checking a user's ``algorithm_param`` against what an algorithm accepts."""

from __future__ import annotations

from typing import Any, Mapping

from ..errors import InputError


def check_params(algorithm: str, params: Mapping[str, Any], valid: Mapping[str, Any]) -> dict[str, Any]:
    """``valid`` maps each accepted key to its default; unknown keys are an error, not ignored."""
    unknown = sorted(set(params) - set(valid))
    if unknown:
        names = ", ".join(sorted(valid)) or "none"
        raise InputError(f"algorithm '{algorithm}': unknown algorithm_param {unknown}; valid keys: {names}")
    return {**valid, **params}


def choose(algorithm: str, key: str, value: Any, options: Mapping[str, Any]) -> Any:
    """Look an option up case-insensitively; an unknown one lists the valid ones."""
    if isinstance(value, str):
        for name, target in options.items():
            if name.lower() == value.lower():
                return target
    raise InputError(f"algorithm '{algorithm}': algorithm_param {key}={value!r} is not one of {', '.join(options)}")
