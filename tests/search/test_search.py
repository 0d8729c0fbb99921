"""The search engine end to end, on small budgets (seconds each).

Every test runs a real search: real Ax Sobol and BoTorch generation (with the
cheap acquisition settings of `fast=True`), real training on the digits data,
real pruning and quantisation, on a tiny space.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sparsemod_dsl import cli
from sparsemod_dsl.nets.network import SparsemodNet
from sparsemod_dsl.search.engine import Search, SearchError
from sparsemod_dsl.search.experiment import load_experiment
from sparsemod_dsl.search.journal import Journal
from sparsemod_dsl.search.train import TrainConfig, TrainResult, default_trainer

TINY = '''\
"""A tiny CNN space for 8x8 digits."""

arch tiny(input: image(1, 8, 8), classes = 10)

train {
    batch_size = choice[32, 64] ordered
    learning_rate = float[0.003..0.02] log
    prune_threshold = float[0.3..0.8]
}

network {
    repeat layer = int[1..2] {
        conv2d(filters = int[4..12] step 4, kernel = 3) batchnorm relu
    }
    optional pool {
        maxpool(2)
    }
    global_avg_pool
    linear(classes)
}
'''


STAGES = ("[stages]\nsobol = 3\nbo_rounds = 1\nbo_batch = 2\nmorph_rounds = 1\n"
          "morph_candidates = 4\nepochs = [1, 1, 1]\n")


def experiment(folder: Path, **sections: str) -> Path:
    """Write the tiny space and an experiment file; `sections` replace default sections."""
    (folder / "tiny.arch").write_text(TINY)
    parts = {
        "top": 'arch = "tiny.arch"\nname = "tiny"\nresults = "results"\nseed = 1\n',
        "data": '[data]\ndataset = "digits"\n',
        "stages": STAGES,
        "objectives": '[objectives]\nminimize = ["error", "flash", "ram"]\n',
        "training": '[training]\npruning = true\nquantization = "post"\n',
        **sections,
    }
    path = folder / "experiment.toml"
    path.write_text("\n".join(parts.values()))
    return path


def search(path: Path, **kwargs: object) -> tuple[Search, list[str]]:
    lines: list[str] = []
    engine = Search(load_experiment(path), report=lines.append, fast=True, **kwargs)
    engine.run()
    return engine, lines


def test_every_stage_runs_and_results_are_written(tmp_path: Path) -> None:
    engine, lines = search(experiment(tmp_path))
    trials = engine.journal.trials()
    assert [t.stage for t in trials] == ["sobol"] * 3 + ["bo"] * 2 + ["morph"]
    assert len(lines) == 6 and all(line.startswith("trial") for line in lines)
    completed = [t for t in trials if t.status == "completed"]
    assert completed, [t.reason for t in trials]
    for t in completed:
        assert 0.0 <= t.error <= 1.0 and t.flash_bytes > 0 and t.ram_bytes > 0  # type: ignore
        assert 0.0 <= t.extra["test_error"] <= 1.0
    morph = trials[-1]
    if morph.status != "infeasible":
        assert morph.parent is not None and morph.extra["changes"]
    results = tmp_path / "results"
    front = {int(p.stem.split("-")[1]) for p in (results / "networks").glob("*.pt")}
    assert front and front <= {t.id for t in completed}
    csv = (results / "trials.csv").read_text().splitlines()
    assert csv[0].startswith("id,stage,status") and len(csv) == 1 + len(trials)
    assert json.loads((results / "setup.json").read_text())["classes"] == 10
    spent = engine.timings  # where the time went, for `search` to print
    assert spent.training > 0 and spent.generation > 0
    assert spent.total >= spent.training + spent.generation
    assert [(stage, n) for stage, n, _ in spent.batches] == \
        [("sobol", 1)] * 3 + [("bo", 2), ("morph", 1)]


ONE_POINT = "[stages]\nsobol = 2\nbo_rounds = 0\nmorph_rounds = 0\nepochs = [2, 1, 1]\n"


def single_run(folder: Path, training: str, **sections: str) -> list:
    folder.mkdir()
    engine, _ = search(experiment(folder, stages=ONE_POINT, training=training, **sections))
    trials = engine.journal.trials()
    assert all(t.status == "completed" for t in trials), [t.reason for t in trials]
    return trials


@pytest.mark.parametrize("scheme", ["none", "post", "dynamic", "both"])
def test_every_quantisation_scheme(tmp_path: Path, scheme: str) -> None:
    trials = single_run(tmp_path / scheme,
                        f'[training]\npruning = false\nquantization = "{scheme}"\n')
    float32 = single_run(tmp_path / "float", '[training]\npruning = false\nquantization = "none"\n')
    for quantised, plain in zip(trials, float32):
        assert quantised.params == plain.params and quantised.sparsity == 0.0
        assert quantised.error < 0.9  # type: ignore[operator]  # it learned something
        if scheme != "none":  # int8 weights (a quarter of float32) and activations
            assert quantised.flash_bytes < plain.flash_bytes  # type: ignore[operator]
            assert quantised.ram_bytes < plain.ram_bytes  # type: ignore[operator]


def test_pruning_lowers_flash_only_when_weights_are_stored_sparse(tmp_path: Path) -> None:
    dense = single_run(tmp_path / "dense", "[training]\npruning = false\n")
    pruned = single_run(tmp_path / "pruned", "[training]\npruning = true\n")
    sparse = single_run(tmp_path / "sparse", "[training]\npruning = true\n",
                        target='[target]\nweights = "sparse"\n')
    for a, b, c in zip(dense, pruned, sparse):
        assert a.params == b.params == c.params  # same seed, same Sobol points
        assert b.sparsity > 0.25 and a.sparsity == 0.0  # type: ignore[operator]
        # TFLite Micro reads dense int8: pruning does not shrink the file
        assert b.flash_bytes == a.flash_bytes
        # nonzeros plus a one-bit mask pay off above 1/8 pruned; the space prunes 30%+
        assert c.flash_bytes < a.flash_bytes  # type: ignore[operator]


@pytest.mark.parametrize("strategy", ["exact", "gp"])
def test_points_that_do_not_fit_are_never_proposed(tmp_path: Path, strategy: str) -> None:
    """Every strategy prices its points before proposing them: with a budget nothing
    meets, nothing is trained or even recorded, and the search stops saying why, naming
    the budget and the effort spent looking for a point that fits."""
    path = experiment(tmp_path, target='[target]\nname = "stm32f446"\nram_kb = 0.25\n',
                      stages=STAGES.replace("[stages]\n", f'[stages]\nstrategy = "{strategy}"\n'))
    with pytest.raises(SearchError) as raised:
        search(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: no network of tiny.arch can be trained: stage sobol: no "
                              "more points to train (0 of 3 networks): no new candidates (last "
                              "rejected: no untried point fits after 40 Sobol points, 200 "
                              "repaired random draws and 0 mutations"), message
    assert "the last rejected: does not fit stm32f446: RAM (TFLM arena)" in message
    assert "Loosen the budget" in message
    assert not [t for t in Journal(tmp_path / "results" / "journal.jsonl").trials()]
    assert not list((tmp_path / "results" / "networks").glob("*.pt"))


def test_a_trial_that_raises_is_recorded_and_the_search_goes_on(tmp_path: Path) -> None:
    calls: list[int] = []

    def flaky(net: SparsemodNet, data: object, config: TrainConfig) -> TrainResult:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("simulated out of memory")
        return default_trainer(net, data, config)  # type: ignore[arg-type]

    path = experiment(
        tmp_path, stages="[stages]\nsobol = 3\nbo_rounds = 0\nmorph_rounds = 0\n"
                         "epochs = [1, 1, 1]\n")
    engine, _ = search(path, trainer=flaky)
    statuses = [t.status for t in engine.journal.trials()]
    assert statuses.count("failed") == 1 and len(statuses) == 3
    failed = next(t for t in engine.journal.trials() if t.status == "failed")
    assert "simulated out of memory" in (failed.reason or "")


def test_resume_does_not_retrain_finished_trials(tmp_path: Path) -> None:
    path = experiment(tmp_path)
    first, _ = search(path)
    before = first.journal.trials()
    again, lines = search(path)  # and says so, rather than seeming to do something
    assert again.journal.trials() == before and lines == [
        "nothing left to do: every stage trained its budget (sobol 3 of 3, bo 2 of 2, morph 1 "
        "of 1); raise the stage budgets (stages.sobol, stages.bo_rounds, stages.morph_rounds) "
        f"in {path} to extend the search"]


@pytest.mark.parametrize(
    "edit, expected",
    [
        (("top", 'arch = "tiny.arch"\nseeed = 1\n'), "seeed"),
        (("stages", "[stages]\nsobol = \"many\"\n"), "stages.sobol"),
        (("top", 'arch = "missing.arch"\n'), "missing.arch"),
    ],
)
def test_bad_experiment_files_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                     edit: tuple[str, str], expected: str) -> None:
    path = experiment(tmp_path, **{edit[0]: edit[1]})
    assert cli.main(["search", str(path)]) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err


@pytest.mark.parametrize("strategy", ["exact", "gp"])
def test_morph_picks_the_candidate_of_highest_acquisition(tmp_path: Path, strategy: str) -> None:
    """`best` returns the argmax of the strategy's scores over the candidates (exact
    expected hypervolume improvement, or Ax's qLogNEHVI for `gp`), and the morph
    stage that uses it trains a child of a front network."""
    import random

    from sparsemod_dsl.nets.morph import mutate
    from sparsemod_dsl.search.trials import pareto_front

    engine, _ = search(experiment(
        tmp_path, stages=STAGES.replace("[stages]\n", f'[stages]\nstrategy = "{strategy}"\n')))
    trials = engine.journal.trials()
    assert trials[-1].stage == "morph"
    if trials[-1].status != "infeasible":
        assert trials[-1].parent is not None and trials[-1].extra["changes"]
    front = pareto_front(trials, engine.objectives)
    assert sum(t.status == "completed" for t in trials) >= 2 and front
    rng = random.Random(7)
    points = []
    while len(points) < 5:
        mutation = mutate(engine.program, rng.choice(front).params, rng)
        if mutation is not None and mutation.point not in points:
            points.append(mutation.point)
    values = engine.strategy.scores(points)
    assert len(values) == len(points) and all(v == v for v in values)  # no NaN
    assert len(set(values)) > 1  # the candidates are told apart
    best = engine.strategy.best(points)
    assert values[best] == max(values)
    # reordering the candidates moves the choice with them
    order = [4, 2, 0, 3, 1]
    assert [points[k] for k in order][engine.strategy.best([points[k] for k in order])] \
        == points[best]


def test_morph_falls_back_to_the_first_candidate_without_data(tmp_path: Path) -> None:
    from sparsemod_dsl.nets.point import sample

    engine = Search(load_experiment(experiment(tmp_path)), report=lambda _: None, fast=True)
    points = list(sample(engine.program, 3, 1))
    assert engine.strategy.best(points) == 0  # fewer than two completed trials
