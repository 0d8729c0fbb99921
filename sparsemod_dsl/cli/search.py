"""The search commands: `search` (run or resume an experiment), `report` and `show` (its results).

The engine, the training stack and the plotting load only when one of these commands runs,
and `search` loads them only once its experiment file is checked and its results directory
locked, so that those errors come back in well under a second.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .args import Command
from .exits import EXIT_OK


def _search_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("experiment", metavar="EXPERIMENT.toml")


def _search(args: argparse.Namespace) -> int:
    from ..search.experiment import load_experiment  # noqa: PLC0415
    from ..search.lock import locked  # noqa: PLC0415

    experiment = load_experiment(args.experiment)  # its errors come before torch is imported
    with locked(experiment.results):  # a second search on the directory stops here at once
        from ..search.engine import Search  # noqa: PLC0415
        from ..search.final import final_table  # noqa: PLC0415
        from ..search.report import pareto_table  # noqa: PLC0415
        from ..search.stopping import why_stopped  # noqa: PLC0415

        engine = Search(experiment, progress=True)
        engine.run()
    print()
    print(pareto_table(engine.journal.trials(), engine.objectives, engine.program,
                       engine.pricer.precision, engine.data.measure))
    if final := final_table(engine.journal.trials(), engine.journal.records(),
                            engine.data.measure):
        print(f"\n{final}")
    print(f"\nstopped: {why_stopped(engine.journal.records(), engine.journal.trials())}")
    spent = engine.timings
    if spent.total:  # a run that had nothing left to do took no time worth a line
        print(f"time: {spent.total:.0f} s, of which {spent.training:.0f} s training and "
              f"{spent.generation:.1f} s choosing points ({engine.strategy.name} strategy)"
              + _all_runs(engine.state.seconds, spent.total))
    print(f"results: {experiment.results} (`sparsemodc report {experiment.results}`)")
    return EXIT_OK


def _all_runs(seconds: float, this_run: float) -> str:
    """The whole search's time when earlier runs (killed ones too) add to this one's."""
    return f"; {seconds:.0f} s over all runs of the search" if seconds > this_run + 0.5 else ""


def _results_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", metavar="RESULTS_DIR")


def _report(args: argparse.Namespace) -> int:
    from ..search.report import report  # noqa: PLC0415

    text, plots = report(Path(args.results))
    print(text)
    print("\nplots: " + ", ".join(str(p) for p in plots))
    return EXIT_OK


def _show_arguments(parser: argparse.ArgumentParser) -> None:
    _results_argument(parser)
    parser.add_argument("--trial", type=int, required=True, metavar="ID")


def _show(args: argparse.Namespace) -> int:
    from ..search.report import show  # noqa: PLC0415

    print(show(Path(args.results), args.trial))
    return EXIT_OK


SEARCH = Command(
    "search",
    help="run (or resume) a SpArSe search described by an experiment file",
    description="Run the search of an experiment file (docs/experiment.md): Sobol points, "
    "multi-objective Bayesian optimisation, then morphisms of the Pareto front. Prints one "
    "line per trial, then why the search stopped. Re-running the same command on the same "
    "results directory resumes where the last run stopped, also after a crash; raising the "
    "stage budgets (or changing [stopping]) and re-running extends the search.",
    arguments=_search_arguments,
    run=_search,
)

REPORT = Command(
    "report",
    help="print the Pareto table of a results directory and write its page and plots",
    description="Print the Pareto-front networks of a search in real units (error %, "
    "flash KB, RAM KB, latency ms), then the final retraining's mean and spread of test "
    "error if the search had one, and write report.html (a self-contained page with "
    "interactive charts) and pareto.png, hypervolume.png and test_vs_validation.png into "
    "the results directory.",
    arguments=_results_argument,
    run=_report,
)

SHOW = Command(
    "show",
    help="print one trial's network: layers, shapes and costs",
    description="Print a trial of a search: its parameters, and its network's layers "
    "with output shapes, parameters, MACs and live RAM, and its totals.",
    arguments=_show_arguments,
    run=_show,
)
