"""Morphisms: small changes to a point of the space, and weight inheritance.

The third SpArSe stage mutates networks of the Pareto front and re-trains the
children from their parents' weights. The operators here are derived from the
IR, so every space gets them without annotations: step an int, perturb a float,
switch a choice (or a `choose` alternative), add or remove one repetition of a
`repeat`, toggle an `optional`. Each touches only active parameters, returns an
active point of the space, and says in readable names what it changed.
`inherit` copies a parent's weights into a child by IR position (state-dict
keys follow readable layer names), slicing where sizes differ.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import torch

from ..lang import ir
from .modules import SeqConv1d
from .point import Point, active, contains, validate

#: An operator: (program, parent point, rng) -> (child point, what changed) or None
#: when it has nothing to change.
Morphism = Callable[[ir.Program, Point, random.Random], "Mutation | None"]


@dataclass(frozen=True)
class Mutation:
    """A child point and, in readable names, what changed from its parent."""

    point: Point
    changes: tuple[str, ...]
    operator: str


# --- the structure of a program ---------------------------------------------------------------


def _repeats(program: ir.Program) -> dict[str, ir.Repeat]:
    """Repeats whose count is a parameter, by the name of that parameter."""
    return {
        node.count.name: node for node in ir.nodes(program.network)
        if isinstance(node, ir.Repeat) and isinstance(node.count, ir.ParamRef)
    }


def _optionals(program: ir.Program) -> set[str]:
    """Parameters that switch an `optional` part on and off."""
    return {node.param for node in ir.nodes(program.network) if isinstance(node, ir.Optional)}


def _candidates(program: ir.Program, point: Point, kind: type,
                exclude: set[str] | frozenset[str] = frozenset()) -> list[ir.Parameter]:
    """Active parameters with a domain of `kind` whose names are not in `exclude`."""
    return [
        p for p in program.parameters
        if p.name in point and isinstance(p.domain, kind) and p.name not in exclude
        and p.morph_weight > 0
    ]


def _pick(rng: random.Random, params: list[ir.Parameter]) -> ir.Parameter:
    """One of `params`, drawn in proportion to their morph weights."""
    return rng.choices(params, weights=[p.morph_weight for p in params])[0]


def _changed(program: ir.Program, point: Point, name: str, value: ir.Scalar, operator: str,
             copied: Mapping[str, tuple[str, ir.Scalar]] | None = None,
             note: str = "") -> Mutation:
    """The mutation setting `name` to `value` at `point`, and each `copied` parameter
    to the value of its source: {target: (source, value)}."""
    copied = copied or {}
    child = active(program, {**point, **{k: v for k, (_, v) in copied.items()}, name: value})
    change = f"{name}: {point[name]!r} -> {value!r}{note}"
    copies = (f"{k} <- {source} = {v!r}" for k, (source, v) in copied.items())
    return Mutation(child, (change, *copies), operator)


# --- operators ------------------------------------------------------------------------------------


def step_int(program: ir.Program, point: Point, rng: random.Random) -> Mutation | None:
    """Move an int parameter (filters, units, kernel...) by one step or a few.

    Half the time one step; otherwise up to an eighth of the range (a quarter
    of the value on log scales). Repeat counts are left to `add_repeat`.
    """
    current = active(program, point)
    params = _candidates(program, current, ir.IntDomain, set(_repeats(program)))
    if not params:
        return None
    param = _pick(rng, params)
    domain = param.domain
    assert isinstance(domain, ir.IntDomain)
    value = int(current[param.name])  # type: ignore[arg-type]
    reach = value / 4 if domain.log else (domain.high - domain.low) / 8
    steps = 1 if rng.random() < 0.5 else rng.randint(1, max(1, int(reach) // domain.step))
    sign = rng.choice((-1, 1))
    for moved in (value + sign * steps * domain.step, value - sign * steps * domain.step):
        moved = min(max(moved, domain.low), domain.high)
        if moved != value and contains(domain, moved):
            return _changed(program, current, param.name, moved, "step_int")
    return None


def perturb_float(program: ir.Program, point: Point, rng: random.Random) -> Mutation | None:
    """Move a float parameter within its range: multiplicatively on log scales."""
    current = active(program, point)
    params = [p for p in _candidates(program, current, ir.FloatDomain)
              if p.domain.high > p.domain.low]  # type: ignore[union-attr]
    if not params:
        return None
    param = _pick(rng, params)
    domain = param.domain
    assert isinstance(domain, ir.FloatDomain)
    value = float(current[param.name])  # type: ignore[arg-type]
    if domain.log:
        moved = value * math.exp(rng.gauss(0.0, 0.3))
    else:
        moved = value + rng.gauss(0.0, (domain.high - domain.low) / 8)
    moved = min(max(moved, domain.low), domain.high)
    if moved == value:
        return None
    return _changed(program, current, param.name, moved, "perturb_float")


def switch_choice(program: ir.Program, point: Point, rng: random.Random) -> Mutation | None:
    """Pick another value of a choice, or another alternative of a `choose`.

    Ordered choices move to a neighbouring value; others to any other value.
    Optional parts are left to `toggle_optional`.
    """
    current = active(program, point)
    params = [p for p in _candidates(program, current, ir.ChoiceDomain, _optionals(program))
              if len(p.domain.values) > 1]  # type: ignore[union-attr]
    if not params:
        return None
    param = _pick(rng, params)
    domain = param.domain
    assert isinstance(domain, ir.ChoiceDomain)
    index = domain.values.index(current[param.name])
    if domain.ordered:
        others = [i for i in (index - 1, index + 1) if 0 <= i < len(domain.values)]
    else:
        others = [i for i in range(len(domain.values)) if i != index]
    return _changed(program, current, param.name, domain.values[rng.choice(others)],
                    "switch_choice")


def toggle_optional(program: ir.Program, point: Point, rng: random.Random) -> Mutation | None:
    """Add or remove an `optional` part."""
    current = active(program, point)
    params = [p for p in _candidates(program, current, ir.ChoiceDomain)
              if p.name in _optionals(program) and contains(p.domain, not current[p.name])]
    if not params:
        return None
    param = _pick(rng, params)
    return _changed(program, current, param.name, not current[param.name], "toggle_optional")


def _resize(program: ir.Program, point: Point, rng: random.Random, delta: int,
            operator: str) -> Mutation | None:
    """Change the count of an active repeat by `delta` (+1 or -1) within its domain."""
    current = active(program, point)
    repeats = _repeats(program)
    counts = [
        program.parameter(name) for name in repeats
        if name in current and program.parameter(name).morph_weight > 0
        and contains(program.parameter(name).domain,
                     int(current[name]) + delta)  # type: ignore[call-overload]
    ]
    if not counts:
        return None
    name = _pick(rng, counts).name
    count = int(current[name])  # type: ignore[call-overload]
    prefix = repeats[name].name
    if delta < 0:
        return _changed(program, current, name, count - 1, operator,
                        note=f" (removes {prefix}[{count}])")
    copied = _neighbour_copy(program, current, prefix, count)
    return _changed(program, current, name, count + 1, operator, copied,
                    f" (adds {prefix}[{count + 1}])")


def _neighbour_copy(program: ir.Program, point: Point, prefix: str,
                    count: int) -> dict[str, tuple[str, ir.Scalar]]:
    """Values for instance count+1 of a repeat, from instance `count` where names
    correspond (`block[3].x` <- `block[2].x`): {target: (source, value)}.

    Nothing when there is no neighbour (count 0): the new instance keeps defaults.
    """
    new, old = f"{prefix}[{count + 1}].", f"{prefix}[{count}]."
    copied: dict[str, tuple[str, ir.Scalar]] = {}
    for param in program.parameters:
        source = old + param.name[len(new):]
        if param.name.startswith(new) and source in point:
            copied[param.name] = (source, point[source])
    return copied


def add_repeat(program: ir.Program, point: Point, rng: random.Random) -> Mutation | None:
    """Add one repetition to a `repeat`, copying its neighbour's parameters."""
    return _resize(program, point, rng, +1, "add_repeat")


def remove_repeat(program: ir.Program, point: Point, rng: random.Random) -> Mutation | None:
    """Remove the last repetition of a `repeat`."""
    return _resize(program, point, rng, -1, "remove_repeat")


DEFAULT_MORPHISMS: tuple[Morphism, ...] = (
    step_int, perturb_float, switch_choice, add_repeat, remove_repeat, toggle_optional,
)


def mutate(
    program: ir.Program,
    point: Point,
    rng: random.Random,
    operators: Sequence[Morphism] = DEFAULT_MORPHISMS,
    tries: int = 20,
) -> Mutation | None:
    """A valid child of `point` from a random operator, or None after `tries` attempts."""
    for _ in range(tries):
        mutation = rng.choice(list(operators))(program, point, rng)
        if mutation is not None and validate(program, mutation.point):
            return mutation
    return None


# --- weight inheritance -----------------------------------------------------------------------------


def _gates(child: torch.nn.Module, key: str) -> int:
    """How many gate blocks are stacked along dim 0 of a tensor: 4 (LSTM), 3 (GRU) or 1."""
    owner, _, attr = key.rpartition(".")
    module = child.get_submodule(owner)
    if attr.startswith(("weight_ih", "weight_hh", "bias_ih", "bias_hh")):
        if isinstance(module, torch.nn.LSTM):
            return 4
        if isinstance(module, torch.nn.GRU):
            return 3
    return 1


def _copy_overlap(own: torch.Tensor, parent: torch.Tensor) -> None:
    """Copy the leading overlap of `parent` into `own`.

    Where `own` reads more inputs (dim 1), the kept outputs get zero weights
    from the new inputs, so a widened layer's extra channels do not change what
    its reader computes.
    """
    overlap = tuple(slice(0, min(a, b)) for a, b in zip(own.shape, parent.shape))
    own[overlap] = parent[overlap]
    if own.dim() >= 2 and own.shape[1] > parent.shape[1]:
        own[overlap[0], parent.shape[1]:] = 0


def _identity(module: torch.nn.Module, before: int | None = None) -> bool:
    """Make a new layer compute the identity, when its shape allows; True if it did.

    Convolutions with as many outputs as inputs, stride 1 and no dilation get a
    one at the kernel position `same` padding aligns with each input ((k-1)//2,
    as padding puts the extra pixel after); square linear layers the identity
    matrix; batch norms scale 1, shift 0 and statistics that leave inputs as
    they are. Net2Net-style deepening: an added conv-BN-ReLU after a ReLU starts
    out computing its parent's function. `before` is a conv1d's padding in front of the
    steps, when known: `causal` padding aligns each input with the last kernel position.
    """
    if isinstance(module, (torch.nn.Conv1d, torch.nn.Conv2d)):
        square = module.in_channels == module.out_channels
        depthwise = module.groups == module.in_channels
        plain = all(s == 1 for s in module.stride) and all(d == 1 for d in module.dilation)
        if not (square and (module.groups == 1 or depthwise) and plain):
            return False
        if before is not None and before >= module.kernel_size[0]:
            return False  # the output is longer than the input: no identity
        module.weight.zero_()
        centre = (before,) if before is not None else tuple(
            (k - 1) // 2 for k in module.kernel_size)
        for channel in range(module.out_channels):
            module.weight[(channel, 0 if depthwise else channel, *centre)] = 1.0
    elif isinstance(module, torch.nn.Linear) and module.in_features == module.out_features:
        module.weight.copy_(torch.eye(module.in_features))
    elif isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and module.affine:
        module.weight.fill_(1.0)
        module.running_mean.zero_()  # type: ignore[union-attr]
        module.running_var.fill_(1.0 - module.eps)  # type: ignore[union-attr]
    else:
        return False
    if module.bias is not None:
        module.bias.zero_()
    return True


def _channel_identity(module: torch.nn.Module) -> None:
    """A new projection shortcut (the parent's residual was the identity) passes each
    input channel to the output channel of the same index, and the new channels none:
    widening an `auto` residual's body then keeps the function."""
    if isinstance(module, (torch.nn.Conv1d, torch.nn.Conv2d)) and all(
            k == 1 for k in module.kernel_size):
        module.weight.zero_()
        for channel in range(min(module.in_channels, module.out_channels)):
            module.weight[(channel, channel, *(0 for _ in module.kernel_size))] = 1.0


def inherit(child: torch.nn.Module, parent_state: Mapping[str, torch.Tensor]) -> int:
    """Copy the parent's tensors into the child by IR position; returns how many.

    Module keys follow IR positions, so a layer that exists in both networks
    keeps its weights, whatever was added or removed around it. Same shape:
    copied whole; same rank, other sizes: the overlapping slice (LSTM/GRU gate
    blocks one by one); other ranks: left as initialised. A layer the parent
    does not have starts as the identity where its shape allows (`_identity`), a new
    projection shortcut as the identity on the channels it keeps (`_channel_identity`).
    """
    own = child.state_dict()
    copied = 0
    fronts = {f"{name}.conv": int(module.pad.padding[0])
              for name, module in child.named_modules() if isinstance(module, SeqConv1d)}
    with torch.no_grad():
        for name, module in child.named_modules():
            weight = getattr(module, "weight", None)
            if isinstance(weight, torch.Tensor) and f"{name}.weight" not in parent_state:
                if not _identity(module, fronts.get(name)) and "__shortcut." in name:
                    _channel_identity(module)
        for key, value in parent_state.items():
            if key not in own or own[key].dim() != value.dim():
                continue
            target = own[key]
            if target.shape == value.shape:
                target.copy_(value)
            else:
                gates = _gates(child, key)
                if target.shape[0] % gates or value.shape[0] % gates:
                    continue
                for mine, theirs in zip(target.chunk(gates), value.chunk(gates)):
                    _copy_overlap(mine, theirs.to(mine.dtype))
            copied += 1
    return copied
