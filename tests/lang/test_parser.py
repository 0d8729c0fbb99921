"""Tests of the `.arch` parser: one construct at a time, syntax errors, fuzzing."""

from __future__ import annotations

import textwrap

import pytest
from hypothesis import HealthCheck, given, settings
from strategies import mutated_sources

from sparsemod_dsl.errors import ArchError
from sparsemod_dsl.lang import syntax as s
from sparsemod_dsl.lang.parser import MAX_NESTING, parse


def ref(text: str) -> s.Ref:
    """`a.b[2]` as a `Ref`."""
    segments = []
    for part in text.split("."):
        name, _, index = part.partition("[")
        segments.append(s.Segment(name, int(index[:-1]) if index else None))
    return s.Ref(tuple(segments))


def n(value: int | float) -> s.Number:
    return s.Number(value)


def items(text: str) -> tuple[s.Item, ...]:
    return parse(textwrap.dedent(text)).items


def body(text: str, section: str = "network") -> tuple[s.Statement, ...]:
    """The statements of `SECTION { TEXT }`."""
    (item,) = parse(f"{section} {{\n{textwrap.dedent(text)}\n}}\n").items
    assert isinstance(item, (s.NetworkSection, s.TrainSection))
    return item.body.stmts


def value(text: str) -> s.Value:
    """The value of `x = TEXT`."""
    (param,) = body(f"x = {text}", "train")
    assert isinstance(param, s.Param)
    return param.value


def error(text: str) -> tuple[int, int, str]:
    """Line, column and message of the first diagnostic `text` raises."""
    with pytest.raises(ArchError) as caught:
        parse(text, "bad.arch")
    first = caught.value.diagnostics[0]
    assert first.span.file == "bad.arch"
    return first.span.line, first.span.column, first.message


# --- file level ---------------------------------------------------------------------------


def test_empty_file() -> None:
    assert parse("") == s.Module(())
    assert parse("\n\n  \n") == s.Module(())


def test_file_name_is_kept() -> None:
    module = parse("network {}", "a/b.arch")
    assert module.file == "a/b.arch"
    assert module.items[0].span == s.Span("a/b.arch", 1, 1, 1, 11)


def test_docstring() -> None:
    assert items('"""A net.\n\n  Second paragraph."""') == (
        s.Docstring("A net.\n\n  Second paragraph."),
    )
    assert items('""""""') == (s.Docstring(""),)


def test_arch_header() -> None:
    (header,) = items("arch kws(input: image(1, 49, 10), classes = 12, seq: audio, n)")
    assert header == s.ArchHeader(
        "kws",
        (
            s.ArchParam("input", "image", (1, 49, 10)),
            s.ArchParam("classes", value=12),
            s.ArchParam("seq", "audio"),
            s.ArchParam("n"),
        ),
    )
    assert items("arch empty()") == (s.ArchHeader("empty", ()),)


def test_imports() -> None:
    assert items('import blocks\nimport "my dir/x.arch"') == (
        s.Import("blocks"),
        s.Import("my dir/x.arch", is_path=True),
    )


def test_sections() -> None:
    assert items("train {}\nnetwork {\n}") == (
        s.TrainSection(s.Body()),
        s.NetworkSection(s.Body()),
    )


def test_block_with_formals() -> None:
    (block,) = items("""
        block conv(filters = int[1..100], kernel = 3) {
            \"\"\"A conv layer.\"\"\"
            conv2d(filters, kernel)
        }
    """)
    assert block == s.BlockDef(
        "conv",
        (
            s.Formal("filters", s.IntRange(n(1), n(100))),
            s.Formal("kernel", n(3)),
        ),
        s.Body((s.Docstring("A conv layer."), s.Call("conv2d", (
            s.Arg(None, ref("filters")), s.Arg(None, ref("kernel")))))),
    )
    assert items("block a {}") == items("block a() {}") == (s.BlockDef("a", (), s.Body()),)


def test_formal_without_default() -> None:
    (block,) = items("block b(x, y = 2) {}")
    assert block == s.BlockDef("b", (s.Formal("x"), s.Formal("y", n(2))), s.Body())


def test_top_level_constraint() -> None:
    assert items("constraint blk[2].filters >= blk[1].filters * 2") == (
        s.Constraint(ref("blk[2].filters"), ">=", s.BinOp("*", ref("blk[1].filters"), n(2))),
    )


# --- parameters and domains -----------------------------------------------------------------


def test_int_range() -> None:
    assert value("int[1..100]") == s.IntRange(n(1), n(100))
    assert value("int[-8..8] step 4 log default -4") == s.IntRange(
        n(-8), n(8), n(4), True, n(-4)
    )
    assert value("int[1..8] default 2 log step 1") == s.IntRange(n(1), n(8), n(1), True, n(2))


def test_float_range() -> None:
    assert value("float[1e-4..1e-2] log default 1e-3") == s.FloatRange(
        n(1e-4), n(1e-2), True, n(1e-3)
    )
    assert value("float[0..1]") == s.FloatRange(n(0), n(1))
    assert value("float[-0.5..0.5] default -0.25") == s.FloatRange(
        n(-0.5), n(0.5), default=n(-0.25)
    )


def test_choice() -> None:
    assert value('choice["relu", "relu6"]') == s.Choice((s.String("relu"), s.String("relu6")))
    assert value("choice[8, 16, 32,] ordered default 16") == s.Choice(
        (n(8), n(16), n(32)), True, n(16)
    )
    assert value("choice[true, false, -1.5]") == s.Choice((s.Bool(True), s.Bool(False), n(-1.5)))
    assert value("choice[]") == s.Choice(())


def test_number_spelling_is_kept() -> None:
    number = value("1e-3")
    assert isinstance(number, s.Number)
    assert (number.value, number.text) == (0.001, "1e-3")
    low = value("int[-007..1]")
    assert isinstance(low, s.IntRange)
    assert (low.low.value, low.low.text) == (-7, "-007")


def test_fixed_values() -> None:
    assert body('width = 16\nact = "relu\\n\\t\\"x\\\\"\nflag = true\nrate = 0.5', "train") == (
        s.Param("width", n(16)),
        s.Param("act", s.String('relu\n\t"x\\')),
        s.Param("flag", s.Bool(True)),
        s.Param("rate", n(0.5)),
    )


@pytest.mark.parametrize(
    "text, tree",
    [
        ("a + b * c", s.BinOp("+", ref("a"), s.BinOp("*", ref("b"), ref("c")))),
        ("a - b - c", s.BinOp("-", s.BinOp("-", ref("a"), ref("b")), ref("c"))),
        ("a / b // c", s.BinOp("//", s.BinOp("/", ref("a"), ref("b")), ref("c"))),
        ("(a + b) * c", s.BinOp("*", s.BinOp("+", ref("a"), ref("b")), ref("c"))),
        ("a - (b - c)", s.BinOp("-", ref("a"), s.BinOp("-", ref("b"), ref("c")))),
        ("-a * b", s.BinOp("*", s.Neg(ref("a")), ref("b"))),
        ("a * -b", s.BinOp("*", ref("a"), s.Neg(ref("b")))),
        ("-(a + 1)", s.Neg(s.BinOp("+", ref("a"), n(1)))),
        ("--a", s.Neg(s.Neg(ref("a")))),
        ("-3", s.Neg(n(3))),
        ("blk[2].conv.filters", ref("blk[2].conv.filters")),
        ("width * 2", s.BinOp("*", ref("width"), n(2))),
        ("max(1, c // 4)", s.Func("max", (n(1), s.BinOp("//", ref("c"), n(4))))),
        ("min(a, b, 3) + 1", s.BinOp("+", s.Func("min", (ref("a"), ref("b"), n(3))), n(1))),
        ("-max(a)", s.Neg(s.Func("max", (ref("a"),)))),
    ],
)
def test_derived_expressions(text: str, tree: s.Expr) -> None:
    assert value(text) == tree


# --- layers and structure ----------------------------------------------------------------


def test_calls() -> None:
    assert body("""
        global_avg_pool
        conv2d(8, 3)
        dropout(p = 0.5)
        head: linear(units = int[10..200], 4)
        empty()
    """) == (
        s.Call("global_avg_pool"),
        s.Call("conv2d", (s.Arg(None, n(8)), s.Arg(None, n(3)))),
        s.Call("dropout", (s.Arg("p", n(0.5)),)),
        s.Call(
            "linear",
            (s.Arg("units", s.IntRange(n(10), n(200))), s.Arg(None, n(4))),
            label="head",
        ),
        s.Call("empty"),
    )


def test_repeat() -> None:
    assert body("repeat layers = int[1..3] { conv_layer }") == (
        s.Repeat("layers", s.IntRange(n(1), n(3)), s.Body((s.Call("conv_layer"),))),
    )


def test_choose() -> None:
    (choose,) = body("""
        choose kind default "plain" {
            plain: conv2d(f, k) relu
            labelled: head: linear(3)
            braced: {
                w = 8
                linear(w)
            }
            empty: {}
        }
    """)
    assert choose == s.Choose(
        "kind",
        (
            s.Alternative("plain", s.Body((
                s.Call("conv2d", (s.Arg(None, ref("f")), s.Arg(None, ref("k")))),
                s.Call("relu"),
            ))),
            s.Alternative("labelled", s.Body((
                s.Call("linear", (s.Arg(None, n(3)),), label="head"),
            ))),
            s.Alternative("braced", s.Body((
                s.Param("w", n(8)), s.Call("linear", (s.Arg(None, ref("w")),)),
            ))),
            s.Alternative("empty", s.Body()),
        ),
        s.String("plain"),
    )
    assert isinstance(choose, s.Choose)
    assert [a.braced for a in choose.alternatives] == [False, False, True, True]


def test_inline_and_braced_alternatives_are_equal() -> None:
    assert body("choose c { a: relu }") == body("choose c {\n a: {\n relu\n }\n}")


def test_optional_residual_time_distributed() -> None:
    assert body("""
        optional pool default true { maxpool(2) }
        optional drop { dropout }
        residual { conv2d(16, 3) batchnorm }
        time_distributed { linear(32) relu }
    """) == (
        s.Optional("pool", s.Body((s.Call("maxpool", (s.Arg(None, n(2)),)),)), s.Bool(True)),
        s.Optional("drop", s.Body((s.Call("dropout"),))),
        s.Residual(s.Body((
            s.Call("conv2d", (s.Arg(None, n(16)), s.Arg(None, n(3)))),
            s.Call("batchnorm"),
        ))),
        s.TimeDistributed(s.Body((s.Call("linear", (s.Arg(None, n(32)),)), s.Call("relu")))),
    )


@pytest.mark.parametrize("op", ["<", "<=", ">", ">=", "==", "!="])
def test_constraint_comparisons(op: str) -> None:
    assert body(f"constraint a.b {op} 2 * c") == (
        s.Constraint(ref("a.b"), op, s.BinOp("*", n(2), ref("c"))),
    )


# --- comments ----------------------------------------------------------------------------


def test_comments() -> None:
    module = parse(textwrap.dedent("""
        # leading item
        network {  # first
            conv2d(8, 3)  # trailing
            # leading relu
            # second line
            relu
            choose c {
                # leading a
                a: relu  # trailing a
                # end of choose
            }
            # end of body
        }  # after network
        # end of file
    """))
    (network,) = module.items
    assert isinstance(network, s.NetworkSection)
    assert (network.comments, network.trailing) == (("# leading item",), "# after network")
    conv, relu, choose = network.body.stmts
    assert (conv.comments, conv.trailing) == (("# first",), "# trailing")
    assert relu.comments == ("# leading relu", "# second line")
    assert isinstance(choose, s.Choose)
    (alternative,) = choose.alternatives
    assert (alternative.comments, alternative.trailing) == (("# leading a",), "# trailing a")
    assert choose.end_comments == ("# end of choose",)
    assert network.body.end_comments == ("# end of body",)
    assert module.end_comments == ("# end of file",)


def test_comment_in_string_is_text() -> None:
    assert body('x = "a # b"  # c', "train") == (
        s.Param("x", s.String("a # b"), trailing="# c"),
    )


def test_comment_trailing_spaces_are_dropped() -> None:
    (param,) = body("x = 1  # c   ", "train")
    assert param.trailing == "# c"


# --- newlines --------------------------------------------------------------------------


def test_several_layers_on_one_line() -> None:
    assert body("conv2d(8, 3) batchnorm relu") == body("conv2d(8, 3)\nbatchnorm\nrelu")


def test_newlines_inside_brackets_are_ignored() -> None:
    assert body("conv2d(\n    8,\n    3\n)\nx = choice[\n 1,\n 2,\n]") == (
        s.Call("conv2d", (s.Arg(None, n(8)), s.Arg(None, n(3)))),
        s.Param("x", s.Choice((n(1), n(2)))),
    )


def test_newline_ends_a_statement() -> None:
    line, column, message = error("train {\n    x = 1 y = 2\n}\n")
    assert (line, column) == (2, 11)
    assert message.startswith("unexpected 'y'")


def test_blank_lines() -> None:
    stmts = body("\n\na = 1\n\n\nb = 2\n# about c\n\nc = 3\n\n# about d\nd = 4\ne = 5\n", "train")
    assert [st.blank_before for st in stmts] == [False, True, False, True, False]


def test_crlf_and_bom() -> None:
    assert parse("\ufefftrain {\r\n    a = 1\r\n\r\n    b = 2\r\n}\r\n") == parse(
        "train {\n    a = 1\n\n    b = 2\n}\n"
    )


def test_blank_line_after_form_feed() -> None:
    stmts = body("\f\na = 1\n\nb = 2", "train")
    assert [st.blank_before for st in stmts] == [False, True]


# --- spans -----------------------------------------------------------------------------


def test_spans() -> None:
    (network,) = parse("network {\n  conv2d(8, 3)  # c\n  x = 1\n}", "f.arch").items
    assert isinstance(network, s.NetworkSection)
    call, param = network.body.stmts
    assert isinstance(call, s.Call) and isinstance(param, s.Param)
    assert call.span == s.Span("f.arch", 2, 3, 2, 15)
    assert call.name_span == s.Span("f.arch", 2, 3, 2, 9)
    assert param.name_span == s.Span("f.arch", 3, 3, 3, 4)


# --- syntax errors ----------------------------------------------------------------------


def test_unexpected_token() -> None:
    line, column, message = error("network {\n    conv2d(8, 3\n    relu\n}\n")
    assert (line, column) == (3, 5)
    assert message.startswith("unexpected 'relu'; expected ")
    assert "')'" in message


def test_unexpected_item() -> None:
    assert error("relu\n")[:2] == (1, 1)
    assert "expected 'arch', 'block'" in error("relu\n")[2]


def test_unexpected_end_of_file() -> None:
    line, column, message = error("network {\n    relu\n")
    assert message.startswith("unexpected end of file")
    assert line == 2


def test_unexpected_character() -> None:
    assert error("network {\n    x = 3 $ 4\n}\n") == (2, 11, "unexpected character '$'")


def test_unterminated_string() -> None:
    assert error('network {\n    x = "abc\n}\n') == (2, 9, "unterminated string")


def test_unterminated_docstring() -> None:
    assert "unterminated" in error('"""abc\n\nnetwork {}\n')[2]


def test_unknown_escape() -> None:
    assert error('train {\n    x = "a\\qb"\n}\n') == (2, 9, "unknown escape '\\q' in string")


def test_int_range_with_float_bound() -> None:
    assert error("train {\n    x = int[1..2.5]\n}\n") == (
        2, 16, "int ranges take integer bounds and steps"
    )
    assert error("train {\n    x = int[1..8] step 0.5\n}\n")[:2] == (2, 24)


def test_float_range_with_string_bound() -> None:
    assert error('train {\n    x = float["a"..2]\n}\n') == (
        2, 15, "float ranges take numeric bounds"
    )


@pytest.mark.parametrize(
    "domain, column, message",
    [
        ("choice[1, 2] log", 22, "'log' does not apply to choice domains"),
        ("float[1..2] step 1", 21, "'step' does not apply to float domains"),
        ("int[1..2] ordered", 19, "'ordered' does not apply to int domains"),
        ("int[1..8] default 2 default 3", 29, "'default' is given twice"),
        ("int[1..8] log log", 23, "'log' is given twice"),
    ],
)
def test_modifier_errors(domain: str, column: int, message: str) -> None:
    line, col, text = error(f"train {{\n    x = {domain}\n}}\n")
    assert (line, col) == (2, column)
    assert text.startswith(message)


def test_several_errors_are_reported_together() -> None:
    with pytest.raises(ArchError) as caught:
        parse("train {\n    x = int[1..2.5]\n    y = choice[1] log\n}\n")
    assert [(d.span.line, d.span.column) for d in caught.value.diagnostics] == [(2, 16), (3, 19)]


def test_deep_brackets() -> None:
    depth = 70
    text = "network {\n    x = " + "(" * depth + "1" + ")" * depth + "\n}\n"
    line, column, message = error(text)
    # `network {` is the first level: the 64th parenthesis is one too many.
    assert (line, column) == (2, 9 + MAX_NESTING - 1)
    assert message == f"nesting is deeper than {MAX_NESTING} levels"


def test_deep_bodies() -> None:
    depth = 100
    text = "network {\n" + "residual {\n" * depth + "}\n" * (depth + 1)
    line, column, message = error(text)
    assert (line, column) == (MAX_NESTING + 1, 10)
    assert "nesting is deeper" in message


def test_nesting_at_the_limit_is_fine() -> None:
    depth = MAX_NESTING - 1  # plus the section's braces
    assert value("(" * depth + "1" + ")" * depth) == n(1)


def test_huge_integer() -> None:
    line, column, message = error("network {\n    x = " + "7" * 5000 + "\n}\n")
    assert (line, column) == (2, 9)
    assert message.startswith("integer 7777") and "too large" in message
    assert error("network {\n    x = 9007199254740993\n}\n")[:2] == (2, 9)
    assert error("network {\n    x = a[99999999999999999999]\n}\n")[:2] == (2, 11)
    assert value("9007199254740992") == n(2**53)


def test_float_out_of_range() -> None:
    assert error("network {\n    x = 1e999\n}\n") == (2, 9, "number 1e999 is out of range")


def test_long_sum() -> None:
    line, column, message = error("network {\n    x = " + "+".join(["1"] * 10000) + "\n}\n")
    assert (line, column) == (2, 9)
    assert "nested deeper than 64 operators" in message


def test_long_negation() -> None:
    line, column, message = error("network {\n    x = " + "-" * 10000 + "1\n}\n")
    assert line == 2 and column > 1
    assert "nested deeper than 64 operators" in message


# --- mutation fuzzing --------------------------------------------------------------------


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_sources())
def test_mutated_sources_parse_or_fail_cleanly(text: str) -> None:
    """Broken input gives positioned diagnostics, never another exception."""
    try:
        module = parse(text)
    except ArchError as caught:
        assert caught.diagnostics
        for diagnostic in caught.diagnostics:
            assert diagnostic.span.line >= 1 and diagnostic.span.column >= 1
    else:
        assert isinstance(module, s.Module)


def test_morph_marks() -> None:
    (block,) = items("block b(x = int[1..3] morph 2) frozen {}")
    assert block.morph == n(0)
    assert block.formals[0].default == s.IntRange(n(1), n(3), morph=n(2))
    assert value("choice[1, 2] ordered frozen") == s.Choice((n(1), n(2)), True, morph=n(0))
    assert value("float[0.1..1.0] log morph 0.5") == s.FloatRange(
        n(0.1), n(1.0), True, morph=n(0.5))


@pytest.mark.parametrize(
    "text, message",
    [
        ("network {\n    x = int[1..3] frozen morph 2\n}\n", "'morph' is given twice"),
        ('network {\n    x = int[1..3] morph "a"\n}\n', "a morph weight is a number"),
        ("block b frozen frozen {}\n", "'morph' is given twice"),
    ],
)
def test_bad_morph_marks(text: str, message: str) -> None:
    assert message in error(text)[2]


def test_constraint_after_a_layer_is_an_error_not_a_layer() -> None:
    """After a layer the lexer reads `constraint` as a name; as a layer it would format
    onto a line of its own, where it starts a constraint: the text would not parse again."""
    with pytest.raises(ArchError) as error:
        parse("network {\n    relu constraint\n}\n")
    (d,) = error.value.diagnostics
    assert (d.span.line, d.span.column) == (2, 10)
    assert "`constraint` starts a statement" in d.message
