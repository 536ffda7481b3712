"""One training per run name at a time, and the errors a run that cannot go on ends with.

Two `train` commands with one run name would train into the same checkpoints and MLflow run, so
each holds an OS file lock (``fcntl.flock``) on ``$GENFACTORY_HOME/locks/run-<name>.lock`` from
before Ray starts until it returns. The kernel drops the lock when its holder exits, however it
exits (SIGKILL included), so a lock is never stale: whoever gets it knows no other process on this
machine is training that run, and may close what an earlier, killed attempt left open. The lock is
per data directory and per machine: drivers on several machines sharing one MLflow server and
checkpoint store are not serialised by it.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gen_factory import settings


class RunError(RuntimeError):
    """A training run could not go on (not the input's fault); the message says how to go on."""


class RunBusy(RunError):
    """Another process is training this run name now."""


class TrainingFailed(RunError):
    """Ray Train gave up on a run after its restarts; the checkpoints are kept for a resume."""


def lock_file(kind: str, name: str, root: Path | None = None) -> Path:
    """`root/locks/<kind>-<name>.lock`; the name made file-safe, plus a hash so two names never share one."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name)[:80]
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    folder = (root or settings.data_dir()) / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{kind}-{safe}-{digest}.lock"


@contextmanager
def run_lock(run_name: str) -> Iterator[None]:
    """Hold the run's lock for the block, or raise RunBusy at once naming the run and its holder."""
    path = lock_file("run", run_name)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by subprocesses (PEP 446)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            raise RunBusy(f"run {run_name!r} is being trained by {holder}; wait for it to finish (the same "
                          "command then resumes or reports it finished), or pass another --run-name"
                          ) from None
        os.ftruncate(fd, 0)
        holder = f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%H:%M:%S')}"
        os.pwrite(fd, holder.encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the only descriptor releases the lock


def is_locked(run_name: str) -> bool:
    """Whether some process holds the run's lock now (taking and dropping it if free)."""
    path = lock_file("run", run_name)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


@contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Block until this process alone holds `path`'s lock: short critical sections between processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
