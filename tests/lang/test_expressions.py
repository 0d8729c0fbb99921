"""Expressions of issue 15: `round`, `floor`, `ceil`, `make_divisible`, the repeat index
(`repeat r = ... as i`), the spatial sizes `in_height`, `in_width`, `in_length`; labels
on `choose` and `optional`; and the messages that misled (one alternative per line,
labels where none can go, suggestions only for plausible typos).

Exact values are checked against hand-worked examples, interval bounds (`intervals.pick`)
against the exact functions on hypothesis-drawn values.
"""

from __future__ import annotations

import math
import re

import pytest
from helpers import at, src
from hypothesis import given
from hypothesis import strategies as st

from sparsemod_dsl.errors import ArchError, Diagnostic
from sparsemod_dsl.lang import arith, fmt, functions, intervals, ir, loader, lower, parser
from sparsemod_dsl.lang.compiler import compile_source
from sparsemod_dsl.lang.lower.messages import suggest, typo_distance
from sparsemod_dsl.lang.shapes import Interval
from sparsemod_dsl.nets import point
from sparsemod_dsl.nets.trace import trace

HEADER = "arch t(input: image(3, 16, 16), classes = 4)\n"
TAIL = "    global_avg_pool\n    linear(classes)\n}\n"


def compiled(body: str) -> ir.Program:
    return compile_source(HEADER + "network {\n" + src(body) + TAIL, "t.arch")


def errors(text: str) -> tuple[Diagnostic, ...]:
    with pytest.raises(ArchError) as info:
        compile_source(src(text), "t.arch")
    return info.value.diagnostics


def layer_args(prog: ir.Program, pt: dict[str, object]) -> list[tuple[str, dict[str, object]]]:
    """The layers of a point in execution order, with their computed arguments."""
    _, steps = trace(prog, point.complete(prog, pt))
    return [(step.layer.name, dict(step.args)) for step in steps if step.layer is not None]


def convolutions(prog: ir.Program, pt: dict[str, object]) -> list[dict[str, object]]:
    """The computed arguments of a point's convolutions, in execution order."""
    return [args for name, args in layer_args(prog, pt) if "conv" in name]


# --- the functions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("x", "d", "expected"),
    [
        (32 * 0.35, 8, 16),  # 8 would be 29% below 11.2: one step up
        (16, 8, 16),
        (18, 8, 24),  # 16 is 11% below 18
        (20, 8, 24),  # halves round up
        (3, 8, 8),  # never below d
        (100, 1, 100),
        (37.6, 4, 36),
    ],
)
def test_make_divisible_is_the_mobilenet_rule(x: float, d: int, expected: int) -> None:
    assert functions.make_divisible([x, d]) == expected


@given(x=st.floats(0, 10_000), d=st.integers(1, 64))
def test_make_divisible_is_a_multiple_of_d_not_far_below_x(x: float, d: int) -> None:
    value = functions.make_divisible([x, d])
    assert value % d == 0 and value >= d and value >= 0.9 * x
    assert value <= max(d, x + d)


@pytest.mark.parametrize(
    ("name", "x", "expected"),
    [("round", 2.5, 3), ("round", -2.5, -3), ("round", 2.49, 2), ("round", 7, 7),
     ("floor", -0.5, -1), ("floor", 3.9, 3), ("ceil", 0.2, 1), ("ceil", -1.5, -1)],
)
def test_rounding(name: str, x: float, expected: int) -> None:
    value = ir.FUNCTIONS[name]([x])
    assert value == expected and isinstance(value, int)


def test_make_divisible_rejects_a_divisor_below_1_at_a_point() -> None:
    prog = compiled("""
        d = int[0..2]
        conv2d(make_divisible(16, d), 3)
    """)
    assert point.validate(prog, {"d": 2}).ok
    check = point.validate(prog, {"d": 0})
    assert not check.ok and "positive integer divisor" in check.reason


_bounds = st.tuples(st.floats(-1e6, 1e6), st.floats(0, 1e6)).map(lambda t: (t[0], t[0] + t[1]))


@given(data=st.data(), name=st.sampled_from(["round", "floor", "ceil", "make_divisible"]))
def test_interval_bounds_hold_every_value(data: st.DataObject, name: str) -> None:
    lo, hi = data.draw(_bounds)
    x = data.draw(st.floats(lo, hi))
    if name == "make_divisible":
        d_lo = data.draw(st.integers(1, 32))
        d_hi = data.draw(st.integers(d_lo, 40))
        d = data.draw(st.integers(d_lo, d_hi))
        bounds = intervals.pick(name, [Interval(lo, hi), Interval(d_lo, d_hi)])
        value = ir.FUNCTIONS[name]([x, d])
    else:
        bounds = intervals.pick(name, [Interval(lo, hi)])
        value = ir.FUNCTIONS[name]([x])
    assert isinstance(bounds, Interval) and bounds.lo <= value <= bounds.hi


def test_rounded_values_are_ints_where_ints_are_needed() -> None:
    prog = compiled("""
        width = choice[0.35, 0.5, 1.0] ordered
        conv2d(make_divisible(32 * width, 8), 3) relu
        conv2d(round(in_channels * 1.5), kernel = ceil(width * 3))
        conv2d(max(1, floor(in_channels / 3)), 1)
    """)
    args = convolutions(prog, {"width": 0.35})
    assert [a["filters"] for a in args] == [16, 24, 8]
    assert args[1]["kernel"] == 2


@pytest.mark.parametrize(
    ("call", "needle", "message"),
    [
        ("conv2d(round(1, 2), 3)", "round(", "'round' takes one argument"),
        ("conv2d(make_divisible(8), 3)", "make_divisible(", "'make_divisible' takes two arguments"),
        ("conv2d(max(8), 3)", "max(", "'max' takes at least two arguments"),
        ("conv2d(make_divisible(8, 2.0), 3)", "2.0", "divisor of 'make_divisible' takes an int"),
        ("conv2d(make_divisible(8, 0), 3)", "0)", "must be at least 1"),
        ("conv2d(roud(8.5), 3)", "roud(", "unknown function 'roud'; did you mean 'round'?"),
        ('conv2d(floor("a"), 3)', '"a"', "arithmetic needs numbers"),
    ],
)
def test_function_errors(call: str, needle: str, message: str) -> None:
    text = HEADER + f"network {{\n    {call}\n" + TAIL
    (d,) = errors(text)
    assert message in d.message
    assert (d.span.line, d.span.column) == at(text, needle)


def test_a_rounded_overflow_is_an_error() -> None:
    (d,) = errors(HEADER + "network {\n    conv2d(round(1e300), 3)\n" + TAIL)
    assert "integer overflow" in d.message


# --- powers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [("2 ** 3", 8), ("2 ** 3 ** 2", 512), ("-2 ** 2", -4), ("(-2) ** 2", 4), ("2 * 3 ** 2", 18),
     ("2.0 ** -1", 0.5), ("4 ** 0.5", 2.0), ("0 ** 0", 1)],
)
def test_power_binds_as_in_python(text: str, value: float) -> None:
    prog = compiled(f"    x = {text}\n    conv2d(8, kernel = max(1, round(x + 0 * 1.0)))\n")
    (layer,) = [x for x in ir.layers(prog.network) if x.op == "conv2d"]
    assert point.value_of(layer.arg("kernel").args[1].args[0].left, prog, {}) == value  # type: ignore
    assert fmt.format_value(parser.parse(f"network {{ x = {text} }}").items[0].body.stmts[0].value
                            ) == text.replace("(-2) ** 2", "(-2) ** 2")


@pytest.mark.parametrize(
    ("a", "b", "fault"),
    [(2, -1, "negative power of an int"), (10, 20, "beyond 2**53"), (-8.0, 0.5, "not a real"),
     (0.0, -1.0, "division by zero"), (10.0, 400.0, "out of range")],
)
def test_power_faults(a: float, b: float, fault: str) -> None:
    with pytest.raises(arith.Fault, match=re.escape(fault)):
        arith.power(a, b)


@given(data=st.data())
def test_power_interval_bounds_hold(data: st.DataObject) -> None:
    lo, hi = data.draw(st.tuples(st.floats(0, 50), st.floats(0, 50)).map(sorted))
    elo, ehi = data.draw(st.tuples(st.floats(0, 8), st.floats(0, 8)).map(sorted))
    x, y = data.draw(st.floats(lo, hi)), data.draw(st.floats(elo, ehi))
    bounds = intervals.combine("**", Interval(lo, hi), Interval(elo, ehi))
    assert isinstance(bounds, Interval)
    assert bounds.lo * (1 - 1e-9) <= x**y <= bounds.hi * (1 + 1e-9)


def test_a_power_out_of_range_everywhere_is_an_error() -> None:
    (d,) = errors(HEADER + "network {\n    conv2d(8, kernel = 2 ** 60)\n" + TAIL)
    assert "integer overflow" in d.message
    text = HEADER + "network {\n    repeat r = 2 as i {\n conv2d(8, 2 ** (i - 3))\n}\n" + TAIL
    (d,) = errors(text)
    assert "a negative power of an int" in d.message
    assert (d.span.line, d.span.column) == at(text, "i - 3)")


# --- the repeat index ------------------------------------------------------------------------


def test_the_repeat_index_counts_instances_from_1() -> None:
    prog = compiled("""
        repeat stage = int[1..3] as i {
            conv2d(filters = 8 * i, kernel = 3, padding = "same") relu
        }
    """)
    assert [a["filters"] for a in convolutions(prog, {"stage": 3})] == [8, 16, 24]
    assert [p.name for p in prog.parameters] == ["stage"]  # the index is no parameter


def test_the_index_of_an_inner_repeat_and_an_outer_one() -> None:
    prog = compiled("""
        repeat block = 2 as b {
            repeat layer = 2 as i {
                conv2d(filters = 4 * b + i, kernel = 1)
            }
        }
    """)
    assert [a["filters"] for a in convolutions(prog, {})] == [5, 6, 9, 10]


@pytest.mark.parametrize(
    ("body", "needle", "message"),
    [
        ("repeat r = 2 as r {\n conv2d(8, 3)\n}\n", "repeat", "the index needs a name of its own"),
        ("repeat r = 2 as i {\n i = 3\n conv2d(i, 3)\n}\n", "i = 3", "'i' is already defined"),
        ("repeat r = 2 as _i {\n conv2d(8, 3)\n}\n", "repeat", "names may not start or end"),
        ("conv2d(8 * i, 3)\n", "i,", "'i' is not defined"),
    ],
)
def test_index_errors(body: str, needle: str, message: str) -> None:
    text = HEADER + "network {\n" + body + TAIL
    diagnostics = errors(text)
    assert any(message in d.message and (d.span.line, d.span.column) == at(text, needle)
               for d in diagnostics), diagnostics


# --- spatial sizes ---------------------------------------------------------------------------

MUNAS = """
    repeat stage = int[1..3] {
        k = choice[3, 5, 7, 9]
        conv2d(16, kernel = KERNEL, padding = "valid") relu
    }
"""


def test_kernels_shrink_to_the_feature_map() -> None:
    """µNAS: with `min(k, in_height)` every point is valid; without, most are not."""
    shrinking = compiled(MUNAS.replace("KERNEL", "min(k, in_height, in_width)"))
    fixed = compiled(MUNAS.replace("KERNEL", "k"))
    points = point.sample(shrinking, 200, seed=3)
    assert all(point.validate(shrinking, pt).ok for pt in points)
    assert sum(point.validate(fixed, pt).ok for pt in points) < 180
    args = convolutions(shrinking, {"stage": 3, "stage[1].k": 9, "stage[2].k": 9,
                                    "stage[3].k": 9})
    assert [a["kernel"] for a in args] == [9, 8, 1]


def test_in_length_is_the_steps_of_a_sequence() -> None:
    prog = compile_source(src("""
        arch seq(input: sequence(10, 4), classes = 3)

        network {
            conv1d(8, kernel = min(16, in_length), padding = "valid")
            global_avg_pool
            linear(classes)
        }
    """), "seq.arch")
    assert layer_args(prog, {})[0][1]["kernel"] == 10


def test_a_size_of_another_kind_is_an_error_where_it_is_used() -> None:
    text = HEADER + "network {\n    conv2d(8, kernel = min(3, in_length))\n" + TAIL
    (d,) = errors(text)
    assert "'in_length' is a size of a sequence" in d.message
    assert (d.span.line, d.span.column) == at(text, "conv2d")


# --- labels on choose and optional -----------------------------------------------------------


def test_a_label_names_a_choose_and_an_optional() -> None:
    labelled = compiled("""
        head: choose {
            a: conv2d(8, 3)
            b: conv2d(8, 5)
        }
        pool: optional default true { maxpool(2) }
    """)
    named = compiled("""
        choose head {
            a: conv2d(8, 3)
            b: conv2d(8, 5)
        }
        optional pool default true { maxpool(2) }
    """)
    assert labelled.parameters == named.parameters
    assert labelled.network == named.network


def test_fmt_writes_the_name_after_the_keyword() -> None:
    text = HEADER + "\nnetwork {\n    head: choose { a: relu\n b: relu6 }\n" + TAIL
    formatted = fmt.format_source(text, "t.arch")
    assert "    choose head {\n        a: relu\n        b: relu6\n    }\n" in formatted
    assert parser.parse(formatted) == parser.parse(text)


def test_repeat_index_round_trips() -> None:
    text = (HEADER + "\nnetwork {\n    repeat r = int[1..3] as i {\n        conv2d(8 * i, 3)\n"
            "    }\n" + TAIL)
    assert fmt.format_source(text, "t.arch") == text
    (stmt,) = [x for x in parser.parse(text).items[1].body.stmts if hasattr(x, "index")]
    assert stmt.index == "i"


@pytest.mark.parametrize(
    ("body", "needle", "message"),
    [
        ("head: choose kind {\n a: relu\n b: relu6\n}\n", "kind",
         "this choose is named twice, 'head' and 'kind'"),
        ("choose {\n a: relu\n b: relu6\n}\n", "choose", "a choose needs a name"),
        ("p: optional q { relu }\n", "q", "this optional is named twice"),
        ("stage: repeat n = 2 { relu }\n", "stage", "a repeat is named after its keyword"),
        ("t: time_distributed { relu }\n", "t: time", "a time_distributed takes no label"),
    ],
)
def test_where_labels_cannot_go(body: str, needle: str, message: str) -> None:
    text = HEADER + "network {\n" + body + TAIL
    (d,) = errors(text)
    assert message in d.message
    assert (d.span.line, d.span.column) == at(text, needle)


# --- messages --------------------------------------------------------------------------------


def test_alternatives_go_one_per_line() -> None:
    text = HEADER + "network {\n    choose k { a: conv2d(16, 3) b: conv2d(16, 5) }\n" + TAIL
    (d,) = errors(text)
    assert d.message.startswith("alternatives go one per line: 'b:' here labels a layer of "
                                "alternative 'a'")
    assert (d.span.line, d.span.column) == at(text, "b:")


def test_a_label_in_a_braced_alternative_is_a_label() -> None:
    prog = compiled("""
        choose k {
            a: { conv2d(16, 3) second: conv2d(filters = int[8..16], kernel = 3) }
            b: conv2d(16, 5)
        }
    """)
    assert "second.filters" in {p.name for p in prog.parameters}


@pytest.mark.parametrize(
    ("name", "candidates", "expected"),
    [
        ("bits", ["bias", "filters", "kernel", "stride"], ""),
        ("widht", ["width", "filters"], "width"),
        ("lienar", ["linear", "lstm"], "linear"),
        ("batchnrom", ["batchnorm"], "batchnorm"),
        ("kernal", ["kernel"], "kernel"),
        ("mx", ["min", "max"], "max"),
        ("p", ["o", "q"], ""),
        ("fitlers", ["filters", "features"], "filters"),
    ],
)
def test_suggestions_are_plausible_typos(name: str, candidates: list[str], expected: str) -> None:
    assert suggest(name, candidates) == (f"; did you mean '{expected}'?" if expected else "")


def test_bits_suggests_nothing() -> None:
    (d,) = errors(HEADER + "network {\n    conv2d(8, 3, bits = 4)\n" + TAIL)
    assert "did you mean" not in d.message and "has no argument 'bits'" in d.message


@given(a=st.text("abcdefgh_", max_size=8), b=st.text("abcdefgh_", max_size=8))
def test_typo_distance_is_a_symmetric_bounded_measure(a: str, b: str) -> None:
    distance = typo_distance(a, b)
    assert distance == typo_distance(b, a)
    assert (distance == 0) == (a == b)
    assert abs(len(a) - len(b)) <= distance <= 2 * max(len(a), len(b))


def test_the_index_and_sizes_are_listed_as_builtins() -> None:
    assert {"in_height", "in_width", "in_length"} <= set(ir.BUILTINS)
    assert math.isinf(intervals.pick("round", [Interval(0, math.inf)]).hi)  # type: ignore[union-attr]
    unit = loader.load_text(HEADER + "network {\n    conv2d(8, min(3, in_height))\n" + TAIL,
                            "t.arch")
    assert lower.lower(unit).parameters == ()
