"""Residual shortcuts (`residual(shortcut = ...)`): syntax, checks, networks, costs, morphs,
and the stdlib spaces that use them (ResNet-8, TC-ResNet8).

The deployed graph and TFLite Micro are checked on `helpers.DEPLOY_SOURCES
["deploy_shortcuts"]` by tests/nets/test_tflite.py, parameters and MACs against torch
and codegen equivalence on the stdlib spaces by test_cost.py and test_codegen.py.
"""

from __future__ import annotations

import textwrap

import pytest
import torch
from helpers import at, deploy_program, program, src
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode

from sparsemod_dsl.errors import ArchError
from sparsemod_dsl.lang import ir, shortcuts
from sparsemod_dsl.lang.compiler import compile_source
from sparsemod_dsl.lang.fmt import format_source
from sparsemod_dsl.lang.shapes import Shape
from sparsemod_dsl.nets import point
from sparsemod_dsl.nets.builder import build
from sparsemod_dsl.nets.cost import cost
from sparsemod_dsl.nets.graph import deployed_graph
from sparsemod_dsl.nets.morph import inherit

HEAD = 'arch t(input: image(3, 16, 16), classes = 4)\n\nnetwork {\n    conv2d(8, 3)\n'
TAIL = '    global_avg_pool\n    linear(classes)\n}\n'


def compiled(body: str) -> ir.Program:
    return compile_source(HEAD + src(body) + TAIL, "t.arch")


def test_the_shortcut_is_a_parameter_named_after_its_label() -> None:
    prog = compiled('''
        down: residual(shortcut = choice["projection", "auto"]) {
            conv2d(16, 3, stride = 2)
        }
        residual("avgpool") { conv2d(16, 3, stride = 2) }
    ''')
    (param,) = prog.parameters
    assert param.name == "down.shortcut"
    assert param.domain == ir.ChoiceDomain(("projection", "auto"), False, "projection")
    first, second = (n for n in prog.network if isinstance(n, ir.Residual))
    assert (first.name, first.shortcut) == ("down", ir.ParamRef("down.shortcut"))
    assert (second.name, second.shortcut) == ("residual", ir.Const("avgpool"))


def test_fmt_round_trips_shortcuts_and_labels() -> None:
    text = HEAD + textwrap.indent(src('''
        down: residual(shortcut = choice["projection", "auto"]) {
            conv2d(16, 3, stride = 2)
        }
        residual {
            conv2d(8, 3)
        }
    '''), "    ") + TAIL
    assert format_source(text, "t.arch") == text


def test_a_shape_change_says_that_a_projection_can_join_it() -> None:
    body = '''
        residual {
            conv2d(16, 3, stride = 2)
        }
    '''
    with pytest.raises(ArchError) as caught:
        compiled(body)
    text = str(caught.value)
    line, column = at(HEAD + src(body), "residual")
    assert f"t.arch:{line}:{column}: error: the residual body turns image 8x16x16 into " \
           "image 16x8x8; an identity shortcut needs the same shape, but a projection " \
           'can join them: write `residual(shortcut = "projection")`' in text


@pytest.mark.parametrize(("shortcut", "wanted"), [
    ('"projection"', "no one stride of a 1x1 convolution"),
    ('"avgpool"', "an avgpool shortcut keeps the channels"),
])
def test_shortcuts_that_cannot_join_the_shapes_are_errors(shortcut: str, wanted: str) -> None:
    padding = "valid" if shortcut == '"projection"' else "same"
    body = f'''
        residual(shortcut = {shortcut}) {{
            conv2d(16, 3, stride = 3, padding = "{padding}") conv2d(16, 3)
        }}
    '''
    with pytest.raises(ArchError, match=wanted):
        compiled(body)


@pytest.mark.parametrize(("arg", "wanted"), [
    ('shortcut = "conv"', "'shortcut' takes one of \"identity\", \"projection\""),
    ('kind = "auto"', "'residual' has no argument 'kind'"),
    ('shortcut = 3', "'shortcut' takes one of"),
])
def test_wrong_shortcut_arguments_are_positioned_errors(arg: str, wanted: str) -> None:
    with pytest.raises(ArchError, match=wanted) as caught:
        compiled(f"residual({arg}) {{ conv2d(8, 3) }}\n")
    assert "t.arch:5:" in str(caught.value)


@settings(max_examples=200, deadline=None)
@given(size=st.integers(1, 200), out=st.integers(1, 200))
def test_the_stride_gives_the_body_size_as_a_strided_1x1_window_does(size: int,
                                                                     out: int) -> None:
    stride = shortcuts.stride_between(size, out)
    if stride is None:
        assert all(-(-size // s) != out for s in range(1, size + 1))
    else:
        assert (size - 1) // stride + 1 == out  # torch's 1x1 convolution, no padding


def test_plans_for_exact_shapes() -> None:
    a, b = Shape.exact("image", 8, 16, 16), Shape.exact("image", 16, 8, 8)
    assert shortcuts.plan("auto", a, b) == shortcuts.Plan("projection", 2)
    assert shortcuts.plan("auto", a, a) == shortcuts.Plan("identity")
    assert shortcuts.plan("avgpool", a, Shape.exact("image", 8, 4, 4)) == \
        shortcuts.Plan("avgpool", 4)
    with pytest.raises(shortcuts.ShortcutError):
        shortcuts.plan("projection", Shape.exact("vector", 8), Shape.exact("vector", 4))


SHORTCUTS = deploy_program("deploy_shortcuts")
#: Lists of valid points of `deploy_shortcuts` (of 3 sampled from a drawn seed).
VALID = st.integers(0, 2**32 - 1).map(
    lambda seed: [pt for pt in point.sample(SHORTCUTS, 3, seed) if point.validate(SHORTCUTS, pt)])


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(points=VALID)
def test_projections_are_a_1x1_conv_with_folded_batch_norm_before_the_add(
        points: list[point.Point]) -> None:
    for pt in points:
        graph = deployed_graph(SHORTCUTS, pt)
        for op in graph.ops:
            if op.name.endswith(".shortcut"):
                add = next(o for o in graph.ops if op.output in o.inputs)
                assert add.code == "ADD"
                assert op.code in ("CONV_2D", "AVERAGE_POOL_2D")
                if op.code == "CONV_2D":
                    assert op.weights[1:3] == (1, 1) and op.bias == op.weights[0]
        net = build(SHORTCUTS, pt).eval()
        net.fuse_model()
        assert cost(SHORTCUTS, pt).params == sum(p.numel() for p in net.parameters())


def test_resnet8_reference_point_has_mlperf_tinys_77706_parameters() -> None:
    """Batch norm folded into the convolutions, as the deployed model stores them."""
    prog = program("resnet8")
    assert cost(prog, {}).params == 77_706
    net = build(prog, {}).eval()
    net.fuse_model()
    assert sum(p.numel() for p in net.parameters()) == 77_706
    assert [op.stride for op in deployed_graph(prog, {}).ops
            if op.name.endswith(".shortcut")] == [(2, 2), (2, 2)]


def test_tc_resnet8_reference_point_and_the_papers_66k() -> None:
    """64,852 folded; unfolded, with batch norm's four numbers per channel, 65,836 ~ 66K."""
    prog = program("tc_resnet")
    assert cost(prog, {}).params == 64_852
    net = build(prog, {})
    buffers = sum(b.numel() for name, b in net.named_buffers() if "running" in name)
    assert sum(p.numel() for p in net.parameters()) + buffers == 65_836


def test_widening_a_residual_stage_inherits_its_projection() -> None:
    prog = program("resnet8")
    parent, child = {"base": 16}, {"base": 24}
    torch.manual_seed(0)
    old = build(prog, parent)
    new = build(prog, child)
    inherit(new, old.state_dict())
    key = "layers.stage2__residual__shortcut.conv.weight"
    mine, theirs = new.state_dict()[key], old.state_dict()[key]
    assert mine.shape == (48, 24, 1, 1) and torch.equal(mine[:32, :16], theirs)
    assert not mine[:32, 16:].any()


def test_a_point_whose_shortcut_cannot_join_blames_the_shortcut() -> None:
    prog = compiled('''
        down: residual(shortcut = choice["projection", "identity"]) {
            conv2d(filters = 16, kernel = 3, stride = 2)
        }
    ''')
    assert point.validate(prog, {"down.shortcut": "projection"}).ok
    check = point.validate(prog, {"down.shortcut": "identity"})
    assert not check.ok and "down.shortcut" in check.parameters
    assert "a projection can join them" in check.reason


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(points=VALID)
def test_shortcut_macs_equal_torchs_flop_counter(points: list[point.Point]) -> None:
    for pt in points:
        net = build(SHORTCUTS, pt).eval()
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            net(torch.randn(1, 3, 12, 12))
        flops = counter.get_flop_counts()["Global"]
        conv = sum(n for op, n in flops.items() if str(op) in ("aten.convolution", "aten.addmm"))
        assert cost(SHORTCUTS, pt).macs == conv // 2


def test_widening_an_auto_residual_keeps_the_function_through_a_new_projection() -> None:
    prog = compiled('''
        res: residual(shortcut = "auto") {
            body: conv2d(filters = choice[8, 16], kernel = 3) batchnorm
        }
        relu
    ''')
    torch.manual_seed(0)
    old = build(prog, {"body.filters": 8}).eval()
    torch.manual_seed(1)
    new = build(prog, {"body.filters": 16}).eval()
    assert "res__shortcut" in new.layers and "res__shortcut" not in old.layers
    inherit(new, old.state_dict())
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(new(x), old(x), atol=1e-5, rtol=0)
