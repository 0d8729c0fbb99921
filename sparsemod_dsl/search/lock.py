"""The lock of a results directory: one search at a time writes it.

A search holds an exclusive `fcntl.flock` on `RESULTS/search.lock` from before its
first write to its end, and writes its pid, host and start time into that file; a
second search on the directory stops at once with a message naming the first. The
kernel drops the lock when its process ends, however it ends, so a killed search
never leaves a stale lock. Readers (`report`, `show`, `export`) take no lock: the
journal is appended one whole line at a time and every other file is replaced
atomically, so they always read a consistent directory.

No torch here: the command line takes the lock before it imports the engine, so a
refused search returns in well under a second.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..errors import UsageError
from .journal import now
from .results import writing

LOCK = "search.lock"

#: Directories this process holds locked -> (the lock file's descriptor, holds).
_HELD: dict[Path, tuple[int, int]] = {}


class LockError(UsageError):
    """The results directory is being written by another search."""


@contextmanager
def locked(results: Path | str) -> Iterator[None]:
    """Hold the lock of the results directory `results` (created if needed).

    Re-entrant within a process: the command line and the engine both take it.

    Raises:
        LockError: another process holds it; the message names that process.
        ResultsWriteError: the directory cannot be created, or the lock file written.
    """
    folder = Path(results).absolute()
    if folder in _HELD:
        fd, holds = _HELD[folder]
        _HELD[folder] = (fd, holds + 1)
    else:
        _HELD[folder] = (_acquire(folder), 1)
    try:
        yield
    finally:
        fd, holds = _HELD.pop(folder)
        if holds > 1:
            _HELD[folder] = (fd, holds - 1)
        else:
            os.close(fd)  # closing the descriptor releases the lock


def _acquire(folder: Path) -> int:
    """A descriptor of the locked lock file, which names this process."""
    path = folder / LOCK
    with writing(folder):
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        with writing(path):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise LockError(f"{folder} is in use by another search "
                                f"({_describe(os.pread(fd, 4096, 0))}): wait for it to end, or "
                                "give this experiment another `results` directory") from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                      "started": now(), "command": " ".join(sys.argv)}
                                     ).encode("utf-8") + b"\n", 0)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _describe(data: bytes) -> str:
    """Who holds a lock, from what it wrote into the lock file."""
    try:
        info = json.loads(data.decode("utf-8"))
        return (f"pid {int(info['pid'])} on {info['host']}, started {info['started']}: "
                f"{info['command']}")
    except (ValueError, KeyError, TypeError):
        return "it has not written who it is yet"
