"""``python -m hpogrid.client.backends.detached ID BACKEND``: the background driver of ``submit_idds --detach``.

Started in a new session by :func:`spawn`, output to ``driver.log`` in the campaign folder.
"""

from __future__ import annotations

import subprocess
import sys

from ..store import Store

__all__ = ["spawn", "main"]


def spawn(store: Store, backend: str) -> int:
    """Run the campaign in the background: a new session, output to driver.log in its folder."""
    folder = store.path.parent
    campaign = store.campaign()
    with open(folder / "driver.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hpogrid.client.backends.detached", str(campaign["id"]), backend],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, close_fds=True,
        )
    store.update_campaign(pid=proc.pid)
    return proc.pid


def main(argv: list[str]) -> int:
    from ..campaigns import open_campaign
    from ..errors import HpogridError
    from . import get_backend
    from .base import SubmitOptions

    campaign_id, backend = argv[0], argv[1]
    impl = get_backend(backend)
    if not impl.driven_here:
        print(f"hpogrid: error: the {backend} backend has no background driver", file=sys.stderr)
        return 2
    store = open_campaign(campaign_id)
    try:
        impl.run(store, SubmitOptions(progress="plain"))
    except HpogridError as exc:  # e.g. another driver took the campaign meanwhile: one line in driver.log
        print(f"hpogrid: error: {exc}", file=sys.stderr)
        return 1
    status = store.campaign()["status"]
    return 0 if status == "finished" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
