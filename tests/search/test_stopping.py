"""`[stopping]` rules, extending a finished search, and refusing a missing GPU, on real
tiny searches (a second or so per trial): the stop and its reason in the journal, the
report and the command line; a re-run that has nothing to do; raised budgets that go on
in the same results directory; changes that would invalidate earlier trials refused."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from small_search import STAGES, environment, importable, sparsemodc, write_search
from test_search import experiment, search

from sparsemod_dsl import cli
from sparsemod_dsl.search.checks import SearchSetupError, check_device
from sparsemod_dsl.search.engine import Search
from sparsemod_dsl.search.experiment import StoppingSettings, load_experiment
from sparsemod_dsl.search.journal import Journal
from sparsemod_dsl.search.report import report
from sparsemod_dsl.search.state import EXTEND_EVENT, ResumeError
from sparsemod_dsl.search.stopping import STOP_EVENT, Stopper, hypervolumes, why_stopped

#: Digits stages with room to stop early: 7 networks, a retraining of the front after.
ROOMY = ("[stages]\nsobol = 4\nbo_rounds = 1\nbo_batch = 2\nmorph_rounds = 1\n"
         "morph_candidates = 4\nepochs = [1, 1, 1]\n")


def events(results: Path, name: str) -> list[dict]:
    return [r for r in Journal(results / "journal.jsonl").records() if r["event"] == name]


def test_the_tolerance_stops_a_real_search_and_the_report_says_why(tmp_path: Path) -> None:
    """A tolerance no search can reach (100 points over 2 trials) stops the search after
    its first 2 trained trials with a front in the box: the numbers the stop journals are
    the report's hypervolumes; the CSV, the front and the final retraining still come."""
    path = experiment(tmp_path, stages=ROOMY,
                      final="[final]\nseeds = 1\nepochs = 1\n"
                            "[stopping]\ntolerance = 100\nwindow = 2\n")
    engine, lines = search(path)
    results = tmp_path / "results"
    trials = engine.journal.trials()
    [stop] = events(results, STOP_EVENT)
    assert stop["rule"] == "tolerance" and stop["window"] == 2 and stop["tolerance"] == 100
    assert len(trials) < 7 and all(t.status != "interrupted" for t in trials)
    info = json.loads((results / "setup.json").read_text())
    progress = hypervolumes(info, trials, engine.journal.records())
    assert stop["hypervolume"] == round(progress[-1][2], 4) > 0
    assert stop["gain"] == pytest.approx(stop["hypervolume"] - stop["before"], abs=2e-4)
    assert stop["gain"] <= 100
    assert f"stopping the search: {stop['reason']}" in lines
    assert len((results / "trials.csv").read_text().splitlines()) == 1 + len(trials)
    assert events(results, "final") and list((results / "networks").glob("*.pt"))
    text, _ = report(results)
    assert f"stopped: tolerance reached: the hypervolume gained {stop['gain']:.2f} " in text
    assert "over the last 2 trained trials, at most stopping.tolerance = 100" in text
    assert "tolerance reached: the hypervolume gained" in (results / "report.html").read_text()

    again, lines = search(path)  # the same settings: the stop holds, nothing is trained
    assert again.journal.trials() == trials
    assert lines == [f"nothing left to do: the search stopped ({stop['reason']}); change "
                     "[stopping] or raise the stage budgets (stages.sobol, stages.bo_rounds, "
                     f"stages.morph_rounds) in {path} to go on"]

    path.write_text(path.read_text().replace("sobol = 4", "sobol = 6"))
    extended, lines = search(path)  # raised: the window counts again from the extension
    assert lines[0] == "extending the search: stages.sobol: 4 -> 6"
    more = extended.journal.trials()
    new = more[len(trials):]
    assert [t.id for t in more] == list(range(len(more)))
    assert sum(t.status in ("completed", "failed") for t in new) == 2
    assert len({str(sorted(t.params.items())) for t in more}) == len(more)
    assert len(events(results, STOP_EVENT)) == 2 and len(events(results, EXTEND_EVENT)) == 1


def test_the_wall_clock_limit_stops_and_raising_it_goes_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    importable(tmp_path, monkeypatch)
    path = write_search(tmp_path, stages=STAGES + "[stopping]\nmax_minutes = 0.0001\n")
    assert cli.main(["search", str(path)]) == 0
    out = capsys.readouterr().out
    results = tmp_path / "results"
    [stop] = events(results, STOP_EVENT)
    assert stop["rule"] == "time" and stop["max_minutes"] == 0.0001
    assert len(Journal(results / "journal.jsonl").trials()) == 1  # the limit: after a trial
    assert "stopped: wall-clock limit reached: the search has run " in out
    assert out.count("stopping.max_minutes = 0.0001") == 2  # as it happens, and at the end

    assert cli.main(["search", str(path)]) == 0  # unchanged: nothing to do, and why
    out = capsys.readouterr().out
    assert "nothing left to do: the search stopped (wall-clock limit reached" in out
    assert "\ntime: " not in out and len(Journal(results / "journal.jsonl").trials()) == 1

    path.write_text(path.read_text().replace("max_minutes = 0.0001", "max_minutes = 60"))
    assert cli.main(["search", str(path)]) == 0
    out = capsys.readouterr().out
    trials = Journal(results / "journal.jsonl").trials()
    assert [t.stage for t in trials] == ["sobol"] * 3 + ["bo"] * 4 + ["morph"] * 2
    assert "stopped: budget spent: every stage trained its networks (sobol 3 of 3, bo 4 of 4, " \
           "morph 2 of 2)" in out


def test_raised_budgets_extend_the_search_in_the_same_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    importable(tmp_path, monkeypatch)
    small = "[stages]\nsobol = 2\nbo_rounds = 1\nbo_batch = 1\nmorph_rounds = 0\n" \
            "epochs = [1, 1, 1]\n"
    path = write_search(tmp_path, stages=small)
    assert cli.main(["search", str(path)]) == 0
    journal = Journal(tmp_path / "results" / "journal.jsonl")
    before = journal.trials()
    assert [t.stage for t in before] == ["sobol", "sobol", "bo"]
    assert "stopped: budget spent: every stage trained its networks (sobol 2 of 2, bo 1 of 1, " \
           "morph 0 of 0)" in capsys.readouterr().out
    assert cli.main(["search", str(path)]) == 0
    assert "nothing left to do: every stage trained its budget" in capsys.readouterr().out
    assert journal.trials() == before

    path.write_text(path.read_text().replace("sobol = 2", "sobol = 3")
                    .replace("bo_rounds = 1\nbo_batch = 1", "bo_rounds = 2\nbo_batch = 2"))
    assert cli.main(["search", str(path)]) == 0
    out = capsys.readouterr().out
    assert "extending the search: stages.sobol: 2 -> 3; stages.bo_rounds: 1 -> 2; " \
           "stages.bo_batch: 1 -> 2" in out
    after = journal.trials()
    assert after[:3] == before and [t.id for t in after] == list(range(7))
    assert [t.stage for t in after[3:]] == ["sobol", "bo", "bo", "bo"]  # 4 BO networks in all
    assert len({str(sorted(t.params.items())) for t in after}) == 7  # no point twice
    assert "budget spent: every stage trained its networks (sobol 3 of 3, bo 4 of 4" in out
    records = journal.records()
    assert why_stopped(records, after).startswith("budget spent")
    [extended] = [r for r in records if r["event"] == EXTEND_EVENT]
    assert extended["settings"]["stages"]["sobol"] == 3


@pytest.mark.parametrize(("old", "new", "named"), [
    ('["error", "flash", "ram"]', '["error", "flash"]',
     'objectives.minimize: ["error", "flash", "ram"] -> ["error", "flash"]'),
    ("options = { n = 48 }", "options = { n = 40 }", "data.options.n: 48 -> 40"),
    ("epochs = [1, 1, 1]", "epochs = [2, 1, 1]", "stages.epochs: [1, 1, 1] -> [2, 1, 1]"),
    ("filters = int[2..8] step 2", "filters = int[2..6] step 2", "the .arch source"),
])
def test_a_change_that_invalidates_earlier_trials_is_refused_naming_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, old: str, new: str,
        named: str) -> None:
    importable(tmp_path, monkeypatch)
    small = "[stages]\nsobol = 1\nbo_rounds = 0\nmorph_rounds = 0\nepochs = [1, 1, 1]\n"
    path = write_search(tmp_path, stages=small, options="n = 48")
    path.write_text(path.read_text() + '[objectives]\nminimize = ["error", "flash", "ram"]\n')
    Search(load_experiment(path), report=lambda _: None).run()
    for file in (path, tmp_path / "small.arch"):
        file.write_text(file.read_text().replace(old, new))
    raised = "sobol = 5"  # with a budget raised too: that alone would be allowed
    path.write_text(path.read_text().replace("sobol = 1", raised))
    with pytest.raises(ResumeError) as error:
        Search(load_experiment(path), report=lambda _: None).run()
    message = str(error.value)
    assert f"changed since it started: {named}. Use a new results directory" in message
    assert "stages.sobol" not in message
    assert len(Journal(tmp_path / "results" / "journal.jsonl").trials()) == 1
    assert cli.main(["search", str(path)]) == 2  # a usage error: the command can be mended


# --- a GPU asked for -------------------------------------------------------------------


def test_cuda_without_a_gpu_is_refused_naming_the_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "space.arch").touch()
    path = tmp_path / "exp.toml"
    for device in ("cpu", "auto", "cuda", "cuda:1"):
        path.write_text(f'arch = "space.arch"\ndevice = "{device}"\n[data]\ndataset = "digits"\n')
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
        if device in ("cpu", "auto"):
            check_device(load_experiment(path))
            continue
        with pytest.raises(SearchSetupError) as error:
            check_device(load_experiment(path))
        assert str(error.value).startswith(f"{path}: device = '{device}' asks for a GPU, but "
                                           f"torch {torch.__version__} (built with ")
        assert "sees 0 GPUs: torch.cuda.is_available() is False. Set device = \"cpu\"" \
            in str(error.value)
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # one GPU: cuda:0 only
        monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
        if device == "cuda":
            check_device(load_experiment(path))
        else:
            with pytest.raises(SearchSetupError, match="sees 1 GPU: cuda:0..cuda:0"):
                check_device(load_experiment(path))


def test_search_with_cuda_and_no_gpu_exits_2_before_any_training(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    importable(tmp_path, monkeypatch)
    path = write_search(tmp_path)
    path.write_text(path.read_text().replace("seed = 0\n", 'seed = 0\ndevice = "cuda"\n'))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert cli.main(["search", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: device = 'cuda' asks for a GPU" in err and "Traceback" not in err
    assert not (tmp_path / "results" / "journal.jsonl").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_the_installed_command_refuses_cuda_here(tmp_path: Path) -> None:
    path = write_search(tmp_path)
    path.write_text(path.read_text().replace("seed = 0\n", 'seed = 0\ndevice = "cuda:0"\n'))
    done = subprocess.run(sparsemodc("search", str(path)), cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, env=environment(tmp_path))
    assert done.returncode == 2, done.stderr
    assert "device = 'cuda:0' asks for a GPU, but torch " in done.stderr
    assert "torch.cuda.is_available() is False" in done.stderr
    assert not (tmp_path / "results" / "journal.jsonl").exists()


# --- the tolerance rule's arithmetic, on journals written by hand --------------------------

#: A one-objective search of a 10-class classifier: the box is errors 0 to 0.9.
SETUP = {"objectives": ["error"], "classes": 10, "loss": "cross_entropy",
         "measure": "cross_entropy", "budgets": {}}


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(outcomes=st.lists(st.floats(0.0, 1.0) | st.sampled_from(["failed", "infeasible"]),
                         max_size=12),
       extended_after=st.integers(0, 12), window=st.integers(1, 4),
       tolerance=st.just(0.0) | st.floats(0.0, 60.0))
def test_the_tolerance_reads_the_last_window_of_trained_trials_since_the_extension(
        tmp_path_factory: pytest.TempPathFactory, outcomes: list, extended_after: int,
        window: int, tolerance: float) -> None:
    folder = tmp_path_factory.mktemp("journal")
    (folder / "setup.json").write_text(json.dumps(SETUP))
    journal = Journal(folder / "journal.jsonl")
    at = {"time": "2026-11-29T12:00:00+00:00"}
    journal.append({"event": "search", "experiment_hash": "e", "arch_hash": "a",
                    "settings": {"seed": 0}, **at})
    for trial, outcome in enumerate(outcomes):
        if trial == extended_after:
            journal.append({"event": EXTEND_EVENT, "changes": ["stages.sobol: 1 -> 2"],
                            "settings": {"seed": 0}, **at})
        journal.append({"event": "started", "trial": trial, "stage": "sobol", "params": {},
                        **at})
        status = outcome if isinstance(outcome, str) else "completed"
        journal.append({"event": "finished", "trial": trial, "status": status,
                        "error": None if isinstance(outcome, str) else outcome, **at})
    stop = Stopper(StoppingSettings(tolerance, window), folder).check(journal)

    def hv(errors: list) -> float:  # % of the box [0, 0.9] below the best error
        inside = [e for e in errors if not isinstance(e, str) and e < 0.9]
        return 100 * (1 - min(inside) / 0.9) if inside else 0.0

    extended = extended_after < len(outcomes)  # else no extension: every trial counts
    trained = [i for i, o in enumerate(outcomes)
               if o != "infeasible" and (not extended or i >= extended_after)]
    now = hv(outcomes)
    before = hv(outcomes[:trained[-window]]) if len(trained) >= window else now
    wanted = len(trained) >= window and now > 0 and round(now - before, 6) <= tolerance
    assert (stop is not None) is wanted, (stop, now, before, trained)
    if stop is not None:
        assert stop.new and stop.event["rule"] == "tolerance"
        assert stop.event["gain"] == pytest.approx(now - before, abs=1e-3)
        assert stop.event["hypervolume"] == pytest.approx(now, abs=1e-3)
        journal.append(stop.event)  # once journalled, it holds for the same settings
        held = Stopper(StoppingSettings(tolerance, window), folder).check(journal)
        assert held is not None and not held.new and held.event == {**stop.event,
                                                                      "time": held.event["time"]}


def test_why_a_search_ended_from_its_journal() -> None:
    stages = {"sobol": 2, "bo_rounds": 1, "bo_batch": 1, "morph_rounds": 0}
    first = {"event": "search", "experiment_hash": "e", "arch_hash": "a",
             "settings": {"seed": 0, "stages": stages}}

    def trial(i: int, stage: str, status: str = "completed") -> list[dict]:
        return [{"event": "started", "trial": i, "stage": stage, "params": {}},
                {"event": "finished", "trial": i, "status": status}]

    def trials(records: list[dict]) -> list:
        journal = Journal(Path("/nonexistent"))
        journal.records = lambda: records  # type: ignore[method-assign]
        return journal.trials()

    run = [{"event": "run_started"}, *trial(0, "sobol"), *trial(1, "sobol", "failed")]
    killed = [first, *run]
    assert why_stopped(killed, trials(killed)).startswith("not yet: its last run is still")
    short = [*killed, *trial(2, "bo", "infeasible"), {"event": "run", "seconds": 1.0}]
    assert why_stopped(short, trials(short)) == \
        "the stages found no more points to train (sobol 2 of 2, bo 0 of 1, morph 0 of 0)"
    done = [*killed, *trial(2, "bo"), {"event": "run", "seconds": 1.0}]
    assert why_stopped(done, trials(done)).startswith("budget spent: every stage trained")
    stopped = [*done, {"event": STOP_EVENT, "rule": "time", "reason": "wall-clock limit"}]
    assert why_stopped(stopped, trials(stopped)) == "wall-clock limit"
    extended = [*stopped, {"event": EXTEND_EVENT, "changes": ["stages.sobol: 2 -> 3"],
                           "settings": {"seed": 0, "stages": {**stages, "sobol": 3}}}]
    assert why_stopped(extended, trials(extended)) == (  # the stop no longer holds
        "the stages found no more points to train (sobol 2 of 3, bo 1 of 1, morph 0 of 0)")
