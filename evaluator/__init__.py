"""hpogrid's evaluator: run one point of a project's training through Ray Tune's trainable
machinery, in this process (``hpogrid-evaluate``, PanDA's ``evaluationExec``).

- :mod:`.program`: the command (``main(argv) -> int``, ``preload()`` for fork servers);
- :mod:`.adapters`: the five training script styles as Ray Tune trainables (shared with ``local_run``);
- :mod:`.runner`: one trial stepped in-process, checkpoints for retried jobs;
- :mod:`.status`: the ``output.json`` status codes and the exit codes.

Importing this package does not import Ray.
"""

from .errors import EvaluatorError, InputError, ProjectError, ScriptError
from .status import ExitCode, Status

__all__ = ["EvaluatorError", "InputError", "ProjectError", "ScriptError", "ExitCode", "Status"]
