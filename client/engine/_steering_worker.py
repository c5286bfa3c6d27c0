"""The warm steering worker: imports the steering once, then runs one round per request.

Run as ``python -m hpogrid.client.engine._steering_worker`` by :class:`WarmSteering`. Requests on
stdin, one JSON line each: ``{"in": PATH, "out": PATH, "num_points": N, "max_points": M,
"config": PATH|null}``; for each it calls ``hpogrid.steering.program.run_step`` (exactly what one
``hpogrid-steering`` run does, real %IN/%OUT files) and answers on its original stdout
``{"ok": true, "n": K, "seconds": S}`` or ``{"ok": false, "error": "..."}``. Exits at EOF.
"""

from __future__ import annotations

import os
import sys
import time
import traceback

from hpogrid.common import decode, send


def serve() -> int:
    out_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    run_step = None
    error = None
    try:
        from hpogrid.steering.program import run_step
    except Exception as exc:
        error = f"cannot import the steering (hpogrid.steering.program.run_step): {type(exc).__name__}: {exc}"

    def emit(msg: dict) -> None:
        send(out_fd, msg)

    emit({"ready": True, "error": error})
    for line in sys.stdin:
        if not line.strip():
            continue
        req = decode(line)
        if run_step is None:
            emit({"ok": False, "error": error})
            continue
        t0 = time.perf_counter()
        try:
            points = run_step(req["in"], req["out"], int(req["num_points"]), int(req["max_points"]), req.get("config"))
            emit({"ok": True, "n": len(points), "seconds": time.perf_counter() - t0})
        except Exception as exc:  # a failed round, reported; the driver retries it
            traceback.print_exc()
            message = " ".join(str(exc).split()) or type(exc).__name__
            emit({"ok": False, "error": f"{type(exc).__name__}: {message}"})
    return 0


if __name__ == "__main__":
    sys.exit(serve())
