"""idds-client calls: points and losses of an HPO request, translated into ``GridError``.

``ClientManager`` methods return ``(False, message)`` instead of raising; each such return, and
each exception of ``idds.client.client.Client``, becomes one line naming the task. The iDDS
server is ``IDDS_HOST`` (or idds-client's own configuration); the credential is the one
panda-client uses (x509 proxy, or the OIDC token and VO).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from ..errors import GridError, NotFoundError
from .auth import Credential

__all__ = ["IddsError", "hyperparameters", "request_status", "manager", "call"]


class IddsError(GridError):
    """iDDS refused a request or could not be reached."""


def manager(credential: Credential, host: str | None = None) -> Any:
    os.environ.setdefault("IDDS_CLIENT_MODE", "1")  # idds-client only, even where idds-server is installed
    from idds.client.clientmanager import ClientManager

    # idds-client configures the root logger at import (INFO, every HTTP request); keep hpogrid's
    # output to its own lines.
    for name in ("", "httpx", "urllib3", "idds"):
        logging.getLogger(name).setLevel(logging.WARNING)

    host = host or os.environ.get("IDDS_HOST")
    cm = ClientManager(host=host, timeout=60)
    if credential.kind == "oidc":
        cm.auth_type, cm.oidc_token, cm.vo = "oidc", credential.token, credential.vo
    else:
        cm.auth_type, cm.x509_proxy = "x509_proxy", credential.proxy
    return cm


def _failed(ret: Any) -> str | None:
    if isinstance(ret, tuple) and len(ret) == 2 and ret[0] is False:
        return " ".join(str(ret[1]).split())[:300]
    return None


def call(cm: Any, what: str, task_id: int, fn: str, **kwargs: Any) -> Any:
    try:
        cm.setup_client()
        cm.client.retries = 1  # idds-client sleeps up to 30 s between retries; one clear line is better
    except Exception as exc:  # idds-client raises bare Exceptions for configuration problems
        raise IddsError(f"task {task_id}: cannot set up idds-client: {exc}") from exc
    ret = getattr(cm, fn)(**kwargs)
    message = _failed(ret)
    if message is not None:
        if "Cannot find requests" in message or "NoObject" in message or "No matching" in message:
            raise NotFoundError(f"task {task_id}: iDDS has no HPO request for it ({message})")
        if "ConnectionError" in message or "Connection refused" in message:
            raise IddsError(f"task {task_id}: cannot reach iDDS at {cm.host}: {message}")
        raise IddsError(f"task {task_id}: iDDS {what} failed: {message}")
    return ret


def hyperparameters(task_id: int, credential: Credential) -> list[dict[str, Any]]:
    """Every point of the task's HPO request: ``[{"id": "1", "parameters": {...}, "loss": float|None}]``."""
    cm = manager(credential)
    ret = call(cm, "get_hyperparameters", task_id, "get_hyperparameters", workload_id=int(task_id), request_id=None)
    if ret is None:
        return []
    if not isinstance(ret, list):
        raise IddsError(f"task {task_id}: iDDS sent hyperparameters in an unexpected shape ({type(ret).__name__})")
    points = []
    for item in ret:
        loss = item.get("loss")
        if loss is not None:
            try:
                loss = float(loss)  # NaN and inf stay: a point evaluated to a non-finite loss has a result
            except (TypeError, ValueError):
                loss = None
        points.append({"id": str(item.get("id")), "parameters": item.get("parameters") or {}, "loss": loss})
    return sorted(points, key=lambda p: int(p["id"]) if p["id"].isdigit() else 0)


def request_status(task_id: int, credential: Credential) -> str | None:
    """The status name of the task's iDDS request (``Transforming``, ``Finished``, ...), if there is one."""
    cm = manager(credential)
    ret = call(cm, "get_requests", task_id, "get_requests", workload_id=int(task_id))
    if not ret:
        return None
    status = ret[0].get("status")
    return getattr(status, "name", None) or (status.get("attributes", {}).get("_name_") if isinstance(status, dict) else str(status))
