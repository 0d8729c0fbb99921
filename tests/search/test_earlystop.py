"""Early stopping of trials (`earlystop`): the rules, the trainer's per-epoch callback,
and real tiny searches with the rule on (stopped trials journalled with their curves,
never on the front, learned from by the strategy, rebuilt on resume) and off.
"""

from __future__ import annotations

import dataclasses
import math
import pickle
import statistics
from pathlib import Path
from types import SimpleNamespace
from typing import Iterator

import pytest
from helpers import program
from hypothesis import given
from hypothesis import strategies as st
from small_search import importable, write_search
from test_search import experiment as digits_experiment
from test_train import config, train_digits

from sparsemod_dsl.nets.network import SparsemodNet
from sparsemod_dsl.nets.targets import load_target
from sparsemod_dsl.search.data import DataBundle
from sparsemod_dsl.search.earlystop import Monitor, Peers, peers
from sparsemod_dsl.search.engine import Search
from sparsemod_dsl.search.exactstrategy import ExactStrategy
from sparsemod_dsl.search.experiment import EarlyStoppingSettings, ExperimentError, load_experiment
from sparsemod_dsl.search.identity import experiment_hash
from sparsemod_dsl.search.journal import Journal
from sparsemod_dsl.search.pricing import Pricer
from sparsemod_dsl.search.report import report, show
from sparsemod_dsl.search.strategy import make_strategy
from sparsemod_dsl.search.train import TrainConfig, TrainResult, default_trainer
from sparsemod_dsl.search.trials import Trial, pareto_front, summary

MEDIAN = EarlyStoppingSettings("median", grace_epochs=1, min_trials=3)
ASHA = EarlyStoppingSettings("asha", grace_epochs=1, min_trials=2, eta=3)
errors = st.floats(0.0, 1.0, allow_nan=False)


def judge(settings: EarlyStoppingSettings, values: list[float], epochs: int = 10,
          epoch: int = 1) -> Peers:
    """Peers whose curves all hold `values[k]` at `epoch`."""
    return Peers(settings, epochs, "cross_entropy",
                 ((tuple((v,) * epoch for v in values)),))


# --- the rules -----------------------------------------------------------------------------


def test_median_stops_only_above_the_median_of_enough_trials() -> None:
    three = judge(MEDIAN, [0.2, 0.3, 0.5])
    assert three.verdict(0, 1, 0.3) is None  # at the median: goes on
    reason = three.verdict(0, 1, 0.31)
    assert reason == ("validation error 31.0% after epoch 1 of 10 is worse than the median "
                      "error 30.0% of 3 completed trials at epoch 1")
    assert judge(MEDIAN, [0.2, 0.3]).verdict(0, 1, 0.9) is None  # fewer than min_trials
    assert three.verdict(1, 1, 0.9) is None  # no peers for that scoring run


def test_no_stop_in_the_grace_epochs_nor_after_the_last() -> None:
    late = dataclasses.replace(MEDIAN, grace_epochs=3)
    assert judge(late, [0.1] * 5, epoch=2).verdict(0, 2, 0.9) is None
    assert judge(late, [0.1] * 5, epoch=3).verdict(0, 3, 0.9) is not None
    assert judge(MEDIAN, [0.1] * 5, epochs=4, epoch=4).verdict(0, 4, 0.9) is None
    assert judge(MEDIAN, [0.1] * 5).verdict(0, 1, math.nan) is None


def test_asha_judges_at_its_rungs_only() -> None:
    assert judge(ASHA, [], epochs=10).rungs() == [1, 3, 9]
    assert judge(dataclasses.replace(ASHA, grace_epochs=2, eta=2), [], epochs=9).rungs() == [
        2, 4, 8]
    for epoch, stops in [(1, True), (2, False), (3, True)]:
        assert (judge(ASHA, [0.1, 0.2], epoch=epoch).verdict(0, epoch, 0.9) is not None) == stops


def test_asha_keeps_the_best_third_of_a_rung() -> None:
    rung = judge(ASHA, [0.1, 0.2, 0.3, 0.4, 0.5])  # with the judged one: 6, keep 2
    assert rung.verdict(0, 1, 0.15) is None
    assert rung.verdict(0, 1, 0.2) is None  # one strictly better
    assert rung.verdict(0, 1, 0.25) == (
        "validation error 25.0% after epoch 1 of 10 is not in the best 2 of 6 trials at rung "
        "epoch 1 (asha, eta 3: the best have error 20.0% or better)")


@given(st.lists(errors, min_size=3, max_size=12), errors)
def test_median_never_stops_a_trial_as_good_as_the_best_and_stops_one_worse_than_all(
        values: list[float], error: float) -> None:
    rule = judge(MEDIAN, values)
    assert rule.verdict(0, 1, min(values)) is None
    if error > max(values):
        assert rule.verdict(0, 1, error) is not None
    assert (rule.verdict(0, 1, error) is None) == (error <= statistics.median(values))


@given(st.lists(errors, min_size=2, max_size=20), errors, st.integers(2, 5))
def test_asha_stops_exactly_those_outside_the_best_ceil_n_over_eta(
        values: list[float], error: float, eta: int) -> None:
    rule = judge(dataclasses.replace(ASHA, eta=eta), values)
    better = sum(v < error for v in values)
    assert (rule.verdict(0, 1, error) is None) == (better < math.ceil((len(values) + 1) / eta))
    assert rule.verdict(0, 1, min(values)) is None


def test_a_monitor_says_why_it_stops() -> None:
    monitor = Monitor(judge(MEDIAN, [0.1, 0.1, 0.1]), 0)
    assert monitor(1, 0.05) is False and monitor.reason is None
    assert monitor(1, 0.5) is True and "worse than the median" in (monitor.reason or "")


# --- the snapshot --------------------------------------------------------------------------


def trial(id: int, status: str = "completed", epochs: int = 3, parent: int | None = None,
          curves: list[list[float]] | None = None, flash: int = 100) -> Trial:
    extra: dict[str, object] = {"epochs": epochs}
    if curves is not None:
        extra["curves"] = curves
    return Trial(id, "sobol", {}, parent, status, extra=extra, flash_bytes=flash,
                 ram_bytes=100)


def snapshot(settings: EarlyStoppingSettings, trials: list[Trial], me: Trial,
             flash: float = 100.0) -> Peers | None:
    """`peers` for an experiment minimising error, flash and RAM, `me` priced at `flash`
    bytes of flash and 100 of RAM."""
    experiment = SimpleNamespace(early_stopping=settings,
                                 objectives=SimpleNamespace(minimize=("error", "flash", "ram")))
    pricer = SimpleNamespace(price=lambda _: SimpleNamespace(values={"flash": flash,
                                                                     "ram": 100.0}))
    return peers(experiment, trials, me, "cross_entropy", pricer)  # type: ignore[arg-type]


def test_peers_are_comparable_finished_trials_with_curves() -> None:
    me = trial(9, "interrupted")
    trials = [
        trial(0, curves=[[0.5, 0.4, 0.3]]),
        trial(1, "stopped", curves=[[0.9]]),
        trial(2, epochs=5, curves=[[0.1] * 5]),  # other epochs
        trial(3, parent=0, curves=[[0.2] * 3]),  # starts from a parent
        trial(4),  # no curve (journalled with the rule off)
        trial(5, "failed"),
        trial(6, curves=[[0.6, 0.5, 0.4], [0.7, 0.6, 0.5]]),  # two scoring runs
        trial(9, "interrupted", curves=[[0.0] * 3]),  # itself
    ]
    median = snapshot(MEDIAN, trials, me)
    assert median is not None and median.epochs == 3
    assert median.curves == (((0.5, 0.4, 0.3), (0.6, 0.5, 0.4)), ((0.7, 0.6, 0.5),))
    asha = snapshot(ASHA, trials, me)
    assert asha is not None and asha.at(0, 1) == [0.5, 0.9, 0.6] and asha.at(0, 2) == [0.4, 0.5]
    child = snapshot(MEDIAN, trials, trial(10, "interrupted", parent=6))
    assert child is not None and child.curves == (((0.2, 0.2, 0.2),),)
    assert pickle.loads(pickle.dumps(median)) == median  # it travels to Ray workers
    assert snapshot(EarlyStoppingSettings(), trials, me) is None


def test_cheaper_peers_cost_no_more_in_any_cost_objective() -> None:
    cheaper = dataclasses.replace(MEDIAN, compare="cheaper", min_trials=1)
    trials = [trial(0, curves=[[0.5, 0.4]], flash=50), trial(1, curves=[[0.1, 0.1]], flash=150),
              trial(2, curves=[[0.3, 0.3]], flash=100)]
    me = trial(3, "interrupted")
    judge = snapshot(cheaper, trials, me, flash=100.0)
    assert judge is not None and judge.at(0, 1) == [0.5, 0.3]
    assert judge.verdict(0, 1, 0.45) == (
        "validation error 45.0% after epoch 1 of 3 is worse than the median error 40.0% of "
        "2 completed trials that cost no more at epoch 1")
    smallest = snapshot(cheaper, trials, me, flash=10.0)  # nothing is cheaper: never stopped
    assert smallest is not None and smallest.verdict(0, 1, 0.99) is None


def test_the_settings_are_checked_naming_the_key(tmp_path: Path) -> None:
    path = write_search(tmp_path)
    path.write_text(path.read_text() + '\n[early_stopping]\nrule = "hyperband"\neta = 1\n'
                    'grace_epochs = 0\nmin_trials = "3"\ncompare = "smaller"\n')
    with pytest.raises(ExperimentError) as caught:
        load_experiment(path)
    text = str(caught.value)
    for key in ("early_stopping.rule must be one of none, median, asha",
                "early_stopping.eta must be in 2..100", "early_stopping.grace_epochs must be at",
                "early_stopping.min_trials must be an integer",
                "early_stopping.compare must be one of all, cheaper"):
        assert key in text
    path.write_text(path.read_text().replace('rule = "hyperband"\neta = 1\ngrace_epochs = 0\n'
                                             'min_trials = "3"\ncompare = "smaller"',
                                             'rule = "median"'))
    with pytest.raises(ExperimentError, match=r"early_stopping.grace_epochs \(1\) leaves no "
                       r"epoch to stop a trial at: stages.epochs are \[1, 1, 1\]"):
        load_experiment(path)


# --- the trainer ---------------------------------------------------------------------------


def test_the_default_trainer_stops_when_told() -> None:
    seen: list[tuple[int, float]] = []

    def stop_after_two(epoch: int, error: float) -> bool:
        seen.append((epoch, error))
        return epoch == 2

    result = train_digits(config(epochs=4, pruning=True, monitor=stop_after_two))
    assert result.stopped and result.epochs_run == 2
    assert result.curve == [e for _, e in seen] and [k for k, _ in seen] == [1, 2]
    assert result.val_error == result.curve[-1] and result.model is result.float_model


def test_a_monitor_that_never_stops_changes_nothing() -> None:
    plain = train_digits(config(epochs=3, pruning=True))
    watched = train_digits(config(epochs=3, pruning=True, monitor=lambda *_: False))
    assert plain.curve == [] and not plain.stopped
    assert len(watched.curve) == 3 and not watched.stopped and watched.epochs_run == 3
    assert watched.val_error == plain.val_error  # torch's random state was kept
    assert all((a == b).all() for a, b in zip(plain.float_model.state_dict().values(),
                                              watched.float_model.state_dict().values()))


# --- real tiny searches --------------------------------------------------------------------

STAGES = ("[stages]\nsobol = 6\nbo_rounds = 1\nbo_batch = 2\nmorph_rounds = 1\n"
          "morph_candidates = 4\nepochs = [3, 3, 2]\n")
RULE = '\n[early_stopping]\nrule = "median"\nmin_trials = 2\n'


def tiny(folder: Path, rule: str = RULE, stages: str = STAGES,
         strategy: str = "exact") -> Path:
    path = write_search(folder, stages=stages, strategy=strategy)
    path.write_text(path.read_text() + rule)
    return path


def run(path: Path) -> Search:
    engine = Search(load_experiment(path), report=lambda _: None, fast=True)
    engine.run()
    return engine


@pytest.fixture(scope="module")
def stopping(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Search]:
    """The tiny search with the median rule, run once for the tests that read it."""
    folder = tmp_path_factory.mktemp("early")
    with pytest.MonkeyPatch.context() as patch:
        importable(folder, patch)
        yield run(tiny(folder))


def test_stopped_trials_are_journalled_with_reason_curve_and_seconds(stopping: Search) -> None:
    trials = stopping.journal.trials()
    stopped = [t for t in trials if t.status == "stopped"]
    assert stopped and any(t.status == "completed" for t in trials)
    for t in stopped:
        curve = t.extra["curves"][-1]
        assert 1 <= t.extra["epochs_run"] == len(curve) < t.extra["epochs"]
        assert t.error == curve[-1] and t.train_seconds and t.train_seconds > 0
        assert "is worse than the median" in (t.reason or "")
        assert t.flash_bytes and t.ram_bytes and "test_error" not in t.extra
        assert summary(t).startswith(f"trial {t.id:>3} [{t.stage}] stopped, trained ")
    for t in trials:
        if t.status == "completed":  # full curves, for the trials after them
            assert [len(c) for c in t.extra["curves"]] == [t.extra["epochs"]]


def test_the_stage_budget_counts_stopped_trials(stopping: Search) -> None:
    stages = [t.stage for t in stopping.journal.trials() if t.status != "infeasible"]
    assert (stages.count("sobol"), stages.count("bo"), stages.count("morph")) == (6, 2, 1)


def test_stopped_trials_are_never_on_the_front_nor_saved(stopping: Search) -> None:
    trials = stopping.journal.trials()
    stopped = {t.id for t in trials if t.status == "stopped"}
    # even counted as completed they would be dominated or not: the front ignores them
    front = pareto_front(trials, stopping.objectives)
    assert front and not stopped & {t.id for t in front}
    saved = {int(p.stem.split("-")[1]) for p in (stopping.results / "networks").glob("*.pt")}
    assert saved == {t.id for t in front}
    rows = (stopping.results / "trials.csv").read_text().splitlines()
    assert sum(",stopped," in row for row in rows) == len(stopped)
    text, _ = report(stopping.results)
    assert f"{len(stopped)} stopped early" in text.splitlines()[0]
    one = stopping.journal.trial(min(stopped))
    shown = show(stopping.results, one.id).splitlines()
    assert shown[0] == f"trial {one.id} [{one.stage}] stopped: {one.reason}"
    assert shown[-1] == "validation error % per epoch: " + ", ".join(
        f"{100 * e:.1f}" for e in one.extra["curves"][0])


def test_the_strategy_learns_from_stopped_trials(stopping: Search) -> None:
    strategy = stopping.strategy
    assert isinstance(strategy, ExactStrategy)
    trials = [t for t in stopping.journal.trials() if t.status in ("completed", "stopped")]
    assert strategy.finished == [t.status == "completed" for t in trials]
    errors = [row[0] for row in strategy.values]
    assert errors == [t.error for t in trials]  # the error model is fitted to these
    assert len(strategy._observed()) == sum(strategy.finished)  # the front: completed only
    statuses = [t.status.name for t in strategy.ax.trials.values()]
    assert statuses.count("EARLY_STOPPED") == sum(not f for f in strategy.finished)


def test_a_resumed_search_rebuilds_the_rule_from_the_journal(stopping: Search,
                                                             tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    """Killed while training its first stopped trial, the search re-runs it: the rule,
    rebuilt from the journal alone, stops it again for the same reason, and the search
    ends as the uninterrupted one did."""
    importable(tmp_path, monkeypatch)
    path = tiny(tmp_path)
    first = next(t for t in stopping.journal.trials() if t.status == "stopped")

    def killed(net: SparsemodNet, data: DataBundle, config: TrainConfig) -> TrainResult:
        if config.seed == first.id:  # the experiment's seed is 0
            raise KeyboardInterrupt
        return default_trainer(net, data, config)

    with pytest.raises(KeyboardInterrupt):
        Search(load_experiment(path), killed, report=lambda _: None, fast=True).run()
    journal = Journal(tmp_path / "results" / "journal.jsonl")
    assert journal.trial(first.id).status == "interrupted"
    (tmp_path / "results" / "state.json").unlink()
    again = run(path)
    rerun = again.journal.trial(first.id)
    assert (rerun.status, rerun.reason, rerun.extra["curves"]) == (
        first.status, first.reason, first.extra["curves"])
    assert [(t.id, t.status, t.error) for t in again.journal.trials()] == [
        (t.id, t.status, t.error) for t in stopping.journal.trials()]


def test_off_by_default_no_curves_and_the_same_trials(stopping: Search, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Without `[early_stopping]` nothing is measured per epoch; the trials the rule let
    complete train exactly as they do without it."""
    importable(tmp_path, monkeypatch)
    only_sobol = STAGES.replace("bo_rounds = 1", "bo_rounds = 0").replace(
        "morph_rounds = 1", "morph_rounds = 0")
    plain = run(tiny(tmp_path, rule="", stages=only_sobol))
    assert plain.config.early_stopping == EarlyStoppingSettings()
    records = plain.journal.records()
    assert not any("curves" in r or r.get("status") == "stopped" for r in records)
    ruled = {t.id: t for t in stopping.journal.trials() if t.stage == "sobol"}
    for t in plain.journal.trials():
        assert t.params == ruled[t.id].params
        if ruled[t.id].status == "completed":
            assert t.error == ruled[t.id].error


def test_ax_strategies_fit_stopped_trials_as_early_stopped() -> None:
    """Ax keeps a stopped trial's data (at its error when stopped) and fits it: the
    BoTorch generator trains on every observation, completed or stopped."""
    from ax.adapter.registry import Generators

    check = Pricer(program("sparse_cnn"), load_target("stm32f446"), "int8", True)
    strategy = make_strategy("gp", check.program, ["error", "flash", "ram"], check, 0, True)
    for k, point in enumerate(strategy.initial(6)):
        values = check.price(point).values
        strategy.observe(Trial(k, "sobol", point, None, "stopped" if k % 2 else "completed",
                               error=0.1 * k, flash_bytes=int(values["flash"]),
                               ram_bytes=int(values["ram"])))
    statuses = [t.status.name for t in strategy.ax.trials.values()]
    assert statuses == ["COMPLETED", "EARLY_STOPPED"] * 3 and strategy.completed == 3
    adapter = Generators.BOTORCH_MODULAR(experiment=strategy.ax,
                                         data=strategy.ax.lookup_data())
    assert len(adapter.get_training_data().arm_data) == 6


def test_the_rule_is_in_the_experiment_hash_unless_at_its_defaults(tmp_path: Path) -> None:
    path = write_search(tmp_path, stages=STAGES)
    plain = experiment_hash(load_experiment(path))
    text = path.read_text()
    path.write_text(text + '\n[early_stopping]\nrule = "none"\nmin_trials = 3\n')
    assert experiment_hash(load_experiment(path)) == plain  # older results still resume
    path.write_text(text + RULE)
    ruled = load_experiment(path)
    assert ruled.early_stopping == EarlyStoppingSettings("median", min_trials=2)
    assert experiment_hash(ruled) != plain  # stopping changes what the search finds


def test_asha_among_cheaper_trials_in_a_real_search(tmp_path: Path) -> None:
    """The driver prices each trial for `compare = "cheaper"`: a stopped trial was judged
    only against the finished trials of no more flash and RAM (digits, which the tiny
    networks learn at different speeds; float, unpruned, for speed)."""
    stages = ("[stages]\nsobol = 6\nbo_rounds = 0\nmorph_rounds = 0\nepochs = [2, 2, 2]\n"
              "strategy = 'exact'\n")
    engine = run(digits_experiment(
        tmp_path, stages=stages, training='[training]\npruning = false\nquantization = "none"\n',
        early='[early_stopping]\nrule = "asha"\nmin_trials = 2\ncompare = "cheaper"\n'))
    trials = engine.journal.trials()
    stopped = [t for t in trials if t.status == "stopped"]
    assert stopped
    for t in stopped:
        assert "trials that cost no more at rung epoch 1 (asha, eta 3" in (t.reason or "")
        cheaper = [p.extra["curves"][0][0] for p in trials if p.id < t.id
                   and (p.flash_bytes or 0) <= (t.flash_bytes or 0)
                   and (p.ram_bytes or 0) <= (t.ram_bytes or 0)]
        keep = math.ceil((len(cheaper) + 1) / 3)
        assert f"not in the best {keep} of {len(cheaper) + 1} trials" in (t.reason or "")
        assert sum(e < t.extra["curves"][0][0] for e in cheaper) >= keep
