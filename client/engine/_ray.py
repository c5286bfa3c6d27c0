"""Jobs as Ray tasks: one ``@ray.remote`` task per point, each running ``hpogrid-evaluate``.

The task gets the project as a tarball in the object store (unpacked once per node), runs the
evaluator in a temporary job folder on the worker (same contract: input.json in, output.json and
meta.json out), and returns those files; the runner writes them into the campaign's job folder, so
the store, the retries and the reports are those of the embedded engine. Each Ray worker process
keeps a warm fork server per project (keyed by the project's hash, the embedded engine's
``_forkserver``): the evaluator and the training module are imported once per worker, and each job
is a fork of it, its own process, as embedded.
"""

from __future__ import annotations

import hashlib
import io
import json
import selectors
import shutil
import signal
import socket
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from ..errors import CampaignError
from ._jobs import BaseJobRunner, ForkServerRunner, Job, JobExit

__all__ = ["RayRunner"]

_LOG_LIMIT = 1 << 20


def _pack(project_dir: Path) -> bytes:
    """The project as a self-contained tarball: its project.json (``scripts`` pointing inside) and
    its scripts folder, wherever project.json says it is (a campaign's own project.json names the
    project's folder)."""
    project = json.loads((project_dir / "project.json").read_text())
    scripts = project_dir / (project.get("scripts") or "scripts")
    project["scripts"] = "scripts"
    text = json.dumps(project, indent=2).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("project.json")
        info.size, info.mode = len(text), 0o644  # mtime 0: the same project packs to the same bytes
        tar.addfile(info, io.BytesIO(text))
        tar.add(scripts, arcname="scripts",
                filter=lambda t: None if "__pycache__" in t.name or t.name.endswith(".pyc") else t)
    return buf.getvalue()


def _unpack(bundle: bytes, digest: str) -> Path:
    base = Path(tempfile.gettempdir()) / "hpogrid-ray"
    target = base / digest
    if (target / "project.json").is_file():
        return target
    base.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=base, prefix=f".{digest}."))
    with tarfile.open(fileobj=io.BytesIO(bundle), mode="r:gz") as tar:
        tar.extractall(staging, filter="data")
    try:
        staging.rename(target)
    except OSError:  # another task unpacked it first
        shutil.rmtree(staging, ignore_errors=True)
    return target


_SERVERS: dict[str, ForkServerRunner] = {}  # in a Ray worker process: project digest -> its warm fork server


def _warm_runner(project: Path, digest: str) -> ForkServerRunner:
    """This worker process's fork server for the project (started by the worker's first task of
    it): the evaluator and the training module are imported once, each job is a fork."""
    runner = _SERVERS.get(digest)
    if runner is None:
        for old in _SERVERS.values():  # another campaign's project: one warm server per worker
            old.close()
        _SERVERS.clear()
        runner = ForkServerRunner(log=project.parent / f"{digest}.forkserver.log", project_dir=project,
                                  server_lock=False)  # one server per worker process: no driver to outlive
        _SERVERS[digest] = runner
    runner.open()
    return runner


def _wait_exit(runner: ForkServerRunner, key: str, hard_timeout: float | None) -> JobExit:
    """Block until the job ``key`` ends: SIGKILL at ``hard_timeout``; SIGTERM (then SIGKILL after the
    runner's grace) when the task is cancelled (``ray.cancel`` raises KeyboardInterrupt here)."""
    deadline = time.monotonic() + hard_timeout if hard_timeout is not None else None
    sel = selectors.DefaultSelector()
    try:
        while True:
            fd = runner.fileno()
            if fd is None:
                return JobExit(key, error="the worker's fork server died")
            if not sel.get_map():
                sel.register(fd, selectors.EVENT_READ)
            try:
                sel.select(None if deadline is None else max(0.0, deadline - time.monotonic()))
                for ex in runner.poll():
                    if ex.key == key:
                        return ex
                if deadline is not None and time.monotonic() >= deadline:
                    runner.kill(key, signal.SIGKILL)
                    deadline = None
            except KeyboardInterrupt:
                runner.kill(key, signal.SIGTERM)
    finally:
        sel.close()


def ray_job(bundle: bytes, digest: str, params: dict[str, Any], args: list[str], env: dict[str, str],
            hard_timeout: float | None) -> dict[str, Any]:
    """The body of one Ray task (runs on a Ray worker): the job is forked by the worker's warm fork server."""
    import json

    project = _unpack(bundle, digest)
    workdir = Path(tempfile.mkdtemp(prefix="hpogrid-job-"))
    try:
        (workdir / "input.json").write_text(json.dumps(params))
        runner = _warm_runner(project, digest)
        key = workdir.name
        runner.start(Job(key, 0, 0, workdir, evaluate=["--project", str(project), *args],
                         env={**env, "HPOGRID_PROJECT_DIR": str(project)}))
        ex = _wait_exit(runner, key, hard_timeout)
        if ex.error is not None:
            raise RuntimeError(ex.error)
        files = {}
        for name in ("output.json", "meta.json", "log"):
            path = workdir / name
            if path.exists():
                data = path.read_bytes()
                files[name] = data[-_LOG_LIMIT:] if name == "log" else data
        return {"rc": ex.rc, "signal": ex.signal, "files": files, "host": socket.gethostname()}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _check_reachable(address: str | None) -> None:
    """Fail in seconds, with one line, when ``host:port`` does not answer (ray.init would retry for minutes)."""
    if not address or "://" in address or address in ("auto", "local"):
        return
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise CampaignError(f"--ray-address must be HOST:PORT, 'auto' or ray://..., got {address!r}")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=5):
            pass
    except OSError as exc:
        raise CampaignError(f"no Ray cluster answers at {address} ({exc.strerror or exc})") from None


class RayRunner(BaseJobRunner):
    """One Ray task per job, on the cluster at ``address`` (None: a local Ray started here)."""

    local = False
    check_reachable = staticmethod(_check_reachable)  # before anything is written (the ray backend)

    def __init__(self, project_dir: str | Path, address: str | None = None, num_cpus: float = 1.0):
        self.project_dir = Path(project_dir)
        self.address = address
        self.num_cpus = num_cpus
        self._refs: dict[Any, Job] = {}
        self._keys: dict[str, Any] = {}
        self._exits: list[JobExit] = []
        self._inited = False

    def open(self) -> None:
        if self._inited:
            return
        try:
            import ray
        except ImportError as exc:
            raise CampaignError("the ray backend needs Ray: pip install 'hpogrid[evaluator]'") from exc
        _check_reachable(self.address)
        try:
            if not ray.is_initialized():
                ray.init(address=self.address, include_dashboard=False, log_to_driver=False,
                         logging_level="ERROR", configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise CampaignError(f"cannot connect to Ray at {self.address or 'a new local cluster'}: {exc}") from exc
        self._ray = ray
        bundle = _pack(self.project_dir)
        self._digest = hashlib.sha256(bundle).hexdigest()[:16]
        self._bundle = ray.put(bundle)
        self._task = ray.remote(num_cpus=self.num_cpus, max_retries=0)(ray_job)
        self._inited = True

    def start(self, job: Job) -> None:
        import json

        params = json.loads((job.workdir / "input.json").read_text())
        args = [a for a in (job.evaluate or []) if True]
        if "--project" in args:  # the task points the evaluator at its own copy of the project
            i = args.index("--project")
            del args[i:i + 2]
        timeout = None
        if "--timeout" in args:
            timeout = float(args[args.index("--timeout") + 1]) + 10
        ref = self._task.remote(self._bundle, self._digest, params, args, dict(job.env), timeout)
        self._refs[ref] = job
        self._keys[job.key] = ref

    def kill(self, key: str, sig: int = signal.SIGTERM) -> None:
        ref = self._keys.get(key)
        if ref is not None:
            try:
                self._ray.cancel(ref, force=False)
            except Exception:  # already finished: its result is harvested by poll()
                pass

    def poll(self) -> list[JobExit]:
        out, self._exits = self._exits, []
        if not self._refs:
            return out
        ready, _ = self._ray.wait(list(self._refs), num_returns=len(self._refs), timeout=0)
        for ref in ready:
            job = self._refs.pop(ref)
            self._keys.pop(job.key, None)
            try:
                result = self._ray.get(ref)
            except Exception as exc:  # cancelled, worker crashed, node lost
                out.append(JobExit(job.key, error=f"Ray task failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"))
                continue
            for name, data in result["files"].items():
                mode = "ab" if name == "log" else "wb"
                with open(job.workdir / name, mode) as f:
                    f.write(data)
            out.append(JobExit(job.key, rc=result["rc"], signal=result["signal"], host=result["host"]))
        return out

    def close(self) -> None:
        if not self._inited:
            return
        for ref in list(self._refs):
            try:
                self._ray.cancel(ref, force=True)
            except Exception:  # best effort at shutdown: a finished or lost task cannot be cancelled
                pass
        self._refs.clear()
        self._ray.shutdown()
        self._inited = False

    @property
    def host(self) -> str:
        return socket.gethostname()
