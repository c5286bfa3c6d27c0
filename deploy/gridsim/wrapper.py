"""The job wrapper of the sandbox: what runHPO (HPO jobs) and runGen (``run`` jobs) do around a payload.

``python -m hpogrid.gridsim.wrapper --sandbox FILE [--training-file NAME --training-files JSON]
--payload STRING [--output output.json]``, run in the job folder (which already holds ``input.json``
for HPO jobs): unpack the sandbox here, write the training file list, run the payload (argv from
``shlex.split``, no shell), and exit 13 when an HPO payload wrote no output file (runHPO's code),
1 when its output says the evaluation failed (PanDA then retries the point), else with the
payload's own status.
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
EXIT_FAILED_EVALUATION = 1  # the evaluation said status != 0: the job failed, PanDA retries the point


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
    if args.output:
        # A failed evaluation (status != 0) reports no loss: PanDA retries the point with a new job
        # (5 attempts, then loss 1e5), whatever the reason. The output is kept beside, the job fails.
        try:
            result = json.loads((here / args.output).read_text())
        except (OSError, ValueError):
            result = None
        if isinstance(result, dict) and result.get("status") not in (0, None):
            (here / args.output).rename(here / f"{args.output}.failed")
            print(f"the evaluation failed (status {result.get('status')}): {result.get('message')}", file=sys.stderr)
            return EXIT_FAILED_EVALUATION
        return 0
    return rc


if __name__ == "__main__":
    sys.exit(main())
