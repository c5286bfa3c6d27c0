"""The rules every part of hpogrid shares, in one place (docs/CONTRACTS.md, "Shared rules").

Standard library only and no hpogrid import, so the steering, the evaluator, the client and the
grid sandbox can all use it:

- :mod:`.metric`: metric <-> loss (``loss_of``, ``metric_of``) and the grid's ``FAILURE_LOSS``;
- :mod:`.files`: ``atomic_write_text``/``atomic_write_json`` (a reader never sees half a file) and
  ``read_json``/``read_json_or_none``;
- :mod:`.wire`: the JSON-lines framing between the driver and its helper processes.
"""

from __future__ import annotations

from .files import (
    JsonFileError,
    JsonProblem,
    atomic_write_json,
    atomic_write_text,
    current_umask,
    read_json,
    read_json_or_none,
)
from .metric import FAILURE_LOSS, MODES, check_mode, loss_of, metric_of
from .wire import LineReader, decode, encode, send

__all__ = [
    "FAILURE_LOSS",
    "MODES",
    "JsonFileError",
    "JsonProblem",
    "LineReader",
    "atomic_write_json",
    "atomic_write_text",
    "check_mode",
    "current_umask",
    "decode",
    "encode",
    "loss_of",
    "metric_of",
    "read_json",
    "read_json_or_none",
    "send",
]
