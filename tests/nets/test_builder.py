"""The runtime builder (`builder.build`) and the network library it drives (`netlib`).

The main property: for every stdlib program and the example, at random sampled
points, either `validate` rejects the point (and `build` raises `BuildError`), or
the network builds, its forward pass gives (batch, classes), and every layer's
real input and output shapes are the ones `validate` inferred. Forward passes are
skipped for networks with more than `helpers.MAX_WEIGHTS` weights (the largest
sequence points take seconds); those are still built and their keys checked.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Iterator

import pytest
import torch
from helpers import MAX_WEIGHTS, PROGRAM_NAMES, batch, program, weights, zoo
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn
from torch.ao.nn.intrinsic import _FusedModule

from sparsemod_dsl.lang import ir
from sparsemod_dsl.nets import point
from sparsemod_dsl.nets.builder import BuildError, build
from sparsemod_dsl.nets.network import SparsemodNet

ZOO = zoo()
SPACES = {name: program(name) for name in PROGRAM_NAMES} | {"zoo": ZOO}


def _time_distributed_layers(nodes: tuple[ir.Node, ...], inside: bool = False
                             ) -> Iterator[ir.Layer]:
    """The layers that run on folded (batch x steps) tensors."""
    for node in nodes:
        if isinstance(node, ir.Layer):
            if inside:
                yield node
        elif isinstance(node, ir.Repeat):
            for body in node.instances:
                yield from _time_distributed_layers(body, inside)
        elif isinstance(node, ir.Choose):
            for _, body in node.alternatives:
                yield from _time_distributed_layers(body, inside)
        else:
            yield from _time_distributed_layers(
                node.body, inside or isinstance(node, ir.TimeDistributed))


def expected_keys(layers: list[ir.Layer]) -> list[str]:
    """Module keys of layers built in this order: the Ax-style name, `__2`... for repeats."""
    seen: Counter[str] = Counter()
    keys = []
    for layer in layers:
        base = ir.ax_name(layer.name)
        seen[base] += 1
        keys.append(base if seen[base] == 1 else f"{base}__{seen[base]}")
    return keys


def run_with_hooks(net: SparsemodNet, x: torch.Tensor
                   ) -> tuple[torch.Tensor, list[tuple[str, tuple[int, ...], tuple[int, ...]]]]:
    """The output and, per layer call in order, (key, input shape, output shape)."""
    calls: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = []
    handles = [
        module.register_forward_hook(
            lambda m, inputs, out, key=key: calls.append(
                (key, tuple(inputs[0].shape), tuple(out.shape))))
        for key, module in net.layers.items()
    ]
    try:
        with torch.no_grad():
            y = net.eval()(x)
    finally:
        for handle in handles:
            handle.remove()
    return y, calls


def check_point(prog: ir.Program, pt: dict[str, object]) -> bool:
    """Validate, build and run one point; True when a forward pass was checked."""
    check = point.validate(prog, pt)
    if not check.ok:
        assert check.reason
        with pytest.raises(BuildError):
            build(prog, pt)
        return False
    net = build(prog, pt)
    layers = [layer for layer, _, _ in check.shapes]
    keys = expected_keys(layers)
    # residual shortcuts (projection, pooling) are modules beside the IR layers
    shortcuts = {key for step, key in net.plan if step == "shortcut"}
    assert all("__shortcut" in key for key in shortcuts)
    assert [key for key in net.layers if key not in shortcuts] == keys
    owners = {name.split(".")[1] for name in net.state_dict()}
    assert all(name.startswith("layers.") for name in net.state_dict())
    assert owners <= set(keys) | shortcuts
    active = {layer.name for layer in layers}
    everywhere = {ir.ax_name(layer.name) for layer in ir.layers(prog.network)}
    inactive = everywhere - {ir.ax_name(name) for name in active}
    assert not owners & inactive
    if weights(net) > MAX_WEIGHTS:
        return False
    x = batch(prog, pt)
    y, calls = run_with_hooks(net, x)
    assert prog.classes is not None and check.output is not None
    assert tuple(y.shape) == (2, prog.classes) == (2, *check.output.sizes())
    assert torch.isfinite(y).all()
    folded = {id(layer) for layer in _time_distributed_layers(prog.network)}
    calls = [call for call in calls if call[0] not in shortcuts]
    assert [key for key, _, _ in calls] == keys
    for (layer, shape_in, shape_out), (_, real_in, real_out) in zip(check.shapes, calls):
        for shape, real in ((shape_in, real_in), (shape_out, real_out)):
            sizes = shape.sizes()
            if id(layer) in folded:  # (batch * steps, features)
                assert real[1:] == sizes and real[0] % 2 == 0, (layer.name, real, sizes)
            else:
                assert real == (2, *sizes), (layer.name, real, sizes)
    return True


@pytest.mark.parametrize("name", [*SPACES])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1))
def test_sampled_points_validate_build_and_run_with_the_inferred_shapes(
    name: str, seed: int
) -> None:
    prog = SPACES[name]
    for pt in point.sample(prog, 2, seed):
        check_point(prog, pt)


@pytest.mark.parametrize("name", [*SPACES])
def test_enough_sampled_points_are_run(name: str) -> None:
    """Guard against the property above passing by skipping: most spaces run often."""
    prog = SPACES[name]
    ran = sum(check_point(prog, pt) for pt in point.sample(prog, 12, seed=2024))
    assert ran >= 2, f"only {ran} of 12 points of {name} were run"


def test_the_zoo_reaches_both_outcomes() -> None:
    outcomes = {bool(point.validate(ZOO, pt)) for pt in point.sample(ZOO, 40, seed=1)}
    assert outcomes == {True, False}


# --- keys and inactive parameters ---------------------------------------------------------


def test_fewer_repeat_instances_have_no_keys_of_the_missing_instances() -> None:
    prog = program("sparse_cnn")
    two = build(prog, {"block": 2, "block[1].layer": 3, "block[2].layer": 2, "fc": 2})
    one = build(prog, {"block": 1, "block[1].layer": 1, "fc": 1})
    keys_two, keys_one = set(two.state_dict()), set(one.state_dict())
    assert any(k.startswith("layers.block__2__") for k in keys_two)
    assert any(k.startswith("layers.block__1__layer__3__") for k in keys_two)
    assert any(k.startswith("layers.fc__2__") for k in keys_two)
    assert not any(k.startswith(("layers.block__2__", "layers.block__1__layer__2__",
                                 "layers.fc__2__")) for k in keys_one)
    assert "layers.block__1__layer__1__conv2d.conv.weight" in keys_one
    assert "layers.fc__1__linear.weight" in keys_one and "layers.linear.weight" in keys_one


def _shapes(net: nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    return [(k, tuple(v.shape)) for k, v in net.state_dict().items()]


@pytest.mark.parametrize("name", ["sparse_cnn", "sparse_cnn_rnn", "mbconv", "quickstart", "zoo"])
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_inactive_parameters_are_ignored(name: str, data: st.DataObject) -> None:
    prog = SPACES[name]
    pt = point.sample(prog, 1, data.draw(st.integers(0, 10**6), label="seed"))[0]
    if not point.validate(prog, pt):
        return
    inactive = [p for p in prog.parameters if p.name not in pt]
    if not inactive:
        return
    chosen = data.draw(st.lists(st.sampled_from(inactive), min_size=1, unique=True), label="set")
    changed = dict(pt)
    for param in chosen:
        changed[param.name] = data.draw(st.one_of(
            st.just(point.draw(param.domain, random.Random(0))),
            st.integers(-5, 500), st.text(max_size=3)), label=param.name)
    assert point.validate(prog, changed).ok
    torch.manual_seed(0)
    a = build(prog, pt)
    torch.manual_seed(0)
    b = build(prog, changed)
    assert _shapes(a) == _shapes(b)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


# --- invalid points -----------------------------------------------------------------------


def test_build_raises_build_error_for_invalid_points() -> None:
    prog = program("quickstart")
    for bad in ({"layer": 4}, {"layer[1].filters": 6}, {"layer[1].kind": "dense"},
                {"nonexistent": 1}, {"layer": "two"}):
        with pytest.raises(BuildError) as error:
            build(prog, bad)
        assert str(error.value)
    with pytest.raises(BuildError, match="kernel|window"):
        build(ZOO, {"stem.kernel": 4, "stem.stride": 3, "stem.padding": "valid"})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["quickstart", "sparse_cnn", "ds_cnn", "zoo"]), st.data())
def test_build_raises_only_build_error(name: str, data: st.DataObject) -> None:
    prog = SPACES[name]
    names = [p.name for p in prog.parameters]
    values = data.draw(st.dictionaries(st.sampled_from(names), st.one_of(
        st.integers(-3, 40), st.floats(-1, 2, allow_nan=False), st.booleans(),
        st.sampled_from(["same", "valid", "plain", "separable", "long", "gated", ""])),
        max_size=8))
    try:
        net = build(prog, values)
    except BuildError:
        assert not point.validate(prog, values).ok
        return
    assert point.validate(prog, values).ok
    assert isinstance(net, SparsemodNet)


# --- overrides and seeds ------------------------------------------------------------------


def test_input_shape_and_classes_overrides() -> None:
    prog = program("quickstart")
    pt = {"layer": 2, "layer[2].kind": "separable", "pool": True}
    net = build(prog, pt, input_shape=(3, 16, 12), classes=7)
    assert net.layers["layer__1__conv2d"].conv.in_channels == 3
    with torch.no_grad():
        assert net.eval()(torch.randn(2, 3, 16, 12)).shape == (2, 7)
    seq = program("sparse_rnn")
    net = build(seq, {"train.max_len": 60, "fc": 1}, input_shape=(100, 5), classes=3)
    with torch.no_grad():
        assert net.eval()(torch.randn(2, 60, 5)).shape == (2, 3)
    assert net.layers["rnn__lstm"].inner.rnn.input_size == 5
    assert program("sparse_rnn").classes == 10  # the program itself is unchanged


def test_overrides_are_validated() -> None:
    prog = program("sparse_cnn")
    pooled = {"block": 2, "block[1].downsample": True, "block[1].rate": 2,
              "block[2].downsample": True, "block[2].rate": 2}
    build(prog, pooled)  # 8x8 -> 4x4 -> 2x2
    with pytest.raises(BuildError, match="maxpool"):
        build(prog, pooled, input_shape=(1, 2, 2))  # 2x2 -> 1x1 -> no 2x2 window


def test_the_same_seed_gives_the_same_weights() -> None:
    prog = program("mbconv")
    pt = point.sample(prog, 1, seed=3)[0]
    torch.manual_seed(42)
    a = build(prog, pt).state_dict()
    torch.manual_seed(42)
    b = build(prog, pt).state_dict()
    torch.manual_seed(43)
    c = build(prog, pt).state_dict()
    assert list(a) == list(b) == list(c)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


# --- fusion -------------------------------------------------------------------------------


def _randomise_norms(net: nn.Module, seed: int) -> None:
    """Batch-norm statistics away from the identity, so that folding them matters."""
    generator = torch.Generator().manual_seed(seed)
    for module in net.modules():
        if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=generator) * 0.2)
            module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(n, generator=generator) * 0.2)


def _fused_output_matches(prog: ir.Program, pt: dict[str, object], seed: int) -> SparsemodNet:
    torch.manual_seed(seed)
    net = build(prog, pt).eval()
    _randomise_norms(net, seed)
    x = batch(prog, pt, n=2, seed=seed)
    with torch.no_grad():
        before = net(x)
        net.fuse_model()
        after = net(x)
    torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-5)
    return net


def test_fuse_model_fuses_conv_bn_relu() -> None:
    prog = program("quickstart")
    pt = {"layer": 2, "layer[1].kind": "plain", "layer[2].kind": "separable", "pool": True}
    net = build(prog, pt)
    assert net.fusions == [
        ["layers.layer__1__conv2d.conv", "layers.layer__1__batchnorm", "layers.layer__1__relu"],
        ["layers.layer__2__sepconv2d.pointwise", "layers.layer__2__batchnorm",
         "layers.layer__2__relu"],
    ]
    net = _fused_output_matches(prog, pt, seed=0)
    assert isinstance(net.layers["layer__1__conv2d"].conv, torch.ao.nn.intrinsic.ConvReLU2d)
    assert isinstance(net.layers["layer__2__sepconv2d"].pointwise,
                      torch.ao.nn.intrinsic.ConvReLU2d)
    assert type(net.layers["layer__2__sepconv2d"].depthwise) is nn.Conv2d
    for key in ("layer__1__batchnorm", "layer__1__relu", "layer__2__batchnorm"):
        assert isinstance(net.layers[key], nn.Identity)
    assert net.fusions == []


def test_fuse_model_fuses_linear_relu_and_keeps_training_mode() -> None:
    prog = program("sparse_cnn")
    net = build(prog, {"fc": 2})
    net.train()
    net.fuse_model()
    assert net.training
    assert isinstance(net.layers["fc__1__linear"], torch.ao.nn.intrinsic.LinearReLU)
    assert isinstance(net.layers["fc__2__linear"], torch.ao.nn.intrinsic.LinearReLU)
    assert isinstance(net.layers["fc__1__relu"], nn.Identity)


@pytest.mark.parametrize("name", ["ds_cnn", "mbconv", "sparse_cnn", "quickstart", "zoo",
                                  "sparse_cnn_seq"])
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10**6))
def test_fusion_keeps_outputs(name: str, seed: int) -> None:
    prog = SPACES[name]
    for pt in point.sample(prog, 2, seed):
        if not point.validate(prog, pt):
            continue
        plain = build(prog, pt)
        if weights(plain) > MAX_WEIGHTS:
            continue
        # in eval mode Conv-BN and Linear-BN fold into a plain conv / linear; every
        # group ending in a ReLU becomes one fused intrinsic module
        with_relu = sum(type(plain.get_submodule(g[-1])) is nn.ReLU for g in plain.fusions)
        net = _fused_output_matches(prog, pt, seed)
        assert sum(isinstance(m, _FusedModule) for m in net.modules()) == with_relu
