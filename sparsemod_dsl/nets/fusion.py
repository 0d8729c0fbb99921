"""Which runs of consecutive layers fuse into one kernel: one rule for torch and TFLite.

The torch builder (`netlib`) hands these groups to `torch.ao.quantization.fuse_modules`
before int8 conversion; the deployed graph (`graph`) folds the same layers into one
TFLite operator. Both must agree, or the exported model would quantise a tensor that
the torch int8 model never had. Pure Python with no imports, because `codegen` copies
it verbatim into generated builders.

Kinds: `conv` (Conv1d/Conv2d, the core of every conv-like layer), `linear`, `bn2d`,
`bn1d` and `relu`. torch fuses conv+bn(+relu), conv+relu, linear+bn, linear+relu and
bn2d+relu; everything else in a run stays on its own.
"""

from __future__ import annotations


def fusion_groups(kinds: list[str]) -> list[tuple[int, int]]:
    """(start, size) of every group of two or more layers that fuse, in a run of kinds."""
    groups: list[tuple[int, int]] = []
    i = 0
    while i < len(kinds):
        kind, after = kinds[i], kinds[i + 1:i + 3]
        size = 1
        if kind in ("conv", "linear") and after:
            if after[0] in ("bn1d", "bn2d"):
                size = 3 if kind == "conv" and after[1:] == ["relu"] else 2
            elif after[0] == "relu":
                size = 2
        elif kind == "bn2d" and after[:1] == ["relu"]:
            size = 2
        if size > 1:
            groups.append((i, size))
        i += size
    return groups
