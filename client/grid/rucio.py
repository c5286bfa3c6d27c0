"""Rucio: check that the training dataset exists before a task names it."""

from __future__ import annotations

import logging
from typing import Any

from ..errors import GridError, NotFoundError

__all__ = ["RucioError", "split_did", "check_dataset"]


class RucioError(GridError):
    """Rucio refused a request or could not be reached."""


def split_did(did: str) -> tuple[str, str]:
    """``scope:name``, or ATLAS's implicit scope (``user.nick.x`` -> ``user.nick``, ``mc16.x`` -> ``mc16``)."""
    did = did.rstrip("/")
    if ":" in did:
        scope, name = did.split(":", 1)
        return scope, name
    parts = did.split(".")
    if parts[0] in ("user", "group") and len(parts) > 2:
        return ".".join(parts[:2]), did
    return parts[0], did


def check_dataset(did: str) -> dict[str, Any]:
    """The DID's description from Rucio; ``NotFoundError`` if it does not exist."""
    scope, name = split_did(did)
    try:
        from rucio.client.didclient import DIDClient
        from rucio.common import exception as rucio_exc
    except ImportError as exc:  # pragma: no cover - the grid extra installs it
        raise RucioError("checking inDS needs rucio-clients: pip install 'hpogrid[grid]'") from exc
    quiet = logging.getLogger("hpogrid.rucio")  # rucio logs every failure itself; we say it once
    quiet.propagate = False
    if not quiet.handlers:
        quiet.addHandler(logging.NullHandler())
    try:
        client = DIDClient(logger=quiet)
        info = client.get_did(scope, name)
    except rucio_exc.DataIdentifierNotFound as exc:
        raise NotFoundError(
            f"input dataset {scope}:{name} does not exist in Rucio; upload it first (rucio upload --rse RSE "
            f"--scope {scope} FILES, then rucio add-dataset / attach)"
        ) from exc
    except rucio_exc.RucioException as exc:
        raise RucioError(f"cannot check input dataset {scope}:{name} in Rucio: {type(exc).__name__}: "
                         f"{' '.join(str(exc).split())[:300]}") from exc
    except OSError as exc:  # requests' connection errors are OSErrors
        raise RucioError(f"cannot reach Rucio to check input dataset {scope}:{name}: {type(exc).__name__}: "
                         f"{' '.join(str(exc).split())[:300]}") from exc
    return dict(info)
