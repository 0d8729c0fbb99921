"""The results directory of a search: its layout, its errors and how it is written.

A search may be killed at any moment and resumed, so every file here is written
atomically (`write_atomic`) or, for the journal, appended one whole line at a
time: a reader never sees half a file, and a record counts once its line ends
with a newline. The format is described in docs/results.md.

This module holds what every file of the directory shares: the file names, the
error of a damaged directory, atomic writes and the hash that identifies `.arch`
sources. Each kind of file has its own module: `journal` (the trial events),
`trials` (the trial records, the CSV table and the Pareto front), `networks`
(saved weights) and `state` (where a search stands, for resuming).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..errors import SparsemodError, UsageError

JOURNAL = "journal.jsonl"
STATE = "state.json"
CSV = "trials.csv"
#: What the search recorded about its space, data and target, for `report` and `show`.
SETUP = "setup.json"
NETWORKS = "networks"

# The process umask, for the mode of new files (reading it means setting it).
_UMASK = os.umask(0)
os.umask(_UMASK)


class ResultsError(SparsemodError):
    """A results directory whose files are damaged or lack what was asked for."""


class ResultsWriteError(UsageError):
    """The results directory cannot be created or written (read-only, full disk, ...)."""


def write_error(error: OSError, path: Path | str) -> ResultsWriteError:
    """The one-line error of an `OSError` met writing the results under `path`."""
    return ResultsWriteError(f"{error.filename or path}: cannot write the search results: "
                             f"{error.strerror or error}; once that is fixed, running the "
                             "search again resumes it")


@contextmanager
def writing(results: Path | str) -> Iterator[None]:
    """Turn an OSError raised in the body (disk full, read-only) into `write_error`'s."""
    try:
        yield
    except OSError as error:
        raise write_error(error, results) from None


def write_atomic(path: Path | str, data: str | bytes) -> None:
    """Replace `path` with `data` so that readers never see a half-written file.

    Writes a temporary file in the same folder, fsyncs it and renames it over
    `path`; on any failure the old file is left as it was and the temporary
    file is removed. An existing file keeps its permissions.
    """
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        mode = path.stat().st_mode & 0o7777 if path.exists() else 0o666 & ~_UMASK
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sha256_text(text: str) -> str:
    """The hex sha256 of text encoded as UTF-8 (how `.arch` sources are identified)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
