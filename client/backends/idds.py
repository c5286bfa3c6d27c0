"""The idds backend: ``submit_idds P --backend idds [--idds-host URL]`` runs the campaign on a real iDDS.

The campaign is an iDDS workflow (:mod:`hpogrid.client.grid.idds_workflow`) submitted with
idds-client. iDDS runs the steering centrally, round after round; this machine's workers (the
embedded engine's fork server, or Ray tasks with ``--ray-address``) take the new points from iDDS
(``GET /hpo/<workload_id>/null/...``), evaluate each with ``hpogrid-evaluate`` under the engine's
job runners and retry rules, and return each final loss (``PUT /hpo/<workload_id>/null/<id>/<loss>``;
a point failed on every attempt gets the grid's failure loss 1e5, as PanDA sends).

The engine is reused as it is: :class:`IddsSteering` is its steering runner, whose "round" waits
for iDDS's next points instead of running a steering program. The store mirrors iDDS: a point's
id in the store is its id in iDDS (iDDS numbers a work's points 1, 2, 3, ... and they are taken in
that order). iDDS holds the truth: on resume, a point iDDS already has a loss for is recorded with
it and never re-run; a final loss iDDS lacks is sent once. Details: docs/IDDS_BACKEND.md.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from hpogrid.common import FAILURE_LOSS, metric_of

from .. import projects
from ..engine import OUT_FILE, BaseSteering, RoundEnd, create_campaign, driver_alive, kill_campaign
from ..errors import CampaignError, GridError, UsageError
from ..home import atomic_write_json
from ..store import FINAL_STATES, Store, idds_loss
from .base import Plan, SubmitOptions
from .embedded import EmbeddedBackend

__all__ = ["IddsBackend", "IddsService", "IddsSteering", "IddsPoint", "idds_host", "proxy_path", "HOST_ENV"]

HOST_ENV = "HPOGRID_IDDS_HOST"
#: Request states after which iDDS proposes nothing more: the search is over (an empty round).
ENDED = frozenset({"Finished", "SubFinished"})
#: Request states that end the campaign with an error.
BROKEN = frozenset({"Failed", "Cancelled", "Cancelling", "ToCancel", "Expired", "Suspended"})
STEERING_TIMEOUT = 3600.0  # an iDDS round (agents' polling + the steering) may take minutes


@dataclass(frozen=True)
class IddsPoint:
    """One point of an iDDS HPO work: its id (1, 2, ...), parameters and loss (None = not yet)."""

    id: int
    params: dict[str, Any]
    loss: float | None


def idds_host(explicit: str | None) -> str:
    """``--idds-host``, else ``$HPOGRID_IDDS_HOST``, else one clear line."""
    host = explicit or os.environ.get(HOST_ENV)
    if not host:
        raise UsageError(f"no iDDS server: pass --idds-host URL (e.g. http://127.0.0.1:8080/idds) or set {HOST_ENV}")
    if not host.startswith(("http://", "https://")):
        raise UsageError(f"--idds-host must be an http(s) URL, got {host[:200]!r}")
    return host.rstrip("/")


def proxy_path() -> str:
    """The x509 proxy idds-client sends (``X509_USER_PROXY``, else ``/tmp/x509up_u<uid>``)."""
    from ..grid.auth import CredentialError

    path = os.environ.get("X509_USER_PROXY") or f"/tmp/x509up_u{os.getuid()}"
    if not os.access(path, os.R_OK):
        raise CredentialError(f"no x509 proxy at {path}: create one (voms-proxy-init) or set X509_USER_PROXY "
                              "(a local iDDS accepts any file)")
    return path


class IddsService:
    """The iDDS calls of one campaign, through idds-client's ``ClientManager`` (errors: one line)."""

    def __init__(self, host: str, workload_id: int, request_id: int | None = None):
        self.host = host
        self.workload_id = int(workload_id)
        self.request_id = request_id
        self._cm: Any = None

    def _call(self, what: str, fn: str, **kwargs: Any) -> Any:
        from ..grid import idds
        from ..grid.auth import Credential

        if self._cm is None:
            proxy = proxy_path()
            os.environ.setdefault("X509_USER_PROXY", proxy)  # idds-client's workflow.add_proxy() reads it
            self._cm = idds.manager(Credential(kind="x509", nickname=None, expires=None, proxy=proxy), self.host)
        return idds.call(self._cm, what, self.workload_id, fn, **kwargs)

    def submit(self, workflow: Any) -> int:
        rid = self._call("submit", "submit", workflow=workflow)
        if not isinstance(rid, int):
            raise GridError(f"iDDS at {self.host} did not return a request id for the workflow (got {str(rid)[:200]!r})")
        self.request_id = rid
        return rid

    def points(self) -> list[IddsPoint]:
        ret = self._call("get_hyperparameters", "get_hyperparameters", workload_id=self.workload_id, request_id=None)
        out = []
        for item in ret or []:
            loss = item.get("loss")
            out.append(IddsPoint(int(item["id"]), dict(item.get("parameters") or {}),
                                 None if loss is None else float(loss)))
        return sorted(out, key=lambda p: p.id)

    def put_loss(self, point_id: int, loss: float) -> None:
        self._call("update_hyperparameter", "update_hyperparameter", workload_id=self.workload_id, request_id=None,
                   id=int(point_id), loss=float(loss))

    def status(self) -> str | None:
        ret = self._call("get_requests", "get_requests", request_id=self.request_id)
        if not ret:
            return None
        status = ret[0].get("status")
        return getattr(status, "name", None) or str(status)

    def abort(self) -> None:
        # By request id: iDDS 2.6.21 answers 500 to an abort by workload id.
        self._call("abort", "abort", request_id=self.request_id)

    @classmethod
    def of(cls, store: Store) -> "IddsService":
        s = store.campaign().settings.get("idds") or {}
        if not s.get("host") or not s.get("workload_id"):
            raise CampaignError(f"campaign {store.campaign().id} has no iDDS request")
        return cls(s["host"], s["workload_id"], s.get("request_id"))


class IddsSteering(BaseSteering):
    """The engine's steering runner for iDDS: a round ends when iDDS has points the store lacks.

    Each poll (at most every ``interval`` s) reads the work's points from iDDS, sends the losses of
    final points that iDDS lacks, and hands the next new points to the engine as ``%OUT``. When the
    request has ended, the round is empty (the search is over) or fails (request failed/cancelled).
    """

    def __init__(self, service: IddsService, store: Store, interval: float = 1.0, status_every: float = 5.0,
                 log: Callable[[str], None] | None = None):
        self.service = service
        self.store = store
        self.interval = interval
        self.status_every = status_every
        self.log = log or (lambda _msg: None)
        self._dir: Path | None = None
        self._n = 0
        self._next = 0.0
        self._next_status = 0.0
        self._remote: dict[int, float | None] = {}  # id -> iDDS's loss, as last read
        self._sent: set[int] = set()
        self.puts = 0

    # ---- iDDS <-> store ---------------------------------------------------------------------
    def refresh(self) -> list[IddsPoint]:
        points = self.service.points()
        self._remote = {p.id: p.loss for p in points}
        return points

    def send_losses(self) -> int:
        """PUT the loss of every final point that iDDS (as last read) has none for; once per point."""
        sent = 0
        for p in self.store.points(FINAL_STATES):
            if p.id in self._sent or p.id not in self._remote or self._remote[p.id] is not None:
                continue
            loss = idds_loss(p)
            self.service.put_loss(p.id, loss)
            self.log(f"PUT point {p.id} loss {loss!r}")
            self._sent.add(p.id)
            self._remote[p.id] = loss
            sent += 1
        self.puts += sent
        return sent

    def reconcile(self) -> None:
        """Before the engine (re)starts: iDDS's losses win over the store, the store's final losses go to iDDS."""
        points = self.refresh()
        local = {p.id: p for p in self.store.points()}
        for rp in points:
            lp = local.get(rp.id)
            if rp.loss is None or lp is None or lp.state.final:
                continue
            if rp.loss >= FAILURE_LOSS or not math.isfinite(rp.loss):
                self.store.fail_point(rp.id, f"failed (iDDS holds the loss {rp.loss:g})", loss=None)
            else:
                self.store.finish_point(rp.id, loss=rp.loss, metric=metric_of(rp.loss, _mode(self.store)),
                                        message="loss from iDDS (evaluated before the client restarted)")
            self.log(f"point {rp.id}: iDDS already has its loss {rp.loss:g}; not evaluated again")
        self.send_losses()

    # ---- BaseSteering -------------------------------------------------------------------------
    def begin(self, round_dir: Path, num_points: int, max_points: int) -> None:
        self._dir, self._n, self._next = round_dir, num_points, 0.0

    def poll(self) -> RoundEnd | None:
        now = time.monotonic()
        if self._dir is None or now < self._next:
            return None
        self._next = now + self.interval
        try:
            points = self.refresh()
            self.send_losses()
            known = self.known()
            new = [p for p in points if p.id > known]
            if new:
                ids = [p.id for p in new]
                if ids != list(range(known + 1, known + 1 + len(ids))):
                    return RoundEnd(False, f"iDDS points are not numbered on from {known + 1}: {ids[:10]}")
                atomic_write_json(self._dir / OUT_FILE, [p.params for p in new[: self._n]])
                self._dir = None
                return RoundEnd(True)
            if now >= self._next_status:
                self._next_status = now + self.status_every
                status = self.service.status()
                if status in ENDED:
                    atomic_write_json(self._dir / OUT_FILE, [])
                    self._dir = None
                    return RoundEnd(True)
                if status in BROKEN:
                    self._dir = None
                    return RoundEnd(False, f"the iDDS request {self.service.request_id} is {status}")
        except GridError as exc:  # a server that is down for a moment: keep waiting (the engine times out)
            self.log(f"iDDS: {exc}")
        return None

    def cancel(self) -> None:
        self._dir = None

    def known(self) -> int:
        """The highest point id in the store (ids are iDDS's 1, 2, ... taken in order: their count)."""
        return sum(self.store.counts().values())


def _campaign_log(store: Store) -> Callable[[str], None]:
    """Lines (each PUT, each loss taken from iDDS) into the campaign's ``idds.log``."""
    path = store.path.parent / "idds.log"

    def write(line: str) -> None:
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {line}\n")

    return write


def _mode(store: Store) -> str:
    return store.campaign().mode or "min"


class IddsBackend(EmbeddedBackend):
    """Campaigns whose rounds run in a real iDDS; evaluation here (fork server) or on Ray."""

    name = "idds"
    runs_here = False  # the store mirrors iDDS: refresh reads its points and losses
    driven_here = True  # ... and a driver here evaluates them

    def __init__(self) -> None:
        self._steering: IddsSteering | None = None

    def _work(self, project_name: str, options: SubmitOptions) -> Any:
        """The iDDS HPO work of a new campaign (``HpoWorkSpec``); the options are checked first."""
        from ..engine import campaign_fields
        from ..grid.idds_workflow import new_workload_id, work_spec

        if options.steering_command:
            raise UsageError("--steering-command does not apply to --backend idds (iDDS runs the project's steering)")
        project = projects.load(project_name)
        fields = campaign_fields(project, self.name, options)  # checks the options first
        return work_spec(project, workload_id=new_workload_id(), points_per_round=fields["points_per_round"],
                         image=options.grid.steering_container, seed=fields["settings"]["seed"])

    def plan(self, project_name: str, options: SubmitOptions) -> Plan:
        """The iDDS work a submit would send, and to which server; nothing is contacted."""
        spec = self._work(project_name, options)
        details = {"backend": self.name, "idds_host": options.grid.idds_host or os.environ.get(HOST_ENV),
                   **spec.describe()}
        return Plan(self.name, project_name, spec.max_points, details=details, task=spec,
                    commands={"steering_exec": f"{spec.executable} {spec.arguments}".strip()})

    def submit(self, project_name: str, options: SubmitOptions) -> Store:
        from ..grid.idds_workflow import build_workflow

        spec = self._work(project_name, options)
        host = idds_host(options.grid.idds_host)
        proxy_path()
        workflow = build_workflow(spec)
        store = create_campaign(project_name, self.name, options)
        service = IddsService(host, spec.workload_id)
        settings = dict(store.campaign().settings)
        settings.update(steering_timeout=STEERING_TIMEOUT, idds={"host": host, "workload_id": spec.workload_id,
                                                                 "request_id": None, "work": spec.describe()})
        store.update_campaign(settings=settings, remote_id=str(spec.workload_id))
        try:
            request_id = service.submit(workflow)
        except GridError as exc:
            store.update_campaign(status="failed", ended=time.time(), message=f"iDDS refused the workflow: {exc}")
            raise
        settings["idds"]["request_id"] = request_id
        store.update_campaign(settings=settings)
        return self._start(store, options)

    def make_steering(self, store: Store, options: SubmitOptions) -> BaseSteering:
        self._steering = IddsSteering(IddsService.of(store), store, log=_campaign_log(store))
        self._steering.reconcile()
        return self._steering

    def run(self, store: Store, options: SubmitOptions) -> Store:
        store = super().run(store, options)
        if self._steering is not None and store.campaign().status in ("finished", "interrupted", "killed"):
            try:  # the last round's losses (the engine ends before asking iDDS again)
                self._steering.refresh()
                self._steering.send_losses()
            except GridError as exc:
                self._steering.log(f"iDDS: last losses not sent ({exc}); the next resume sends them")
        return store

    def make_runner(self, store: Store, options: SubmitOptions) -> Any:
        address = options.ray_address or store.campaign().settings.get("ray_address")
        if address:
            from ..engine import RayRunner

            return RayRunner(Path(store.campaign().settings.get("project_dir")), address=address)
        return super().make_runner(store, options)

    def kill(self, store: Store) -> None:
        """Stop the local driver and its jobs, then abort the iDDS request (by request id)."""
        status = store.campaign().status
        if status not in ("finished", "failed", "killed"):
            kill_campaign(store)
        service = IddsService.of(store)
        if service.request_id is None:
            return
        try:
            service.abort()
        except GridError as exc:
            raise GridError(f"campaign {store.campaign().id} stopped here, but iDDS did not abort request "
                            f"{service.request_id}: {exc}") from None

    def refresh(self, store: Store) -> None:
        """Points and losses from iDDS into the store, when no driver is mirroring them live."""
        campaign = store.campaign()
        if driver_alive(campaign.pid) and campaign.status.active:
            return
        steering = IddsSteering(IddsService.of(store), store, log=_campaign_log(store))
        points = steering.refresh()
        known = steering.known()
        new = [p for p in points if p.id > known]
        if new:
            store.add_points([p.params for p in new], ids=[p.id for p in new])
        steering.reconcile()
