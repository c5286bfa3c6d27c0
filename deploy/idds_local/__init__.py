"""A real iDDS 2.6.21 on this machine: the unmodified server packages from PyPI in their own venv,
on PostgreSQL from PyPI, with a ``docker`` stand-in that runs the steering on this host.

    from hpogrid.iddslocal import ensure_environment, start, LocalIdds, Unavailable

    with start(workdir, port=18100) as idds:     # returns when /idds/ping answers
        ...idds.url...                           # http://127.0.0.1:18100/idds

The command ``hpogrid-idds-local start|stop|status --workdir DIR`` does the same from a shell.
docs/IDDS-LOCAL.md tells what it runs and why.
"""

from .environment import IDDS_VERSION, ensure_environment, environment_path
from .errors import IddsLocalError, StartError, Unavailable
from .server import Component, LocalIdds, Status, start, status, stop

__all__ = ["IDDS_VERSION", "ensure_environment", "environment_path", "IddsLocalError", "StartError", "Unavailable",
           "Component", "LocalIdds", "Status", "start", "status", "stop"]
