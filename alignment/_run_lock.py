"""An exclusive lock on a run directory: one ``mixdpo`` command at a time per ``run_dir``.

The lock is ``fcntl.flock(LOCK_EX | LOCK_NB)`` on ``<run_dir>/.lock``, held for as long as the
lock's file descriptor is open. The kernel drops it when the holding process exits, however it
exits (SIGKILL included), so a killed run leaves no stale lock: the file stays, the lock does
not, and the file is never deleted (deleting it would let a third process lock a new file while
the second still holds the old one). The holder writes its pid, host, start time and command
line into the file as JSON; a refused process quotes them in :class:`RunDirLockedError`.

Limits: ``flock`` is advisory (only processes that ask for the lock respect it); on NFS, Linux
emulates it with a POSIX byte-range lock, which works where the server supports locking.
Worker processes forked while the lock is held (dataloader workers) share its descriptor, so
the lock is released only when they have exited too. Where ``fcntl`` does not exist (Windows)
no lock is taken and a :class:`RuntimeWarning` says so.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import warnings
from pathlib import Path
from typing import Any

__all__ = ["LOCK_NAME", "RunDirLock", "RunDirLockedError", "read_holder"]

LOCK_NAME = ".lock"


class RunDirLockedError(RuntimeError):
    """Another process holds the run directory's lock; ``holder`` is what it recorded."""

    def __init__(self, run_dir: str | os.PathLike, holder: dict[str, Any] | None) -> None:
        self.run_dir = Path(run_dir)
        self.holder = holder
        if holder and "pid" in holder:
            who = f"pid {holder['pid']} on {holder.get('host', 'an unknown host')}"
            command = _mixdpo_command(holder.get("argv"))
            if command:
                who = f"`mixdpo {command}`, " + who
            if "started" in holder:
                who += f", started {holder['started']}"
        else:
            who = "a process that has not recorded itself yet"  # it locked, not yet written
        super().__init__(
            f"run directory {self.run_dir} is in use by another mixdpo process ({who}; "
            f"lock file {self.run_dir / LOCK_NAME}). Wait for that run to finish or stop it, "
            "or train in another run_dir (--set run_dir=...)."
        )


def _mixdpo_command(argv: Any) -> str | None:
    """The subcommand (train, eval, compare) in a holder's recorded command line, if any."""
    if isinstance(argv, list):
        for word in argv[1:]:
            if word in ("train", "eval", "compare"):
                return word
    return None


def read_holder(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """What the last holder of ``run_dir``'s lock recorded, or None (no file, empty, garbled).

    The record outlives the lock: it says who held it last, not whether anyone holds it now.
    """
    try:
        text = (Path(run_dir) / LOCK_NAME).read_text()
        holder = json.loads(text)
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


class RunDirLock:
    """Context manager holding ``<run_dir>/.lock`` exclusively; raises :class:`RunDirLockedError`
    at once (no waiting) when another open file description holds it, in this or another
    process. ``run_dir`` must exist."""

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> RunDirLock:
        try:
            import fcntl
        except ImportError:  # Windows: no flock
            warnings.warn(
                f"no fcntl on this platform: {self.run_dir} is not locked against a second run",
                RuntimeWarning,
                stacklevel=2,
            )
            return self
        # No O_TRUNC: a refused process must not wipe the holder's record.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunDirLockedError(self.run_dir, read_holder(self.run_dir)) from None
        except BaseException:
            os.close(fd)
            raise
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "argv": sys.argv,
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Drop the lock (closing the descriptor releases it); the record stays in the file."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> RunDirLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
