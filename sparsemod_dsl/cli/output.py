"""Where `sparsemodc` writes files the user names: `compile -o`, `fmt --write`, `export -o`.

A regular file is replaced atomically (`write_atomic`), through a symbolic link if the
path is one, so the link stays; a device or a pipe (`/dev/null`, `/dev/stdout`, a FIFO) is
written straight through, never replaced by a file. Every problem (a missing folder, a
directory, no permission, a full disk) is a one-line `UsageError` naming the path.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ..errors import UsageError
from ..search.results import write_atomic


def write_output(path: str | Path, data: str | bytes) -> None:
    """Write `data` to the file `path` names, or say in one line why it cannot be written."""
    name = str(path)
    if not name:
        raise UsageError("the output path is empty: give a file name")
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        mode = _mode(name)
        if mode is not None and stat.S_ISDIR(mode):
            raise UsageError(f"{name}: is a directory; give the path of a file")
        if mode is not None and not stat.S_ISREG(mode):
            with open(name, "wb") as handle:  # a device or a pipe: write, never replace it
                handle.write(payload)
            return
        real = Path(os.path.realpath(name))  # through a link: the link stays
        parent = _mode(str(real.parent))
        if parent is None or not stat.S_ISDIR(parent):
            folder = real.parent if os.path.islink(name) else Path(name).parent
            what = "no such folder" if parent is None else "not a folder"
            raise UsageError(f"{name}: cannot write: {what}: {folder}")
        write_atomic(real, payload)
    except OSError as error:
        raise UsageError(f"{name}: cannot write: {error.strerror or error}") from None


def _mode(path: str) -> int | None:
    """The file type and permissions of `path` (links followed); None if nothing is there."""
    try:
        return os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
