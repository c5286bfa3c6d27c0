"""Driving an HPO request through an iDDS REST endpoint as PanDA/JEDI and a PanDA job do: submit
the request with idds-client, then take points (``GET /hpo``) and return losses (``PUT /hpo``).
Used against the real iDDS (tests/idds) and against the sandbox (tests/grid conformance)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import requests

# The steering command iDDS runs, as phpo writes it (steeringExec): the container maps the job's
# folder to /HPOiDDS; here the docker stand-in runs hpogrid-steering on the host. --seed makes the
# points a function of the history, so two servers that see the same losses propose the same points.
STEERING = ('run --rm -v "$(pwd)":/HPOiDDS hpogrid-steering:test hpogrid-steering --in /HPOiDDS/%IN '
            '--out /HPOiDDS/%OUT --num-points %NUM_POINTS --max-points %MAX_POINTS --seed 7')
SPACE = {"x": {"type": "Scalar", "bounds": [0.0, 1.0]}, "y": {"type": "Scalar", "bounds": [0.0, 10.0]}}


def request_metadata(workload_id: int, max_points: int, per_round: int, arguments: str = STEERING) -> dict[str, Any]:
    """``hpoRequestData`` as JEDI forwards it to iDDS (a PanDA-style HyperParameterOpt request)."""
    return {"sandbox": None, "executable": "docker", "arguments": arguments, "output_json": "output.json",
            "max_points": max_points, "num_points_per_iteration": per_round, "num_points_per_generation": per_round,
            "opt_space": SPACE, "workload_id": workload_id, "is_pseudo_input": True}


def submit(base: str, proxy: Path, metadata: dict[str, Any]) -> int:
    """Submit with the real idds-client as JEDI does; the request id."""
    os.environ["IDDS_CLIENT_MODE"] = "1"
    from idds.client.client import Client
    import idds.common.constants as c

    client = Client(host=base, auth={"auth_type": "x509_proxy", "client_proxy": str(proxy)})
    return client.add_request(requester="panda", request_type=c.RequestType.HyperParameterOpt,
                              transform_tag=c.RequestType.HyperParameterOpt.value, status=c.RequestStatus.New,
                              priority=0, lifetime=30, request_metadata=metadata)


def points(base: str, workload_id: int) -> list[dict[str, Any]]:
    reply = requests.get(f"{base}/hpo/{workload_id}/null/null/null/null", timeout=30)
    reply.raise_for_status()
    return reply.json()


def put_loss(base: str, workload_id: int, point_id: str, loss: float | str) -> requests.Response:
    return requests.put(f"{base}/hpo/{workload_id}/null/{point_id}/{loss}", timeout=30)


def request_status(base: str, request_id: int) -> str:
    reply = requests.get(f"{base}/request/{request_id}/null/false", timeout=30)
    reply.raise_for_status()
    (request,) = reply.json()
    status = request["status"]
    return status["attributes"]["_name_"] if isinstance(status, dict) else str(status)


def simple_loss(parameters: dict[str, float]) -> float:
    return round(parameters["x"] + parameters["y"], 6)


@dataclass
class Campaign:
    """What one driven request saw: points in the order they appeared, the losses put, the gaps
    between a round's last loss and the next round's first point (seconds), the final status."""

    points: list[dict[str, Any]] = field(default_factory=list)
    losses: dict[str, float] = field(default_factory=dict)
    round_gaps: list[float] = field(default_factory=list)
    first_point_after: float | None = None
    status: str | None = None
    elapsed: float = 0.0


def drive(base: str, workload_id: int, request_id: int, budget: int, timeout: float = 300.0,
          loss: Callable[[dict[str, float]], float] = simple_loss) -> Campaign:
    """Evaluate every new point (loss PUT at once) until ``budget`` points have losses and the
    request is Finished, or ``timeout``."""
    seen = Campaign()
    t0 = time.monotonic()
    last_put: float | None = None
    while time.monotonic() - t0 < timeout:
        new = [p for p in points(base, workload_id) if p["id"] not in seen.losses]
        if new:
            now = time.monotonic()
            if last_put is None:
                seen.first_point_after = round(now - t0, 1)
            else:
                seen.round_gaps.append(round(now - last_put, 1))
        for point in new:
            seen.points.append(point)
            value = loss(point["parameters"])
            assert put_loss(base, workload_id, point["id"], value).status_code == 200
            seen.losses[point["id"]] = value
            last_put = time.monotonic()
        if len(seen.losses) >= budget:
            seen.status = request_status(base, request_id)
            if seen.status == "Finished":
                break
        time.sleep(0.5)
    seen.elapsed = time.monotonic() - t0
    return seen

