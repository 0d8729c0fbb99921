"""Generated standalone builders (`codegen.builder_source`) and the IR as JSON (`ir_json`).

A generated module must import only torch and the Python standard library, and build
the same networks as the runtime builder: same state-dict keys in the same order,
same shapes, and (with the runtime weights loaded) exactly the same outputs.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterator

import pytest
import torch
from helpers import MAX_WEIGHTS, PROGRAM_NAMES, batch, program, weights
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sparsemod_dsl.lang import ir
from sparsemod_dsl.lang.compiler import compile_source
from sparsemod_dsl.lang.lower import limits
from sparsemod_dsl.nets import cost, point
from sparsemod_dsl.nets.builder import build
from sparsemod_dsl.nets.codegen import builder_source, ir_json

ODD = compile_source('''"""Odd text: a C:\\new path, a \\d escape and "quotes"."""

arch odd(input: sequence(20, 6), classes = 3)

network {
    time_distributed {
        linear(units = int[4..8]) relu
    }
    residual {
        linear(units = in_channels) relu
    }
    conv1d(filters = choice[6, 12], kernel = int[1..3], groups = choice[1, 2])
    choose rec {
        long: lstm(hidden = int[4..8], return_sequences = true)
        plain: relu
    }
    global_avg_pool
    dropout(p = float[0.0..0.5] default 0.25)
    linear(classes)
}
''', 'C:\\Users\\someone\\odd """ name.arch')

SPACES = {name: program(name) for name in PROGRAM_NAMES} | {"odd": ODD}
Loader = Callable[[str], ModuleType]


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loader]:
    """Import a space's generated builder, written to a file (once per space)."""
    folder = tmp_path_factory.mktemp("generated")
    modules: dict[str, ModuleType] = {}

    def load(name: str) -> ModuleType:
        if name not in modules:
            path = folder / f"gen_{name}.py"
            path.write_text(builder_source(SPACES[name]))
            spec = importlib.util.spec_from_file_location(f"gen_{name}", path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
            modules[name] = module
        return modules[name]

    yield load
    for name in modules:
        sys.modules.pop(f"gen_{name}", None)


def _imported_modules(tree: ast.AST) -> Iterator[tuple[str, int]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, 0
        elif isinstance(node, ast.ImportFrom):
            yield node.module or "", node.level


@pytest.mark.parametrize("name", [*SPACES])
def test_generated_source_is_standalone(name: str) -> None:
    source = builder_source(SPACES[name])
    tree = ast.parse(source)
    compile(tree, f"gen_{name}.py", "exec")
    imports = list(_imported_modules(tree))
    assert imports
    for module, level in imports:
        top = module.split(".")[0]
        assert level == 0, module
        assert top == "torch" or top in sys.stdlib_module_names, module
        assert top != "sparsemod_dsl"
    assert "sparsemod_dsl" not in source.replace("sparsemodc", "")


@pytest.mark.parametrize("name", [*SPACES])
def test_module_docstring_holds_the_program_doc(name: str) -> None:
    prog = SPACES[name]
    doc = ast.get_docstring(ast.parse(builder_source(prog)), clean=False)
    assert doc is not None
    assert prog.doc and prog.doc in doc
    assert prog.name in doc and prog.file in doc


@pytest.mark.parametrize("name", [*SPACES])
def test_defaults_are_the_parameter_defaults(name: str, generated: Loader) -> None:
    prog = SPACES[name]
    module = generated(name)
    assert module.DEFAULTS == {p.name: point.default(p.domain) for p in prog.parameters}
    assert list(module.DEFAULTS) == [p.name for p in prog.parameters]
    assert module.CLASSES == prog.classes and module.INPUT_KIND == prog.input.kind
    assert module.INPUT_SHAPE == prog.input.shape


def test_defaults_by_hand(generated: Loader) -> None:
    ds = generated("ds_cnn").DEFAULTS
    assert ds["width"] == 64 and ds["ds"] == 4 and ds["train.learning_rate"] == 0.0005
    assert ds["train.batch_size"] == 32 and ds["ds[6].kernel"] == 3
    quick = generated("quickstart").DEFAULTS
    assert quick["layer"] == 1 and quick["layer[2].kind"] == "plain" and quick["pool"] is False
    assert generated("sparse_rnn").DEFAULTS["train.max_len"] == 50
    assert generated("odd").DEFAULTS["dropout.p"] == 0.25


def _points(prog: ir.Program) -> Iterator[dict[str, Any]]:
    yield {}
    for seed in (1, 2, 3):
        for pt in point.sample(prog, 3, seed):
            if point.validate(prog, pt):
                yield pt


def _same_networks(runtime: torch.nn.Module, generated: torch.nn.Module) -> None:
    ours, theirs = runtime.state_dict(), generated.state_dict()
    assert list(ours) == list(theirs)
    assert [v.shape for v in ours.values()] == [v.shape for v in theirs.values()]
    generated.load_state_dict(ours)


@pytest.mark.parametrize("name", [*SPACES])
def test_generated_and_runtime_builders_agree(name: str, generated: Loader) -> None:
    prog, module = SPACES[name], generated(name)
    ran = 0
    for pt in _points(prog):
        if not point.validate(prog, pt):
            continue
        runtime, gen = build(prog, pt), module.build(pt)
        _same_networks(runtime, gen)
        assert type(gen).__name__ == "SparsemodNet" and type(gen) is not type(runtime)
        if weights(runtime) > MAX_WEIGHTS:
            continue
        x = batch(prog, pt, n=3)
        with torch.no_grad():
            assert torch.equal(runtime.eval()(x), gen.eval()(x))
        ran += 1
    assert ran >= 2


def test_generated_builder_ignores_inactive_values(generated: Loader) -> None:
    prog, module = SPACES["sparse_cnn"], generated("sparse_cnn")
    pt = {"block": 1, "fc": 1}
    noisy = {**pt, "block[2].layer": 3, "block[2].layer[1].filters": 77, "fc[2].linear.units": 99}
    _same_networks(build(prog, pt), module.build(noisy))


def test_generated_builder_takes_overrides(generated: Loader) -> None:
    prog, module = SPACES["quickstart"], generated("quickstart")
    pt = {"layer": 2, "layer[1].kind": "separable", "pool": True}
    runtime = build(prog, pt, input_shape=(3, 12, 12), classes=4)
    gen = module.build(pt, input_shape=(3, 12, 12), classes=4)
    _same_networks(runtime, gen)
    x = torch.randn(2, 3, 12, 12)
    with torch.no_grad():
        assert torch.equal(runtime.eval()(x), gen.eval()(x))
        assert gen(x).shape == (2, 4)


def test_generated_builder_rejects_an_invalid_choice(generated: Loader) -> None:
    with pytest.raises(ValueError, match=r"layer\[1\]\.kind"):
        generated("quickstart").build({"layer[1].kind": "dense"})
    with pytest.raises(ValueError, match="rnn.cell"):
        generated("sparse_rnn").build({"rnn.cell": "rnn"})
    # an invalid value of an alternative that is not built is ignored
    generated("quickstart").build({"layer": 1, "layer[2].kind": "dense"})


@pytest.mark.parametrize("name", [*SPACES])
def test_ir_json_is_json_with_every_parameter(name: str) -> None:
    prog = SPACES[name]
    text = ir_json(prog)
    data = json.loads(text)
    assert data["node"] == "Program" and data["name"] == prog.name

    def parameters(value: Any) -> Iterator[str]:
        if isinstance(value, dict):
            if value.get("node") == "Parameter":
                yield value["name"]
            for item in value.values():
                yield from parameters(item)
        elif isinstance(value, list):
            for item in value:
                yield from parameters(item)

    assert list(parameters(data)) == [p.name for p in prog.parameters]
    assert "span" not in text
    assert all(json.dumps(p.name) in text for p in prog.parameters)


def test_generated_file_runs_on_its_own(tmp_path: Path) -> None:
    """A fresh interpreter imports the generated file without sparsemod_dsl on the path."""
    import subprocess

    path = tmp_path / "net.py"
    path.write_text(builder_source(SPACES["quickstart"]))
    script = (
        "import sys; sys.modules['sparsemod_dsl'] = None\n"
        "import net, torch\n"
        "m = net.build({'layer': 2, 'pool': True})\n"
        "print(tuple(m.eval()(torch.zeros(1, 1, 8, 8)).shape))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120, env={"PATH": "", "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "(1, 10)"


#: Any text: controls (NUL, carriage return, escape), line and paragraph separators,
#: lone surrogates, quotes and backslashes.
_ODD_TEXT = st.text(st.one_of(st.characters(codec=None, exclude_categories=()),
                              st.sampled_from('"\\\0\r\x0b\u2028')), max_size=30)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=_ODD_TEXT, file=_ODD_TEXT)
def test_any_doc_string_and_file_name_give_a_valid_module(doc: str, file: str) -> None:
    """The generated file compiles, and its doc string holds the doc and file name."""
    prog = dataclasses.replace(SPACES["quickstart"], doc=doc, file=file)
    network = tuple(
        dataclasses.replace(node, span=dataclasses.replace(node.span, file=file))
        if isinstance(node, ir.Layer) else node for node in prog.network
    )
    source = builder_source(dataclasses.replace(prog, network=network))
    tree = ast.parse(source)
    compile(tree, "gen.py", "exec")
    module_doc = ast.get_docstring(tree, clean=False)
    assert module_doc is not None and doc in module_doc and f"from {file}; " in module_doc


def _nested_blocks(levels: int) -> str:
    """Blocks nested `levels` structures deep (two optional parts each, in blocks
    called `levels // 2` deep), each with an argument `levels` operators deep."""
    deep = " + ".join(["1"] * limits.MAX_CALL_DEPTH)
    blocks = []
    count = levels // 2
    for i in range(count):
        inner = f"b{i + 1}(w)" if i + 1 < count else "dropout(p = w / 1000)"
        blocks.append(
            f"block b{i}(w) {{\n    optional o{i} {{\n        choose c{i} {{\n"
            f"            on: {inner}\n            off: relu\n        }}\n    }}\n}}\n"
        )
    return (
        "arch deep(input: image(1, 8, 8), classes = 3)\n\n" + "\n".join(blocks)
        + f"\nnetwork {{\n    conv2d(4, 3)\n    b0({deep} + {deep})\n    flatten\n"
        "    linear(classes)\n}\n"
    )


def test_a_space_at_the_depth_limits_goes_through_every_stage() -> None:
    """Structures nested as deep as the language allows, through blocks called as deep as
    it allows, with an expression as deep as it allows: validated, priced, traced,
    generated and built without reaching Python's recursion limit."""
    prog = compile_source(_nested_blocks(limits.MAX_STRUCTURE_DEPTH))
    flags = ir.ChoiceDomain((False, True), True, False)
    pt = {p.name: True if p.domain == flags else "on" for p in prog.parameters}
    assert len(pt) == limits.MAX_STRUCTURE_DEPTH
    check = point.validate(prog, pt)
    assert check, check.reason
    assert cost.cost(prog, pt).params > 0
    namespace: dict[str, Any] = {}
    exec(compile(builder_source(prog), "gen_deep.py", "exec"), namespace)
    _same_networks(build(prog, pt), namespace["build"](pt))
