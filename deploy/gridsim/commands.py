"""How the sandbox reads the commands a task carries: iDDS's steering and PanDA's job parameters.

- ``local_steering``: iDDS runs ``docker <steeringExec>`` in the round folder. Here a
  ``run [docker options] IMAGE CMD...`` prefix is mapped to running ``CMD...`` locally in the round
  folder: the image is dropped, a volume whose host side is the round folder (``$(pwd)``) maps its
  container path to ``.``, ``-e`` settings become the command's environment.
- ``job_spec``: what runHPO/runGen would read from a task's ``jobParameters``: the sandbox
  (``-a``), the payload (``-p "..."``, URL-quoted), the input/output/metadata file names.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from typing import Any, Mapping
from urllib.parse import unquote

__all__ = ["SteeringCommand", "local_steering", "JobSpec", "job_spec", "JobSlot", "job_parameters", "input_streams"]

_FLAGS = {"--rm", "-i", "-t", "-it", "-ti", "-d", "--privileged", "--init", "--read-only", "-q"}
_WITH_VALUE = {"-v", "--volume", "-e", "--env", "-w", "--workdir", "--name", "-u", "--user", "--entrypoint",
               "--network", "--net", "--gpus", "--platform", "--shm-size", "-m", "--memory", "--cpus",
               "--mount", "--env-file", "-h", "--hostname", "--ipc", "--runtime", "--pull"}
_HERE = {"$(pwd)", "`pwd`", "$PWD", "${PWD}", "."}


@dataclass
class SteeringCommand:
    template: str  # placeholders intact, for the engine's CommandSteering
    env: dict[str, str] = field(default_factory=dict)
    image: str | None = None


def local_steering(arguments: str, executable: str = "docker") -> SteeringCommand:
    """The steering command to run locally in the round folder, from iDDS's executable + arguments."""
    tokens = shlex.split(arguments)
    if not tokens:
        raise ValueError("the steering command is empty")
    if executable != "docker" or tokens[0] != "run":
        return SteeringCommand(shlex.join(tokens if executable == "docker" else [executable, *tokens]))
    mounts: dict[str, str] = {}
    env: dict[str, str] = {}
    i, image = 1, None
    while i < len(tokens):
        tok = tokens[i]
        if tok in _FLAGS:
            i += 1
            continue
        name, eq, inline = tok.partition("=")
        if tok.startswith("-") and (name in _WITH_VALUE):
            value = inline if eq else (tokens[i + 1] if i + 1 < len(tokens) else "")
            i += 1 if eq else 2
            if name in ("-v", "--volume"):
                host, _, container = value.partition(":")
                container = container.split(":")[0]
                if not container.startswith("/"):  # what docker answers (exit status 125) before running anything
                    raise ValueError(f"docker: Error response from daemon: invalid volume specification: '{value}': "
                                     f"invalid mount config for type \"bind\": invalid mount path: '{container}' "
                                     "mount path must be absolute.")
                if host in _HERE and container:
                    mounts[container.rstrip("/")] = "."
            elif name in ("-e", "--env"):
                key, _, val = value.partition("=")
                env[key] = val
            continue
        if tok.startswith("-"):
            i += 1  # an option we do not know takes no value, as far as we can tell
            continue
        image = tok
        i += 1
        break
    command = tokens[i:]
    if image is None or not command:
        raise ValueError(f"cannot find the image and the command in the steering arguments {arguments!r}")
    mapped = []
    for tok in command:
        for container, local in mounts.items():
            tok = tok.replace(container + "/", local + "/")
            if tok == container:
                tok = local
        mapped.append(tok)
    return SteeringCommand(shlex.join(mapped), env, image)


@dataclass
class JobSpec:
    sandbox: str | None
    payload: str
    input_file: str = "input.json"
    output_file: str = "output.json"
    meta_file: str | None = None
    training_file: str | None = None  # --writeInputToTxt IN_DATA:<file>
    training_ds: str | None = None


def _constants(params: list[Mapping[str, Any]]) -> list[str]:
    return [str(p.get("value", "")) for p in params if p.get("type") == "constant"]


def job_spec(task: Mapping[str, Any]) -> JobSpec:
    """The payload and files of a task's jobs, as the job wrapper would see them."""
    params = list(task.get("jobParameters") or [])
    values = [str(p.get("value", "")) for p in params]
    payload = None
    for i, value in enumerate(values):
        if value == '-p "' and i + 1 < len(values):
            payload = unquote(values[i + 1])
            break
    if payload is None:
        raise ValueError("the task has no payload (-p) in its jobParameters")
    spec = JobSpec(sandbox=None, payload=payload)
    for value in _constants(params):
        try:
            argv = shlex.split(value)
        except ValueError:  # the halves of -p "...": not options
            continue
        for j, tok in enumerate(argv):
            nxt = argv[j + 1] if j + 1 < len(argv) else None
            if tok == "-a" and nxt and nxt != "None":
                spec.sandbox = nxt
            elif tok == "-o" and nxt:
                spec.output_file = nxt
            elif tok == "--inSampleFile" and nxt:
                spec.input_file = nxt
            elif tok.startswith("--outMetaFile="):
                spec.meta_file = tok.split("=", 1)[1]
            elif tok == "--writeInputToTxt" and nxt:
                spec.training_file = nxt.split(":", 1)[-1]
    for p in params:
        if p.get("param_type") == "input" and p.get("dataset"):
            spec.training_ds = str(p["dataset"])
    return spec


# ---- JEDI's job parameters --------------------------------------------------------------------
# What JEDI does with a task's ``jobParameters`` to make one job's command line (docs/GRIDSIM.md):
# the values are joined with a space (none after ``padding: false``; ``hidden`` ones are left out),
# then the placeholders of this job are replaced.

SEQ_NUMBER = "seq_number"  # prun's pseudo dataset behind ${SEQNUMBER} (%RNDM:N)


@dataclass
class JobSlot:
    """What one job of a task gets from JEDI: its serial number, input files, segment."""

    task_id: int
    serial: int  # 1, 2, ... within the task
    source_url: str
    files: dict[str, list[str]] = field(default_factory=dict)  # input stream (IN, IN_DATA, ...) -> LFNs
    segment_id: int | None = None


def seq_offset(params: list[Mapping[str, Any]]) -> int:
    """The offset of ``${SEQNUMBER}`` (prun's ``%RNDM:N``): JEDI numbers the pseudo files offset+1, offset+2, ..."""
    for p in params:
        if p.get("dataset") == SEQ_NUMBER and p.get("param_type") == "pseudo_input":
            return int(p.get("offset") or 0)
    return 0


def input_streams(params: list[Mapping[str, Any]]) -> dict[str, str]:
    """Input stream name -> dataset, from the ``${STREAM/T}``-style templates of input parameters."""
    out: dict[str, str] = {}
    for p in params:
        if p.get("param_type") == "input" and p.get("dataset") and p.get("type") == "template":
            m = re.search(r"\$\{([A-Z_0-9]+)", str(p.get("value", "")))
            if m:
                out[m.group(1)] = str(p["dataset"])
    return out


def job_parameters(task: Mapping[str, Any], slot: JobSlot) -> str:
    """One job's command line for the job wrapper (runHPO / runGen), as JEDI makes it."""
    params = list(task.get("jobParameters") or [])
    text = ""
    for p in params:
        if "value" not in p or p.get("hidden") is True:
            continue
        text += str(p["value"])
        if p.get("padding") is not False:
            text += " "
    outputs = [p for p in params if p.get("param_type") == "output" and p.get("type") == "template"]
    values: dict[str, str] = {
        "SEQNUMBER": str(seq_offset(params) + slot.serial),
        "SN": str(slot.serial), "SN/P": f"{slot.serial:06d}", "SURL": slot.source_url,
        "SEGMENT_ID": "" if slot.segment_id is None else str(slot.segment_id),
    }
    for stream, lfns in slot.files.items():
        values[f"{stream}/T"] = str(lfns)
        values[f"{stream}/E"] = ",".join(lfns)
        values[stream] = ",".join(lfns)
    for i, out in enumerate(outputs):
        values[f"OUTPUT{i}"] = _resolve_simple(str(out.get("value", "")).split()[-1], slot, values)
    return _resolve_simple(text, slot, values).strip()


def _resolve_simple(text: str, slot: JobSlot, values: Mapping[str, str]) -> str:
    text = text.replace("$JEDITASKID", str(slot.task_id))
    for key, value in values.items():
        text = text.replace("${" + key + "}", value)
    return text
