"""Preload a project's training module in a parent process that forks one child per job.

A warm parent (the embedded engine's fork server, a Ray worker's fork server) calls
:func:`preload_project` once per campaign, and again before each fork: the first call imports the
training script (and what it imports at top level: sklearn, torch, data helpers); later calls only
compare the scripts folder's fingerprint and re-import when a file changed. A forked child then finds
the module in :func:`preloaded_module`, and the evaluator hands it to
:func:`hpogrid.evaluator.adapters.load_trainable` instead of executing the script again, so a job pays a fork, not its imports.

A module is *not* preloaded (and each job imports it afresh) when:

- importing it fails (a missing data file in the parent's folder, a syntax error, ...): the parent
  is unharmed, jobs import the script themselves and report the error as their result;
- it starts Python threads at import: a fork copies only the calling thread, so a lock held by
  another thread stays locked forever in the child; the parent is no longer safe to fork Python
  work from (``fork_safe`` is False) and jobs must run in a fresh process;
- it initialised CUDA (``torch.cuda.is_initialized()``): CUDA does not survive a fork; same.

Native threads started at import (OpenBLAS's pool in scipy, jemalloc's background thread) are counted
and logged, not refused: those libraries shut their pools down before a fork and restart them in the
child (``pthread_atfork``), which is how numpy already behaves in the preloaded evaluator.

The rule is :func:`preload_verdict`; see docs/CONTRACTS.md.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Sequence

__all__ = ["ProjectPreload", "preload_project", "preloaded_module", "preload_verdict", "scripts_fingerprint",
           "FALLBACK_ENV"]

#: Environment variable a fork server sets in a job that was not given the preloaded module (its reason).
FALLBACK_ENV = "HPOGRID_PRELOAD_FALLBACK"


@dataclass(frozen=True)
class ProjectPreload:
    """The outcome of one :func:`preload_project` call.

    ``module`` is the imported training module, or None with ``reason`` saying why jobs import it
    themselves. ``fork_safe`` is False when the import left this process unsafe to fork Python work
    from (threads, CUDA): jobs must then run as fresh processes. ``fresh`` is True when this call
    imported (or tried to import) the script, False when the cached outcome still held.
    """

    script: Path
    fingerprint: str
    module: ModuleType | None
    reason: str | None
    fork_safe: bool
    seconds: float
    native_threads: int = 0
    fresh: bool = True

    @property
    def loaded(self) -> bool:
        return self.module is not None

    def describe(self) -> str:
        """One line for a log."""
        name = self.script.name
        if self.module is not None:
            extra = f"; {self.native_threads} native thread(s) started at import (fork-aware pools)" if self.native_threads else ""
            return f"preloaded {name} in {self.seconds:.2f} s{extra}"
        how = "each job imports it afresh" if self.fork_safe else "jobs run as fresh processes"
        return f"{name} not preloaded ({self.reason}); {how}"


_CACHE: dict[Path, ProjectPreload] = {}
_TAINTED: list[str] = []  # reasons this process stopped being safe to fork Python work from


def preload_verdict(*, error: str | None, new_threads: Sequence[str], cuda_initialized: bool) -> tuple[str | None, bool]:
    """``(reason, fork_safe)`` for one import: reason None = keep the module preloaded.

    >>> preload_verdict(error=None, new_threads=[], cuda_initialized=False)
    (None, True)
    """
    if cuda_initialized:
        return "CUDA was initialised at import (it does not survive a fork)", False
    if new_threads:
        return f"threads started at import: {', '.join(sorted(new_threads))}", False
    if error is not None:
        return f"import error: {error}", True
    return None, True


def scripts_fingerprint(folder: Path) -> str:
    """A digest of the scripts folder: every file's relative path, size and modification time
    (byte code caches excluded), so an edit, an added or a removed file changes it."""
    digest = hashlib.sha1()
    folder = Path(folder)
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith((".pyc", ".pyo")):
                continue
            path = os.path.join(root, name)
            try:
                st = os.stat(path)
            except OSError:
                continue
            digest.update(f"{os.path.relpath(path, folder)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def preloaded_module(script_path: Path) -> ModuleType | None:
    """The module :func:`preload_project` imported for ``script_path`` in this process (or a parent
    it was forked from), or None."""
    entry = _CACHE.get(Path(script_path).resolve())
    return entry.module if entry is not None else None


def preload_project(project_dir: str | os.PathLike[str]) -> ProjectPreload:
    """Import the project's training module into this process, or say why not.

    Idempotent and cheap when nothing changed (one walk over the scripts folder); call it before
    each fork. The import runs with the project folder as working directory (as a grid job's
    sandbox) and the scripts folder first on ``sys.path``. Never raises for user problems.
    """
    from .errors import EvaluatorError
    from .project import load_project, resolve_project_dir

    started = time.monotonic()
    try:
        project = load_project(resolve_project_dir(project_dir))
    except EvaluatorError as exc:
        return ProjectPreload(Path(project_dir), "", None, f"project: {exc}", not _TAINTED, 0.0)
    script = project.script_path.resolve()
    fingerprint = scripts_fingerprint(project.scripts_dir)
    cached = _CACHE.get(script)
    if cached is not None and cached.fingerprint == fingerprint:
        return ProjectPreload(cached.script, cached.fingerprint, cached.module, cached.reason, cached.fork_safe,
                              cached.seconds, cached.native_threads, fresh=False)
    if _TAINTED:
        entry = ProjectPreload(script, fingerprint, None, _TAINTED[0], False, 0.0)
        _CACHE[script] = entry
        return entry
    _forget_scripts(project.scripts_dir)
    if not script.is_file():
        entry = ProjectPreload(script, fingerprint, None, f"training script {script} does not exist", True, 0.0)
        _CACHE[script] = entry
        return entry
    entry = _import(script, project.root, fingerprint, started)
    if not entry.fork_safe:
        _TAINTED.append(entry.reason or "unsafe import")
    _CACHE[script] = entry
    return entry


def _import(script: Path, root: Path, fingerprint: str, started: float) -> ProjectPreload:
    from .adapters import load_script, prepare_ray_environment

    prepare_ray_environment()
    threads_before = set(threading.enumerate())
    native_before = _native_threads()
    cwd = os.getcwd()
    module: ModuleType | None = None
    error: str | None = None
    try:
        os.chdir(root)
        module = load_script(script)
    except Exception as exc:  # the user's top level failed: jobs import it themselves
        error = " ".join("".join(traceback.format_exception_only(type(exc), exc)).split())
    finally:
        os.chdir(cwd)
    new_threads = [t.name for t in threading.enumerate() if t not in threads_before and t.is_alive()]
    native = max(0, _native_threads() - native_before - len(new_threads))
    torch = sys.modules.get("torch")
    cuda = bool(torch is not None and getattr(getattr(torch, "cuda", None), "is_initialized", lambda: False)())
    reason, fork_safe = preload_verdict(error=error, new_threads=new_threads, cuda_initialized=cuda)
    if reason is not None and module is not None:
        sys.modules.pop(module.__name__, None)
        module = None
    return ProjectPreload(script, fingerprint, module, reason, fork_safe, time.monotonic() - started, native)


def _forget_scripts(folder: Path) -> None:
    """Drop modules imported from the scripts folder, so an edited helper is imported again too."""
    root = str(Path(folder).resolve()) + os.sep
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if path and os.path.abspath(path).startswith(root):
            del sys.modules[name]
    for script in [s for s in _CACHE if str(s).startswith(root)]:
        del _CACHE[script]


def _native_threads() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:  # not Linux: only Python threads are compared
        return threading.active_count()
