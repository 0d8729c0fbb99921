"""Tests of the checker (`sparsemod_dsl.lang.check`) and of the whole front end's robustness.

The checker reports what holds at every point of a space (or of the part of
it where a construct exists); spaces that fail only at some points are left
to the search. Expected shapes below are worked out from the layer rules by
hand, in the comments.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import at, src
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import mutated_sources, tokens

from sparsemod_dsl.errors import ArchError, Diagnostic
from sparsemod_dsl.lang import check, compiler, infer, intervals, ir, loader, lower
from sparsemod_dsl.lang.layers import ArgValue
from sparsemod_dsl.lang.shapes import Interval, Shape

STDLIB = Path(__file__).resolve().parents[2] / "stdlib"
IMAGE = "arch t(input: image(1, 8, 8), classes = 10)\n"
SEQUENCE = "arch t(input: sequence(100, 16), classes = 10)\n"
HEAD = "  global_avg_pool\n  linear(classes)\n"
EVERYWHERE = "this holds at every point of the space"




def checked(text: str, **kwargs: object) -> ir.Program:
    """Lower and check dedented source; the program must pass."""
    unit = loader.load_text(src(text), "t.arch")
    program = compiler.check_unit(unit, **kwargs).program  # type: ignore[arg-type]
    assert program is not None
    return program


def fail(text: str, **kwargs: object) -> tuple[Diagnostic, ...]:
    with pytest.raises(ArchError) as info:
        checked(text, **kwargs)
    return info.value.diagnostics




def where(d: Diagnostic) -> tuple[int, int]:
    return d.span.line, d.span.column


def network(*lines: str, header: str = IMAGE, head: str = HEAD, before: str = "") -> str:
    return header + before + "network {\n" + "".join(f"  {x}\n" for x in lines) + head + "}\n"


# --- layer arguments ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line, message",
    [
        ("conv2d(int[0..8], 3)",
         "'conv2d' argument 'filters' must be at least 1, but it can be 0..8 "
         "(conv2d.filters is 0..8)"),
        ("dropout(p = 1.5)", "'dropout' argument 'p' must be in [0, 1), but it can be 1.5"),
        ("dropout(p = 1.0)", "'dropout' argument 'p' must be in [0, 1), but it can be 1"),
        ("dropout(p = float[0.5..1.5])", "'dropout' argument 'p' must be in [0, 1)"),
        ("conv2d(8, 3, stride = 0)",
         "'conv2d' argument 'stride' must be at least 1, but it can be 0"),
        ("maxpool(size = 0)", "'maxpool' argument 'size' must be at least 1"),
        ('conv2d(8, 3, padding = "sam")',
         "'conv2d' padding 'sam' is not a mode: use \"same\", \"valid\" or a number"),
        ("conv2d(8, 3, padding = -1)", "'conv2d' padding cannot be negative"),
        ("lstm(int[0..4])", "'lstm' argument 'hidden' must be at least 1"),
    ],
)
def test_argument_range_errors(line: str, message: str) -> None:
    header = SEQUENCE if line.startswith("lstm") else IMAGE
    text = network(line, header=header, head="  linear(classes)\n" if header == SEQUENCE else HEAD)
    (d,) = fail(text)
    assert message in d.message
    assert where(d) == at(text, line.split("(")[0] + "(")


def test_legal_argument_ranges_pass() -> None:
    checked(network("conv2d(int[1..8], int[1..3], stride = choice[1, 2], padding = 1)",
                    "dropout(p = float[0.0..0.9])", 'conv2d(8, 3, padding = "valid")'))


def test_an_expression_reaching_illegal_values_only_somewhere_is_fine() -> None:
    # x - 1 is 0 only where x = 1; elsewhere the stride is legal.
    checked(network("x = int[1..3]", "conv2d(8, 3, stride = x - 1)"))
    (d,) = fail(network("x = int[1..3]", "conv2d(8, 3, stride = x - 5)"))
    assert "'stride' must be at least 1, but it can be -4..-2" in d.message


# --- unused parameters ------------------------------------------------------------------------


def test_unused_parameter() -> None:
    text = network("f = int[1..8]", "g = int[1..8]", "conv2d(g, 3)")
    (d,) = fail(text)
    assert d.message == "parameter 'f' is never used: the search would tune it for nothing"
    assert where(d) == at(text, "f =")


def test_used_parameters_are_not_reported() -> None:
    checked(network(
        "n = int[1..2]",
        "c = int[1..8]",
        "width = 7",  # fixed: not searched, so not reported
        "repeat r = n { conv2d(4, 3) }",
        "conv2d(c, 3)",
        "constraint c >= 2",
        before="train {\n  batch_size = int[2..8]\n}\n",  # training parameters feed the trainer
    ))


def test_unused_parameter_in_a_block_called_twice_is_reported_once_per_place() -> None:
    text = IMAGE + "block b(f = int[1..8]) { conv2d(4, 3) }\n" + network(
        "one: b", "two: b", header=""
    )
    (d,) = fail(text)
    assert "parameter 'one.f' is never used" in d.message and where(d) == at(text, "f =")


# --- shapes that fail at every point ------------------------------------------------------------


def test_input_too_small_for_the_deepest_downsampling() -> None:
    # 8 -> 4 -> 2 -> 1: the fourth 2x2 pooling has nothing left to pool.
    text = network("repeat r = 4 { maxpool(2) }")
    (d,) = fail(text)
    assert "'maxpool': the input height 1 is smaller than the window 2" in d.message
    assert "(at r[4].maxpool)" in d.message and d.message.endswith(EVERYWHERE)
    assert where(d) == at(text, "maxpool")
    checked(network("repeat r = 3 { maxpool(2) }"))


def test_input_too_small_for_any_kernel_of_a_range() -> None:
    # A valid 9x9 kernel needs 9 rows; the input has 8.
    (d,) = fail(network('conv2d(8, int[9..12], padding = "valid")'))
    assert "'conv2d': the input height is at most 8, smaller than the kernel" in d.message
    assert d.message.endswith(EVERYWHERE)


def test_a_kernel_range_where_some_values_fit_passes() -> None:
    checked(network('conv2d(8, int[3..12], padding = "valid")'))
    # Fits only for the smallest kernels and fewest layers: still not an error.
    checked(network('repeat r = int[1..3] { conv2d(8, int[1..5], padding = "valid") }'))


def test_linear_on_an_image_suggests_flatten() -> None:
    text = network("conv2d(8, 3)", "linear(classes)", head="")
    (d,) = fail(text)
    assert "'linear' takes a sequence or a vector, but its input here is an image" in d.message
    assert "add `flatten` or `global_avg_pool` before it" in d.message
    assert where(d) == at(text, "linear")
    checked(network("conv2d(8, 3)", "flatten", "linear(classes)", head=""))


def test_recurrent_on_an_image_and_conv2d_on_a_sequence() -> None:
    (d,) = fail(network("lstm(8)", head="  linear(classes)\n"))
    assert "'lstm' takes a sequence" in d.message and "add `to_sequence` before it" in d.message
    (d,) = fail(network("conv2d(8, 3)", header=SEQUENCE))
    assert "'conv2d' takes an image, but its input here is a sequence" in d.message
    assert "add `to_image` before it, or use conv1d" in d.message
    checked(network("conv1d(8, 3)", header=SEQUENCE))
    checked(network("to_image", "conv2d(8, 3)", header=SEQUENCE))


def test_choose_alternatives_of_different_kinds() -> None:
    text = network("choose k {", "  a: flatten", "  b: conv2d(8, 3)", "}",
                   head="  linear(classes)\n")
    (d,) = fail(text)
    assert "the alternatives of 'k' give different kinds of output (a: a vector, b: an image)" in (
        d.message
    )
    assert where(d) == at(text, "choose")


def test_residual_must_keep_the_shape() -> None:
    text = network("residual { conv2d(16, 3) }")
    (d,) = fail(text)
    assert "the residual body turns image 1x8x8 into image 16x8x8" in d.message
    assert where(d) == at(text, "residual")
    checked(network("conv2d(16, 3)", "residual { conv2d(16, 3) batchnorm relu }"))
    checked(network("conv2d(16, 3)", "residual { conv2d(in_channels, 3) }"))


def test_time_distributed_needs_a_sequence() -> None:
    text = network("time_distributed { linear(8) }")
    (d,) = fail(text)
    assert "time_distributed takes a sequence, but its input here is image 1x8x8" in d.message
    assert where(d) == at(text, "time_distributed")
    checked(network("time_distributed { linear(8) relu }", "lstm(4)", header=SEQUENCE,
                    head="  linear(classes)\n"))


def test_the_network_must_end_in_a_vector_of_classes_features() -> None:
    text = network("conv2d(8, 3)", head="")
    (d,) = fail(text)
    assert "the network must end in a vector of `classes` features, but it ends in image 8x8x8" in (
        d.message
    )
    assert where(d) == at(text, "conv2d")
    text = network(head="  global_avg_pool\n  linear(5)\n")
    (d,) = fail(text)
    assert "the network ends with 5 features, not the 10 classes" in d.message
    assert where(d) == at(text, "linear")
    # A different number of classes from the command line changes the answer.
    checked(network(head="  global_avg_pool\n  linear(5)\n"), classes=5)


def test_the_network_output_follows_the_alternatives_of_a_choice() -> None:
    def space(a: str, b: str) -> str:
        return network("flatten", "choose h {", f"  a: {a}", f"  b: {b}", "}", "relu", head="")

    checked(space("linear(classes)", "linear(10)"))
    # With 3 classes, alternative `a` still fits: not an error.
    checked(space("linear(classes)", "linear(10)"), classes=3)
    (d,) = fail(space("linear(10)", "linear(5 + 5)"), classes=3)
    assert "the network ends with 10 features, not the 3 classes" in d.message


def test_shapes_are_not_checked_without_an_input_shape() -> None:
    text = "arch t(input: image, classes = 10)\nnetwork {\n  linear(classes)\n}\n"
    checked(text)
    (d,) = fail(text, input_shape=(1, 8, 8))
    assert "'linear' takes a sequence or a vector" in d.message


# --- max_len ------------------------------------------------------------------------------


def max_len_space(low: int, high: int) -> str:
    return network(
        "repeat r = 3 { maxpool(2) }", "lstm(8)",
        header=SEQUENCE, head="  linear(classes)\n",
        before=f"train {{\n  max_len = int[{low}..{high}]\n}}\n",
    )


def test_max_len_sets_the_steps() -> None:
    # Three 2-step poolings need at least 8 steps: 8 -> 4 -> 2 -> 1.
    checked(max_len_space(8, 50))
    text = max_len_space(4, 50)
    (d,) = fail(text)
    assert "'maxpool': the input length 1 is smaller than the window 2" in d.message
    assert "r[3]" in d.message
    assert d.message.endswith("where train.max_len is 4, its smallest value")
    # The header's 100 steps would pass: max_len, not the header, sets the steps.
    checked(network("repeat r = 3 { maxpool(2) }", "lstm(8)", header=SEQUENCE,
                    head="  linear(classes)\n"))
    (d,) = fail(max_len_space(2, 7))
    assert d.message.endswith(EVERYWHERE)


def test_max_len_with_a_variable_depth_passes_when_the_shallowest_fits() -> None:
    # At 4 steps one or two poolings work; three only from 8 steps on.
    checked(network(
        "repeat r = int[1..3] { maxpool(2) }", "lstm(8)", header=SEQUENCE,
        head="  linear(classes)\n", before="train {\n  max_len = int[4..50]\n}\n",
    ))


# --- failures at some points only ----------------------------------------------------------


def test_a_repeat_instance_that_never_builds_is_named_with_its_condition() -> None:
    # 8 -> 4 -> 2 -> 1 with 1..3 instances; the fourth instance never builds.
    text = network("repeat r = int[1..5] { conv2d(8, 3) maxpool(2) }")
    (d,) = fail(text)
    assert "(at r[4].maxpool)" in d.message
    assert d.message.endswith("this holds at every point where r >= 4")
    assert where(d) == at(text, "maxpool")
    checked(network("repeat r = int[1..3] { conv2d(8, 3) maxpool(2) }"))


def test_an_alternative_that_never_builds_is_named_with_its_condition() -> None:
    (d,) = fail(network("choose k {", '  big: conv2d(8, 9, padding = "valid")',
                        "  small: conv2d(8, 3)", "}"))
    assert d.message.endswith("this holds at every point where k is big")


def test_several_errors_are_reported_at_once() -> None:
    text = network("conv2d(int[0..8], 3)", "dropout(1.5)", "conv2d(8, 3, stride = 0)",
                   'conv2d(8, 3, padding = "sam")', "unused = int[1..3]")
    found = fail(text)
    assert len(found) == 5
    assert [d.span.line for d in found] == sorted(d.span.line for d in found)


def test_every_stdlib_file_checks() -> None:
    for path in sorted(STDLIB.glob("*.arch")):
        compiler.check_file(path)


# --- properties ------------------------------------------------------------------------------

SOURCES = tuple(p.read_text(encoding="utf-8") for p in sorted(STDLIB.glob("*.arch")))


def assert_clean_failure(error: ArchError) -> None:
    assert error.diagnostics
    for d in error.diagnostics:
        assert d.span.line >= 1 and d.span.column >= 1, d
        assert d.message


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_sources(SOURCES))
def test_mutated_sources_never_crash(text: str) -> None:
    try:
        compiler.check_unit(loader.load_text(text, "<mut>"))
    except ArchError as error:
        assert_clean_failure(error)


def test_unmutated_sources_pass_through_the_same_tokenizer() -> None:
    # The mutation test starts from files that check.
    for text in SOURCES:
        assert "".join(tokens(text)) == text
        compiler.check_unit(loader.load_text(text, "<mut>"))


@st.composite
def small_spaces(draw: st.DrawFn) -> str:
    """A random small space from a template: repeats, kernels, pooling, sizes."""
    labels = iter(range(1000))

    def label() -> str:
        return f"l{next(labels)}"

    def count() -> str:
        low = draw(st.integers(0, 3))
        high = draw(st.integers(low, low + 3))
        return str(low) if low == high else f"int[{low}..{high}]"

    def size(low: int, high: int) -> str:
        a = draw(st.integers(low, high))
        b = draw(st.integers(a, high + 2))
        return str(a) if a == b else draw(st.sampled_from([f"int[{a}..{b}]", f"choice[{a}, {b}]"]))

    image = draw(st.booleans())
    padding = st.sampled_from(['"same"', '"valid"', "0", "1"])
    shortcut = st.sampled_from(['"identity"', '"projection"', '"avgpool"', '"auto"',
                                'choice["avgpool", "projection"]'])
    if image:
        dims = [draw(st.integers(1, 3)), draw(st.integers(1, 24)), draw(st.integers(1, 24))]
        header = f"arch g(input: image({', '.join(map(str, dims))}), classes = 3)"
        layers = [
            lambda: f"{label()}: conv2d(filters = {size(1, 8)}, kernel = {size(1, 5)}, "
                    f"stride = {size(1, 2)}, padding = {draw(padding)})",
            lambda: f"{label()}: maxpool(size = {size(1, 3)})",
            lambda: f"{label()}: avgpool({size(1, 3)}, stride = {size(1, 3)})",
            lambda: f"{label()}: sepconv2d({size(1, 8)}, {size(1, 5)})",
            lambda: f"optional {label()} {{ {label()}: maxpool(2) }}",
            lambda: f"choose {label()} {{\n a: {label()}: conv2d(4, 3)\n"
                    f" b: {label()}: maxpool(2)\n}}",
            lambda: f"residual {{ {label()}: conv2d(in_channels, {size(1, 3)}) }}",
            lambda: f"{label()}: residual(shortcut = {draw(shortcut)}) {{ {label()}: "
                    f"conv2d({size(1, 8)}, {size(1, 3)}, stride = {size(1, 3)}) }}",
            lambda: "batchnorm relu",
        ]
        heads = ["global_avg_pool", "flatten", "flatten linear(units = int[4..8]) relu", ""]
    else:
        steps, features = draw(st.integers(1, 40)), draw(st.integers(1, 8))
        header = f"arch g(input: sequence({steps}, {features}), classes = 3)"
        if draw(st.booleans()):
            header += f"\ntrain {{\n max_len = {size(1, 30)}\n}}"
        layers = [
            lambda: f"{label()}: conv1d({size(1, 8)}, {size(1, 5)}, padding = {draw(padding)})",
            lambda: f"{label()}: residual(shortcut = {draw(shortcut)}) {{ {label()}: "
                    f"conv1d({size(1, 8)}, {size(1, 3)}, stride = {size(1, 2)}) }}",
            lambda: f"{label()}: maxpool({size(1, 3)})",
            lambda: f"{label()}: lstm({size(1, 8)}, return_sequences = true)",
            lambda: f"time_distributed {{ {label()}: linear({size(1, 8)}) relu }}",
            lambda: f"to_image {label()}: conv2d(2, {size(1, 3)}) to_sequence",
            lambda: "dropout",
        ]
        heads = ["global_avg_pool", f"{label()}: gru({size(1, 8)})", "flatten", ""]
    body = []
    for _ in range(draw(st.integers(1, 3))):
        inner = " ".join(draw(st.sampled_from(layers))() for _ in range(draw(st.integers(1, 2))))
        if draw(st.booleans()):
            body.append(f"repeat {label()} = {count()} {{\n {inner}\n}}")
        else:
            body.append(inner)
    lines = "\n".join([*body, draw(st.sampled_from(heads)), "linear(classes)"])
    return f"{header}\nnetwork {{\n{lines}\n}}\n"


@dataclass
class PointEvaluator:
    """Inference at one point of a space: every parameter has one value."""

    program: ir.Program
    point: dict[str, ir.Scalar]

    def value(self, expr: ir.Expr, channels: Interval, shape: Shape | None = None) -> ArgValue:
        def leaf(node: ir.ParamRef | ir.Builtin) -> ArgValue:
            if isinstance(node, ir.Builtin):
                if node.name == "in_channels":
                    return channels
                if node.name in ir.SPATIAL:
                    assert shape is not None
                    return infer.spatial(node.name, shape)
                assert self.program.classes is not None
                return Interval.of(self.program.classes)
            value = self.point[node.name]
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return Interval.of(value)
            return frozenset({value})

        return intervals.evaluate(expr, leaf)

    def counts(self, node: ir.Repeat) -> range:
        value = self.value(node.count, Interval.of(1))
        assert isinstance(value, Interval)
        return range(int(value.lo), int(value.lo) + 1)

    def alternatives(self, node: ir.Choose) -> list[str]:
        return [str(self.point[node.param])]

    def presence(self, node: ir.Optional) -> list[bool]:
        return [bool(self.point[node.param])]


def random_point(program: ir.Program, rng: random.Random) -> dict[str, ir.Scalar]:
    point: dict[str, ir.Scalar] = {}
    for param in program.parameters:
        domain = param.domain
        if isinstance(domain, ir.IntDomain):
            point[param.name] = rng.randrange(domain.low, domain.high + 1, domain.step)
        elif isinstance(domain, ir.FloatDomain):
            point[param.name] = rng.uniform(domain.low, domain.high)
        elif isinstance(domain, ir.ChoiceDomain):
            point[param.name] = rng.choice(domain.values)
        else:
            point[param.name] = domain.value
    return point


def builds(program: ir.Program, point: dict[str, ir.Scalar]) -> bool:
    """Whether the network builds at `point` and ends in `classes` features."""
    evaluator = PointEvaluator(program, point)
    shape = infer.input_shape(program, evaluator)
    assert shape is not None
    inference = infer.Inference(evaluator)
    out = inference.run(program.network, shape)
    return not inference.issues and out is not None and out.kind == "vector" and (
        out.dims[0] == Interval.of(program.classes)  # type: ignore[arg-type]
    )


CLAIM = re.compile(r"; this holds at every point (?:of the space|where (.*))$")


def claimed_region(d: Diagnostic) -> list[tuple[str, str]] | None:
    """The points where a shape error claims nothing builds, as (parameter, value) pairs to
    set; None for errors that claim nothing about shapes."""
    if d.message.startswith(("the network must end in a vector", "the network ends with")):
        return []
    match = CLAIM.search(d.message)
    if match is None:
        return None
    conditions = match.group(1)
    if conditions is None:
        return []
    pairs = []
    for condition in conditions.split(" and "):
        name, value = re.fullmatch(r"(\S+) (?:>=|is) ([^,]+)(?:, its smallest value)?",
                                   condition).groups()  # type: ignore[union-attr]
        pairs.append((name, value))
    return pairs


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_spaces(), st.randoms(use_true_random=False))
def test_random_small_spaces(text: str, rng: random.Random) -> None:
    unit = loader.load_text(text, "g.arch")
    try:
        compiler.check_unit(unit)
    except ArchError as error:
        assert_clean_failure(error)
        # Shape errors claim that nothing builds (where they say): try a few such points.
        try:
            program = lower.lower(unit)
        except ArchError:
            return
        for d in error.diagnostics:
            region = claimed_region(d)
            if region is None:
                continue
            for _ in range(10):
                point = random_point(program, rng)
                for name, value in region:
                    old = point[name]
                    point[name] = value if isinstance(old, str) else (
                        value == "true" if isinstance(old, bool) else int(value)
                    )
                assert not builds(program, point), (d.message, point)
        return
    program = lower.lower(unit)
    names = [p.name for p in program.parameters]
    assert len(set(names)) == len(names)
    assert len({p.ax_name for p in program.parameters}) == len(names)
    # Everything searchable feeds the network (or the trainer).
    used = check.used_parameters(program)
    assert all(p.name in used or p.name.startswith("train.") for p in program.searchable)


def test_the_space_generator_makes_passing_and_failing_spaces() -> None:
    """Guard against a generator whose spaces all fail (the property would test little)."""
    outcomes = {"ok": 0, "error": 0}

    @settings(max_examples=40, deadline=None, database=None, derandomize=True)
    @given(small_spaces())
    def sample(text: str) -> None:
        try:
            compiler.check_unit(loader.load_text(text, "g.arch"))
            outcomes["ok"] += 1
        except ArchError:
            outcomes["error"] += 1

    sample()
    assert outcomes["ok"] >= 5 and outcomes["error"] >= 5, outcomes
