"""Searched input sizes in the language: `arch m(input: image(3, res, res), res = ...)`.

Parsing, the formatter's round trip, the IR (`InputSpec.searched`, the parameter `res`),
the names the network and constraints see, `--input` overrides, and positioned errors
(positions found in the test's own source text).
"""

from __future__ import annotations

import pytest
from helpers import at, src

from sparsemod_dsl.errors import ArchError
from sparsemod_dsl.lang import ir, syntax
from sparsemod_dsl.lang.compiler import compile_source
from sparsemod_dsl.lang.fmt import format_source
from sparsemod_dsl.lang.infer import SpaceEvaluator, input_shape
from sparsemod_dsl.lang.parser import parse

SOURCE = """
arch res_net(input: image(3, res, res), res = choice[32, 48, 64] ordered default 48, classes = 10)

network {
    conv2d(filters = 8, kernel = min(5, res // 8), stride = 2) relu
    global_avg_pool
    linear(classes)
}

constraint res >= 32
"""


def test_the_header_parses_names_and_a_domain() -> None:
    header = parse(src(SOURCE), "t.arch").items[0]
    assert isinstance(header, syntax.ArchHeader)
    shape, res = header.params[0], header.params[1]
    assert shape.shape == (3, "res", "res") and shape.domain is None
    assert isinstance(res.domain, syntax.Choice) and res.value is None and res.kind is None


def test_the_formatter_keeps_it() -> None:
    text = src(SOURCE)
    assert format_source(text, "t.arch") == text
    two = "arch a(input: image(1, h, w), h = int[8..32] step 8, w = choice[5, 10])\n"
    assert format_source(two + "\nnetwork {\n    flatten\n}\n", "a.arch").startswith(two)


def test_the_ir_holds_a_parameter_the_network_and_constraints_read() -> None:
    program = compile_source(src(SOURCE), "t.arch")
    assert program.input == ir.InputSpec("image", (3, 64, 64), (None, "res", "res"))
    res = program.parameter("res")
    assert res.domain == ir.ChoiceDomain((32, 48, 64), ordered=True, default=48)
    assert [str(d) for d in input_shape(program, SpaceEvaluator(program)).dims] == [
        "3", "32..64", "32..64"]
    assert any("res" in set(ir.references(e)) for l in ir.layers(program.network)
               for _, e in l.args)
    assert list(ir.references(program.constraints[0].left)) == ["res"]


def test_a_given_shape_is_the_stored_size_and_the_sizes_stay_searched() -> None:
    program = compile_source(src(SOURCE), "t.arch", input_shape=(3, 200, 100))
    assert program.input == ir.InputSpec("image", (3, 200, 100), (None, "res", "res"))
    fixed = compile_source(src(SOURCE).replace("image(3, res, res)", "image(3, 64, 64)")
                           .replace("res = choice[32, 48, 64] ordered default 48, ", "")
                           .replace("min(5, res // 8)", "5").replace("res >= 32", "1 >= 0"),
                           "f.arch", input_shape=(3, 20, 20))
    assert fixed.input == ir.InputSpec("image", (3, 20, 20))


def errors(text: str) -> list[tuple[int, int, str]]:
    with pytest.raises(ArchError) as info:
        compile_source(src(text), "t.arch")
    return [(d.span.line, d.span.column, d.message) for d in info.value.diagnostics]


BAD = """
arch bad(input: sequence(res, 4), res = int[8..16], side = choice[4, 8])
network {
    gru(8)
    linear(classes)
}
"""


def test_errors_are_positioned() -> None:
    (line, column, message), = errors(BAD)[:1]
    assert (line, column) == at(BAD, "input: sequence")
    assert "only an image's height and width" in message
    twice = """
arch twice(input: image(1, res, res), res = choice[8, 16], classes = 2)
network {
    res = 3
    flatten
    linear(classes)
}
"""
    found = errors(twice)
    assert any("'res'" in m and (line, column) == at(twice, "res = 3") for line, column, m in found)
    classes = "arch c(input: image(1, 8, 8), classes = choice[2, 4])\nnetwork {\n    flatten\n}\n"
    assert any("write `classes` or `classes = N`" in m for _, _, m in errors(classes))
