"""Residual shortcuts: how the input of `residual(shortcut = ...) { body }` meets the body.

- "identity" (the default): the input itself; the body must keep the shape.
- "projection": a 1x1 convolution (no bias) and a batch norm, with the stride that
  turns the input's spatial size into the body's (ceil(size / stride) positions, as a
  strided `same` convolution gives) and the body's channels: ResNet's option B.
- "avgpool": average pooling with window = stride; the body must keep the channels.
- "auto": identity where the shapes already meet, else projection (what ResNet does).

`plan` decides for exact shapes (a point); `space_issue` tells, over intervals (a whole
space), why no shortcut can meet the body at any point. Shortcuts join images and
sequences; a vector's shortcut is the identity only. The builder (`nets/netlib.py`,
torch only) and the deployed graph (`nets/graph.py`) follow `plan`.
"""

from __future__ import annotations

from dataclasses import dataclass

from .shapes import Shape

#: The shortcut kinds a `residual` takes, the default first.
SHORTCUTS = ("identity", "projection", "avgpool", "auto")


class ShortcutError(ValueError):
    """The shortcut cannot join the input and the body's output; the message says why."""


@dataclass(frozen=True)
class Plan:
    """What the skip path computes: `kind` identity/projection/avgpool, its stride."""

    kind: str
    stride: int = 1


def stride_between(size: int, out: int) -> int | None:
    """The stride s with ceil(size / s) == out, if one exists (the smallest)."""
    if out < 1 or out > size:
        return None
    stride = -(-size // out)
    return stride if -(-size // stride) == out else None


def _spatial(shape: Shape) -> tuple[int, ...]:
    sizes = shape.sizes()
    return sizes[1:] if shape.kind == "image" else sizes[:1]


def plan(written: str, inp: Shape, out: Shape) -> Plan:
    """The skip path of a residual with input `inp` and body output `out` (exact shapes).

    Raises:
        ShortcutError: they cannot meet with this shortcut.
    """
    same = inp.kind == out.kind and inp.sizes() == out.sizes()
    if written == "identity" or (written == "auto" and same):
        if not same:
            raise ShortcutError(_identity_message(inp, out, _projects(inp, out)))
        return Plan("identity")
    if inp.kind != out.kind or inp.kind == "vector":
        raise ShortcutError(f"the residual body turns {inp} into {out}; a \"{written}\" "
                            "shortcut joins images or sequences of the same kind")
    strides = {stride_between(a, b) for a, b in zip(_spatial(inp), _spatial(out))}
    if None in strides or len(strides) > 1:
        raise ShortcutError(f"the residual body turns {inp} into {out}; no one stride of a "
                            f"{'1x1 convolution' if written != 'avgpool' else 'pooling'} "
                            "turns the one size into the other")
    (stride,) = strides
    kind = "projection" if written == "auto" else written
    if kind == "avgpool" and inp.channels != out.channels:
        raise ShortcutError(f"the residual body turns {inp} into {out}; an avgpool shortcut "
                            "keeps the channels: use shortcut = \"projection\" to change them")
    if kind == "avgpool" and any(a != b * stride for a, b in zip(_spatial(inp), _spatial(out))):
        raise ShortcutError(f"the residual body turns {inp} into {out}; an avgpool shortcut "
                            f"needs sizes that the stride {stride} divides")
    return Plan(kind, stride)


def _identity_message(inp: Shape, out: Shape, could: bool) -> str:
    message = f"the residual body turns {inp} into {out}; "
    if not could:
        return message + "the skip connection needs the same shape"
    return (message + "an identity shortcut needs the same shape, but a projection can "
            "join them: write `residual(shortcut = \"projection\")` (or \"auto\")")


def _projects(inp: Shape, out: Shape) -> bool:
    """Whether a projection shortcut joins two exact shapes."""
    try:
        plan("projection", inp, out)
    except ShortcutError:
        return False
    return True


def space_issue(written: frozenset, inp: Shape, out: Shape) -> str | None:
    """Why no shortcut in `written` can join `inp` and `out` at any point, or None.

    Over intervals, only exact sizes are judged: where a size still varies, some point
    may meet, and points are validated one at a time.
    """
    if inp.kind != out.kind:
        return (f"the residual body turns {inp} into {out}; the skip connection needs the "
                "same kind of shape")
    if not all(d.exact for d in (*inp.dims, *out.dims)):
        differ = any(a.exact and b.exact and a.lo != b.lo for a, b in zip(inp.dims, out.dims))
        if written == {"identity"} and differ:
            return _identity_message(inp, out, inp.kind != "vector")
        return None
    messages = []
    for kind in sorted(written):
        try:
            plan(str(kind), inp, out)
            return None
        except ShortcutError as error:
            messages.append(str(error))
    return "; ".join(messages)
