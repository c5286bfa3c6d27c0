"""The conformance scenario: one scripted sequence of iDDS calls, run against the real iDDS 2.6.21
(server + agents, ``tests/idds`` ``real_idds``) and against the sandbox (``hpogrid-gridsim``).

A standalone PanDA-style HPO request (as JEDI sends it, POSTed with idds-client; no PanDA task)
whose steering is ``hpogrid-steering --seed 7``, so the points are a function of the history; the
test plays the PanDA jobs: it takes each round's points and PUTs their losses (one of them NaN),
and makes bad calls on the way. Every reply is recorded
with its data; ``normalise`` removes only what differs by nature (request ids, dates).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import requests

from tests.idds import hpo

MAX_POINTS, PER_ROUND = 6, 2


@dataclass
class Reply:
    call: str
    status: int
    exception_class: str | None
    exception_message: str | None
    content_type: str | None
    data: Any  # the decoded body ("" when empty)

    @classmethod
    def of(cls, call: str, reply: requests.Response) -> "Reply":
        body: Any = reply.text
        if body:
            try:
                body = json.loads(body)  # Python's json: iDDS sends NaN as a bare NaN
            except ValueError:
                pass
        return cls(call, reply.status_code, reply.headers.get("ExceptionClass"),
                   reply.headers.get("ExceptionMessage"), reply.headers.get("Content-Type"), body)


def loss_of(point: dict[str, Any]) -> float:
    """Point 2 fails (NaN, as a crashed training reports it); the others: x + y."""
    return math.nan if point["id"] == "2" else hpo.simple_loss(point["parameters"])


def _wait_for(base: str, workload_id: int, count: int, timeout: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        points = hpo.points(base, workload_id)
        if len(points) >= count:
            return points
        time.sleep(0.5)
    raise AssertionError(f"{count} points did not appear in {timeout:.0f} s at {base} (workload {workload_id})")


def run_scenario(base: str, proxy: Path, workload_id: int, timeout: float = 120.0) -> list[Reply]:
    get = lambda path: requests.get(f"{base}/{path}", timeout=30)  # noqa: E731
    put = lambda path: requests.put(f"{base}/{path}", timeout=30)  # noqa: E731
    out: list[Reply] = []
    record = lambda call, reply: out.append(Reply.of(call, reply))  # noqa: E731
    record("ping", get("ping"))
    request_id = hpo.submit(base, proxy, hpo.request_metadata(workload_id, MAX_POINTS, PER_ROUND))
    record("request by id", get(f"request/{request_id}/null/false"))
    for round_no in range(1, MAX_POINTS // PER_ROUND + 1):
        points = _wait_for(base, workload_id, round_no * PER_ROUND, timeout)
        record(f"round {round_no}: points", get(f"hpo/{workload_id}/null/null/null/null"))
        new = [p for p in points if p["loss"] is None]
        if round_no == 1:
            record("one point by id", get(f"hpo/{workload_id}/null/{new[0]['id']}/null/null"))
            record("points with a limit", get(f"hpo/{workload_id}/null/null/null/1"))
            record("points by request id", get(f"hpo/null/{request_id}/null/null/null"))
        for point in new:
            record(f"round {round_no}: loss of {point['id']}", put(f"hpo/{workload_id}/null/{point['id']}/{loss_of(point)}"))
        if round_no == 1:
            record("loss of an unknown point", put(f"hpo/{workload_id}/null/99/0.5"))
            record("a loss that is not a number", put(f"hpo/{workload_id}/null/1/low"))
            record("round 1: points with losses", get(f"hpo/{workload_id}/null/null/null/null"))
    deadline = time.monotonic() + timeout
    while hpo.request_status(base, request_id) != "Finished" and time.monotonic() < deadline:
        time.sleep(0.5)
    record("request at the end", get(f"request/{request_id}/null/false"))
    record("points at the end", get(f"hpo/{workload_id}/null/null/null/null"))
    return out + bad_calls(base)


def bad_calls(base: str) -> list[Reply]:
    """Calls that need no running request: unknown ids, malformed paths, a missing token."""
    get = lambda path, **kw: requests.get(f"{base}/{path}", timeout=30, **kw)  # noqa: E731
    put = lambda path: requests.put(f"{base}/{path}", timeout=30)  # noqa: E731
    return [Reply.of(call, reply) for call, reply in [
        ("unknown workload: points", get("hpo/987654321/null/null/null/null")),
        ("unknown workload: one point", get("hpo/987654321/null/1/null/null")),
        ("unknown workload: points with a limit", get("hpo/987654321/null/null/null/1")),
        ("unknown workload: loss", put("hpo/987654321/null/1/0.5")),
        ("no workload, no request: loss", put("hpo/null/null/1/0.5")),
        ("hpo path too short", get("hpo/987654321/null")),
        ("no such path", get("no/such/path")),
        ("unknown request", get("request/null/987654321/false")),
        ("abort an unknown request", put("request/abort/987654321/null")),
        ("oidc without a token", get("request/null/987654321/false", headers={"X-IDDS-Auth-Type": "oidc"})),
    ]]


def normalise(replies: list[Reply]) -> list[dict[str, Any]]:
    """Replies as plain data, without what differs by nature: request ids, timestamps, and the
    request row's bookkeeping (kept: workload_id, status, request_type, requester)."""
    keep = {"workload_id", "status", "request_type", "requester", "transform_tag"}
    out = []
    for reply in replies:
        item = asdict(reply)
        data = item["data"]
        if reply.call.startswith(("request by id", "request at the end")) and isinstance(data, list):
            item["data"] = [{k: v for k, v in row.items() if k in keep} for row in data]
        out.append(item)
    return out


# iDDS serialises an enum member with its ``__dict__``: ``_loading`` is there or not depending on the
# server process's history (seen once in CI, not in the recording); ``_name_``/``_value_`` carry the meaning
_NOISE = {"_loading"}


def differences(mine: Any, real: Any, path: str = "") -> list[str]:
    """Field by field, with data; NaN equals NaN (iDDS keeps a NaN loss as NaN)."""
    if isinstance(mine, dict) and isinstance(real, dict):
        mine, real = ({k: v for k, v in d.items() if k not in _NOISE} for d in (mine, real))
        out = [f"{path}: only in one: {sorted(set(mine) ^ set(real))}"] if set(mine) != set(real) else []
        for key in sorted(set(mine) & set(real)):
            out += differences(mine[key], real[key], f"{path}.{key}")
        return out
    if isinstance(mine, list) and isinstance(real, list):
        if len(mine) != len(real):
            return [f"{path}: {len(mine)} items != {len(real)}: {json.dumps(mine)[:300]} vs {json.dumps(real)[:300]}"]
        return [d for i, (a, b) in enumerate(zip(mine, real)) for d in differences(a, b, f"{path}[{i}]")]
    if isinstance(mine, float) and isinstance(real, float) and math.isnan(mine) and math.isnan(real):
        return []
    if type(mine) is not type(real) or mine != real:
        return [f"{path}: {mine!r} != {real!r}"]
    return []


def dumps(replies: list[dict[str, Any]]) -> str:
    return json.dumps(replies, indent=1, sort_keys=True, allow_nan=True) + "\n"
