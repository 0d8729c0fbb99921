"""The package layout cannot rot: imports go one way, modules stay small.

The three parts are `lang` (text -> checked IR), `nets` (what is done with a compiled
space) and `search` (the engine); `errors.py` is below all of them, `space.py` (the
Python API) between `nets` and `search`, and `cli` on top. Every import statement of
every module, function-local ones included, is read with `ast` and must point down or
sideways in that order.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import sparsemod_dsl

PACKAGE = Path(sparsemod_dsl.__file__).resolve().parent

#: What each part may import, besides itself. The package root is the façade: it may
#: import anything (lazily), and below it only `__version__` may be taken from it.
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "lang": {"errors"},
    "nets": {"errors", "lang"},
    "space": {"errors", "lang", "nets"},
    "search": {"errors", "lang", "nets", "space"},
    "cli": {"errors", "lang", "nets", "space", "search"},
}
MAX_LINES = 450


def part_of(module: str) -> str:
    """The part that a dotted module below `sparsemod_dsl` belongs to."""
    parts = module.split(".")
    assert parts[0] == "sparsemod_dsl", module
    return parts[1] if len(parts) > 1 else "root"


def module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported(source: str, module: str, is_package: bool) -> list[tuple[int, str, list[str]]]:
    """(line, imported module, names) for every import of the package in `source`."""
    found = []
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, []) for alias in node.names
                      if alias.name.split(".")[0] == "sparsemod_dsl"]
        elif isinstance(node, ast.ImportFrom):
            names = [alias.name for alias in node.names]
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "sparsemod_dsl":
                continue
            if target.count(".") == 1 or target == "sparsemod_dsl":
                # `from .. import ir` names modules of that package: judge each one
                found += [(node.lineno, f"{target}.{name}", []) if not name.startswith("__")
                          else (node.lineno, target, [name]) for name in names]
            else:
                found.append((node.lineno, target, names))
    return found


def violations(source: str, module: str, is_package: bool = False) -> list[str]:
    """The imports of `module` that point up or across the layers."""
    here = part_of(module)
    if here in ("root",):
        return []
    bad = []
    for line, target, names in imported(source, module, is_package):
        there = part_of(target)
        if there == here:
            continue
        if there == "root" and names == ["__version__"]:
            continue
        if there in ("grammar", "stdlib"):
            continue
        if there not in ALLOWED[here]:
            bad.append(f"{module}:{line}: {here} imports {target} ({there})")
    return bad


def package_modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_the_tree_shows_the_three_parts() -> None:
    top = {p.name for p in PACKAGE.iterdir() if p.suffix == ".py" or
           (p.is_dir() and (p / "__init__.py").exists())}
    assert {"lang", "nets", "search"} <= top
    assert top - {"lang", "nets", "search", "grammar", "stdlib"} <= {
        "__init__.py", "errors.py", "space.py", "cli.py", "cli"}


@pytest.mark.parametrize("path", package_modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_go_one_way(path: Path) -> None:
    module = module_name(path)
    assert violations(path.read_text("utf-8"), module, path.name == "__init__.py") == []


@pytest.mark.parametrize("path", package_modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_stay_small(path: Path) -> None:
    source = path.read_text("utf-8")
    lines = source.count("\n")
    if lines > MAX_LINES:
        docstring = ast.get_docstring(ast.parse(source)) or ""
        assert "must stay whole" in docstring, (
            f"{path.name} has {lines} lines; split it or say in its docstring why it "
            "must stay whole")


@pytest.mark.parametrize(("module", "source", "expected"), [
    ("sparsemod_dsl.lang.check", "from ..nets import point\n", ["lang imports sparsemod_dsl.nets.point"]),
    ("sparsemod_dsl.lang.check", "from ..search.train import x\n", ["lang imports sparsemod_dsl.search.train"]),
    ("sparsemod_dsl.nets.cost", "def f():\n    from ..search import train\n", ["nets imports"]),
    ("sparsemod_dsl.nets.cost", "import sparsemod_dsl.search.engine\n", ["nets imports"]),
    ("sparsemod_dsl.nets.cost", "from .. import space\n", ["nets imports sparsemod_dsl.space"]),
    ("sparsemod_dsl.errors", "from .lang import syntax\n", ["errors imports"]),
    ("sparsemod_dsl.nets.codegen", "from .. import __version__\nfrom ..lang import ir\n", []),
    ("sparsemod_dsl.search.engine", "from ..space import Space\nfrom ..nets import cost\n", []),
    ("sparsemod_dsl.lang", "from .fmt import x\n", []),
])
def test_the_check_itself_finds_upward_imports(module: str, source: str,
                                               expected: list[str]) -> None:
    is_package = (PACKAGE.parent / module.replace(".", "/")).is_dir()
    found = violations(source, module, is_package)
    assert len(found) == len(expected)
    for message, wanted in zip(found, expected):
        assert wanted in message
