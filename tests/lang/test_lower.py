"""Tests of lowering (`sparsemod_dsl.lang.lower`): names, parameters, conditions, errors.

Expected names follow the naming rules in the module docstring of `lower`;
expected error positions are found in the test's own source text, never
copied from the implementation's output.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers import at, src
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsemod_dsl.errors import ArchError, Diagnostic
from sparsemod_dsl.lang import ir, loader, lower
from sparsemod_dsl.lang.ir import Condition
from sparsemod_dsl.lang.lower import limits

STDLIB = Path(__file__).resolve().parents[2] / "stdlib"
PROGRAMS = sorted(p for p in STDLIB.glob("*.arch") if not lower.is_library(loader.load(p)))
HEADER = "arch t(input: image(1, 16, 16), classes = 10)\n"
AX_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")




def build(text: str, file: str = "t.arch", **kwargs: object) -> ir.Program:
    """Lower dedented source."""
    return lower.lower(loader.load_text(src(text), file), **kwargs)  # type: ignore[arg-type]


def fail(text: str, file: str = "t.arch", **kwargs: object) -> tuple[Diagnostic, ...]:
    """The diagnostics lowering reports for dedented source."""
    with pytest.raises(ArchError) as info:
        build(text, file, **kwargs)
    return info.value.diagnostics




def where(diagnostic: Diagnostic | tuple[object, ...]) -> tuple[int, int]:
    span = diagnostic.span if isinstance(diagnostic, Diagnostic) else diagnostic[0]
    return span.line, span.column  # type: ignore[attr-defined]


def params(program: ir.Program) -> dict[str, ir.Parameter]:
    return {p.name: p for p in program.parameters}




def layer(program: ir.Program, name: str) -> ir.Layer:
    return next(x for x in list(ir.layers(program.network)) if x.name == name)


# --- names -----------------------------------------------------------------------------


def test_train_parameters_are_named_train_dot_key() -> None:
    program = build(HEADER + """
        train {
            batch_size = int[2..64]
            learning_rate = float[0.0001..0.01] log
        }
        network { relu }
    """)
    found = params(program)
    assert set(found) == {"train.batch_size", "train.learning_rate"}
    assert found["train.batch_size"].domain == ir.IntDomain(2, 64, 1, False, 2)
    assert found["train.learning_rate"].domain.log  # type: ignore[union-attr]


def test_repeat_instances_are_indexed_from_one_with_conditions_beyond_the_minimum() -> None:
    program = build(HEADER + """
        network {
            repeat block = int[2..4] {
                f = int[1..8]
                conv2d(f, 3)
            }
        }
    """)
    found = params(program)
    assert list(found) == ["block", "block[1].f", "block[2].f", "block[3].f", "block[4].f"]
    assert found["block"].when == ()
    # Instances up to the smallest count always exist; the others exist when the count reaches them.
    assert found["block[1].f"].when == found["block[2].f"].when == ()
    assert found["block[3].f"].when == (Condition("block", ">=", 3),)
    assert found["block[4].f"].when == (Condition("block", ">=", 4),)
    (repeat,) = program.network
    assert isinstance(repeat, ir.Repeat) and len(repeat.instances) == 4
    assert repeat.count == ir.ParamRef("block")
    assert layer(program, "block[3].conv2d").arg("filters") == ir.ParamRef("block[3].f")


def test_repeat_count_choice_uses_its_smallest_and_largest_values() -> None:
    program = build(
        HEADER + "network {\n repeat r = choice[2, 5] { dropout(p = float[0.1..0.2]) }\n}\n"
    )
    found = params(program)
    assert [n for n in found if n.endswith(".p")] == [f"r[{i}].dropout.p" for i in range(1, 6)]
    assert found["r[2].dropout.p"].when == ()
    assert found["r[3].dropout.p"].when == (Condition("r", ">=", 3),)


def test_fixed_repeat_count_is_a_fixed_parameter_without_conditions() -> None:
    program = build(HEADER + "network {\n repeat r = 3 { x = int[1..4]\n conv2d(x, 3) }\n}\n")
    found = params(program)
    assert found["r"].domain == ir.FixedDomain(3) and not found["r"].searchable
    assert all(found[f"r[{i}].x"].when == () for i in (1, 2, 3))


def test_nested_repeats_name_both_indices_and_combine_conditions() -> None:
    program = build(HEADER + """
        network {
            repeat block = int[1..2] {
                repeat layer = int[1..2] {
                    conv2d(filters = int[1..8], kernel = 3)
                }
            }
        }
    """)
    found = params(program)
    assert "block[2].layer[2].conv2d.filters" in found
    assert found["block[2].layer"].when == (Condition("block", ">=", 2),)
    assert found["block[2].layer[2].conv2d.filters"].when == (
        Condition("block", ">=", 2),
        Condition("block[2].layer", ">=", 2),
    )
    assert found["block[1].layer[1].conv2d.filters"].when == ()


def test_inline_argument_domains_are_named_scope_label_argument() -> None:
    program = build(HEADER + """
        network {
            conv2d(int[1..8], kernel = choice[3, 5])
            head: conv2d(filters = int[1..8], kernel = 3)
            repeat block = int[1..2] {
                dropout(p = float[0.1..0.5])
            }
        }
    """)
    found = params(program)
    assert {"conv2d.filters", "conv2d.kernel", "head.filters", "block[1].dropout.p"} <= set(found)
    assert found["conv2d.kernel"].domain == ir.ChoiceDomain((3, 5), False, 3)
    assert layer(program, "head").arg("filters") == ir.ParamRef("head.filters")
    assert layer(program, "head").arg("kernel") == ir.Const(3)


def test_layer_defaults_are_filled_in() -> None:
    program = build(HEADER + "network {\n conv2d(8, 3)\n maxpool\n}\n")
    conv = layer(program, "conv2d")
    assert [name for name, _ in conv.args] == ["filters", "kernel", "stride", "padding", "groups",
                                               "bias", "dilation"]
    assert conv.arg("padding") == ir.Const("same") and conv.arg("stride") == ir.Const(1)
    # maxpool's stride has no default: it is left out (it follows the window size).
    assert [name for name, _ in layer(program, "maxpool").args] == ["size"]


BLOCK = """
    block unit(filters = int[1..64], kernel = 3) {
        \"\"\"A conv unit.\"\"\"
        width = 4
        hidden = filters * 2
        conv2d(hidden, kernel)
        choose act {
            plain: relu
            clipped: relu6
        }
        optional drop {
            dropout(p = float[0.1..0.5])
        }
    }
"""


def test_unlabelled_block_call_adds_nothing_to_the_scope() -> None:
    program = build(HEADER + BLOCK + "network {\n unit\n}\n")
    assert set(params(program)) == {"filters", "width", "act", "drop", "dropout.p"}
    assert layer(program, "conv2d").arg("filters") == ir.BinOp(
        "*", ir.ParamRef("filters"), ir.Const(2)
    )


def test_labelled_block_call_prefixes_its_label() -> None:
    program = build(HEADER + BLOCK + "network {\n first: unit\n repeat r = 2 { u: unit }\n}\n")
    found = params(program)
    assert {"first.filters", "first.act", "first.dropout.p"} <= set(found)
    assert {"r[1].u.filters", "r[2].u.width", "r[2].u.dropout.p"} <= set(found)
    assert layer(program, "first.conv2d").arg("kernel") == ir.Const(3)


def test_choose_and_optional_make_parameters_and_conditions() -> None:
    program = build(HEADER + BLOCK + "network {\n u: unit\n}\n")
    found = params(program)
    act = found["u.act"].domain
    assert act == ir.ChoiceDomain(("plain", "clipped"), False, "plain")
    drop = found["u.drop"].domain
    assert drop == ir.ChoiceDomain((False, True), True, False)
    assert found["u.dropout.p"].when == (Condition("u.drop", "==", True),)
    choose = next(n for n in program.network if isinstance(n, ir.Choose))
    assert choose.param == "u.act" and [a for a, _ in choose.alternatives] == ["plain", "clipped"]


def test_choose_alternatives_condition_their_parameters() -> None:
    program = build(HEADER + """
        network {
            choose kind default "wide" {
                narrow: conv2d(filters = int[1..8], kernel = 3)
                wide: big: conv2d(filters = int[8..64], kernel = 3)
            }
            optional pool default true { maxpool }
        }
    """)
    found = params(program)
    assert found["kind"].domain == ir.ChoiceDomain(("narrow", "wide"), False, "wide")
    assert found["conv2d.filters"].when == (Condition("kind", "==", "narrow"),)
    assert found["big.filters"].when == (Condition("kind", "==", "wide"),)
    assert found["pool"].domain.default is True  # type: ignore[union-attr]


def test_repeat_inside_choose_inherits_the_alternative_condition() -> None:
    program = build(HEADER + """
        network {
            choose kind {
                deep: repeat r = int[1..2] { conv2d(filters = int[1..8], kernel = 3) }
                flat: relu
            }
        }
    """)
    found = params(program)
    assert found["r"].when == (Condition("kind", "==", "deep"),)
    assert found["r[2].conv2d.filters"].when == (
        Condition("kind", "==", "deep"),
        Condition("r", ">=", 2),
    )


def test_block_call_arguments_override_defaults() -> None:
    program = build(HEADER + BLOCK + """
        network {
            outer = int[4..8]
            a: unit(filters = 16)
            b: unit(filters = choice[8, 16], kernel = int[1..3])
            c: unit(outer)
        }
    """)
    found = params(program)
    # A fixed value: no parameter; a domain: a parameter named in the callee's scope.
    assert "a.filters" not in found
    assert layer(program, "a.conv2d").arg("filters") == ir.BinOp("*", ir.Const(16), ir.Const(2))
    assert found["b.filters"].domain == ir.ChoiceDomain((8, 16), False, 8)
    assert found["b.kernel"].domain == ir.IntDomain(1, 3, 1, False, 1)
    assert layer(program, "b.conv2d").arg("kernel") == ir.ParamRef("b.kernel")
    # A reference to an outer parameter is shared: no new parameter.
    assert "c.filters" not in found
    assert layer(program, "c.conv2d").arg("filters") == ir.BinOp(
        "*", ir.ParamRef("outer"), ir.Const(2)
    )


def test_derived_values_are_substituted_and_fixed_literals_are_not_searchable() -> None:
    program = build(HEADER + """
        network {
            base = int[2..8]
            width = 16
            double = base * 2
            conv2d(max(double, width // 2) - 1, 3)
        }
    """)
    found = params(program)
    assert "double" not in found
    assert found["width"].domain == ir.FixedDomain(16)
    assert not found["width"].searchable and found["base"].searchable
    assert [p.name for p in program.searchable] == ["base"]
    assert layer(program, "conv2d").arg("filters") == ir.BinOp(
        "-",
        ir.Func(
            "max",
            (
                ir.BinOp("*", ir.ParamRef("base"), ir.Const(2)),
                ir.BinOp("//", ir.ParamRef("width"), ir.Const(2)),
            ),
        ),
        ir.Const(1),
    )


def test_references_by_path_and_builtins() -> None:
    program = build(HEADER + """
        network {
            repeat block = int[1..2] { conv2d(filters = int[1..8], kernel = 3) }
            conv2d(block[1].conv2d.filters + in_channels, 1)
            linear(classes)
            constraint block[2].conv2d.filters >= block[1].conv2d.filters
        }
    """)
    conv = list(ir.layers(program.network))[-2]
    assert conv.arg("filters") == ir.BinOp(
        "+", ir.ParamRef("block[1].conv2d.filters"), ir.Builtin("in_channels")
    )
    assert list(ir.layers(program.network))[-1].arg("units") == ir.Builtin("classes")
    (constraint,) = program.constraints
    assert constraint.op == ">=" and constraint.left == ir.ParamRef("block[2].conv2d.filters")


def test_program_metadata() -> None:
    program = build('"""  A doc.  """\n' + HEADER + BLOCK + "network { relu }\n", file="x.arch")
    assert (program.name, program.input, program.classes) == (
        "t", ir.InputSpec("image", (1, 16, 16)), 10
    )
    assert program.doc == "A doc." and program.blocks == ("unit",) and program.file == "x.arch"
    overridden = build(HEADER + "network { relu }\n", input_shape=(3, 32, 32), classes=4)
    assert overridden.input.shape == (3, 32, 32) and overridden.classes == 4


# --- readable and Ax names ----------------------------------------------------------------

identifiers = st.from_regex(r"[A-Za-z](_?[A-Za-z0-9]){0,6}", fullmatch=True)
segments = st.tuples(identifiers, st.none() | st.integers(1, 64)).map(
    lambda s: s[0] if s[1] is None else f"{s[0]}[{s[1]}]"
)
readable_names = st.lists(segments, min_size=1, max_size=5).map(".".join)


@settings(max_examples=150, deadline=None)
@given(readable_names)
def test_ax_name_and_readable_name_are_inverse(name: str) -> None:
    ax = ir.ax_name(name)
    assert AX_NAME.match(ax), ax
    assert ir.readable_name(ax) == name


@settings(max_examples=50, deadline=None)
@given(readable_names, readable_names)
def test_ax_name_is_one_to_one(a: str, b: str) -> None:
    assert (ir.ax_name(a) == ir.ax_name(b)) == (a == b)


@pytest.mark.parametrize("path", PROGRAMS, ids=lambda p: p.name)
def test_stdlib_names_map_to_unique_legal_ax_names(path: Path) -> None:
    program = lower.lower(loader.load(path))
    names = [p.name for p in program.parameters]
    axes = [p.ax_name for p in program.parameters]
    assert len(set(names)) == len(names) and len(set(axes)) == len(axes)
    for name, ax in zip(names, axes):
        assert AX_NAME.match(ax), ax
        assert ir.readable_name(ax) == name


@pytest.mark.parametrize(
    "file, count",
    [("sparse_cnn.arch", 43), ("sparse_cnn_seq.arch", 44), ("sparse_rnn.arch", 12),
     ("sparse_cnn_rnn.arch", 64)],
)
def test_stdlib_parameter_counts(file: str, count: int) -> None:
    program = lower.lower(loader.load(STDLIB / file))
    assert len(program.searchable) == count
    # The file's doc string states the same number.
    assert f"{count} searchable parameters" in " ".join(program.doc.split())
    assert all(p.searchable for p in program.parameters)


def test_sparse_cnn_names() -> None:
    found = params(lower.lower(loader.load(STDLIB / "sparse_cnn.arch")))
    assert {
        "train.batch_size", "block", "block[2].drop", "block[2].rate", "block[2].layer",
        "block[2].layer[3].filters", "block[2].layer[3].type",
        "block[2].layer[3].downconv2d.ratio", "block[1].downsample",
        "fc", "fc[2].linear.units", "fc[2].dropout.p",
    } <= set(found)
    assert found["block[2].layer[3].downconv2d.ratio"].when == (
        Condition("block", ">=", 2),
        Condition("block[2].layer", ">=", 3),
        Condition("block[2].layer[3].type", "==", "downsampled"),
    )
    assert found["fc[1].linear.units"].when == (Condition("fc", ">=", 1),)


# --- errors ----------------------------------------------------------------------------------


def test_undefined_name_with_suggestion() -> None:
    text = HEADER + "network {\n filters = int[1..8]\n conv2d(filtres, 3)\n}\n"
    (d,) = fail(text)
    assert "'filtres' is not defined; did you mean 'filters'?" in d.message
    assert where(d) == at(text, "filtres")
    assert d.span.file == "t.arch"


def test_duplicate_name_in_one_scope() -> None:
    text = HEADER + "network {\n a = int[1..8]\n a = int[1..9]\n conv2d(a, 3)\n}\n"
    (d,) = fail(text)
    assert "'a' is already defined in this scope" in d.message
    assert where(d) == at(text, "a =", 2)
    (note,) = d.notes
    assert where(note) == at(text, "a =", 1)


def test_same_name_in_other_scopes_is_fine() -> None:
    program = build(HEADER + """
        network {
            a = int[1..8]
            repeat r = 2 { a = int[1..4]
                conv2d(a, 3) }
            conv2d(a, 3)
        }
    """)
    assert {"a", "r[1].a", "r[2].a"} <= set(params(program))
    assert layer(program, "r[2].conv2d").arg("filters") == ir.ParamRef("r[2].a")
    assert list(ir.layers(program.network))[-1].arg("filters") == ir.ParamRef("a")


def test_two_unlabelled_layers_with_one_readable_name() -> None:
    text = HEADER + "network {\n conv2d(int[1..8], 3)\n conv2d(int[2..8], 3)\n}\n"
    (d,) = fail(text)
    assert "two parameters are named 'conv2d.filters'" in d.message and "label" in d.message
    assert where(d) == at(text, "int[2..8]")
    assert where(d.notes[0]) == at(text, "int[1..8]")
    build(text.replace("conv2d(int[2", "second: conv2d(int[2"))  # a label fixes it


def test_unlabelled_block_called_twice_points_at_the_calls() -> None:
    text = HEADER + "block b(f = int[1..8]) { conv2d(f, 3) }\nnetwork {\n b\n b\n}\n"
    (d,) = fail(text)
    assert "two parameters are named 'f'" in d.message
    line, column = at(text, " b\n", 2)
    assert where(d) == (line, column + 1)  # the second call
    line, column = at(text, " b\n", 1)
    assert where(d.notes[0]) == (line, column + 1)
    build(text.replace(" b\n b\n", " one: b\n two: b\n"))


def test_unknown_layer_or_block_with_suggestion() -> None:
    text = HEADER + "block conv_unit { relu }\nnetwork {\n conv2dd(8, 3)\n conv_unti\n}\n"
    first, second = fail(text)
    assert "unknown layer or block 'conv2dd'; did you mean 'conv2d'?" in first.message
    assert where(first) == at(text, "conv2dd")
    assert "unknown layer or block 'conv_unti'; did you mean 'conv_unit'?" in second.message
    assert where(second) == at(text, "conv_unti")


@pytest.mark.parametrize(
    "call, needle, message",
    [
        ("conv2d(8, 3, strid = 2)", "strid",
         "'conv2d' has no argument 'strid'; did you mean 'stride'?"),
        ("conv2d(8, 3, kernel = 5)", "kernel", "argument 'kernel' is given twice"),
        ("conv2d(8)", "conv2d", "'conv2d' needs the argument 'kernel'"),
        ("conv2d(filters = 8, 3)", "3)", "positional arguments come before keyword arguments"),
        ("dropout(0.1, 0.2)", "0.2", "'dropout' takes at most 1 argument"),
        ("relu(1)", "1)", "'relu' takes no arguments"),
        ("conv2d(float[1.0..8.0], 3)", "float[", "'filters' takes an int, not a float"),
        ('conv2d(8, "three")', '"three"', "'kernel' takes an int, not a string"),
        ("conv2d(8, 3, padding = true)", "true", "'padding' takes an int or a string, not a bool"),
        ("conv2d(8, mx(1, 3))", "mx(", "unknown function 'mx'; did you mean 'max'?"),
        ('conv2d(8, 3 * "a")', '"a"', "arithmetic needs numbers, but this is a string"),
    ],
)
def test_argument_errors(call: str, needle: str, message: str) -> None:
    text = HEADER + f"network {{\n {call}\n}}\n"
    (d,) = fail(text)  # exactly one: no follow-on errors
    assert message in d.message
    assert where(d) == at(text, needle)


def test_wrong_type_from_a_parameter() -> None:
    text = HEADER + "network {\n x = float[1.0..8.0]\n conv2d(x, 3)\n}\n"
    (d,) = fail(text)
    assert "'filters' takes an int, not a float" in d.message
    assert where(d) == at(text, "x, 3")


def test_block_argument_errors() -> None:
    text = HEADER + """
        block b(f = int[1..8]) { conv2d(f, 3) }
        block plain { relu }
        network {
            b(g = 2)
            b(1, 2)
            plain(1)
            x: b(f = nothing)
        }
    """
    messages = [(d.message, where(d)) for d in fail(text)]
    assert messages == [
        ("block 'b' has no argument 'g' (it takes: f)", at(text, "g = 2")),
        ("block 'b' takes at most 1 argument", at(text, "2)", 2)),
        ("block 'plain' takes no arguments", at(text, "1)")),
        ("'nothing' is not defined", at(text, "nothing")),
    ]


def test_required_block_formal() -> None:
    text = HEADER + "block b(f, k = 3) { conv2d(f, k) }\nnetwork {\n one: b(8)\n two: b\n}\n"
    (d,) = fail(text)  # only the missing argument: the body's use of `f` is no second error
    assert "'b' needs the argument 'f'" in d.message
    assert where(d) == at(text, "b\n")
    program = build(text.replace("two: b\n", "two: b(k = 5, f = int[1..4])\n"))
    assert layer(program, "one.conv2d").args[:2] == (
        ("filters", ir.Const(8)), ("kernel", ir.Const(3))
    )
    assert set(params(program)) == {"two.f"}


def test_block_with_a_bad_default_reports_it_once() -> None:
    text = HEADER + "block b(f = int[8..1]) { conv2d(f, 3) }\nnetwork {\n b\n}\n"
    (d,) = fail(text)
    assert "inverted range" in d.message and where(d) == at(text, "int[8..1]")


def test_recursion() -> None:
    text = HEADER + "block b { relu\n b }\nnetwork {\n b\n}\n"
    (d,) = fail(text)
    assert "block 'b' calls itself" in d.message
    assert where(d) == at(text, "b }")


def test_mutual_recursion_names_the_cycle() -> None:
    text = HEADER + "block a { b }\nblock b { a }\nnetwork {\n a\n}\n"
    (d,) = fail(text)
    assert "block 'a' calls itself through a -> b -> a" in d.message
    assert where(d) == at(text, "a }")


def test_import_cycle(tmp_path: Path) -> None:
    (tmp_path / "a.arch").write_text("import b\nblock x { relu }\n")
    (tmp_path / "b.arch").write_text("block y { relu }\n\nimport a\n")
    (tmp_path / "main.arch").write_text(HEADER + "import a\nnetwork {\n x\n}\n")
    with pytest.raises(ArchError) as info:
        lower.lower(loader.load(tmp_path / "main.arch"))
    (d,) = info.value.diagnostics
    assert d.message == "import cycle: a.arch -> b.arch -> a.arch"
    assert Path(d.span.file).name == "b.arch" and where(d) == (3, 1)


def test_self_import(tmp_path: Path) -> None:
    (tmp_path / "a.arch").write_text("import a\nblock x { relu }\n")
    with pytest.raises(ArchError) as info:
        loader.load(tmp_path / "a.arch")
    assert [d.message for d in info.value.diagnostics] == ["import cycle: a.arch -> a.arch"]


def test_imports_resolve_beside_the_file_then_in_the_stdlib(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "mine.arch").write_text("block mine(f = int[1..8]) { conv2d(f, 3) }\n")
    (tmp_path / "main.arch").write_text(
        HEADER + 'import "lib/mine.arch"\nimport sparse_blocks\nnetwork {\n mine\n'
        " r: sparse_conv_layer\n}\n"
    )
    program = lower.lower(loader.load(tmp_path / "main.arch"))
    assert {"f", "r.filters", "r.type"} <= set(params(program))
    assert set(program.blocks) == {"mine", "sparse_conv_layer", "sparse_conv_block", "recurrent"}


def test_missing_import(tmp_path: Path) -> None:
    text = HEADER + 'import nowhere\nimport "sub/none.arch"\nnetwork { relu }\n'
    first, second = fail(text, file=str(tmp_path / "t.arch"))
    assert first.message == "cannot find 'nowhere.arch' beside this file or in the stdlib"
    assert where(first) == at(text, "import nowhere")
    assert second.message == "cannot find 'sub/none.arch' beside this file"


def test_block_with_a_layer_name() -> None:
    text = HEADER + "block relu { batchnorm }\nnetwork { relu }\n"
    (d,) = fail(text)
    assert "block 'relu' has the name of a built-in layer" in d.message
    assert where(d) == at(text, "block relu")


def test_block_defined_twice(tmp_path: Path) -> None:
    (tmp_path / "lib.arch").write_text("block b { relu }\n")
    text = HEADER + "import lib\nblock b { relu6 }\nnetwork { b }\n"
    (d,) = fail(text, file=str(tmp_path / "t.arch"))
    assert "block 'b' is defined twice" in d.message


@pytest.mark.parametrize("name", ["a__b", "_x", "x_"])
def test_bad_identifiers(name: str) -> None:
    text = HEADER + f"network {{\n {name} = int[1..8]\n conv2d({name}, 3)\n}}\n"
    (d,) = fail(text)  # the name is still declared: its use is no second error
    assert f"'{name}': names may not start or end with '_' nor contain '__'" in d.message
    assert where(d) == at(text, name)


def test_bad_identifiers_in_labels_repeats_and_blocks() -> None:
    text = HEADER + "block b__c { relu }\nnetwork {\n x_: relu\n repeat _r = 2 { relu }\n}\n"
    assert [where(d) for d in fail(text)] == [
        at(text, "block b__c"), at(text, "x_"), at(text, "repeat")
    ]


@pytest.mark.parametrize(
    "count, message",
    [
        ("int[1..65]", f"a repeat has at most {limits.MAX_REPEAT} instances, not 65"),
        ("100", f"a repeat has at most {limits.MAX_REPEAT} instances, not 100"),
        ("int[-2..3]", "a repeat count cannot be negative"),
        ("2.5", "a repeat count is an integer"),
        ("float[1.0..3.0]", "a repeat count is an integer"),
        ('choice["a", "b"]', "a repeat count is an integer"),
    ],
)
def test_bad_repeat_counts(count: str, message: str) -> None:
    text = HEADER + f"network {{\n repeat r = {count} {{ relu }}\n}}\n"
    (d,) = fail(text)
    assert message in d.message
    assert where(d) == at(text, count)


def test_repeat_count_at_the_limit_is_fine() -> None:
    program = build(HEADER + f"network {{\n repeat r = {limits.MAX_REPEAT} {{ relu }}\n}}\n")
    (repeat,) = program.network
    assert isinstance(repeat, ir.Repeat) and len(repeat.instances) == limits.MAX_REPEAT


def test_space_too_big_stops_with_one_error() -> None:
    text = HEADER + """
        network {
            repeat a = 64 { repeat b = 64 {
                x = int[1..8]
                y = int[1..8]
                conv2d(x + y, 3)
            } }
        }
    """
    (d,) = fail(text)
    assert f"more than {limits.MAX_PARAMETERS} parameters" in d.message
    assert d.span.line in (at(text, "x =")[0], at(text, "y =")[0])


def test_too_many_layers() -> None:
    text = HEADER + "network {\n repeat a = 64 { repeat b = 64 { relu relu relu relu relu } }\n}\n"
    (d,) = fail(text)
    assert f"more than {limits.MAX_LAYERS} layers" in d.message


def test_train_section_errors() -> None:
    text = HEADER + """
        train {
            learning_rat = float[0.1..0.2]
            batch_size = float[1.0..2.0]
            relu
        }
        network { relu }
    """
    first, second, third = fail(text)
    assert "unknown training hyperparameter 'learning_rat'; did you mean 'learning_rate'?" in (
        first.message
    )
    assert where(first) == at(text, "learning_rat")
    assert "'batch_size' takes an int, not a float" in second.message
    assert where(second) == at(text, "float[1.0")
    assert "the train section holds only `name = value` lines" in third.message
    assert where(third) == at(text, "relu")


@pytest.mark.parametrize(
    "header, needle, message",
    [
        ("arch t(classes = 10)", "arch", "the header needs an input: `input: image|sequence|vector`"),
        ("arch t(input: picture, classes = 10)", "input",
         "write `input: image`, `input: sequence`"),
        ("arch t(input: image(8, 8), classes = 10)", "input", "an image shape is (C, H, W)"),
        ("arch t(input: sequence(1, 8, 8), classes = 10)", "input", "a sequence shape is (T, F)"),
        ("arch t(input: image(0, 8, 8), classes = 10)", "input", "each at least 1"),
        ("arch t(input: image, classes = 1)", "classes", "a classifier needs at least 2 classes"),
        ("arch t(input: image, clases = 10)", "clases",
         "unknown header parameter 'clases'; did you mean 'classes'?"),
        ("arch t(input: image, input: image)", "input: image)", "'input' is given twice"),
        ("arch t(input: image, classes: image)", "classes", "write `classes` or `classes = N`"),
    ],
)
def test_header_errors(header: str, needle: str, message: str) -> None:
    text = header + "\nnetwork { relu }\n"
    (d,) = fail(text)
    assert message in d.message
    assert where(d) == at(text, needle)


def test_input_override_of_the_wrong_rank() -> None:
    text = "arch t(input: sequence, classes = 3)\nnetwork { relu }\n"
    (d,) = fail(text, input_shape=(1, 8, 8))
    assert "this network takes sequence input, but the given shape 1x8x8 has 3 dimensions" in (
        d.message
    )


def test_header_without_shape_is_fine() -> None:
    program = build("arch t(input: sequence, classes)\nnetwork { relu }\n")
    assert program.input == ir.InputSpec("sequence", None) and program.classes is None


def test_empty_file() -> None:
    (d,) = fail("")
    assert "the file is empty" in d.message and where(d) == (1, 1)
    (d,) = fail("# only a comment\n\n")
    assert "the file is empty" in d.message


def test_library_files() -> None:
    unit = loader.load_text(src(BLOCK) + "block other { relu }\n", "lib.arch")
    assert lower.is_library(unit)
    assert lower.check_library(unit) == 2
    assert lower.check_library(loader.load(STDLIB / "sparse_blocks.arch")) == 3
    assert not lower.is_library(loader.load(STDLIB / "sparse_cnn.arch"))


def test_library_blocks_are_checked_on_their_own() -> None:
    text = "block b(f = int[1..8]) {\n conv2d(g, 3)\n}\nconstraint 1 < 2\n"
    with pytest.raises(ArchError) as info:
        lower.check_library(loader.load_text(text, "lib.arch"))
    first, second = info.value.diagnostics
    assert "'g' is not defined" in first.message and where(first) == at(text, "g, 3")
    assert "a library file holds only imports and blocks" in second.message
    assert where(second) == at(text, "constraint")


def test_lowering_a_library_says_what_is_missing() -> None:
    (d,) = fail("block b { relu }\n")
    assert "no `arch` header and `network`" in d.message
    (d,) = fail(HEADER)
    assert "the file has an `arch` header but no `network` section" in d.message
    text = "network { relu }\n"
    (d,) = fail(text)
    assert "a `network` needs an `arch NAME(input: image|sequence|vector, classes)` header" in d.message


def test_uncalled_blocks_are_checked_too() -> None:
    text = HEADER + "block unused { conv2d(missing, 3) }\nnetwork { relu }\n"
    (d,) = fail(text)
    assert "'missing' is not defined" in d.message and where(d) == at(text, "missing")


def test_misplaced_doc_strings() -> None:
    text = HEADER + '"""Late file doc."""\nblock b {\n relu\n """Late block doc."""\n}\n' + (
        "network { b }\n"
    )
    first, second = fail(text)
    assert "a doc string must come first in the file" in first.message
    assert where(first) == at(text, '"""Late file')
    assert "a doc string must come first in a block" in second.message
    assert where(second) == at(text, '"""Late block')


def test_sections_at_most_once_and_in_order() -> None:
    text = HEADER + HEADER + (
        "network { relu }\ntrain { batch_size = 8 }\ntrain { batch_size = 8 }\n"
        "network { relu }\nimport sparse_blocks\n"
    )
    found = {(d.message.split(";")[0], where(d)) for d in fail(text)}
    assert found == {
        ("a file has at most one `arch` header", at(text, "arch", 2)),
        ("a file has at most one `train` section", at(text, "train", 2)),
        ("a file has at most one `network` section", at(text, "network", 2)),
        ("imports come before sections and blocks", at(text, "import")),
    }


def test_two_network_sections_note_the_first() -> None:
    text = HEADER + "network { relu }\nnetwork { relu6 }\n"
    (d,) = fail(text)
    assert where(d) == at(text, "network", 2) and where(d.notes[0]) == at(text, "network")


def test_domain_errors_are_reported_where_written() -> None:
    text = HEADER + """
        network {
            a = int[8..1]
            b = int[1..8] default 9
            c = choice[1, "x"]
            d = int[1..8] step 3
            e = float[0.0..1.0] log
        }
    """
    messages = [(d.message, where(d)) for d in fail(text)]
    assert messages == [
        ("inverted range: 8 is above 1", at(text, "int[8..1]")),
        ("default 9 is not an integer in int[1..8] on the step", at(text, "9")),
        ("choice values must all have one type: int, str", at(text, "choice")),
        ("step 3 does not fit the range: 8 is not 1 plus a multiple of 3", at(text, "3\n")),
        ("a log-scaled range must start above 0, not at 0", at(text, "float")),
    ]


def test_a_wrong_value_is_reported_once() -> None:
    text = HEADER + "network {\n a = int[8..1]\n conv2d(a, 3)\n repeat r = a { relu }\n}\n"
    (d,) = fail(text)  # the uses of `a` are no further errors
    assert "inverted range" in d.message


def test_choose_and_optional_errors() -> None:
    text = HEADER + """
        network {
            choose one { only: relu }
            choose twice { a: relu
                a: relu6 }
            choose bad default "c" { a: relu
                b: relu6 }
            optional o default 3 { relu }
        }
    """
    messages = [(d.message, where(d)) for d in fail(text)]
    assert messages == [
        ("a choose needs at least two alternatives", at(text, "choose one")),
        ("alternative 'a' is listed twice", at(text, "a: relu6")),
        ("the default must name one of the alternatives", at(text, '"c"')),
        ("the default of an optional is true or false", at(text, "3 {")),
    ]


def test_constraints_compare_numbers() -> None:
    text = HEADER + 'network {\n a = int[1..8]\n conv2d(a, 3)\n constraint a >= "x"\n}\n'
    (d,) = fail(text)
    assert d.message == "constraints compare numbers" and where(d) == at(text, '"x"')


def test_all_errors_are_reported_at_once() -> None:
    text = HEADER + """
        network {
            conv2d(undefined_one, 3)
            conv2dd(8, 3)
            dropout(q = 0.5)
            repeat r = 99 { relu }
        }
    """
    assert len(fail(text)) == 4
