"""The MCUNet / TinyNAS space (stdlib/mcunet.arch) and searched input sizes in `nets`.

A searched resolution prices exactly as the same network compiled at that fixed size
(the issue's complaint: a crop stand-in overstated peak RAM 3.6x); the Ax space, the
generated builder and the built network follow the chosen size.
"""

from __future__ import annotations

import random
import re

import pytest
import torch
from helpers import STDLIB
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sparsemod_dsl.lang import ir
from sparsemod_dsl.nets import cost, point
from sparsemod_dsl.nets.axspace import search_space
from sparsemod_dsl.nets.codegen import builder_source
from sparsemod_dsl.nets.morph import inherit, switch_choice
from sparsemod_dsl.space import compile_file, compile_text

MCUNET = STDLIB / "mcunet.arch"
#: A reference point: half width, every stage two blocks deep, kernel 3, expansion 6.
REFERENCE = {"width": 0.5} | {f"stage{i}.extra": 1 for i in range(1, 7)}


def fixed_size(res: int) -> str:
    """mcunet.arch with the resolution fixed in the header, as a user without the
    searched size would write it."""
    text = MCUNET.read_text()
    header = re.search(r"^arch mcunet\(.*?\)$", text, re.S | re.M)
    assert header is not None
    return text.replace(header.group(0), f"arch mcunet(input: image(3, {res}, {res}), "
                                         "classes = 2)")


@pytest.mark.parametrize("res", [48, 96, 176])
def test_a_searched_resolution_prices_as_the_fixed_size(res: int) -> None:
    searched = compile_file(MCUNET)
    fixed = compile_text(fixed_size(res), "fixed.arch", input_shape=(3, res, res))
    ours, theirs = searched.cost(REFERENCE | {"res": res}), fixed.cost(REFERENCE)
    assert (ours.ram_bytes, ours.activation_bytes, ours.macs, ours.params, ours.flash_bytes) == (
        theirs.ram_bytes, theirs.activation_bytes, theirs.macs, theirs.params,
        theirs.flash_bytes)
    assert ours.layers[0].output == (1, res // 2, res // 2, 16)


def test_the_reference_point_at_48_and_96() -> None:
    """Half width, two blocks per stage (figures of the deployed graph, batch norm folded)."""
    space = compile_file(MCUNET)
    at48, at96 = space.cost(REFERENCE | {"res": 48}), space.cost(REFERENCE | {"res": 96})
    assert (at48.params, at48.macs, at48.activation_bytes) == (644_538, 4_751_552, 36_864)
    assert (at96.params, at96.macs, at96.activation_bytes) == (644_538, 15_210_464, 147_456)
    assert at48.flash_bytes == at96.flash_bytes  # the resolution changes no weights


def test_the_resolution_is_an_ordered_ax_choice_and_data_size_stays_searched() -> None:
    space = compile_file(MCUNET, input_shape=(3, 224, 224))  # the stored images' size
    assert space.program.input.searched == (None, "res", "res")
    ax = {p.name: p for p in search_space(space.program).parameters.values()}
    res = next(p for name, p in ax.items() if name.startswith("res"))
    assert list(res.values) == [48, 64, 80, 96, 112, 128, 144, 160, 176] and res.is_ordered
    assert space.trace_input({"res": 64}) == (3, 64, 64)


def test_the_generated_builder_follows_the_chosen_size() -> None:
    prog = compile_file(MCUNET).program
    namespace: dict[str, object] = {}
    exec(compile(builder_source(prog), "mcunet_builder.py", "exec"), namespace)
    pt = REFERENCE | {"res": 64, "width": 0.3}
    generated = namespace["build"](pt)  # type: ignore[operator]
    runtime = compile_file(MCUNET).build(pt)
    assert generated.state_dict().keys() == runtime.state_dict().keys()
    generated.load_state_dict(runtime.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(generated.eval()(x), runtime.eval()(x), atol=1e-5)


def test_a_searched_size_checks_at_its_smallest_and_validates_per_point() -> None:
    text = """\
arch tiny(input: image(1, res, res), res = int[4..12] step 4, classes = 3)
network {
    conv2d(4, kernel = 5, padding = "valid") relu
    global_avg_pool
    linear(classes)
}
"""
    with pytest.raises(Exception, match="input is image 1x4x4, its smallest size"):
        compile_text(text, "tiny.arch")
    ok = compile_text(text.replace("4..12", "8..12"), "tiny.arch")
    assert point.validate(ok.program, {"res": 8}) and point.validate(ok.program, {"res": 12})
    assert cost.cost(ok.program, {"res": 12}).macs == 4 * 8 * 8 * 25 + 4 * 3  # conv, linear


def test_a_morph_changes_the_resolution_and_the_child_inherits_every_weight() -> None:
    space = compile_file(MCUNET)
    parent_point = REFERENCE | {"res": 64, "width": 0.3}
    parent = space.build(parent_point)
    rng = random.Random(0)
    mutation = None
    for _ in range(200):
        mutation = switch_choice(space.program, parent_point, rng)
        if mutation is not None and mutation.changes[0].startswith("res:"):
            break
    assert mutation is not None and mutation.changes[0].startswith("res: 64 -> ")
    assert mutation.point["res"] in (48, 80)  # an ordered choice moves to a neighbour
    child = space.build(mutation.point)
    state = parent.state_dict()
    assert inherit(child, state) == len(state)  # the weights do not depend on the size
    size = mutation.point["res"]
    assert child.eval()(torch.randn(1, 3, size, size)).shape == (1, 2)


SMALL = """\
arch small(input: image(2, height, width), height = int[6..14] step 4,
           width = choice[5, 9, 16], classes = 4)
network {
    conv2d(filters = int[2..6], kernel = choice[1, 3], stride = int[1..2]) batchnorm relu
    optional pool {
        maxpool(2)
    }
    choose head {
        mean: global_avg_pool
        flat: flatten
    }
    linear(classes)
}
"""


def _values(domain: ir.Domain) -> list[ir.Scalar]:
    if isinstance(domain, ir.IntDomain):
        return list(range(domain.low, domain.high + 1, domain.step))
    assert isinstance(domain, ir.ChoiceDomain)
    return list(domain.values)


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_any_point_prices_and_builds_as_its_size_written_in_the_header(
    data: st.DataObject
) -> None:
    searched = compile_text(SMALL, "small.arch")
    pt = data.draw(st.fixed_dictionaries({
        p.name: st.sampled_from(_values(p.domain)) for p in searched.searchable
    }))
    assume(point.validate(searched.program, pt))
    height, width = pt.pop("height"), pt.pop("width")
    fixed_text = SMALL.replace("image(2, height, width), height = int[6..14] step 4,\n"
                               "           width = choice[5, 9, 16],",
                               f"image(2, {height}, {width}),")
    fixed = compile_text(fixed_text, "fixed.arch")
    at = pt | {"height": height, "width": width}
    assert searched.cost(at) == fixed.cost(pt)
    assert searched.trace_input(at) == (2, height, width)
    net, same = searched.build(at), fixed.build(pt)
    same.load_state_dict(net.state_dict())
    x = torch.randn(2, 2, height, width)
    with torch.no_grad():
        assert torch.equal(net.eval()(x), same.eval()(x))
