"""The MCUNet / TinyNAS space (stdlib/mcunet.arch) and searched input sizes in `nets`.

A searched resolution prices exactly as the same network compiled at that fixed size
(the issue's complaint: a crop stand-in overstated peak RAM 3.6x); the Ax space, the
generated builder and the built network follow the chosen size.
"""

from __future__ import annotations

import re

import pytest
import torch
from helpers import STDLIB

from sparsemod_dsl.nets import cost, point
from sparsemod_dsl.nets.axspace import search_space
from sparsemod_dsl.nets.codegen import builder_source
from sparsemod_dsl.space import compile_file, compile_text

MCUNET = STDLIB / "mcunet.arch"
#: A reference point: half width, every stage two blocks deep, kernel 3, expansion 6.
REFERENCE = {"width": 50} | {f"stage{i}.extra": 1 for i in range(1, 7)}


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
    pt = REFERENCE | {"res": 64, "width": 30}
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
