"""Start, stop and inspect a local iDDS 2.6.21: PostgreSQL, the REST app and the agents.

Everything lives in one work folder::

    DIR/idds.cfg, auth.cfg      iDDS's configuration (written here at start)
    DIR/pgdata/                 PostgreSQL's data (pgserver; as root a link, see _pgdata)
    DIR/bin/                    the docker / condor stand-ins, first on the agents' PATH
    DIR/pool/                   the stand-in pool's job records
    DIR/work/                   the HPO work folders iDDS creates (one per request/transform)
    DIR/log/, rest.log, agents.log, database.log
    DIR/proxy.pem               a placeholder X.509 proxy for idds-client (the server ignores it)
    DIR/state.json              what runs: port, pids (with their start times) -> status / stop

docs/IDDS-LOCAL.md says why each setting is there.
"""

from __future__ import annotations

import enum
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

from hpogrid.common import atomic_write_json, read_json_or_none

from .environment import clean_env, ensure_environment
from .errors import StartError

__all__ = ["LocalIdds", "Component", "Status", "start", "stop", "status"]

HERE = Path(__file__).resolve().parent
IDDS_SIDE = HERE / "idds_side.py"
STANDINS = HERE / "standins"
AGENTS = "clerk,transformer,submitter,poller,trigger,finisher"  # receiver/conductor need a message broker
START_TIMEOUT = 300.0  # generous: a loaded 2-core CI machine took 126 s to ping
STOP_GRACE = 5.0  # the agents do not end on SIGTERM within 10 s; their database work rolls back
NICENESS = 10

# Poll periods (seconds) of every agent. iDDS's defaults are tuned for a production service (minutes;
# the poller's first look at a new processing waits 180 s; periods double after each idle poll);
# a local service for one user can look every second or two.
AGENT_SETTINGS = """\
num_threads = 1
poll_period = 1
new_poll_period = 1
update_poll_period = 1
new_command_poll_period = 1
update_command_poll_period = 1
poll_time_period = 1
poll_operation_time_period = 1
retrieve_bulk_size = 10
pending_time = 30
"""
CONFIG = """\
[common]
logdir = {dir}/log
loglevel = INFO

[database]
default = {database}
schema = doma_idds
pool_size = 5
pool_recycle = 3600
echo = 0
pool_reset_on_return = rollback

[rest]
host = {url}
cacher_dir = {dir}/cache

[main]
agents = {agents}

[eventbus]
backend = default

[clerk]
{agent}
[transformer]
{agent}message_bulk_size = 100
atlashpowork.workdir = {dir}/work
atlashpowork.input_json = idds_input.json
atlashpowork.output_json = idds_output.json

[submitter]
{agent}
[carrier]
{agent}max_number_workers = 1
trigger_max_number_workers = 1
finisher_max_number_workers = 1
message_bulk_size = 100
update_poll_period_for_new_task = 1
poll_period_increase_rate = 1
max_new_poll_period = 2
max_update_poll_period = 2
"""
AUTH = """\
[common]
allow_vos = atlas,local

[Users]
allow_users = /DC=local
super_users = pandasvc
"""


class Component(str, enum.Enum):
    DATABASE = "database"
    REST = "rest"
    AGENTS = "agents"


@dataclass(frozen=True)
class Process:
    pid: int
    started: str  # /proc/<pid>/stat's start time: a pid alone may have been reused since

    @classmethod
    def of(cls, pid: int) -> "Process":
        return cls(pid, _start_time(pid) or "")

    def alive(self) -> bool:
        if not self.started or _start_time(self.pid) != self.started:
            return False
        if _state(self.pid) == "Z":  # exited; our own child (start() in this process) is reaped here
            try:
                os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                pass
            return False
        return True


@dataclass(frozen=True)
class Status:
    workdir: Path
    url: str | None
    running: dict[Component, bool] = field(default_factory=dict)
    answers: bool = False  # GET /idds/ping answered

    @property
    def up(self) -> bool:
        return self.answers and bool(self.running) and all(self.running.values())

    def lines(self) -> list[str]:
        if self.url is None:
            return [f"no local iDDS in {self.workdir}"]
        parts = [f"{c.value} {'running' if self.running.get(c) else 'stopped'}" for c in Component]
        return [f"{self.url}: {'answers' if self.answers else 'does not answer'} ({', '.join(parts)})"]


@dataclass
class LocalIdds:
    """A running local iDDS. ``url`` is the REST base (``http://127.0.0.1:P/idds``)."""

    url: str
    workdir: Path
    port: int
    proxy: Path

    @property
    def rest_log(self) -> Path:
        """The REST app's log: one line per HTTP request (werkzeug's access log) and iDDS's errors."""
        return self.workdir / "rest.log"

    def environment(self) -> dict[str, str]:
        """What a client needs: the server, and a placeholder proxy for idds-client."""
        return {"HPOGRID_IDDS_HOST": self.url, "X509_USER_PROXY": str(self.proxy)}

    def stop(self, purge: bool = False) -> None:
        stop(self.workdir, purge=purge)

    def __enter__(self) -> "LocalIdds":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat after the command name: [state, ppid, ...] (fields 3 onwards)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _start_time(pid: int) -> str | None:
    fields = _stat_fields(pid)
    return fields[19] if fields else None  # field 22: start time in clock ticks after boot


def _state(pid: int) -> str | None:
    fields = _stat_fields(pid)
    return fields[0] if fields else None


def _state_path(workdir: Path) -> Path:
    return workdir / "state.json"


def _read_state(workdir: Path) -> dict | None:
    state = read_json_or_none(_state_path(workdir))
    return state if isinstance(state, dict) else None


def _processes(state: dict) -> dict[Component, Process]:
    return {Component(k): Process(**v) for k, v in state.get("processes", {}).items()}


def _write_state(workdir: Path, url: str, port: int, processes: dict[Component, Process]) -> None:
    atomic_write_json(_state_path(workdir), {"url": url, "port": port,
                                             "processes": {c.value: asdict(p) for c, p in processes.items()}}, indent=None)


def _answers(url: str, timeout: float = 5.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=timeout) as reply:
            return reply.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def status(workdir: Path) -> Status:
    workdir = Path(workdir).resolve()
    state = _read_state(workdir)
    if state is None:
        return Status(workdir, None)
    running = {c: p.alive() for c, p in _processes(state).items()}
    return Status(workdir, state["url"], running, _answers(state["url"]))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_taken(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _tail(path: Path, chars: int = 300) -> str:
    try:
        return " ".join(path.read_text(errors="replace")[-chars:].split())
    except OSError:
        return ""


def _pgdata(workdir: Path) -> Path:
    """PostgreSQL's data folder. As root, pgserver runs PostgreSQL as a user ``pgserver`` and opens
    (chmod o+rx) every folder above the data folder; so as root the data goes to its own folder under
    the system's temporary folder (never opening the user's folders, and out of pytest's folders,
    which pytest closes again and rotates away), with ``DIR/pgdata`` a link to it."""
    if os.geteuid() != 0:
        return workdir / "pgdata"
    digest = hashlib.sha1(str(workdir).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / "hpogrid-idds-local-pgdata" / digest


def _link_pgdata(workdir: Path) -> Path:
    target = _pgdata(workdir)
    link = workdir / "pgdata"
    if target != link:
        target.parent.mkdir(parents=True, exist_ok=True)
        if not link.is_symlink():
            link.symlink_to(target)
    return target


def _idds_env(workdir: Path, steering_bin: Path, idds_python: Path) -> dict[str, str]:
    """The environment of the iDDS processes: iDDS's config; the stand-ins, then hpogrid's bin folder
    first on PATH (the steering runs with hpogrid's python, so nothing of the iDDS venv may leak:
    no VIRTUAL_ENV/PYTHONPATH, and the iDDS venv's bin is not on PATH)."""
    env = {k: v for k, v in clean_env().items() if not k.startswith("X509_")}
    idds_bin = str(idds_python.parent)
    rest_of_path = [p for p in env.get("PATH", "/usr/bin:/bin").split(os.pathsep) if p and p != idds_bin]
    env.update({"IDDS_CONFIG": str(workdir / "idds.cfg"), "IDDS_AUTH_CONFIG": str(workdir / "auth.cfg"),
                "IDDS_AGENTS": AGENTS, "HPOGRID_IDDS_POOL": str(workdir / "pool"),
                "PATH": os.pathsep.join([str(workdir / "bin"), str(steering_bin), *rest_of_path])})
    return env


def _run_side(python: Path, argv: list[str], env: dict[str, str], log: Path) -> dict[str, str]:
    """Run one ``idds_side.py`` step to completion; its ``KEY value`` lines, or StartError."""
    with open(log, "a") as out:
        try:
            done = subprocess.run([str(python), str(IDDS_SIDE), *argv], stdout=subprocess.PIPE, stderr=out,
                                  text=True, env=env, timeout=START_TIMEOUT, start_new_session=True)
        except subprocess.TimeoutExpired as exc:
            raise StartError(f"`{argv[0]}` did not finish in {START_TIMEOUT:.0f} s; see {log}") from exc
    if done.returncode != 0:
        raise StartError(f"`{argv[0]}` failed (exit {done.returncode}): {_tail(log)} (log: {log})")
    return dict(line.split(" ", 1) for line in done.stdout.splitlines() if " " in line)


def _spawn(argv: list[str], env: dict[str, str], log: Path, cwd: Path) -> Process:
    """A server process in its own session, at a lower priority: iDDS's agents wait for work in a
    0.1 ms loop (``idds/agents/common/timerscheduler.py`` 206-213), half a core even when idle."""
    with open(log, "a") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                cwd=cwd, start_new_session=True, preexec_fn=lambda: os.nice(NICENESS))
    return Process.of(proc.pid)


def _install_standins(folder: Path) -> None:
    folder.mkdir(exist_ok=True)
    for source in STANDINS.iterdir():
        if source.name.startswith((".", "__")):
            continue
        target = folder / source.name
        shutil.copyfile(source, target)
        target.chmod(0o755)


def start(workdir: Path, port: int | None = None, steering_bin: Path | None = None) -> LocalIdds:
    """Start PostgreSQL, iDDS's REST app on 127.0.0.1:``port`` (a free one when None) and its agents,
    all with their state in ``workdir``; return when ``/idds/ping`` answers.

    ``steering_bin``: the folder whose ``hpogrid-steering`` (and ``python3``) the steering jobs use;
    default: the folder of the python running this. Raises ``Unavailable`` when the iDDS environment
    cannot be built and ``StartError`` when a part does not start (what had started is stopped).
    """
    workdir = Path(workdir).resolve()
    steering_bin = Path(steering_bin or Path(sys.executable).parent).resolve()
    current = status(workdir)
    if current.url is not None and any(current.running.values()):
        raise StartError(f"a local iDDS is already running in {workdir} ({current.url}); stop it first")
    try:
        for sub in ("log", "cache", "work", "pool"):
            (workdir / sub).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StartError(f"cannot use {workdir} as the work folder: {exc.strerror}") from exc
    if port is not None and _port_taken(port):
        raise StartError(f"port {port} on 127.0.0.1 is already in use")
    python = ensure_environment()
    port = port or _free_port()
    url = f"http://127.0.0.1:{port}/idds"
    _install_standins(workdir / "bin")
    (workdir / "auth.cfg").write_text(AUTH)
    proxy = workdir / "proxy.pem"
    proxy.write_text("placeholder: the local iDDS takes the client DN from its own wrapper\n")
    env = _idds_env(workdir, steering_bin, python)
    processes: dict[Component, Process] = {}
    try:
        # 1. PostgreSQL, its database and schema; then the configuration that names it; then the tables
        database = _run_side(python, ["database", str(_link_pgdata(workdir))], env, workdir / "database.log")
        processes[Component.DATABASE] = Process.of(int(database["POSTMASTER"]))
        _write_state(workdir, url, port, processes)
        (workdir / "idds.cfg").write_text(CONFIG.format(dir=workdir, url=url, agents=AGENTS, agent=AGENT_SETTINGS,
                                                        database=database["URI"]))
        _run_side(python, ["tables"], env, workdir / "database.log")
        # 2. the REST app, 3. the agents
        processes[Component.REST] = _spawn([str(python), str(IDDS_SIDE), "rest", str(port)], env,
                                           workdir / "rest.log", workdir)
        _write_state(workdir, url, port, processes)
        processes[Component.AGENTS] = _spawn([str(python), "-m", "idds.agents.main"], env, workdir / "agents.log",
                                             workdir)
        _write_state(workdir, url, port, processes)
        deadline = time.monotonic() + START_TIMEOUT
        while not _answers(url, timeout=2):
            for component in (Component.REST, Component.AGENTS):
                if not processes[component].alive():
                    log = workdir / f"{component.value}.log"
                    raise StartError(f"the iDDS {component.value} exited at start: {_tail(log)} (log: {log})")
            if time.monotonic() > deadline:
                raise StartError(f"{url}/ping did not answer in {START_TIMEOUT:.0f} s; see {workdir / 'rest.log'}")
            time.sleep(0.3)
    except BaseException:
        stop(workdir)
        raise
    return LocalIdds(url=url, workdir=workdir, port=port, proxy=proxy)


def _signal_group(process: Process, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:  # not a group leader we own: signal the process itself
        os.kill(process.pid, sig)


def _wait_gone(processes: list[Process], grace: float) -> list[Process]:
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        processes = [p for p in processes if p.alive()]
        if not processes:
            break
        time.sleep(0.1)
    return [p for p in processes if p.alive()]


def stop(workdir: Path, purge: bool = False) -> list[Component]:
    """Stop what ``start`` started in ``workdir`` (agents, REST app, PostgreSQL); the components that
    were still running. Safe to call twice. ``purge`` also removes PostgreSQL's data (iDDS's
    requests and points), which a later ``start`` in the same folder would otherwise reuse."""
    workdir = Path(workdir).resolve()
    state = _read_state(workdir)
    if state is None:
        if purge:
            _purge(workdir)
        return []
    processes = _processes(state)
    stopped = [c for c, p in processes.items() if p.alive()]
    # the agents and the REST app: their whole process groups (the agents' steering jobs included)
    groups = [processes[c] for c in (Component.AGENTS, Component.REST) if c in processes and processes[c].alive()]
    for process in groups:
        _signal_group(process, signal.SIGTERM)
    for process in _wait_gone(groups, STOP_GRACE):
        _signal_group(process, signal.SIGKILL)
    _wait_gone(groups, STOP_GRACE)
    # PostgreSQL: SIGINT is its "fast" shutdown (ends the sessions, writes a checkpoint)
    database = processes.get(Component.DATABASE)
    if database is not None and database.alive():
        os.kill(database.pid, signal.SIGINT)
        if _wait_gone([database], 30.0):
            os.kill(database.pid, signal.SIGKILL)
            _wait_gone([database], STOP_GRACE)
    _state_path(workdir).unlink(missing_ok=True)
    if purge:
        _purge(workdir)
    return stopped


def _purge(workdir: Path) -> None:
    shutil.rmtree(_pgdata(workdir), ignore_errors=True)
    link = workdir / "pgdata"
    if link.is_symlink():
        link.unlink()

