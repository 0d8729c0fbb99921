"""`sparsemodc search` and its readers against a hostile environment: fast errors, the
results directory's lock, directories it cannot write, a full disk, a damaged journal.

Every case is a clear one-line message and exit 1 or 2, never a traceback nor an
internal error.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import run_cli
from small_search import ARCH, environment, importable, sparsemodc, start, write_search

from sparsemod_dsl.search.journal import Journal
from sparsemod_dsl.search.lock import LockError, locked

#: Generous: on an idle machine these answers take a fraction of a second.
FAST_SECONDS = 5.0

#: Runs `sparsemodc search` in a fresh process; prints its exit code and whether
#: torch or Ax were imported.
PROBE = ("import sys; from sparsemod_dsl import cli; code = cli.main(sys.argv[1:]); "
         "print(code, 'torch' in sys.modules, 'ax' in sys.modules)")


def probe(*args: str, cwd: Path) -> tuple[list[str], str, float]:
    """The probe's output words, its stderr and its wall-clock seconds."""
    begin = time.monotonic()
    done = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120, env=environment(cwd))
    return done.stdout.split(), done.stderr, time.monotonic() - begin


def test_a_bad_experiment_file_is_reported_before_torch_is_imported(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('arch = "small.arch"\n[data\n')
    words, err, seconds = probe("search", str(bad), cwd=tmp_path)
    assert words == ["2", "False", "False"], err
    assert err.startswith(f"sparsemodc: error: {bad}: invalid TOML: ")
    assert seconds < FAST_SECONDS
    begin = time.monotonic()  # and through the installed command
    done = subprocess.run(sparsemodc("search", str(bad)), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and time.monotonic() - begin < FAST_SECONDS


def test_a_second_search_on_a_locked_directory_exits_2_at_once(tmp_path: Path) -> None:
    path = write_search(tmp_path)
    with locked(tmp_path / "results"):
        words, err, seconds = probe("search", str(path), cwd=tmp_path)
    assert words == ["2", "False", "False"], err
    assert err.startswith(f"sparsemodc: error: {tmp_path / 'results'} is in use by another "
                          f"search (pid {os.getpid()} on ")
    assert err.endswith("wait for it to end, or give this experiment another `results` "
                        "directory\n")
    assert seconds < FAST_SECONDS


def test_the_lock_is_reentrant_and_released(tmp_path: Path) -> None:
    results = tmp_path / "results"
    with locked(results):
        with locked(results):  # the command line and the engine both take it
            pass
        info = json.loads((results / "search.lock").read_text())
        assert info["pid"] == os.getpid() and info["host"] and info["started"]
        other = os.open(results / "search.lock", os.O_RDWR)  # another open file: another holder
        try:
            with pytest.raises(BlockingIOError):
                import fcntl

                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(other)
    with locked(results):  # released at the end
        pass


def test_a_search_is_not_disturbed_by_a_second_one(tmp_path: Path) -> None:
    """The real thing: two `sparsemodc search` processes on one directory. The second
    exits 2 naming the first; the first ends normally, every trial once; a reader
    meanwhile takes no lock and sees whole trials."""
    path = write_search(tmp_path)
    journal = Journal(tmp_path / "results" / "journal.jsonl")
    first = start(tmp_path, path)
    try:
        deadline = time.monotonic() + 300
        while first.poll() is None and time.monotonic() < deadline and not (
                journal.path.exists() and journal.trials()):
            time.sleep(0.05)
        assert first.poll() is None, (tmp_path / "log-0.txt").read_text()
        begin = time.monotonic()
        second = subprocess.run(sparsemodc("search", str(path)), cwd=tmp_path, text=True,
                                capture_output=True, timeout=120, env=environment(tmp_path))
        assert second.returncode == 2 and time.monotonic() - begin < FAST_SECONDS
        assert f"is in use by another search (pid {first.pid} on " in second.stderr
        assert all(t.params for t in journal.trials())  # read while the search writes
        assert first.wait(timeout=300) == 0, (tmp_path / "log-0.txt").read_text()
    finally:
        first.kill()
    records = journal.records()
    started = [r["trial"] for r in records if r["event"] == "started"]
    finished = [r["trial"] for r in records if r["event"] == "finished"]
    assert started == finished == list(range(9))


# --- directories that cannot be written ----------------------------------------------------------


def test_results_under_proc_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    importable(tmp_path, monkeypatch)
    path = write_search(tmp_path)
    path.write_text(path.read_text().replace('results = "results"',
                                             'results = "/proc/sparsemod-test/results"'))
    code, _, err = run_cli(capsys, "search", str(path))
    assert code == 2
    assert err == ("sparsemodc: error: /proc/sparsemod-test: cannot write the search results: "
                   "No such file or directory; once that is fixed, running the search again "
                   "resumes it\n")


def test_a_read_only_results_directory_is_an_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A read-only directory, simulated (the tests may run as root, who writes anyway):
    every file opened for writing under it fails with EROFS."""
    importable(tmp_path, monkeypatch)
    path = write_search(tmp_path)
    results = tmp_path / "results"
    results.mkdir()
    real_open = os.open

    def read_only(file: str | Path, flags: int, *args: int, **kwargs: object) -> int:
        if str(file).startswith(str(results)) and flags & (os.O_WRONLY | os.O_RDWR):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(file))
        return real_open(file, flags, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", read_only)
    code, _, err = run_cli(capsys, "search", str(path))
    assert code == 2
    assert err.startswith(f"sparsemodc: error: {results / 'search.lock'}: cannot write the "
                          "search results: Read-only file system")


def test_a_full_disk_stops_the_search_cleanly_and_it_resumes(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk fills up mid-search (fsync says ENOSPC): exit 2 with the reason; once
    there is space again, the same command finishes the search with nothing lost."""
    importable(tmp_path, monkeypatch)
    path = write_search(tmp_path)
    real_fsync, calls = os.fsync, []

    def full_after_a_while(fd: int) -> None:
        calls.append(fd)
        if len(calls) > 15:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", full_after_a_while)
    code, _, err = run_cli(capsys, "search", str(path))
    assert code == 2 and "Traceback" not in err
    assert err.startswith(f"sparsemodc: error: {tmp_path / 'results'}: cannot write the search "
                          "results: No space left on device; once that is fixed, running the "
                          "search again resumes it")
    journal = Journal(tmp_path / "results" / "journal.jsonl")
    before = {t.id: t.finished for t in journal.trials() if t.status != "interrupted"}
    assert 0 < len(before) < 9
    monkeypatch.setattr(os, "fsync", real_fsync)
    code, _, err = run_cli(capsys, "search", str(path))
    assert code == 0, err
    trials = journal.trials()
    assert [t.id for t in trials] == list(range(9))
    assert all(t.finished == before[t.id] for t in trials if t.id in before)


def test_a_built_in_dataset_with_no_samples_is_an_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "small.arch").write_text(ARCH)
    path = tmp_path / "experiment.toml"
    path.write_text('arch = "small.arch"\n[data]\ndataset = "sequences"\n'
                    "options = { samples = 0 }\n")
    code, _, err = run_cli(capsys, "search", str(path))
    assert code == 1
    assert err == (f"sparsemodc: error: {path}: data.dataset: sequences: option samples must "
                   "be a positive integer, found 0\n")


# --- a damaged journal ----------------------------------------------------------------------------


def handmade_results(folder: Path, **measures: object) -> None:
    """A results directory of one completed trial of the small space, at its defaults."""
    (folder / "small.arch").write_text(ARCH)
    (folder / "setup.json").write_text(json.dumps({
        "arch": str(folder / "small.arch"), "input_shape": [1, 8, 8], "classes": 2,
        "target": None, "quantization": "none", "objectives": ["error", "flash"]}))
    events = [{"event": "started", "trial": 0, "stage": "sobol", "params": {}},
              {"event": "finished", "trial": 0, "status": "completed", "error": 0.5,
               "flash_bytes": 100, **measures}]
    (folder / "journal.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))


@pytest.mark.parametrize("command", [["report"], ["show", "--trial", "0"]])
def test_a_journal_field_of_the_wrong_type_is_an_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]) -> None:
    handmade_results(tmp_path, error="x")
    code, out, err = run_cli(capsys, command[0], str(tmp_path), *command[1:])
    assert (code, out) == (1, "")
    assert err.startswith(f"sparsemodc: error: {tmp_path / 'journal.jsonl'}:2: not a journal "
                          "event (its 'error' must be a number or null, not \"x\"): ")


@pytest.mark.parametrize("setup", ["{}", "[]", '{"arch": "a", "input_shape": [1, 8, 8], '
                                   '"classes": 2, "objectives": ["error", "speed"]}'])
@pytest.mark.parametrize("command", [["report"], ["show", "--trial", "0"],
                                     ["export", "--trial", "0"]])
def test_a_malformed_setup_file_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            command: list[str], setup: str) -> None:
    handmade_results(tmp_path)
    (tmp_path / "setup.json").write_text(setup)
    code, out, err = run_cli(capsys, command[0], str(tmp_path), *command[1:])
    assert (code, out) == (2, "")
    assert err.startswith(f"sparsemodc: error: {tmp_path / 'setup.json'}: ")
    assert "malformed" in err or "not a JSON object" in err


def test_report_on_a_read_only_results_directory_is_an_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from matplotlib.figure import Figure

    handmade_results(tmp_path)
    assert run_cli(capsys, "report", str(tmp_path))[0] == 0

    def read_only(self: Figure, path: Path, **kwargs: object) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))

    monkeypatch.setattr(Figure, "savefig", read_only)
    code, _, err = run_cli(capsys, "report", str(tmp_path))
    assert code == 2
    assert err == (f"sparsemodc: error: {tmp_path / 'pareto.png'}: cannot write the plots: "
                   "Read-only file system\n")


def test_locked_raises_lock_error_naming_the_holder(tmp_path: Path) -> None:
    """What the message says when the holder has not written its name yet."""
    import fcntl

    results = tmp_path / "results"
    results.mkdir()
    holder = os.open(results / "search.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(LockError, match=r"in use by another search \(it has not written "
                                            r"who it is yet\)"):
            with locked(results):
                pass
    finally:
        os.close(holder)
