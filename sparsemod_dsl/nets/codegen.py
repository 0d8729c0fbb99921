"""Code generation: a standalone Python builder, and the IR as JSON.

`builder_source(program)` writes a module that needs only torch: the source of
`fusion`, `modules`, `network` and `netlib` (the fusion rule, layer modules,
`SparsemodNet`, `NetBuilder`), copied verbatim under one merged import block,
followed by a `build(params)` function with the space's structure written out as
plain `if` statements. Runtime and generated builders drive the same `NetBuilder`,
so they give the same modules, keys and outputs.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import sys
from types import ModuleType
from typing import Any

from .. import __version__
from ..lang import functions, ir
from ..lang.infer import MAX_LEN
from . import fusion, modules, netlib, network
from .point import default

#: The torch-only modules a generated builder embeds, each after those it imports
#: (`functions`: the language's built-in functions, pure Python).
_EMBEDDED = (functions, fusion, modules, network, netlib)


#: An import of an embedded module, keyed to sort as isort does: (third-party, `from`
#: form, module); the value holds the names a `from` import takes.
_Imports = dict[tuple[bool, bool, str], dict[str, None]]


def _alias(alias: ast.alias) -> str:
    return alias.name if alias.asname is None else f"{alias.name} as {alias.asname}"


def _third_party(module: str) -> bool:
    return module.split(".")[0] not in sys.stdlib_module_names


def _embedded_body(module: ModuleType, imports: _Imports) -> str:
    """`module`'s code after its doc string and imports; its imports go into `imports`.

    `from __future__` and relative imports are left out: the names those import are
    defined by an earlier embedded module, in the same generated file.
    """
    source = inspect.getsource(module)
    tree = ast.parse(source)
    doc = tree.body[0]
    assert isinstance(doc, ast.Expr) and doc.end_lineno is not None
    start = doc.end_lineno
    siblings = {embedded.__name__.rpartition(".")[2] for embedded in _EMBEDDED}
    for node in tree.body[1:]:
        if isinstance(node, ast.Import):
            for alias in node.names:
                imports.setdefault((_third_party(alias.name), False, _alias(alias)), {})
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                assert node.level == 1 and node.module in siblings, node.module
            elif node.module and node.module != "__future__":
                names = imports.setdefault((_third_party(node.module), True, node.module), {})
                names.update(dict.fromkeys(_alias(alias) for alias in node.names))
        else:
            break
        assert node.end_lineno is not None
        start = node.end_lineno
    return "\n".join(source.splitlines()[start:]).strip() + "\n"


def _embedded_source() -> str:
    """The `_EMBEDDED` modules as one source: a merged import block, then their code."""
    imports: _Imports = {}
    bodies = [_embedded_body(module, imports) for module in _EMBEDDED]
    lines = ["from __future__ import annotations"]
    section = None
    for third_party, is_from, name in sorted(imports):
        if third_party != section:
            section = third_party
            lines.append("")
        names = ", ".join(sorted(imports[(third_party, is_from, name)]))
        lines.append(f"from {name} import {names}" if is_from else f"import {name}")
    return "\n".join(lines) + "\n\n\n" + "\n\n".join(bodies)


def expression(expr: ir.ArgExpr) -> str:
    """Python source for an IR expression (or a pair: a tuple) inside the generated `build`."""
    if isinstance(expr, ir.Pair):
        return f"({expression(expr.height)}, {expression(expr.width)})"
    if isinstance(expr, ir.Const):
        return repr(expr.value)
    if isinstance(expr, ir.ParamRef):
        return f"p[{expr.name!r}]"
    if isinstance(expr, ir.Builtin):
        if expr.name in ir.SPATIAL:
            return f"b.shape[{ir.SPATIAL[expr.name][1]}]"
        return "b.channels" if expr.name == "in_channels" else "classes"
    if isinstance(expr, ir.Neg):
        return f"(-{expression(expr.operand)})"
    if isinstance(expr, ir.Func):
        args = ", ".join(expression(a) for a in expr.args)
        if expr.name in ("min", "max"):
            return f"{expr.name}({args})"
        return f"{ir.FUNCTIONS[expr.name].__name__}([{args}])"
    return f"({expression(expr.left)} {expr.op} {expression(expr.right)})"


class _Emitter:
    def __init__(self, program: ir.Program) -> None:
        self.program = program
        self.lines: list[str] = []
        self.depth = 1

    def line(self, text: str) -> None:
        self.lines.append("    " * self.depth + text)

    def nodes(self, nodes: tuple[ir.Node, ...]) -> None:
        for node in nodes:
            self.node(node)

    def node(self, node: ir.Node) -> None:
        if isinstance(node, ir.Layer):
            args = ", ".join(f"{name}={expression(expr)}" for name, expr in node.args)
            where = f"{_escaped(node.span.file)}:{node.span.line}"
            comment = f"  # {where}" if node.span.line else ""
            self.line(f"b.{node.op}({node.name!r}{', ' if args else ''}{args}){comment}")
        elif isinstance(node, ir.Repeat):
            count = expression(node.count)
            self.line(f"# repeat {node.name}: {len(node.instances)} instances at most")
            for i, body in enumerate(node.instances, start=1):
                self.block(f"if {count} >= {i}:", body)
        elif isinstance(node, ir.Choose):
            for k, (name, body) in enumerate(node.alternatives):
                keyword = "if" if k == 0 else "elif"
                self.block(f"{keyword} p[{node.param!r}] == {name!r}:", body)
            self.line("else:")
            self.depth += 1
            self.line(f"raise ValueError(f\"{node.param} = {{p[{node.param!r}]!r}} "
                      f"is not an alternative\")")
            self.depth -= 1
        elif isinstance(node, ir.Optional):
            self.block(f"if p[{node.param!r}]:", node.body)
        elif isinstance(node, ir.Residual):
            self.line("b.residual_begin()")
            self.nodes(node.body)
            self.line(f"b.residual_end({node.name!r}, {expression(node.shortcut)})")
        else:
            self.line("b.time_distributed_begin()")
            self.nodes(node.body)
            self.line("b.time_distributed_end()")

    def block(self, head: str, body: tuple[ir.Node, ...]) -> None:
        self.line(head)
        self.depth += 1
        if body:
            self.nodes(body)
        else:
            self.line("pass")
        self.depth -= 1


def _escaped(text: str, keep: str = "") -> str:
    """`text` with each unprintable character (NUL, a carriage return, a line
    separator...) but those in `keep` written as its Python escape."""
    return "".join(c if c.isprintable() or c in keep else repr(c)[1:-1] for c in text)


def _docstring_text(text: str) -> str:
    """`text` written so that it reads back unchanged inside a triple-quoted doc string."""
    return _escaped(text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"'), keep="\n\t")


def builder_source(program: ir.Program) -> str:
    """A standalone Python module (torch only) that builds the program's networks."""
    emitter = _Emitter(program)
    emitter.nodes(program.network)
    defaults = "\n".join(
        f"    {p.name!r}: {default(p.domain)!r}," for p in program.parameters
    )
    shape = None if program.input.shape is None else tuple(program.input.shape)
    has_max_len = any(p.name == MAX_LEN for p in program.parameters)
    doc = _docstring_text(program.doc)
    header = (
        f'"""Network builder for the `{program.name}` search space.\n\n'
        + (f"{doc}\n\n" if doc else "")
        + f"Generated by sparsemodc {__version__} from {_docstring_text(program.file)}; "
        "do not edit.\n"
        "Needs only torch. `build(params)` takes readable parameter names; missing\n"
        'ones take their defaults, inactive ones are ignored.\n"""\n\n'
    )
    body = [
        f"PROGRAM = {program.name!r}",
        f"INPUT_KIND = {program.input.kind!r}",
        f"INPUT_SHAPE = {shape!r}",
        f"CLASSES = {program.classes!r}",
        "DEFAULTS = {",
        defaults,
        "}",
        "",
        "",
        "def build(params=None, input_shape=INPUT_SHAPE, classes=CLASSES):",
        '    """Build the network at `params` (readable names -> values)."""',
        "    p = dict(DEFAULTS)",
        "    p.update(params or {})",
    ]
    if has_max_len:
        body.append(f"    input_shape = (p[{MAX_LEN!r}], input_shape[1])")
    if program.input.searched:
        sizes = ", ".join(
            f"input_shape[{i}]" if name is None else f"p[{name!r}]"
            for i, name in enumerate(program.input.searched)
        )
        body.append(f"    input_shape = ({sizes})  # the searched input sizes")
    body.append("    b = NetBuilder(INPUT_KIND, input_shape, p)")
    return (
        header + _embedded_source() + "\n\n" + "\n".join(body) + "\n"
        + "\n".join(emitter.lines) + "\n    return b.finish()\n"
    )


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {"node": type(value).__name__}
        for f in dataclasses.fields(value):
            if f.compare:
                out[f.name] = _plain(getattr(value, f.name))
        return out
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def ir_json(program: ir.Program) -> str:
    """The program IR as indented JSON (positions left out)."""
    return json.dumps(_plain(program), indent=1)
