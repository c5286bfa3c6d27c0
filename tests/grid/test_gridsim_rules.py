"""The sandbox's rules as pure functions (no server): JEDI's job parameters from phpo's and prun's
real task parameters, docker's refusal of iDDS's ``None`` mount, iDDS's contents keeping NaN."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from hpogrid.gridsim.commands import JobSlot, input_streams, job_parameters, local_steering
from hpogrid.gridsim.contents import ContentStatus, Contents

from .conftest import WIRE_DIR

# what prun 2.2.0 builds for --exec 'python job.py %RNDM:100 ${SEQNUMBER} %IN && echo done' --inDS DS
PRUN_PARAMS = [
    {"type": "constant", "value": '-j "" --sourceURL ${SURL}'}, {"type": "constant", "value": "-r ."},
    {"type": "constant", "value": "__delimiter__", "hidden": True}, {"type": "constant", "value": "-a jobO.x.tar.gz"},
    {"type": "template", "param_type": "input", "value": '-i "${IN/T}"', "dataset": "user.t.ds", "expand": True},
    {"type": "constant", "value": '-p "', "padding": False},
    {"type": "constant", "value": "python%20job.py%20", "padding": False},
    {"type": "template", "value": "${SEQNUMBER}", "param_type": "pseudo_input", "dataset": "seq_number",
     "offset": 100, "padding": False},
    {"type": "constant", "value": "%20", "padding": False},
    {"type": "template", "value": "${SEQNUMBER}", "param_type": "pseudo_input", "dataset": "seq_number",
     "offset": 100, "padding": False},
    {"type": "constant", "value": "%20%25IN%20%26%26%20echo%20done", "padding": False},
    {"type": "constant", "value": '"'},
]


@pytest.mark.parametrize("serial, files, expected", [
    (1, ["a.h5"], '-j "" --sourceURL http://sim -r . -a jobO.x.tar.gz -i "[\'a.h5\']" '
                  '-p "python%20job.py%20101%20101%20%25IN%20%26%26%20echo%20done"'),
    (2, ["b.h5", "c.h5"], '-j "" --sourceURL http://sim -r . -a jobO.x.tar.gz -i "[\'b.h5\', \'c.h5\']" '
                          '-p "python%20job.py%20102%20102%20%25IN%20%26%26%20echo%20done"'),
])
def test_prun_job_parameters_as_jedi_makes_them(serial, files, expected):
    assert input_streams(PRUN_PARAMS) == {"IN": "user.t.ds"}
    slot = JobSlot(task_id=10000007, serial=serial, source_url="http://sim", files={"IN": files})
    assert job_parameters({"jobParameters": PRUN_PARAMS}, slot) == expected


def test_phpo_job_parameters_from_the_real_task():
    task = json.loads((WIRE_DIR / "taskParamMap_full.json").read_text())
    assert input_streams(task["jobParameters"]) == {"IN_DATA": "user.tester.train.ds"}
    slot = JobSlot(task_id=10000009, serial=3, source_url="http://sim", files={"IN_DATA": ["a.h5", "b.h5"]})
    line = job_parameters(task, slot)
    assert line.startswith('-o output.json -j "" --inSampleFile input.json -a jobO.')
    assert '-p "python%20train.py%20--in%20input.json%20--out%20output.json"' in line
    assert '-i "[\'a.h5\', \'b.h5\']" --inMap "{\'IN_DATA\': [\'a.h5\', \'b.h5\']}"' in line
    assert "--outMetricsFile=10000009.metrics.3.tgz^metrics.tgz" in line and "$" not in line
    segmented = json.loads((WIRE_DIR / "taskParamMap_segmented.json").read_text())
    assert job_parameters(segmented, JobSlot(1, 1, "u", segment_id=1)).endswith("--segmentID=1")


def test_docker_refuses_idds_none_mount():
    with pytest.raises(ValueError, match="invalid mount path: 'None' mount path must be absolute"):
        local_steering("run --rm -v $(pwd):None -v /cvmfs:/cvmfs img python s.py")
    assert local_steering("run --rm -v $(pwd):/data img python s.py /data/%IN").template == "python s.py ./%IN"


def test_contents_keep_idds_semantics(tmp_path: Path):
    contents = Contents(tmp_path / "c.db")
    assert contents.add([{"x": 1}, [0, {"x": 2}]], round_no=1) == [1, 2]
    contents.set_loss(1, float("nan"))
    contents.set_loss(2, 0.0)
    contents.set_loss(2, 3.5)  # iDDS's PUT replaces a loss
    first, second = contents.points()
    assert math.isnan(first.loss) and first.status is ContentStatus.AVAILABLE and first.model_id is None
    assert second.loss == 3.5 and second.model_id == 0 and second.parameters == [0, {"x": 2}]
    with pytest.raises(IndexError, match="list index out of range"):
        contents.set_loss(3, 1.0)
    assert [contents.count_attempt(2) for _ in range(3)] == [1, 2, 3]
    contents.close()
