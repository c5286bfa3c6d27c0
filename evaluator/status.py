"""The status codes an evaluation writes to ``output.json`` (``status`` field).

=====  ==================  =============================================================
code   name                meaning (``loss`` is ``null`` for every code but 0)
=====  ==================  =============================================================
0      OK                  the training ran; ``loss`` = the last reported value of the
                           metric (negated for ``mode: max``)
1      USER_ERROR          the training code raised; message = the exception's last line
2      METRIC_MISSING      no reported result holds the metric (or it is not a number)
3      METRIC_NAN          the metric's last value is NaN
4      METRIC_INF          the metric's last value is +inf or -inf
5      TIMEOUT             ``--timeout`` seconds passed before the training finished
6      TERMINATED          the evaluator got SIGTERM (or SIGINT) before the training finished
7      INPUT_ERROR         input.json / input_ds.json / project / script / model unusable
8      INTERNAL_ERROR      a bug in hpogrid itself (traceback in the log)
=====  ==================  =============================================================

The process exit status is separate (see ``program``): 0 when an evaluation ran and
``output.json`` was written (whatever its status), 1 for input problems (output.json still written
with status 7 when the job directory is writable), 2 for command-line usage errors, 3 when
``output.json`` could not be written.
"""

from __future__ import annotations

import enum

__all__ = ["Status", "ExitCode"]


class Status(enum.IntEnum):
    OK = 0
    USER_ERROR = 1
    METRIC_MISSING = 2
    METRIC_NAN = 3
    METRIC_INF = 4
    TIMEOUT = 5
    TERMINATED = 6
    INPUT_ERROR = 7
    INTERNAL_ERROR = 8


class ExitCode(enum.IntEnum):
    EVALUATED = 0
    INPUT_ERROR = 1
    USAGE = 2
    NO_OUTPUT = 3
