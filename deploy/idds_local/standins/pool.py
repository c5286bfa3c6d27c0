#!/usr/bin/env python3
"""Stand-ins for the three HTCondor commands and the ``docker`` command that iDDS 2.6.21's HPO work
calls (``idds/atlas/workflowv2/atlascondorwork.py``): a one-machine "pool" that runs each steering
job on this host, at once, inside ``condor_submit``.

Four small executables named as iDDS calls them (``condor_submit``, ``condor_q``, ``condor_history``,
``docker``) run this file with their name as the first argument. It uses only
the standard library: the agents run it with whatever ``python3`` comes first on their PATH.
State lives in ``$HPOGRID_IDDS_POOL`` (one JSON file per finished job, and a job counter).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import subprocess
import sys
from pathlib import Path

COMPLETED = 4  # HTCondor's JobStatus for a job that has left the queue normally, whatever its exit code


def _pool() -> Path:
    folder = Path(os.environ.get("HPOGRID_IDDS_POOL", Path.cwd() / "pool"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _next_cluster_id(pool: Path) -> int:
    with open(pool / "counter.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        counter = pool / "counter"
        cluster = int(counter.read_text()) + 1 if counter.exists() else 1
        counter.write_text(str(cluster))
        return cluster


def condor_submit(argv: list[str]) -> int:
    """Parse the submit description, run its Executable with bash in ``initialdir``, remember it."""
    description: dict[str, str] = {}
    for line in Path(argv[-1]).read_text().splitlines():
        match = re.match(r"\s*(\+?\w+)\s*=\s*(.*?)\s*$", line)
        if match:
            description[match.group(1).lower()] = match.group(2)
    pool = _pool()
    cluster = _next_cluster_id(pool)
    folder = description.get("initialdir", os.getcwd())

    def expand(value: str) -> str:
        return value.replace("$(ClusterId)", str(cluster)).replace("$(ProcId)", "0")

    out, err = expand(description.get("output", "job.out")), expand(description.get("error", "job.err"))
    with open(os.path.join(folder, out), "w") as stdout, open(os.path.join(folder, err), "w") as stderr:
        code = subprocess.call(["/bin/bash", description["executable"]], cwd=folder, stdout=stdout, stderr=stderr)
    record = {"cluster": cluster, "processing_id": description.get("+processing_id", "").strip('"'),
              "status": COMPLETED, "iwd": folder, "out": out, "err": err, "exit_code": code}
    (pool / f"{cluster}.json").write_text(json.dumps(record))
    print(f"Submitting job(s).\n1 job(s) submitted to cluster {cluster}.")
    return 0


def condor_q(argv: list[str]) -> int:
    """Jobs finish inside condor_submit: the queue is always empty."""
    return 0


def condor_history(argv: list[str]) -> int:
    """The six fields iDDS asks for with ``-format``: ClusterId Processing_id JobStatus Iwd Cmd Err."""
    path = _pool() / f"{argv[-1]}.json"
    if path.exists():
        job = json.loads(path.read_text())
        sys.stdout.write(" ".join(str(job[k]) for k in ("cluster", "processing_id", "status", "iwd", "out", "err")))
    return 0


def docker(argv: list[str]) -> int:
    """``docker run [options] IMAGE CMD...`` without a container engine: CMD runs on this host, with
    each ``-v HOST:CONTAINER`` path rewritten to the host path and each ``-e K=V`` exported.
    Other subcommands (iDDS calls ``docker image rm -f``) do nothing."""
    if not argv or argv[0] != "run":
        return 0
    args = argv[1:]
    volumes: list[tuple[str, str]] = []
    env = dict(os.environ)
    cwd = None
    with_value = {"-v", "--volume", "-e", "--env", "-w", "--workdir", "--name", "-u", "--user", "--entrypoint",
                  "--network", "--platform"}
    while args and args[0].startswith("-"):
        option = args.pop(0)
        option, _, inline = option.partition("=")
        value = inline if inline else (args.pop(0) if option in with_value else "")
        if option in ("-v", "--volume"):
            host, container = value.split(":")[:2]
            volumes.append((container.rstrip("/"), host.rstrip("/")))
        elif option in ("-e", "--env"):
            key, _, val = value.partition("=")
            env[key] = val
        elif option in ("-w", "--workdir"):
            cwd = value
    if not args:
        sys.stderr.write("docker stand-in: no image given\n")
        return 125
    image, command = args[0], args[1:]
    longest_first = sorted(volumes, key=lambda v: -len(v[0]))

    def to_host(token: str) -> str:
        for container, host in longest_first:
            if token == container:
                return host
            token = token.replace(container + "/", host + "/")
        return token

    command = [to_host(t) for t in command]
    sys.stderr.write(f"[docker stand-in] image={image} command={command}\n")
    if not command:
        return 0
    return subprocess.call(command, env=env, cwd=to_host(cwd) if cwd else None)


COMMANDS = {"condor_submit": condor_submit, "condor_q": condor_q, "condor_history": condor_history, "docker": docker}

if __name__ == "__main__":
    sys.exit(COMMANDS[sys.argv[1]](sys.argv[2:]))
