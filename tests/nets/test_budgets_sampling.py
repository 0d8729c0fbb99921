"""Constraints on costs (`constraint macs <= 2_000_000`, `ram <= 64 KB`), and sampling
that finds valid points where they are rare (`nets.sampling`), with `check`'s warning.

Cost constraints are compared with the cost model's own report; the search side
(the pricer, the exact strategy's Sobol stage) must never hand out a point that
breaks one.
"""

from __future__ import annotations

import json

import pytest
from helpers import run_cli, src
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsemod_dsl.errors import ArchError
from sparsemod_dsl.lang import fmt, ir, parser
from sparsemod_dsl.lang.compiler import compile_source
from sparsemod_dsl.nets import cost, point, sampling
from sparsemod_dsl.nets.budgets import failing_cost_constraint
from sparsemod_dsl.nets.targets import load_target
from sparsemod_dsl.search.exactstrategy import ExactStrategy
from sparsemod_dsl.search.pricing import Pricer
from sparsemod_dsl.search.strategy import make_strategy

SPACE = src("""
    arch budgeted(input: image(3, 16, 16), classes = 4)

    network {
        repeat block = int[1..3] {
            filters = int[8..64]
            conv2d(filters, kernel = choice[1, 3, 5]) relu
        }
        global_avg_pool
        linear(classes)
    }

    constraint macs <= 800_000

    constraint flash + ram <= 40 KB

    constraint block[1].filters + block[2].filters <= 80
""")

#: Mostly invalid: five to eight valid convolutions on a 12x12 image (3% can be built).
RARE = src("""
    arch rare(input: image(1, 12, 12), classes = 3)

    network {
        repeat stage = int[5..8] {
            conv2d(8, kernel = int[1..9], padding = "valid") relu
        }
        global_avg_pool
        linear(classes)
    }
""")

TARGET = load_target("stm32f446")


def test_cost_constraints_lower_apart_from_parameter_constraints() -> None:
    prog = compile_source(SPACE, "b.arch")
    assert len(prog.constraints) == 1
    macs, memory = prog.cost_constraints
    assert macs == ir.CostConstraint(ir.Builtin("macs"), "<=", ir.Const(800_000))
    assert memory.unit == "KB" and set(ir.costs(memory.left)) == {"flash", "ram"}


def test_units_and_underscores_round_trip() -> None:
    text = SPACE.replace("800_000", "8_0_0_000").replace("40 KB", "0.04 MB")
    assert fmt.format_source(text) == text
    assert parser.parse(fmt.format_source(text)) == parser.parse(text)
    assert compile_source(text).cost_constraints[0].right == ir.Const(800_000)


@pytest.mark.parametrize(
    ("constraint", "message"),
    [
        ("macs <= 2 KB", "'macs' is not counted in KB: a constraint in KB is on flash, ram"),
        ("ram <= 5 ms", "'ram' is not counted in ms: a constraint in ms is on latency"),
        ("block[1].filters <= 3 KB", "this constraint names no cost"),
        ("flops <= 3", "'flops' is not defined"),
    ],
)
def test_constraint_errors(constraint: str, message: str) -> None:
    with pytest.raises(ArchError) as info:
        compile_source(SPACE + f"constraint {constraint}\n", "b.arch")
    (d,) = info.value.diagnostics
    assert message in d.message and d.span.line == SPACE.count("\n") + 1


def test_a_cost_is_no_name_outside_constraints_and_parameters_shadow_costs() -> None:
    with pytest.raises(ArchError) as info:
        compile_source(SPACE.replace("filters = int[8..64]", "filters = macs"), "b.arch")
    assert "'macs', a cost, has a value only in a constraint" in str(info.value)
    shadowed = compile_source(SPACE.replace("filters = int[8..64]", "params = int[8..64]")
                              .replace("conv2d(filters", "conv2d(params")
                              .replace(".filters", ".params"), "b.arch")
    assert len(shadowed.constraints) == 1 and len(shadowed.cost_constraints) == 2


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_a_cost_constraint_holds_exactly_where_the_costs_say(seed: int) -> None:
    prog = compile_source(SPACE, "b.arch")
    (pt,) = point.sample(prog, 1, seed)
    report = cost.cost(prog, pt, TARGET)
    reason = failing_cost_constraint(prog, pt, report)
    fits = report.macs <= 800_000 and report.flash_bytes + report.ram_bytes <= 40 * 1024
    assert (reason is None) == fits
    if report.macs > 800_000:
        assert reason is not None and f"macs = {report.macs:,}" in reason


def test_latency_in_a_unit_and_without_a_target() -> None:
    prog = compile_source(SPACE + "constraint latency <= 2 s\n", "b.arch")
    pt = {"block": 1, "block[1].filters": 8, "block[1].conv2d.kernel": 1}
    assert failing_cost_constraint(prog, pt, cost.cost(prog, pt, TARGET)) is None
    reason = failing_cost_constraint(prog, pt, cost.cost(prog, pt))
    assert reason is not None and "latency needs a target" in reason
    tight = compile_source(SPACE + "constraint latency <= 1 us\n", "b.arch")
    reason = failing_cost_constraint(tight, pt, cost.cost(tight, pt, TARGET))
    assert reason is not None and reason.endswith(" us)")


def test_the_pricer_rejects_points_breaking_a_cost_constraint() -> None:
    prog = compile_source(SPACE, "b.arch")
    pricer = Pricer(prog, TARGET, "int8", False)
    big = {"block": 3, "block[1].filters": 40, "block[2].filters": 40, "block[3].filters": 64,
           "block[1].conv2d.kernel": 5, "block[2].conv2d.kernel": 5, "block[3].conv2d.kernel": 5}
    priced = pricer.price(big)
    assert priced.reason is not None
    assert "cost constraint at line 12 fails (macs = " in priced.reason
    assert priced.values["macs"] > 800_000


def test_the_sobol_stage_never_hands_out_a_point_over_budget() -> None:
    prog = compile_source(SPACE.replace("800_000", "60_000"), "b.arch")
    strategy = make_strategy("exact", prog, ["error", "flash"], Pricer(prog, TARGET, "int8",
                                                                      False), 0, fast=True)
    assert isinstance(strategy, ExactStrategy)
    points = strategy.initial(6)
    assert len(points) == 6
    for pt in points:
        assert cost.cost(prog, pt).macs <= 60_000 and point.validate(prog, pt).ok


# --- sampling ----------------------------------------------------------------------------


def test_repair_finds_valid_points_where_random_draws_do_not() -> None:
    prog = compile_source(RARE, "rare.arch")
    drawn = point.sample(prog, 100, seed=0)
    assert sum(point.validate(prog, pt).ok for pt in drawn) < 10
    found = sampling.find(prog, 100, seed=0)
    assert len(found) == 100 and len({json.dumps(p, sort_keys=True) for p in found}) == 100
    assert all(point.validate(prog, pt).ok for pt in found)
    assert sampling.find(prog, 5, seed=4) == sampling.find(prog, 5, seed=4)


def test_repair_finds_points_under_a_budget_with_no_one_to_blame() -> None:
    prog = compile_source(SPACE, "b.arch")
    pricer = Pricer(prog, TARGET, "int8", False)

    def accept(pt: point.Point) -> tuple[bool, tuple[str, ...]]:
        return pricer.price(pt).reason is None, ()

    found = sampling.find(prog, 20, seed=1, accept=accept)
    assert len(found) == 20 and all(pricer.price(pt).reason is None for pt in found)


def test_an_impossible_space_names_the_parameter_at_fault() -> None:
    prog = compile_source(RARE, "rare.arch")

    def never(pt: point.Point) -> tuple[bool, tuple[str, ...]]:
        return False, ("stage[1].conv2d.kernel",)

    with pytest.raises(point.PointError, match="most often at fault is stage\\[1\\]"):
        sampling.find(prog, 2, accept=never, draws=3)


@given(data=st.data())
def test_shrink_stays_in_the_domain_and_below_the_value(data: st.DataObject) -> None:
    import random

    low = data.draw(st.integers(-50, 50))
    step = data.draw(st.integers(1, 5))
    high = low + step * data.draw(st.integers(1, 20))
    domain = ir.IntDomain(low, high, step)
    value = data.draw(st.sampled_from(range(low, high + 1, step)))
    shrunk = sampling.shrink(domain, value, random.Random(data.draw(st.integers(0, 99))))
    assert point.contains(domain, shrunk) and shrunk <= value
    ordered = ir.ChoiceDomain((16, 8, 32), ordered=True)
    assert sampling.shrink(ordered, 16, random.Random(1)) in (8, 16)


def test_check_warns_when_few_random_points_are_valid(capsys: pytest.CaptureFixture[str],
                                                      tmp_path: object) -> None:
    import os

    os.chdir(str(tmp_path))
    with open("rare.arch", "w") as file:
        file.write(RARE)
    code, out, err = run_cli(capsys, "check", "rare.arch")
    assert code == 0 and out.startswith("rare.arch: ok")
    assert err.startswith("rare.arch: warning: only ") and "% ) " not in err
    assert "the parameter most often at fault is stage[" in err
    code, out, err = run_cli(capsys, "sample", "--valid", "-n", "30", "rare.arch")
    assert code == 0 and len(out.splitlines()) == 30
    survey = sampling.survey(compile_source(RARE), draws=300)
    assert survey.fraction < 0.1 and survey.warning() is not None
    assert sampling.survey(compile_source(SPACE), draws=50).warning() is None


def test_candidate_pools_find_points_under_a_tight_budget() -> None:
    """10 of 500 random points cost under 12,000 MACs: the 64 random candidates of the
    fast pool hold about one, the repaired draws fill the batch."""
    prog = compile_source(SPACE.replace("800_000", "12_000"), "b.arch")
    pricer = Pricer(prog, TARGET, "int8", False)
    strategy = make_strategy("exact", prog, ["flash", "ram"], pricer, 3, fast=True)
    assert isinstance(strategy, ExactStrategy)
    points = strategy.propose(4)
    assert len(points) == 4
    assert all(pricer.price(pt).reason is None for pt in points)


def test_sparsemodc_cost_says_whether_the_cost_constraints_hold(
        capsys: pytest.CaptureFixture[str], tmp_path: object) -> None:
    import os

    os.chdir(str(tmp_path))
    with open("b.arch", "w") as file:
        file.write(SPACE)
    with open("small.json", "w") as file:
        json.dump({"block": 1, "block[1].filters": 8, "block[1].conv2d.kernel": 1}, file)
    code, out, _ = run_cli(capsys, "cost", "b.arch", "--target", "stm32f446",
                           "--params", "small.json")
    assert code == 0 and "cost constraints: all hold" in out
    code, out, _ = run_cli(capsys, "cost", "b.arch", "--target", "stm32f446", "--json")
    report = json.loads(out)
    assert report["cost_constraint"] is None or "cost constraint at line" in report[
        "cost_constraint"]


def test_sample_valid_keeps_to_the_cost_constraints(
        capsys: pytest.CaptureFixture[str], tmp_path: object) -> None:
    """`sample --valid` prices its points: each meets the cost constraints, as `cost` says
    (found while testing the merged constructs: it used to validate shapes only)."""
    import os

    os.chdir(str(tmp_path))
    with open("b.arch", "w") as file:
        file.write(SPACE.replace("800_000", "100_000"))
    code, out, _ = run_cli(capsys, "sample", "b.arch", "-n", "6", "--valid")
    assert code == 0
    prog = compile_source(SPACE.replace("800_000", "100_000"), "b.arch")
    for line in out.splitlines():
        pt = json.loads(line)
        assert failing_cost_constraint(prog, pt, cost.cost(prog, pt)) is None
    with open("l.arch", "w") as file:
        file.write(SPACE + "constraint latency <= 20 ms\n")
    code, _, err = run_cli(capsys, "sample", "l.arch", "-n", "2", "--valid")
    assert code != 0 and "a latency constraint needs a target: pass --target NAME" in err
    code, out, _ = run_cli(capsys, "sample", "l.arch", "-n", "2", "--valid",
                           "--target", "stm32f446")
    assert code == 0 and len(out.splitlines()) == 2
