"""``hpogrid.common``: the shared rules, each a pure function with a table test."""

from __future__ import annotations

import ast
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from hpogrid.common import (
    FAILURE_LOSS,
    JsonFileError,
    JsonProblem,
    LineReader,
    atomic_write_json,
    atomic_write_text,
    current_umask,
    decode,
    encode,
    loss_of,
    metric_of,
    read_json,
    read_json_or_none,
    send,
)

COMMON = Path(__file__).resolve().parents[2] / "common"


@pytest.mark.parametrize(("metric", "mode", "loss"), [
    (0.25, "min", 0.25), (0.25, "max", -0.25), (-3, "max", 3), (0, "min", 0), (None, "max", None), (None, "min", None),
])
def test_loss_of_and_back(metric, mode, loss) -> None:
    assert loss_of(metric, mode) == loss
    assert metric_of(loss, mode) == metric
    assert type(loss_of(metric, mode)) is type(loss)  # an int stays an int (reports show it as given)


@pytest.mark.parametrize("mode", ["MAX", "", None, "maximise"])
def test_a_bad_mode_is_one_error_naming_it(mode) -> None:
    with pytest.raises(ValueError, match=r"mode must be 'min' or 'max', got"):
        loss_of(1.0, mode)


def test_failure_loss_is_the_grids() -> None:
    assert FAILURE_LOSS == 1e5


def test_the_steering_and_the_client_share_the_rules() -> None:
    from hpogrid.client import store
    from hpogrid.steering.algorithms import base

    assert base.FAILURE_LOSS is FAILURE_LOSS and store.FAILURE_LOSS is FAILURE_LOSS
    assert base.metric_to_loss(2, "max") == -2.0


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_atomic_write_gives_an_ordinary_file_whatever_the_umask(tmp_path, umask) -> None:
    old = os.umask(umask)
    try:
        assert current_umask() == umask
        atomic_write_text(tmp_path / "a.txt", "hello")
        atomic_write_json(tmp_path / "b.json", {"x": 1}, mode=0o644, durable=True)
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").read_text() == "hello"
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE((tmp_path / "b.json").stat().st_mode) == 0o644
    assert (tmp_path / "b.json").read_text() == '{\n  "x": 1\n}\n'
    atomic_write_json(tmp_path / "c.json", [1, 2], indent=None)
    assert (tmp_path / "c.json").read_text() == "[1, 2]"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.json", "c.json"]  # no temporary left


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path) -> None:
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(TypeError):
        atomic_write_json(target, {"x": object()})  # not JSON: fails before anything is written
    with pytest.raises(UnicodeEncodeError):
        atomic_write_text(target, "\udcff")  # fails while writing the temporary file
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["out.json"]
    with pytest.raises(FileNotFoundError):
        atomic_write_text(tmp_path / "no" / "such" / "x", "text")  # the folder must exist


def test_read_json_names_the_file_and_the_problem(tmp_path) -> None:
    good, bad, binary = tmp_path / "good.json", tmp_path / "bad.json", tmp_path / "bin.json"
    good.write_text('{"a": [1, 2]}')
    bad.write_text('{"a": [1, 2]')
    binary.write_bytes(b"\xff\xfe")
    assert read_json(good, "config") == {"a": [1, 2]}
    cases = [(bad, JsonProblem.INVALID, f"the config {str(bad)!r} is not valid JSON: Expecting ',' delimiter at line 1 column 13"),
             (tmp_path / "none.json", JsonProblem.MISSING, "cannot read the config"),
             (binary, JsonProblem.UNREADABLE, "not UTF-8 text"),
             (tmp_path, JsonProblem.UNREADABLE, "Is a directory")]
    for path, problem, words in cases:
        with pytest.raises(JsonFileError) as info:
            read_json(path, "config")
        assert info.value.problem is problem and words in str(info.value) and "\n" not in str(info.value)
        assert read_json_or_none(path) is None


def test_wire_lines_round_trip_through_a_pipe() -> None:
    r, w = os.pipe()
    os.set_blocking(r, False)
    reader = LineReader(r)
    assert reader.read() == [] and not reader.closed  # nothing yet: no block
    messages = [{"op": "run", "key": "1/0", "env": {"A": "é"}}, {"ev": "exited", "rc": None}]
    for m in messages:
        send(w, m)
    os.write(w, encode({"partial": True})[:5])  # half a line waits for its end
    assert reader.read() == messages
    os.close(w)
    assert reader.read() == [] and reader.closed
    os.close(r)
    assert decode(encode(messages[0])) == messages[0] and encode(messages[1]).count(b"\n") == 1


def test_common_is_standard_library_only() -> None:
    """``hpogrid.common`` imports no hpogrid module and nothing outside the standard library."""
    for file in COMMON.glob("*.py"):
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [] if node.level else [node.module or ""]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top in sys.stdlib_module_names or top == "__future__", f"{file.name} imports {name}"
    code = "import sys, hpogrid.common; print(sorted(m for m in sys.modules if m.startswith('hpogrid')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out.replace("'", '"')) == ["hpogrid", "hpogrid.common", "hpogrid.common.files",
                                                 "hpogrid.common.metric", "hpogrid.common.wire"]
