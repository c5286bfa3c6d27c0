"""The job wrapper of the sandbox: what runHPO (HPO jobs) and runGen (``run`` jobs) do around a payload.

``python -m hpogrid.gridsim.wrapper --sandbox FILE [--training-file NAME --training-files JSON]
--payload STRING [--output output.json]``, run in the job folder (which already holds ``input.json``
for HPO jobs): unpack the sandbox here, write the training file list, run the payload (argv from
``shlex.split``, no shell), and exit 13 when an HPO payload wrote no output file (runHPO's code),
else with the payload's own status.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tarfile
from pathlib import Path

EXIT_NO_OUTPUT = 13  # runHPO: the evaluation wrote no output.json


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="hpogrid-gridsim-wrapper")
    p.add_argument("--sandbox", required=True)
    p.add_argument("--payload", required=True)
    p.add_argument("--output", help="HPO jobs: the file the payload must write")
    p.add_argument("--training-file")
    p.add_argument("--training-files", default="[]")
    args = p.parse_args(argv)
    here = Path.cwd()
    with tarfile.open(args.sandbox) as tar:
        tar.extractall(here, filter="data")
    if args.training_file:
        (here / args.training_file).write_text(json.dumps(json.loads(args.training_files)))
    env = dict(os.environ)
    env.pop("HPOGRID_PROJECT_DIR", None)  # on the grid the project is the working directory
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    payload = shlex.split(args.payload)
    if payload and payload[0] in ("python", "python3"):
        payload[0] = sys.executable
    print(f"=== payload: {shlex.join(payload)}", flush=True)
    try:
        rc = subprocess.call(payload, cwd=here, env=env)
    except OSError as exc:
        print(f"cannot run the payload: {exc}", file=sys.stderr)
        rc = 127
    if args.output and not (here / args.output).exists():
        print(f"the payload wrote no {args.output}", file=sys.stderr)
        return EXIT_NO_OUTPUT
    return 0 if args.output else rc


if __name__ == "__main__":
    sys.exit(main())
