"""Conformance: one scripted scenario (tests/grid/idds_oracle.py) against the real iDDS 2.6.21
(REST app + agents + hpogrid-steering, ``real_idds``) and against the sandbox (``hpogrid-gridsim``).

- The real iDDS runs the whole scenario (a PanDA-style request, three rounds of two points chosen by
  a seeded hpogrid-steering, losses PUT by the test, one of them NaN, an unknown point id, a loss
  that is not a number, bad paths and ids) and must answer exactly as recorded in
  ``wire/idds_hpo_scenario.json``: ids, parameters, losses, statuses, error headers, bodies.
- The sandbox runs the same whole scenario (its own scheduler runs the standalone request's rounds,
  docs/GRIDSIM.md) and must give the same replies, compared by the same function, data included.

Re-record with ``HPOGRID_RECORD_IDDS=1`` (writes the real replies instead of comparing).
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest

from hpogrid.iddslocal import LocalIdds
from tests.grid.conftest import WIRE_DIR
from tests.grid.idds_oracle import Reply, bad_calls, differences, dumps, normalise, run_scenario
from tests.idds import hpo
from tests.idds.conftest import real_idds  # noqa: F401  (the session's real iDDS, shared with tests/idds)

pytestmark = pytest.mark.slow

RECORDING = WIRE_DIR / "idds_hpo_scenario.json"
WORKLOAD = 7001
DATE = re.compile(r"^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} UTC$")


def shape(value: Any) -> Any:
    """What must agree where values differ by state (test_grid_sandbox.py compares the sandbox's
    request rows with captured ones): keys, enum classes, date format, JSON types."""
    if isinstance(value, dict):
        if {"class", "module", "attributes"} <= set(value):
            return ("enum", value["module"], value["class"])
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    if isinstance(value, str) and DATE.match(value):
        return "date"
    if isinstance(value, bool) or value is None:
        return type(value).__name__
    if isinstance(value, (int, float)):
        return "number"
    return type(value).__name__


def same_shape(a: Any, b: Any, path: str = "") -> list[str]:
    """Differences between two shapes; a null on one side matches anything (values differ by state)."""
    if a == "NoneType" or b == "NoneType":
        return []
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{path}: key sets differ: only sandbox {sorted(set(a) - set(b))}, only iDDS {sorted(set(b) - set(a))}"] \
            if set(a) != set(b) else []
        for k in set(a) & set(b):
            out += same_shape(a[k], b[k], f"{path}.{k}")
        return out
    if isinstance(a, list) and isinstance(b, list):
        return same_shape(a[0], b[0], f"{path}[0]") if a and b else []
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def _recorded() -> list[dict[str, Any]]:
    return json.loads(RECORDING.read_text())


def _compare(mine: list[dict[str, Any]], real: list[dict[str, Any]]) -> list[str]:
    by_call = {r["call"]: r for r in real}
    problems = [f"{m['call']}: not in the recording" for m in mine if m["call"] not in by_call]
    for m in mine:
        if m["call"] in by_call:
            problems += [f"{m['call']}{d}" for d in differences(m, by_call[m["call"]])]
    return problems


def test_the_real_idds_answers_the_scenario_as_recorded(real_idds: LocalIdds):  # noqa: F811
    replies = normalise(run_scenario(real_idds.url, real_idds.proxy, WORKLOAD))
    if os.environ.get("HPOGRID_RECORD_IDDS"):
        RECORDING.write_text(dumps(replies))
        pytest.skip(f"recorded {len(replies)} replies into {RECORDING}")
    assert [r["call"] for r in replies] == [r["call"] for r in _recorded()]
    problems = _compare(replies, _recorded())
    assert not problems, "\n".join(problems)


def test_the_recording_holds_the_contract_we_rely_on():
    """What the scenario showed about iDDS 2.6.21, stated once (docs/IDDS-LOCAL.md)."""
    real = {r["call"]: r for r in _recorded()}
    rounds = [real[f"round {n}: points"]["data"] for n in (1, 2, 3)]
    assert [[p["id"] for p in points] for points in rounds] == [["1", "2"], ["1", "2", "3", "4"],
                                                               ["1", "2", "3", "4", "5", "6"]]
    assert [p["loss"] for p in rounds[0]] == [None, None]  # a new point has a null loss
    assert real["round 1: loss of 2"]["data"] == {"message": "update successfully", "status": 0}  # NaN accepted
    assert str(real["round 1: points with losses"]["data"][1]["loss"]) == "nan"  # and kept as NaN
    assert real["points with a limit"]["status"] == 500  # iDDS compares len() with the limit string
    assert real["loss of an unknown point"]["exception_message"] == '{"msg": "list index out of range"}'
    assert real["request at the end"]["data"][0]["status"]["attributes"]["_name_"] == "Finished"
    assert len(real["points at the end"]["data"]) == 6


def test_the_sandbox_answers_the_whole_scenario_as_the_real_idds(gridsim: dict):
    """The same scenario against the sandbox: its own scheduler runs the standalone request's
    rounds (the seeded steering proposes the same points), and every reply, with its data, is the
    real iDDS's (same comparison as for the real server)."""
    env = gridsim["env"]
    replies = normalise(run_scenario(env["IDDS_HOST"], Path(env["X509_USER_PROXY"]), WORKLOAD, timeout=60))
    assert len(replies) == len(_recorded()) == 29
    assert [r["call"] for r in replies] == [r["call"] for r in _recorded()]
    problems = _compare(replies, _recorded())
    assert not problems, "\n".join(problems)


def test_a_standalone_request_whose_steering_fails_fails_after_four_runs(gridsim: dict):
    """The sandbox's standalone request follows iDDS's failure rule (docs/GRIDSIM.md): 1 + 3 retries."""
    env = gridsim["env"]
    failing = 'run --rm -v "$(pwd)":/HPOiDDS hpogrid-steering:test false'
    rid = hpo.submit(env["IDDS_HOST"], Path(env["X509_USER_PROXY"]), hpo.request_metadata(7002, 4, 2, failing))
    deadline = time.monotonic() + 60
    while hpo.request_status(env["IDDS_HOST"], rid) != "Failed" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert hpo.request_status(env["IDDS_HOST"], rid) == "Failed"
    assert hpo.points(env["IDDS_HOST"], 7002) == []
    runs = sorted(d.name for d in (gridsim["state"] / "requests" / str(rid) / "rounds").iterdir())
    assert runs == ["1.0", "1.1", "1.2", "1.3"]


def test_the_sandbox_answers_bad_calls_as_the_real_idds(gridsim: dict):
    replies = normalise(bad_calls(gridsim["env"]["IDDS_HOST"]))
    assert len(replies) == 10
    problems = _compare(replies, _recorded())
    assert not problems, "\n".join(problems)


def test_reply_records_are_plain_data():
    assert set(Reply.__dataclass_fields__) == {"call", "status", "exception_class", "exception_message",
                                               "content_type", "data"}
