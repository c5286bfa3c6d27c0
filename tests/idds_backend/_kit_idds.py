"""TEMPORARY: a real iDDS 2.6.21 (REST app + agents, PostgreSQL from PyPI) for this branch's tests.

Replaced by ``hpogrid.iddslocal`` (branch idds-server) when the branches merge: delete this file and
the fallback in ``conftest.py`` then. It follows the local-iDDS kit of the shared reference folder
(``KIT`` below): the unmodified PyPI packages in their own venv (cached), PostgreSQL via pgserver,
the kit's REST wrapper (plain HTTP, a test DN) and its ``docker`` stand-in first on the agents' PATH,
with this interpreter's folder next so that iDDS's steering command finds ``hpogrid-steering``.

By hand: ``python tests/idds_backend/_kit_idds.py WORKDIR PORT`` starts one and prints its URL.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

KIT = Path(os.environ.get("HPOGRID_IDDS_KIT", "/work/shared/reference/idds-local"))
VENV = Path(os.environ.get("HPOGRID_DEV_IDDS_VENV", Path.home() / ".cache/hpogrid/dev-idds-backend/venv"))
PACKAGES = ["idds-server==2.6.21", "idds-atlas==2.6.21", "idds-common==2.6.21", "idds-workflow==2.6.21",
            "idds-client==2.6.21", "idds-prompt==2.6.21", "psycopg2-binary", "pgserver"]
AGENTS = "clerk,transformer,submitter,poller,trigger,finisher"
# Short agent periods so that one round takes seconds, not minutes.
FAST = {"poll_period": "1", "new_poll_period": "1", "update_poll_period": "1", "poll_time_period": "1",
        "poll_operation_time_period": "1", "new_command_poll_period": "1", "update_command_poll_period": "1"}


class Unavailable(RuntimeError):
    """This machine cannot run the local iDDS (the reason is the message)."""


def ensure_venv() -> Path:
    python = VENV / "bin" / "python"
    if python.exists():
        return python
    uv = Path(sys.executable).parent / "uv"
    if not uv.exists():
        raise Unavailable(f"no uv beside {sys.executable} to build {VENV}")
    try:
        subprocess.run([str(uv), "venv", "-q", "--python", sys.executable, str(VENV)], check=True, timeout=300)
        subprocess.run([str(uv), "pip", "install", "-q", "--python", str(python), *PACKAGES], check=True, timeout=900)
    except (subprocess.SubprocessError, OSError) as exc:
        shutil.rmtree(VENV, ignore_errors=True)
        raise Unavailable(f"cannot install iDDS 2.6.21 into {VENV}: {exc}") from None
    return python


def _config(workdir: Path, port: int) -> str:
    lines = []
    section = ""
    for line in (KIT / "idds.cfg.template").read_text().replace("@DIR@", str(workdir)).splitlines():
        if line.startswith("["):
            section = line.strip("[]")
        key = line.split("=", 1)[0].strip()
        if section == "database" and key == "default":
            line = f"default = postgresql://postgres@/idds?host={workdir}/pgdata\nschema = doma_idds"
        elif section == "rest" and key == "host":
            line = f"host = http://127.0.0.1:{port}/idds"
        elif key in FAST:
            line = f"{key} = {FAST[key]}"
        lines.append(line)
        if line in ("[clerk]", "[transformer]", "[carrier]"):  # periods stay short (default: x2 up to 6 h)
            lines += ["poll_period_increase_rate = 1", "max_update_poll_period = 2", "max_new_poll_period = 2"]
        if line == "[carrier]":
            lines += ["update_poll_period_for_new_task = 1"]
    return "\n".join(lines) + "\n"


class KitIdds:
    """A started server: ``url``, ``workdir``, ``rest_log`` (the REST app's access log), ``stop()``."""

    def __init__(self, workdir: Path, port: int):
        self.workdir = workdir
        self.port = port
        self.url = f"http://127.0.0.1:{port}/idds"
        self.rest_log = workdir / "rest.log"
        self.procs: list[subprocess.Popen] = []
        self.pg_pid: int | None = None

    def __enter__(self) -> "KitIdds":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.procs.clear()
        for pid in _working_in(self.workdir):  # steering runs iDDS started in sessions of their own
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.pg_pid:
            try:
                os.kill(self.pg_pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            self.pg_pid = None


def _working_in(folder: Path) -> list[int]:
    """Processes (other than PostgreSQL) whose working directory is inside ``folder``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = (entry / "cwd").resolve()
            exe = os.readlink(entry / "exe")
        except OSError:
            continue
        if cwd.is_relative_to(folder) and "postgres" not in Path(exe).name:
            found.append(int(entry.name))
    return found


def start(workdir: str | Path, port: int) -> KitIdds:
    if not (KIT / "serve_rest.py").exists():
        raise Unavailable(f"the local-iDDS kit is not at {KIT}")
    python = ensure_venv()
    workdir = Path(workdir).resolve()
    for sub in ("log", "cache", "work"):
        (workdir / sub).mkdir(parents=True, exist_ok=True)
    server = KitIdds(workdir, port)
    pg = workdir / "pgdata"
    setup = f"""
import pgserver, psycopg2
s = pgserver.get_server({str(pg)!r}, cleanup_mode=None)
if "1" not in s.psql("select 1 from pg_database where datname='idds';"):
    s.psql("create database idds;")
c = psycopg2.connect(host={str(pg)!r}, user="postgres", dbname="idds"); c.autocommit = True
c.cursor().execute("create schema if not exists doma_idds")
"""
    try:
        subprocess.run([str(python), "-c", setup], check=True, timeout=180, capture_output=True, text=True)
    except subprocess.CalledProcessError as exc:
        raise Unavailable(f"PostgreSQL (pgserver) did not start: {(exc.stderr or '').strip().splitlines()[-1:]}") from None
    server.pg_pid = int((pg / "postmaster.pid").read_text().split()[0])
    (workdir / "idds.cfg").write_text(_config(workdir, port))
    shutil.copy(KIT / "auth.cfg", workdir / "auth.cfg")
    env = {**os.environ, "IDDS_CONFIG": str(workdir / "idds.cfg"), "IDDS_AUTH_CONFIG": str(workdir / "auth.cfg"),
           "PYTHONPATH": str(KIT), "FAKE_CONDOR_STATE": str(workdir / "fakecondor")}
    env.pop("X509_USER_PROXY", None)
    try:
        subprocess.run([str(python), "-c", "from idds.orm.base import models; from idds.orm.base.session import "
                        "get_engine; models.register_models(get_engine())"], env=env, check=True, timeout=120,
                       capture_output=True, cwd=workdir)
        site = subprocess.run([str(python), "-c", "import idds, os; print(os.path.dirname(os.path.dirname(idds.__file__)))"],
                              env=env, check=True, capture_output=True, text=True).stdout.strip()
        with open(server.rest_log, "ab") as log:
            server.procs.append(subprocess.Popen([str(python), str(KIT / "serve_rest.py"), str(port)], cwd=workdir,
                                                 env=env, stdout=log, stderr=log, start_new_session=True))
        agent_env = {**env, "IDDS_AGENTS": AGENTS,
                     "PATH": f"{KIT / 'fakebin'}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
        with open(workdir / "agents.log", "ab") as log:
            server.procs.append(subprocess.Popen([str(python), f"{site}/idds/agents/main.py"], cwd=workdir,
                                                 env=agent_env, stdout=log, stderr=log, start_new_session=True))
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{server.url}/ping", timeout=5):
                    break
            except OSError:
                if time.monotonic() > deadline or server.procs[0].poll() is not None:
                    raise Unavailable(f"the iDDS REST app did not answer on {server.url} (see {server.rest_log})")
                time.sleep(0.5)
    except BaseException:
        server.stop()
        raise
    return server


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    s = start(sys.argv[1], int(sys.argv[2]))
    print(s.url, "pids:", [p.pid for p in s.procs], "postgres:", s.pg_pid, flush=True)
    try:
        signal.pause()
    finally:
        s.stop()
