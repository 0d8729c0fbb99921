"""Trials on real Ray: a local Ray of 2 workers, a head started with `ray start`, a
worker killed mid-trial, the driver killed with trials in flight."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Iterator

import pytest
from small_search import (
    STAGES,
    environment,
    importable,
    sparsemodc,
    start,
    write_search,
)

from sparsemod_dsl.search.engine import Search
from sparsemod_dsl.search.execution import ExecutionError
from sparsemod_dsl.search.experiment import load_experiment
from sparsemod_dsl.search.journal import Journal

pytest.importorskip("ray")

#: Every trial trained (3 Sobol, 2 rounds of 2 BO, 2 morph): the budgets of STAGES.
TRIALS = 9
#: Ray binds 127.0.0.1 only (the tests may talk to nothing else).
LOCAL = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


@pytest.fixture(autouse=True)
def loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in LOCAL.items():
        monkeypatch.setenv(key, value)


def run(folder: Path, monkeypatch: pytest.MonkeyPatch, **settings: str) -> Journal:
    """A small search in this process; its journal."""
    folder.mkdir(exist_ok=True)
    importable(folder, monkeypatch)
    Search(load_experiment(write_search(folder, **settings)), report=lambda _: None).run()
    return Journal(folder / "results" / "journal.jsonl")


def stages(journal: Journal) -> Counter[str]:
    return Counter(t.stage for t in journal.trials() if t.status in ("completed", "failed"))


def finished_once(journal: Journal) -> bool:
    """No trial has two outcomes."""
    ids = [r["trial"] for r in journal.records() if r["event"] == "finished"]
    return len(ids) == len(set(ids))


def test_two_local_workers_train_as_many_trials_per_stage_as_one_process(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    alone = run(tmp_path / "one", monkeypatch, strategy="exact")
    two = run(tmp_path / "two", monkeypatch, strategy="exact", execution="workers = 2")
    assert stages(two) == stages(alone) == Counter(sobol=3, bo=4, morph=2)
    trials = two.trials()
    assert [t.id for t in trials] == list(range(len(trials)))
    assert all(t.status == "completed" for t in trials) and finished_once(two)
    saved = {int(p.stem.split("-")[1]) for p in (tmp_path / "two/results/networks").glob("*.pt")}
    assert saved and all(two.trial(i).status == "completed" for i in saved)
    morph = [t for t in trials if t.stage == "morph"]
    assert all(t.parent is not None for t in morph)  # parents' weights went to the workers


@pytest.fixture
def head() -> Iterator[int]:
    """A Ray head started with `ray start --head --block` on 127.0.0.1 in a session of
    its own, stopped by ending that session (`ray stop` would stop every Ray here)."""
    ray = shutil.which("ray", path=str(Path(sys.executable).parent))
    assert ray is not None
    process = subprocess.Popen(
        [ray, "start", "--head", "--block", "--node-ip-address=127.0.0.1", "--port=0",
         "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats"],
        env={**os.environ, **LOCAL}, start_new_session=True, stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, began = time.monotonic() + 120, time.time() - 1
        while not head_is_up(process.pid, began):
            assert process.poll() is None and time.monotonic() < deadline, "no Ray head"
            time.sleep(0.5)
        yield process.pid
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def head_is_up(pid: int, since: float) -> bool:
    """Whether the head that `ray start` (process `pid`) runs is up: its GCS runs, and
    the file that `address = "auto"` reads was written since `since`."""
    current = Path("/tmp/ray/ray_current_cluster")
    return current.exists() and current.stat().st_mtime >= since and any(
        "gcs_server" in p.read_text(errors="ignore") for p in Path("/proc").glob("*/cmdline")
        if _session(p) == pid)


def _session(cmdline: Path) -> int | None:
    try:
        return os.getsid(int(cmdline.parent.name))
    except (ValueError, OSError):
        return None


def test_a_search_joins_a_head_started_with_ray_start(tmp_path: Path, head: int) -> None:
    """As a user would: `ray start --head` in one shell, `sparsemodc search` in another;
    the search trains on the head's workers and leaves it running."""
    path = write_search(tmp_path, execution='workers = 2\naddress = "auto"')
    done = subprocess.run(sparsemodc("search", str(path)), cwd=tmp_path, capture_output=True,
                          text=True, env=environment(tmp_path), timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    journal = Journal(tmp_path / "results" / "journal.jsonl")
    assert stages(journal) == Counter(sobol=3, bo=4, morph=2) and finished_once(journal)
    assert any(_session(p) == head for p in Path("/proc").glob("*/cmdline")  # the head runs on
               if "raylet" in p.read_text(errors="ignore"))


def kill_what_hangs(folder: Path, stop: threading.Event) -> None:
    """SIGKILL each process that writes its id into `folder/pids` (once each)."""
    killed: set[str] = set()
    while not stop.is_set():
        for pid in (folder / "pids").glob("trial-*"):
            if pid.suffix != ".tmp" and pid.name not in killed:
                killed.add(pid.name)
                os.kill(int(pid.read_text()), signal.SIGKILL)
        time.sleep(0.2)


def test_a_killed_worker_is_retried_once_then_the_trial_fails(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Trial 2's worker is killed once: it is retried and completes; trial 1's worker
    is killed on each try: it fails with the reason. The search goes on."""
    stop = threading.Event()
    killer = threading.Thread(target=kill_what_hangs, args=(tmp_path, stop), daemon=True)
    killer.start()
    try:
        journal = run(tmp_path, monkeypatch, trainer="killed", execution="workers = 2")
    finally:
        stop.set()
    trials = {t.id: t for t in journal.trials()}
    assert trials[1].status == "failed" and "Ray worker died 2 times" in (trials[1].reason or "")
    assert trials[2].status == "completed"
    assert sorted(p.name for p in (tmp_path / "pids").iterdir()) == [
        "trial-1-0", "trial-1-1", "trial-2"]
    assert stages(journal) == Counter(sobol=3, bo=4, morph=2) and finished_once(journal)


def test_a_driver_killed_with_trials_in_flight_resumes_without_losing_or_repeating_one(
        tmp_path: Path) -> None:
    path = write_search(tmp_path, trainer="slow", execution="workers = 2",
                        stages=STAGES.replace("sobol = 3", "sobol = 6"))
    journal = Journal(tmp_path / "results" / "journal.jsonl")
    driver = start(tmp_path, path)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # two trials done, two in flight
        trials = journal.trials() if journal.path.exists() else []
        if sum(t.status == "completed" for t in trials) >= 2 and \
                sum(t.status == "interrupted" for t in trials) == 2:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the search never had two trials in flight")
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    before = {t.id: t for t in journal.trials()}
    assert sum(t.status == "interrupted" for t in before.values()) == 2
    rerun = subprocess.run(sparsemodc("search", str(path)), cwd=tmp_path, capture_output=True,
                           text=True, env={**environment(tmp_path), **LOCAL}, timeout=600)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    trials = journal.trials()
    assert [t.id for t in trials] == list(range(len(trials)))
    assert all(t.status == "completed" for t in trials)
    assert stages(journal) == Counter(sobol=6, bo=4, morph=2)
    for trial in before.values():  # what had finished stays as it was
        if trial.status == "completed":
            assert journal.trial(trial.id).finished == trial.finished
    assert "was interrupted: running it again" in rerun.stdout + rerun.stderr


def test_gpus_per_trial_on_a_ray_without_gpus_is_refused_before_any_training(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    importable(tmp_path, monkeypatch)
    search = Search(load_experiment(write_search(tmp_path, execution="gpus_per_trial = 1")),
                    report=lambda _: None)
    with pytest.raises(ExecutionError, match="gpus_per_trial = 1, but the Ray cluster has 0"):
        search.run()
    assert not Journal(tmp_path / "results" / "journal.jsonl").trials()


def test_workers_without_ray_installed_say_how_to_get_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    importable(tmp_path, monkeypatch)
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    monkeypatch.delitem(sys.modules, "sparsemod_dsl.search.rayexec", raising=False)
    search = Search(load_experiment(write_search(tmp_path, execution="workers = 2")),
                    report=lambda _: None)
    with pytest.raises(ExecutionError, match=r"pip install 'sparsemod-dsl\[ray\]'"):
        search.run()
