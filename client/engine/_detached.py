"""``python -m hpogrid.client.engine._detached ID BACKEND``: the background driver of ``submit_idds --detach``.

Started in a new session by :func:`spawn_detached`, output to ``driver.log`` in the campaign folder.
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    from ..backends import get_backend
    from ..backends.base import SubmitOptions
    from ..campaigns import open_campaign
    from ..errors import HpogridError
    from ..records import CampaignState

    campaign_id, backend = argv[0], argv[1]
    store = open_campaign(campaign_id)
    try:
        get_backend(backend).run(store, SubmitOptions(), progress="plain")
    except HpogridError as exc:  # e.g. another driver took the campaign meanwhile: one line in driver.log
        print(f"hpogrid: error: {exc}", file=sys.stderr)
        return 1
    return 0 if store.campaign().status is CampaignState.FINISHED else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
