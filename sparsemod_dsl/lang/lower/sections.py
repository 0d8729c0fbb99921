"""The structure of a file, checked before and around lowering its contents.

The `arch` header and its parameters (`input`, `classes`, `output`, `loss`), the order
of doc string, header, imports, sections and blocks, one `train` and one `network` at
most, and which of a program (header and network) or a library (blocks only) a file is
meant to be.
"""

from __future__ import annotations

from ...errors import Diagnostics
from .. import ir
from .. import syntax as s
from .messages import suggest
from .sizes import input_spec

INPUT_KINDS = {"image": 3, "sequence": 2, "vector": 1}
_ARTICLE = {"image": "an image", "sequence": "a sequence", "vector": "a vector"}
_DIMS = {"image": "C, H, W", "sequence": "T, F", "vector": "N"}
_HEADER = "`input: image|sequence|vector` and `classes`, or `output: vector(N)` and `loss = mse`"


class FileChecks:
    """Reports what is wrong with a file's header, sections and their order."""

    def __init__(self, diags: Diagnostics, input_shape: tuple[int, ...] | None) -> None:
        self.diags = diags
        #: The input shape given from outside, which overrides the header's.
        self.input_shape = input_shape

    def header(self, module: s.Module) -> s.ArchHeader | None:
        headers = [i for i in module.items if isinstance(i, s.ArchHeader)]
        for extra in headers[1:]:
            self.diags.error(extra.span, "a file has at most one `arch` header")
        if not headers:
            return None
        header = headers[0]
        seen: set[str] = set()
        for param in header.params:
            if param.name in seen:
                self.diags.error(param.span, f"'{param.name}' is given twice")
            seen.add(param.name)
            if param.name == "input":
                self.check_input(param)
            elif param.name == "classes":
                if (param.kind or param.shape is not None or param.domain is not None
                        or isinstance(param.value, str)):
                    self.diags.error(param.span, "write `classes` or `classes = N`")
                elif param.value is not None and param.value < 2:
                    self.diags.error(param.span, "a classifier needs at least 2 classes")
            elif param.name == "output":
                self.check_output(param)
            elif param.name == "loss":
                self.check_loss(param, header)
            elif param.domain is None or param.kind is not None:
                self.diags.error(
                    param.span,
                    f"unknown header parameter '{param.name}'"
                    + suggest(param.name, ["input", "classes", "output", "loss"])
                    + f" (the header takes {_HEADER})",
                )
        if "input" not in seen:
            self.diags.error(
                header.span, "the header needs an input: `input: image|sequence|vector`"
            )
        if "classes" in seen and "output" in seen:
            param = next(p for p in header.params if p.name == "output")
            self.diags.error(
                param.span,
                "a network has `classes` (a classifier) or an `output` (regression), not both",
            )
        return header

    def check_output(self, param: s.ArchParam) -> None:
        """`output: vector` or `output: vector(N)`: a regression or reconstruction head."""
        if param.kind != "vector" or param.value is not None or param.domain is not None:
            self.diags.error(param.span, "write `output: vector` or `output: vector(N)`")
        elif param.shape is not None and (len(param.shape) != 1 or not isinstance(
                param.shape[0], int) or param.shape[0] < 1):
            self.diags.error(param.span, "an output vector's shape is (N), N at least 1")

    def check_loss(self, param: s.ArchParam, header: s.ArchHeader) -> None:
        """`loss = mse` (needs an `output`) or `loss = cross_entropy` (a classifier's, with
        or without `classes`)."""
        if param.kind is not None or param.shape is not None or not isinstance(param.value, str):
            self.diags.error(param.span, "write `loss = mse` or `loss = cross_entropy`")
            return
        if param.value not in ir.LOSSES:
            self.diags.error(
                param.span,
                f"unknown loss '{param.value}'" + suggest(param.value, list(ir.LOSSES))
                + " (the losses are mse and cross_entropy)",
            )
            return
        regression = any(p.name == "output" for p in header.params)
        if param.value == "mse" and not regression:
            self.diags.error(param.span, "`loss = mse` needs `output: vector(N)` in the header")
        elif param.value == "cross_entropy" and regression:
            self.diags.error(param.span, "`loss = cross_entropy` is a classifier's: it goes with "
                             "`classes`, not with `output`")

    def check_input(self, param: s.ArchParam) -> None:
        if param.kind not in INPUT_KINDS or param.value is not None or param.domain is not None:
            self.diags.error(
                param.span,
                "write `input: image`, `input: sequence`, `input: vector` "
                "or a shape: `input: image(1, 8, 8)`",
            )
            return
        rank = INPUT_KINDS[param.kind]
        sizes = [n for n in param.shape or () if isinstance(n, int)]
        if param.shape is not None and (len(param.shape) != rank or min(sizes, default=1) < 1):
            self.diags.error(
                param.span,
                f"{_ARTICLE[param.kind]} shape is ({_DIMS[param.kind]}), each at least 1",
            )
        if self.input_shape is not None and len(self.input_shape) != rank:
            self.diags.error(
                param.span,
                f"this network takes {param.kind} input, but the given shape "
                f"{'x'.join(map(str, self.input_shape))} has {len(self.input_shape)} dimensions",
            )

    def input_spec(self, header: s.ArchHeader, params: dict[str, ir.Parameter]) -> ir.InputSpec:
        param = next(p for p in header.params if p.name == "input")
        return input_spec(str(param.kind), param.shape, self.input_shape, params)

    @staticmethod
    def header_classes(header: s.ArchHeader) -> int | None:
        """The size of the output: the number of classes, or N of `output: vector(N)`."""
        for p in header.params:
            if p.name == "classes" and isinstance(p.value, int):
                return p.value
            if p.name == "output" and p.shape is not None and isinstance(p.shape[0], int):
                return p.shape[0]
        return None

    @staticmethod
    def header_loss(header: s.ArchHeader) -> str:
        """The declared loss; an `output` without one means mse, `classes` cross-entropy."""
        named = next((p.value for p in header.params if p.name == "loss"), None)
        if isinstance(named, str):
            return named
        return "mse" if any(p.name == "output" for p in header.params) else "cross_entropy"

    def check_order(self, item: s.Item, module: s.Module, sections: dict[type, s.Stmt]) -> None:
        kind = type(item)
        if isinstance(item, s.Docstring) and item is not module.items[0]:
            self.diags.error(item.span, "a doc string must come first in the file")
        if kind in (s.ArchHeader, s.TrainSection, s.NetworkSection):
            if kind in sections and kind is not s.ArchHeader:
                word = "train" if kind is s.TrainSection else "network"
                self.diags.error(
                    item.span,
                    f"a file has at most one `{word}` section",
                    (sections[kind].span, "the first one is here"),
                )
            sections.setdefault(kind, item)
        if isinstance(item, s.ArchHeader) and any(k is not s.ArchHeader for k in sections):
            self.diags.error(item.span, "the `arch` header comes before sections and blocks")
        if isinstance(item, s.Import) and any(k is not s.ArchHeader for k in sections):
            self.diags.error(item.span, "imports come before sections and blocks")
        if isinstance(item, s.BlockDef):
            sections.setdefault(s.BlockDef, item)

    def library_only(
        self, module: s.Module, header: s.ArchHeader | None, sections: dict[type, s.Stmt]
    ) -> None:
        if header is not None:
            self.diags.error(header.span, "the file has an `arch` header but no `network` section")
        elif s.NetworkSection in sections:
            self.diags.error(
                sections[s.NetworkSection].span,
                "a `network` needs an `arch NAME(input: image|sequence|vector, classes)` header "
                "before it",
            )
        elif not module.items:
            self.empty(module)
        else:
            self.diags.error(
                module.items[0].span,
                "this file has no `arch` header and `network`: check it as a library "
                "(it holds only blocks) or add them",
            )

    def empty(self, module: s.Module) -> None:
        """Report a file with nothing in it."""
        self.diags.error(
            s.Span(module.file, 1, 1, 1, 2),
            "the file is empty: expected an `arch` header and a `network`, or blocks",
        )
