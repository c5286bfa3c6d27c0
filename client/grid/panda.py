"""panda-client calls, each translated into ``GridError`` (one line, with the task id when known).

panda-client returns ``(status, output)`` pairs instead of raising: status 0 = the server answered,
255 = communication failure or a ``success: false`` reply, 1 = network error, else the HTTP code.
Each wrapper here turns a failure into one clear line. panda-client reads its server URLs from the
environment when ``pandaclient.Client`` is first imported, so it is imported inside the functions.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Iterator

from ..errors import GridError, NotFoundError

__all__ = [
    "PandaError",
    "server_url",
    "upload_sandbox",
    "submit_task",
    "task_status",
    "task_details",
    "list_tasks",
    "kill_task",
    "retry_task",
    "job_metadata",
    "site_info",
]


class PandaError(GridError):
    """PanDA refused a request or could not be reached."""


@contextlib.contextmanager
def captured() -> Iterator[io.StringIO]:
    """Collect what panda-client prints and logs during a call (tracebacks of ``dump_log``, warnings);
    each failure is then said once, by us, with the part of that text that explains it."""
    os.environ.setdefault("PANDA_BEHIND_REAL_LB", "1")
    from pandaclient import PLogger

    logger = PLogger.getPandaLogger(use_stdout=False)
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logging.Formatter("%(levelname)s : %(message)s"))
    saved = logger.handlers[:]
    logger.handlers[:] = [handler]
    try:
        with contextlib.redirect_stdout(buffer):
            yield buffer
    finally:
        logger.handlers[:] = saved


def _client() -> Any:
    os.environ.setdefault("PANDA_BEHIND_REAL_LB", "1")
    from pandaclient import Client

    return Client


_LAST_SAID = {"text": ""}  # what panda-client printed during the last call (for the error message)


def _call(fn: str, *args: Any, **kwargs: Any) -> Any:
    """One panda-client call, its own printing captured (see ``captured``)."""
    with captured() as said:
        try:
            return getattr(_client(), fn)(*args, **kwargs)
        finally:
            _LAST_SAID["text"] = said.getvalue()


def _said() -> str:
    """The server's answer as panda-client printed it (``dump_log``), without its log noise."""
    keep = [line.strip() for line in _LAST_SAID["text"].splitlines()
            if line.strip() and not line.startswith(("ERROR :", "WARNING :", "INFO :", "DEBUG :", "Traceback"))
            and line.strip() != "NoneType: None"]
    return _short(" ".join(keep))


def server_url() -> str:
    return _client().server_base_path_ssl


def _what(status: int, output: Any) -> str:
    if status == 1:
        return f"cannot reach PanDA at {server_url()}: {_short(output)}"
    if status == 255:
        answer = _said()
        return f"PanDA at {server_url()} refused the request or sent no valid answer" + (f": {answer}" if answer else "")
    if isinstance(status, int) and status >= 300:
        return f"PanDA at {server_url()} answered HTTP {status}: {_short(output)}"
    return f"PanDA failed (status {status}): {_short(output)}"


def _short(text: Any) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= 300 else text[:297] + "..."


def upload_sandbox(path: Path) -> str:
    """Upload the sandbox to PanDA's cache; returns the file name jobs fetch (reused if identical)."""
    client = _client()
    cwd = os.getcwd()
    os.chdir(path.parent)  # putFile sends the name it is given; PanDA keeps the basename
    try:
        status, out = _call("putFile", path.name, False, useCacheSrv=True, reuseSandbox=True)
    finally:
        os.chdir(cwd)
    if status == 0 and isinstance(out, str) and out.startswith("NewFileName:"):
        return out.split(":")[-1]
    if status == 0 and out == "True":
        return path.name
    where = client.cache_base_path_ssl
    if status == 255 and isinstance(out, str):  # putFile's own text says what went wrong
        raise PandaError(f"cannot upload the sandbox to PanDA's cache at {where}: {_short(out)}")
    raise PandaError(f"cannot upload the sandbox to PanDA's cache at {where}: "
                     f"{_what(status, out) if status != 0 else _short(out)}")


def submit_task(task_params: dict[str, Any]) -> int:
    """``Client.insertTaskParams``; returns the jediTaskID."""
    status, out = _call("insertTaskParams", task_params, False, True)
    if status != 0:
        raise PandaError(f"task submission failed: {_what(status, out)}")
    code, message = out[0], out[1]
    if code not in (0, 3):
        raise PandaError(f"PanDA refused the task (code {code}): {_short(message)}")
    m = re.search(r"jediTaskID=(\d+)", str(message))
    if not m:
        raise PandaError(f"PanDA accepted the task but sent no jediTaskID: {_short(message)}")
    return int(m.group(1))


def task_status(task_id: int) -> str:
    status, out = _call("getTaskStatus", int(task_id))
    if status != 0 or out is None:
        raise PandaError(f"task {task_id}: cannot get its status: {_what(status, out)}")
    return str(out)


def task_details(task_id: int) -> dict[str, Any]:
    status, out = _call("getJediTaskDetails", {"jediTaskID": int(task_id)}, False, True)
    if status != 0 or not isinstance(out, dict):
        raise PandaError(f"task {task_id}: cannot get its details: {_what(status, out)}")
    return out


def list_tasks(days: int | None = 30, limit: int = 1000, filters: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The user's tasks (``task/get_tasks_detailed_info_since``)."""
    import datetime as _dt

    since = None
    if days is not None:
        since = (_dt.datetime.now(_dt.timezone.utc) - _dt.timedelta(days=days)).strftime("%Y-%m-%d %H:%M:%S")
    status, out = _call("get_tasks_detailed_info_since", since=since, filters=filters, n_tasks=limit)
    if status != 0 or out is None:
        raise PandaError(f"cannot list tasks: {_what(status, out)}")
    return list(out)


def _not_found(text: str) -> bool:
    return re.search(r"not found|unknown task|does not exist|no such task", text, re.I) is not None


def kill_task(task_id: int) -> str:
    """``Client.killTask``: ``(True, message)`` when registered, ``(False, reason)`` when refused."""
    status, out = _call("killTask", int(task_id))
    if status != 0:
        raise PandaError(f"task {task_id}: kill failed: {_what(status, out)}")
    ok, diag = out
    if not ok:
        if _not_found(str(diag)):
            raise NotFoundError(f"task {task_id}: PanDA has no such task ({_short(diag)})")
        raise PandaError(f"task {task_id}: kill refused: {_short(diag)}")
    return _short(diag)


def retry_task(task_id: int) -> str:
    """``Client.retryTask``: ``(code, message)``, code 0/True when registered (as pbook reads it)."""
    status, out = _call("retryTask", int(task_id), False, True)
    if status != 0:
        raise PandaError(f"task {task_id}: retry failed: {_what(status, out)}")
    code, message = out
    if code not in (0, True):
        if code == 2 or _not_found(str(message)):
            raise NotFoundError(f"task {task_id}: PanDA has no such task ({_short(message)})")
        raise PandaError(f"task {task_id}: retry refused (code {code}): {_short(message)}")
    return _short(message)


def job_metadata(task_id: int) -> list[dict[str, Any]]:
    """Per-job metadata (``getUserJobMetadata``) as ``[{"PandaID": id, "metaData": {...}}, ...]``."""
    status, out = _call("getUserJobMetadata", int(task_id))
    if status != 0 or out is None:
        raise PandaError(f"task {task_id}: cannot get job metadata: {_what(status, out)}")
    items = out.items() if isinstance(out, dict) else ((r.get("PandaID"), r.get("metaData")) for r in out)
    result = []
    for panda_id, meta in items:
        if isinstance(meta, str):
            try:
                meta = json.loads(meta)
            except json.JSONDecodeError:
                pass
        result.append({"PandaID": int(panda_id), "metaData": meta})
    return sorted(result, key=lambda r: r["PandaID"])


def site_info() -> dict[str, dict[str, Any]]:
    """PanDA's queue information (``/cache/schedconfig/schedconfig.all.json``), keyed by queue name."""
    with tempfile.TemporaryDirectory(prefix="hpogrid-sites-") as tmp:
        target = os.path.join(tmp, "schedconfig.all.json")
        status, out = _call("getFile", "schedconfig/schedconfig.all.json", output_path=target)
        if status != 0 or out is not True:
            raise PandaError(f"cannot get the site list: {_what(status, out)}")
        with open(target, encoding="utf-8") as f:
            try:
                data = json.load(f)
            except json.JSONDecodeError as exc:
                raise PandaError(f"the site list from PanDA is not JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise PandaError("the site list from PanDA is not a JSON object")
    return data
