"""The sandbox's job wrapper: the flows of the grid's runHPO (phpo jobs) and runGen (prun jobs).

``python -m hpogrid.gridsim.wrapper runHPO|runGen JOB_PARAMETERS...``, run by the sandbox's pilot in
the job's folder (input files already staged there), with ``PandaID`` and ``PanDA_TaskID`` set.
The parameters are the job's command line exactly as JEDI made it from the task's
``jobParameters`` (``-a SANDBOX --sourceURL URL -p "PAYLOAD" -i "[files]" ...``), read with the
same options as panda-wnscript's scripts (docs/GRIDSIM.md lists what each step follows):

runHPO: download the sandbox from ``<sourceURL>/cache/<name>`` and unpack it; ask PanDA for an
event range (``POST /server/panda/getEventRanges``); its 4th field is the point id; ``GET
/idds/hpo/<task>/null/<point>/null/null`` for the point and write it to ``--inSampleFile``; write
the training file list (``--writeInputToTxt``) and replace ``%IN``-style placeholders; run the
payload with ``/bin/sh -c``; read ``-o`` (output.json); when its status is 0, ``PUT
/idds/hpo/<task>/null/<point>/<loss>`` then tell PanDA the event is finished
(``updateEventRanges``); copy ``--outMetaFile`` into the job report. Exit 13 when the payload wrote
no output file, else the payload's status.

runGen: the same sandbox, ``%IN`` (comma-joined input files), ``--writeInputToTxt`` (comma-joined
text), the payload through ``/bin/sh -c``, ``userJobMetadata.json`` into the job report, exit with
the payload's status.
"""

from __future__ import annotations

import ast
import getopt
import json
import os
import re
import subprocess
import sys
import tarfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EXIT_FAILED_TO_GET_EVENT = 11  # runHPO's error codes (pandawnutil.wnmisc.error_codes)
EXIT_NO_MORE_EVENTS = 12
EXIT_NO_OUTPUT = 13  # HPO_EXECUTION_FAILURE: the payload wrote no output file
EXIT_BAD_SANDBOX = 1

_HPO_OPTS = ["pilotpars", "debug", "oldPrefix=", "newPrefix=", "directIn", "sourceURL=", "pandaURL=", "iddsURL=",
             "inputGUIDs=", "inMap=", "usePFCTurl", "accessmode=", "writeInputToTxt=", "pandaID=", "taskID=",
             "inSampleFile=", "outMetaFile=", "outMetricsFile=", "dryRun", "preprocess", "postprocess",
             "coprocess", "checkPointToSave=", "checkPointToLoad=", "checkPointInterval=", "segmentID=",
             "maxLoopCount="]
_GEN_OPTS = ["pilotpars", "debug", "oldPrefix=", "newPrefix=", "directIn", "sourceURL=", "lfcHost=",
             "envvarFile=", "inputGUIDs=", "liveLog=", "inMap=", "useAthenaPackages", "dbrFile=", "dbrRun=",
             "notExpandDBR", "useFileStager", "usePFCTurl", "accessmode=", "skipInputByRetry=",
             "writeInputToTxt=", "rootVer=", "enable-jem", "jem-config=", "cmtConfig=", "mergeOutput",
             "mergeType=", "mergeScript=", "useRootCore", "givenPFN", "useMana", "manaVer=", "useCMake",
             "preprocess", "postprocess", "execWithRealFileNames", "fileToSave=", "fileToLoad="]


def _say(text: str) -> None:
    print(text, flush=True)


def _http(url: str, *, method: str = "GET", data: dict[str, Any] | None = None) -> bytes:
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    req = urllib.request.Request(url, data=body, method=method, headers={"Accept": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.read()


def _options(argv: list[str], short: str, long: list[str]) -> dict[str, str]:
    opts, _ = getopt.getopt(argv, short, long)
    return {k: v for k, v in opts}


def _unpack_sandbox(opts: dict[str, str], here: Path) -> None:
    name = opts.get("-a", "")
    if not name or name == "None":
        return
    url = f"{opts.get('--sourceURL', '').rstrip('/')}/cache/{name}"
    _say(f"=== getting the sandbox {url}")
    target = here / Path(name).name
    target.write_bytes(_http(url))
    with tarfile.open(target) as tar:
        tar.extractall(here, filter="data")


def _run_payload(command: str, here: Path) -> int:
    """runHPO/runGen: ``os.system(r'''<scriptName> <jobParams>''')`` -> ``/bin/sh -c``, status % 255."""
    env = dict(os.environ)
    env["PATH"] = f".{os.pathsep}{env.get('PATH', '')}"
    _say(f"=== execute\n{command}")
    status = subprocess.call(["/bin/sh", "-c", command], cwd=here, env=env)
    return status % 255


def _add_user_job_metadata(path: Path, here: Path) -> None:
    """pandawnutil's add_user_job_metadata: a JSON dict under 1 MB goes into jobReport.json."""
    if not path.is_file():
        return
    if path.stat().st_size > 1024 * 1024:
        _say("WARNING : user job metadata is too large > 1MB")
        return
    try:
        meta = json.loads(path.read_text())
    except ValueError:
        _say("ERROR : user job metadata is corrupted")
        return
    report_path = here / "jobReport.json"
    report = json.loads(report_path.read_text()) if report_path.is_file() else {}
    report.setdefault("user_job_metadata", {}).update(meta if isinstance(meta, dict) else {"value": meta})
    report.setdefault("reportVersion", "1.0.0")
    report_path.write_text(json.dumps(report))


def _inputs(opts: dict[str, str]) -> tuple[list[str], dict[str, list[str]], dict[str, str]]:
    files = ast.literal_eval(opts["-i"]) if opts.get("-i") else []
    in_map = ast.literal_eval(opts["--inMap"]) if opts.get("--inMap") else {}
    to_txt = {}
    for item in opts.get("--writeInputToTxt", "").split(","):
        parts = item.split(":")
        if len(parts) == 2:
            to_txt[parts[0]] = parts[1]
    return list(files), dict(in_map), to_txt


def run_hpo(argv: list[str]) -> int:
    """runHPO: take one event (a point) from PanDA, its sample from iDDS, run the payload on it and
    give iDDS the loss; the exit status is PanDA's pilot's."""
    opts = _options(argv, "i:o:j:l:p:a:", _HPO_OPTS)
    here = Path.cwd()
    prepared = _sandbox_and_inputs(opts, here)
    if prepared is None:
        return EXIT_BAD_SANDBOX
    payload = _substitute_inputs(urllib.parse.unquote(opts.get("-p", "")), *prepared, here)
    job = _HpoJob(opts.get("--pandaURL", "").rstrip("/"), opts.get("--iddsURL", "").rstrip("/"),
                  os.environ.get("PandaID"), os.environ.get("PanDA_TaskID"))
    event_id = _next_event(job, opts.get("--segmentID"))
    if isinstance(event_id, int):
        return event_id
    sample_id = event_id.split("-")[3]
    _say(f" got eventID={event_id} sampleID={sample_id}")
    try:
        samples = json.loads(_http(f"{job.idds_url}/idds/hpo/{job.task_id}/null/{sample_id}/null/null"))
        sample = next(s for s in samples if s["id"] == sample_id)
    except (OSError, ValueError, StopIteration, urllib.error.URLError) as exc:
        _say(f"ERROR: failed to get a HP sample from iDDS. {exc}")
        return EXIT_FAILED_TO_GET_EVENT
    if sample["loss"] is not None:
        _say("already evaluated")
        _finish_event(job, event_id)
        return 0
    (here / opts.get("--inSampleFile", "input_sample.json")).write_text(json.dumps(sample["parameters"]))
    status = _run_payload(f"{opts.get('-j', '')} {payload}".strip(), here)
    status, loss = _read_loss(here, opts.get("-o", "out.json"), status)
    if loss is not None:
        _give_loss(job, event_id, sample_id, loss)
    _add_user_job_metadata(here / opts.get("--outMetaFile", "out_metadata.json"), here)
    return status


@dataclass(frozen=True)
class _HpoJob:
    """Where a runHPO job reports: PanDA's and iDDS's URLs, its PandaID and jediTaskID."""

    panda_url: str
    idds_url: str
    panda_id: str | None
    task_id: str | None


def _substitute_inputs(payload: str, files: list[str], in_map: dict[str, list[str]], to_txt: dict[str, str],
                       here: Path) -> str:
    """The payload with ``%IN`` (or each ``--inMap`` token) replaced by the job's input files; the
    lists that ``--writeInputToTxt`` asks for written beside it."""
    if in_map:
        for token, lfns in in_map.items():
            payload = re.sub("%" + token + "(?P<sname> |$|\"|')", ",".join(lfns) + " " + r"\g<sname>", payload)
            if token in to_txt:
                (here / to_txt[token]).write_text(json.dumps(lfns))
    elif files:
        payload = payload.replace("%IN", ",".join(files))
        if "IN" in to_txt:
            (here / to_txt["IN"]).write_text(json.dumps(files))
    return payload


def _next_event(job: _HpoJob, segment_id: str | None) -> str | int:
    """The event range this job evaluates (which point), or the exit status when there is none."""
    data = {"pandaID": job.panda_id, "jobsetID": 0, "taskID": job.task_id, "nRanges": 1}
    if segment_id:
        data["segment_id"] = segment_id
    try:
        events = json.loads(_http(f"{job.panda_url}/server/panda/getEventRanges", method="POST", data=data))
    except (OSError, ValueError, urllib.error.URLError) as exc:
        _say(f"ERROR : failed to get an event from PanDA. {exc}")
        return EXIT_FAILED_TO_GET_EVENT
    if not events.get("eventRanges"):
        _say("INFO : exit due to no event available")
        return EXIT_NO_MORE_EVENTS
    return str(events["eventRanges"][0]["eventRangeID"])


def _finish_event(job: _HpoJob, event_id: str) -> None:
    _http(f"{job.panda_url}/server/panda/updateEventRanges", method="POST",
          data={"eventRanges": json.dumps([{"eventRangeID": event_id, "eventStatus": "finished"}]), "version": 1})


def _read_loss(here: Path, output: str, status: int) -> tuple[int, Any]:
    """The payload's status (``EXIT_NO_OUTPUT`` without its output file) and the loss it wrote, if any."""
    out = here / output
    if not out.exists():
        _say(f"ERROR: {output} doesn't exist")
        return EXIT_NO_OUTPUT, None
    try:
        result = json.loads(out.read_text())
        if "status" not in result or result["status"] == 0:
            loss = result["loss"]
            _say(f"got loss={loss}")
            return status, loss
        _say(f"ERROR: failed to evaluate. status={result['status']} message={result.get('message')}")
    except (ValueError, TypeError, KeyError) as exc:
        _say(f"ERROR: failed to get loss. {exc}")
    return status, None


def _give_loss(job: _HpoJob, event_id: str, sample_id: str, loss: Any) -> None:
    """Send iDDS the loss; once it took it, the event is finished at PanDA."""
    try:
        reply = json.loads(_http(f"{job.idds_url}/idds/hpo/{job.task_id}/null/{sample_id}/{loss}", method="PUT"))
        if reply.get("status") == 0:
            _finish_event(job, event_id)
        else:
            _say(f"ERROR: {reply}")
    except (OSError, ValueError, urllib.error.URLError) as exc:
        _say(f"ERROR: cannot update the sample (ID={sample_id}): {exc}")


def _sandbox_and_inputs(opts: dict[str, str], here: Path) -> tuple | None:
    """What runHPO and runGen both do first: unpack the sandbox into ``here`` and read the job's
    input files; None (after the wrapper's error line) when the sandbox cannot be had."""
    try:
        _unpack_sandbox(opts, here)
    except (OSError, urllib.error.URLError, tarfile.TarError) as exc:
        _say(f"ERROR : cannot get the sandbox: {exc}")
        return None
    return _inputs(opts)


def run_gen(argv: list[str]) -> int:
    opts = _options(argv, "i:o:r:j:l:p:u:a:", _GEN_OPTS)
    here = Path.cwd()
    payload = urllib.parse.unquote(opts.get("-p", ""))
    script = opts.get("-j", "")
    prepared = _sandbox_and_inputs(opts, here)
    if prepared is None:
        return EXIT_BAD_SANDBOX
    files, in_map, to_txt = prepared
    if files:
        if not in_map:
            payload = payload.replace("%IN", ",".join(files))
            if "IN" in to_txt:
                (here / to_txt["IN"]).write_text(",".join(files))
        else:
            for token, lfns in in_map.items():
                payload = re.sub("%" + token + "(?P<sname> |$|\"|'|,)", ",".join(lfns) + r"\g<sname>", payload)
                if token in to_txt:
                    (here / to_txt[token]).write_text(",".join(lfns))
    status = _run_payload(f"{script} {payload}".strip(), here)
    _add_user_job_metadata(here / "userJobMetadata.json", here)
    return status


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    flows = {"runHPO": run_hpo, "runGen": run_gen}
    if not args or args[0] not in flows:
        print(f"usage: python -m hpogrid.gridsim.wrapper {'|'.join(flows)} JOB_PARAMETERS...", file=sys.stderr)
        return 2
    try:
        return flows[args[0]](args[1:])
    except getopt.GetoptError as exc:
        print(f"ERROR : bad job parameters: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
