"""Tests of the canonical formatter (`sparsemod_dsl.lang.fmt`)."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path
from typing import Any, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import (
    SAMPLE_SOURCES,
    expressions,
    modules,
    mutated_sources,
    numbers,
    refs,
)

from sparsemod_dsl.errors import ArchError
from sparsemod_dsl.lang import syntax as s
from sparsemod_dsl.lang.fmt import MAX_LINE, format_module, format_source
from sparsemod_dsl.lang.parser import parse

GOLDEN = Path(__file__).parents[1] / "golden" / "fmt"
PROPERTY = settings(max_examples=200, deadline=None)
QUICK = settings(max_examples=100, deadline=None)


def fmt(text: str) -> str:
    """Format dedented source."""
    return format_source(textwrap.dedent(text))


def canon(text: str) -> str:
    """Dedented expected output."""
    return textwrap.dedent(text).lstrip("\n")


def network(*stmts: s.Statement) -> s.Module:
    return s.Module((s.NetworkSection(s.Body(stmts)),))


def param_value(text: str) -> s.Value:
    """The value of the only parameter of `network { x = TEXT }`."""
    (section,) = parse(f"network {{ x = {text} }}").items
    assert isinstance(section, s.NetworkSection)
    (param,) = section.body.stmts
    assert isinstance(param, s.Param)
    return param.value


def expression_text(expr: s.Expr) -> str:
    """The formatted text of an expression."""
    out = format_module(network(s.Param("x", expr)))
    return out.split("\n")[1].removeprefix("    x = ")


def walk(node: Any) -> Iterator[Any]:
    """Every dataclass node under `node`, itself included."""
    if isinstance(node, tuple):
        for child in node:
            yield from walk(child)
    elif dataclasses.is_dataclass(node):
        yield node
        for field in dataclasses.fields(node):
            yield from walk(getattr(node, field.name))


# --- properties ------------------------------------------------------------------------


@PROPERTY
@given(modules())
def test_round_trip_and_idempotent(module: s.Module) -> None:
    out = format_module(module)
    assert parse(out) == module
    assert format_source(out) == out


@QUICK
@given(modules())
def test_layout(module: s.Module) -> None:
    out = format_module(module)
    assert out.endswith("\n") and not out.endswith("\n\n")
    # Doc strings are verbatim: collapse them before checking the layout.
    for node in walk(module):
        if isinstance(node, s.Docstring):
            out = out.replace(f'"""{node.text}"""', '""""""')
    assert "\n\n\n" not in out
    for line in out.split("\n"):
        assert line == line.rstrip()
        indent = len(line) - len(line.lstrip(" "))
        assert indent % 4 == 0
        assert not line.startswith("\t")


def all_comments(module: s.Module) -> list[str]:
    """Every comment of a tree, sorted."""
    found = list(module.end_comments)
    for node in walk(module):
        if isinstance(node, s.Stmt):
            found.extend(node.comments)
            found.extend([node.trailing] if node.trailing is not None else [])
        if isinstance(node, (s.Body, s.Choose)):
            found.extend(node.end_comments)
    return sorted(found)


@QUICK
@given(modules())
def test_comments_are_kept(module: s.Module) -> None:
    assert all_comments(parse(format_module(module))) == all_comments(module)


@PROPERTY
@given(expressions(max_leaves=10))
def test_expression_round_trip(expr: s.Expr) -> None:
    assert param_value(expression_text(expr)) == expr


def _arithmetic() -> st.SearchStrategy[Any]:
    """Expressions without strings, so that every parenthesis is structural."""
    return st.recursive(
        st.one_of(numbers(), refs()),
        lambda inner: st.one_of(
            st.builds(s.BinOp, st.sampled_from(["+", "-", "*", "/", "//", "**"]), inner, inner),
            st.builds(s.Neg, inner),
        ),
        max_leaves=8,
    )


@PROPERTY
@given(_arithmetic())
def test_parentheses_are_minimal(expr: s.Expr) -> None:
    text = expression_text(expr)
    opened: list[int] = []
    for index, char in enumerate(text):
        if char == "(":
            opened.append(index)
        elif char == ")":
            start = opened.pop()
            shorter = text[:start] + text[start + 1 : index] + text[index + 1 :]
            try:
                assert param_value(shorter) != expr, f"redundant parentheses in {text}"
            except ArchError:
                pass


@settings(max_examples=300, deadline=None)
@given(mutated_sources())
def test_mutated_sources_round_trip(text: str) -> None:
    """Valid sources of any layout format to an equal tree, idempotently."""
    try:
        module = parse(text)
    except ArchError:
        return
    out = format_source(text)
    assert parse(out) == module
    assert format_source(out) == out


@pytest.mark.parametrize("text", SAMPLE_SOURCES)
def test_sample_sources(text: str) -> None:
    out = format_source(text)
    assert parse(out) == parse(text)
    assert format_source(out) == out


# --- golden file -------------------------------------------------------------------------


def test_golden_cnn() -> None:
    source = (GOLDEN / "cnn.arch").read_text()
    expected = (GOLDEN / "cnn.expected.arch").read_text()
    assert format_source(source) == expected
    assert format_source(expected) == expected
    assert parse(expected) == parse(source)


# --- layer joining --------------------------------------------------------------------------


def test_joins_activation_layers() -> None:
    out = fmt("""
        network {
            conv2d(8, 3)
            batchnorm
            relu
            linear(10) relu6
        }
    """)
    assert out == canon("""
        network {
            conv2d(8, 3) batchnorm relu
            linear(10) relu6
        }
    """)


@pytest.mark.parametrize(
    "body",
    [
        "x = 1\nrelu",  # the previous statement is no call
        "conv2d(8, 3)\n\nrelu",  # a blank line before
        "conv2d(8, 3)\n# act\nrelu",  # a leading comment
        "conv2d(8, 3)  # conv\nrelu",  # the line already has a comment
        "conv2d(8, 3)\nact: relu",  # labelled
        "conv2d(8, 3)\nrelu(1)",  # arguments
        "conv2d(8, 3)\ndropout",  # not an activation
        "repeat r = 2 {}\nrelu",  # after a compound statement
    ],
)
def test_does_not_join(body: str) -> None:
    source = "network {\n" + textwrap.indent(body, "    ") + "\n}\n"
    assert format_source(source) == source


def test_joined_layer_keeps_its_trailing_comment() -> None:
    out = fmt("""
        network {
            conv2d(8, 3)
            relu  # act
            batchnorm
        }
    """)
    assert out == canon("""
        network {
            conv2d(8, 3) relu  # act
            batchnorm
        }
    """)


def test_join_respects_line_length() -> None:
    call = "conv2d(" + "x" * (MAX_LINE - len("    conv2d() batchnorm")) + ")"
    head = f"    {call} batchnorm"
    assert len(head) == MAX_LINE
    out = format_source(f"network {{\n{call}\nbatchnorm\nrelu\n}}")
    assert out == f"network {{\n{head}\n    relu\n}}\n"


def test_top_level_call_is_first_in_body() -> None:
    assert fmt("network {\n\n  relu\n}") == "network {\n    relu\n}\n"


# --- comments -------------------------------------------------------------------------------


def test_comment_placement() -> None:
    out = fmt("""
        # about the network
        network {   # first
            conv2d(8, 3) # trailing
            repeat r = 2 {
                # leading
                relu
                # end of repeat
            }   # after repeat
            choose c {
                # before a
                a: relu   # a
                # end of choose
            }
            optional o {
                # only a comment
            }
            # end of network
        }
        # end of file
    """)
    assert out == canon("""
        # about the network
        network {
            # first
            conv2d(8, 3)  # trailing
            repeat r = 2 {
                # leading
                relu
                # end of repeat
            }  # after repeat
            choose c {
                # before a
                a: relu  # a
                # end of choose
            }
            optional o {
                # only a comment
            }
            # end of network
        }

        # end of file
    """)


def test_comment_inside_arguments_moves_before_the_statement() -> None:
    out = fmt("""
        network {
            conv2d(8,  # filters
                   3)
        }
    """)
    assert out == "network {\n    # filters\n    conv2d(8, 3)\n}\n"


def test_only_comments() -> None:
    assert format_source("# a\n\n\n# b\n") == "# a\n# b\n"


def test_empty_file() -> None:
    assert format_source("") == "\n"
    assert format_source("\n\n") == "\n"


# --- blank lines ----------------------------------------------------------------------------


def test_top_level_blank_lines() -> None:
    out = fmt("""
        \"\"\"Doc.\"\"\"
        arch a(input: image)
        import x


        import y
        # about z
        import "z.arch"
        train {}
        network {}
        constraint a < b
    """)
    assert out == canon("""
        \"\"\"Doc.\"\"\"

        arch a(input: image)

        import x
        import y
        # about z
        import "z.arch"

        train {}

        network {}

        constraint a < b
    """)


def test_blank_lines_in_bodies() -> None:
    out = fmt("""
        train {

            a = 1


            b = 2

            # about c

            c = 3
            d = 4
        }
    """)
    assert out == canon("""
        train {
            a = 1

            b = 2

            # about c
            c = 3
            d = 4
        }
    """)


# --- values ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source, expected",
    [
        ("a+b*c", "a + b * c"),
        ("(a+b)*c", "(a + b) * c"),
        ("a-(b-c)", "a - (b - c)"),
        ("(a-b)-c", "a - b - c"),
        ("a-(b+c)", "a - (b + c)"),
        ("a/(b*c)", "a / (b * c)"),
        ("(a//b)*c", "a // b * c"),
        ("a*(b//c)", "a * (b // c)"),
        ("-(a+b)", "-(a + b)"),
        ("-(a*b)", "-(a * b)"),
        ("(-a)*b", "-a * b"),
        ("a*(-b)", "a * -b"),
        ("a - -b", "a - -b"),
        ("-(-a)", "--a"),
        ("((a))", "a"),
        ("blk[2].conv.filters*2", "blk[2].conv.filters * 2"),
        ('"a\\"b\\\\c\\n\\td"', '"a\\"b\\\\c\\n\\td"'),
        ("true+false", "true + false"),
        ("1e-4 + 0.50 + 007", "1e-4 + 0.50 + 007"),
    ],
)
def test_expressions(source: str, expected: str) -> None:
    assert fmt(f"network {{ x = {source} }}") == f"network {{\n    x = {expected}\n}}\n"


@pytest.mark.parametrize(
    "source, expected",
    [
        ("int[1..10]", "int[1..10]"),
        ("int[1..10] default 3 log step 2", "int[1..10] step 2 log default 3"),
        ("int[-8..-1] step -1", "int[-8..-1] step -1"),
        ("float[1e-4..1e-2] default 1e-3 log", "float[1e-4..1e-2] log default 1e-3"),
        ("float[1..2]", "float[1..2]"),
        ('choice["relu","tanh",]', 'choice["relu", "tanh"]'),
        ("choice[8, 16, -32] default 16 ordered", "choice[8, 16, -32] ordered default 16"),
        ("choice[]", "choice[]"),
        ("choice[true, false, 1.5]", "choice[true, false, 1.5]"),
    ],
)
def test_domains(source: str, expected: str) -> None:
    assert fmt(f"train {{ x = {source} }}") == f"train {{\n    x = {expected}\n}}\n"


@pytest.mark.parametrize(
    "number, text",
    [
        (s.Number(3), "3"),
        (s.Number(0.5), "0.5"),
        (s.Number(1e-05), "1e-05"),
        (s.Number(1e16), "1e+16"),
        (s.Number(0.001, "1e-3"), "1e-3"),
    ],
)
def test_numbers(number: s.Number, text: str) -> None:
    assert expression_text(number) == text


def test_strings_are_escaped() -> None:
    module = network(s.Param("x", s.String('a"b\\c\nd\te')))
    assert format_module(module) == 'network {\n    x = "a\\"b\\\\c\\nd\\te"\n}\n'
    assert parse(format_module(module)) == module


# --- statements ------------------------------------------------------------------------------


def test_statements() -> None:
    out = fmt("""
        arch  kws ( input : audio ( 1 , 49 , 10 ) , classes=12 , extra : image, n )
        import   "my dir/blocks.arch"
        block conv_layer ( filters = int [ 1 .. 100 ] , kernel = 3 ) {
            \"\"\"A layer.
              Indented second line.\"\"\"
            head : conv2d ( filters , kernel = kernel )
        }
        block plain() { }
        network {
            repeat  r = int[1..3] { conv_layer(filters = 8) }
            optional pool default true { maxpool(2) }
            optional drop { }
            residual { conv2d(8, 3) }
            time_distributed { linear(32) }
            constraint r*2 <= 5
        }
    """)
    assert out == canon("""
        arch kws(input: audio(1, 49, 10), classes = 12, extra: image, n)

        import "my dir/blocks.arch"

        block conv_layer(filters = int[1..100], kernel = 3) {
            \"\"\"A layer.
              Indented second line.\"\"\"
            head: conv2d(filters, kernel = kernel)
        }

        block plain {}

        network {
            repeat r = int[1..3] {
                conv_layer(filters = 8)
            }
            optional pool default true {
                maxpool(2)
            }
            optional drop {}
            residual {
                conv2d(8, 3)
            }
            time_distributed {
                linear(32)
            }
            constraint r * 2 <= 5
        }
    """)


def test_choose_alternatives() -> None:
    # Too long after `long: `, short enough for a line of its own (and `relu`).
    long_call = "linear(" + "u" * 62 + ")"
    out = fmt(f"""
        network {{
            choose kind default "plain" {{
                plain: {{ conv2d(8, 3) batchnorm relu }}
                empty: {{ }}
                labelled: head: linear(10)
                nested: repeat r = 2 {{ relu }}
                param: {{
                    width = 8
                    linear(width)
                }}
                commented: {{
                    relu  # why
                }}
                long: {long_call} relu
            }}
            choose nothing {{}}
        }}
    """)
    assert out == canon(f"""
        network {{
            choose kind default "plain" {{
                plain: conv2d(8, 3) batchnorm relu
                empty: {{}}
                labelled: head: linear(10)
                nested: {{
                    repeat r = 2 {{
                        relu
                    }}
                }}
                param: {{
                    width = 8
                    linear(width)
                }}
                commented: {{
                    relu  # why
                }}
                long: {{
                    {long_call} relu
                }}
            }}
            choose nothing {{}}
        }}
    """)


def test_several_layers_on_one_line_are_split() -> None:
    out = fmt("network { conv2d(8, 3) dropout(0.5) relu linear(10) }")
    assert out == "network {\n    conv2d(8, 3)\n    dropout(0.5) relu\n    linear(10)\n}\n"


def test_format_source_reports_syntax_errors() -> None:
    with pytest.raises(ArchError):
        format_source("network {", "bad.arch")


def test_morph_marks_are_canonical() -> None:
    assert fmt("block b(x = int[1..3]   morph 0) morph 2.5 {}") == (
        "block b(x = int[1..3] frozen) morph 2.5 {}\n")
    assert fmt("network {\n  x = choice[1, 2] default 2 frozen\n}") == (
        "network {\n    x = choice[1, 2] default 2 frozen\n}\n")
