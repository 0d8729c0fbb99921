"""The final retraining: each Pareto network trained again with several seeds.

A search trains each point once (or `[scoring]`'s few times) and keeps the networks
that look best, which on small data favours lucky seeds. With `[final] seeds = N`,
each network of the front is retrained N times from scratch after the search, each
time with its own seed (on train + validation with `train_on_validation`), and its
test error measured; the report shows their mean and spread beside the search's
single figure (`report.final_table`).

Every retraining is journalled as one `final` event when it ends, naming its network,
seed index, epochs and data, so a search killed during the retraining resumes with
the retrainings it still lacks: none is lost or run twice. A retraining that raises
is journalled with its reason and no error.
"""

from __future__ import annotations

from dataclasses import replace
from statistics import fmean, stdev
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from torch.utils.data import ConcatDataset

from .data import DataBundle, DataError
from .experiment import FinalSettings
from .objective import error_label, error_phrase, show_error
from .runner import trial_seed
from .scoring import SEED_STRIDE
from .text import table
from .trials import Trial, failure

if TYPE_CHECKING:
    from .engine import Search

#: The journal event of one final retraining.
FINAL_EVENT = "final"
#: Seed offsets of final retrainings start here (in `SEED_STRIDE`s), above any
#: `[scoring]` run's, so that no retraining repeats a training of the search.
FIRST_FINAL_SEED = 101


def final_data(data: DataBundle, settings: FinalSettings) -> DataBundle:
    """The data of a final retraining: train + validation pooled for training when
    `train_on_validation` (the validation split stays, for what it is worth).

    Raises:
        DataError: `train_on_validation` on an anomaly set, whose validation labels are
            anomaly flags, not training targets.
    """
    if not settings.train_on_validation:
        return data
    if data.anomaly:
        raise DataError("train_on_validation needs labelled validation data; an anomaly "
                        "set's validation labels are anomaly flags")
    return replace(data, train=ConcatDataset([data.train, data.val]))


def lineage_epochs(trial: Trial, trials: Mapping[int, Trial]) -> int:
    """The epochs a network had in the search, its ancestors' included (a morphism's
    child goes on from its parent's weights)."""
    total = 0
    current: Trial | None = trial
    while current is not None:
        total += int(current.extra.get("epochs", 1))
        current = None if current.parent is None else trials.get(current.parent)
    return total


def final_events(records: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The journal's final retraining events, in order."""
    return [r for r in records if r["event"] == FINAL_EVENT]


def retrain(search: Search, front: list[Trial]) -> None:
    """Retrain each network of `front` `[final] seeds` times, skipping the retrainings
    the journal already has (same network, seed index, epochs and data)."""
    settings = search.config.final
    for trial, index, epochs in missing(search, front):
        event = _retrain_once(search, trial, index, epochs)
        search.journal.append(event)
        shown = ("failed: " + event["reason"] if event["test_error"] is None
                 else "test " + error_phrase(event["test_error"], search.data.measure))
        search.report(f"final: trial {trial.id}, seed {index + 1} of {settings.seeds}: "
                      f"{shown}")


def missing(search: Search, front: list[Trial]) -> list[tuple[Trial, int, int]]:
    """The retrainings of `front` that the journal lacks: (network, seed index, epochs)."""
    settings = search.config.final
    if not settings.seeds or not front:
        return []
    trials = {t.id: t for t in search.journal.trials()}
    done = {(r["network"], r["seed"], r["epochs"], r["on_validation"])
            for r in final_events(search.journal.records())}
    return [(trial, index, epochs) for trial in front
            for epochs in [settings.epochs or lineage_epochs(trial, trials)]
            for index in range(settings.seeds)
            if (trial.id, index, epochs, settings.train_on_validation) not in done]


def _retrain_once(search: Search, trial: Trial, index: int, epochs: int) -> dict[str, Any]:
    """One retraining of `trial` from scratch, as its journal event."""
    settings = search.config.final
    seed = trial_seed(search.config, trial.id) + (FIRST_FINAL_SEED + index) * SEED_STRIDE
    event: dict[str, Any] = {"event": FINAL_EVENT, "network": trial.id, "seed": index,
                             "epochs": epochs, "on_validation": settings.train_on_validation}
    try:  # user code runs here, as in a trial
        data = final_data(search.runner.data_for(trial.params), settings)
        result, test_error = search.runner.train(trial.params, epochs, None, seed, data)
    except (Exception, SystemExit) as error:
        return {**event, "test_error": None, "reason": failure(error)}
    return {**event, "test_error": test_error,
            "val_error": None if settings.train_on_validation else result.val_error,
            "train_seconds": result.train_seconds}


def final_table(trials: Sequence[Trial], records: Iterable[Mapping[str, Any]],
                loss: str = "cross_entropy") -> str:
    """The final retrainings' test errors per network: mean, standard deviation (over
    seeds, n - 1) and range, beside the test error the search measured; empty when the
    journal has none. Errors in the units of `loss` (the data's measure)."""
    groups: dict[tuple[int, int, bool], list[float]] = {}
    failed = 0
    for event in final_events(records):
        key = (event["network"], event["epochs"], bool(event["on_validation"]))
        if event.get("test_error") is None:
            failed += 1
        else:
            groups.setdefault(key, []).append(event["test_error"])
    if not groups:
        return ""
    by_id = {t.id: t for t in trials}
    rows = []
    for (network, epochs, pooled), errors in sorted(groups.items()):
        shown = sorted(show_error(e, loss) for e in (min(errors), max(errors)))
        spread = stdev(errors) if len(errors) > 1 else 0.0
        single = by_id[network].extra.get("test_error") if network in by_id else None
        rows.append([str(network), "train+val" if pooled else "train", str(epochs),
                     show_error(single, loss), show_error(fmean(errors), loss),
                     f"{100 * spread:.1f}" if loss == "cross_entropy" else f"{spread:.4g}",
                     f"{shown[0]}..{shown[1]}", str(len(errors))])
    label = error_label(loss)
    note = f"; {failed} retraining{'s' if failed > 1 else ''} failed" if failed else ""
    head = f"final retraining of the Pareto networks from scratch, one seed per run{note}"
    return head + "\n\n" + table(rows, ["trial", "trained on", "epochs", f"search test {label}",
                                        f"mean test {label}", "std", "range", "seeds"], left=2)
