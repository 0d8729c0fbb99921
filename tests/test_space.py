"""Tests of the public Python API: `compile_file` / `compile_text` and `Space`."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest
import torch

import sparsemod_dsl as sm
from sparsemod_dsl.nets.builder import BuildError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "quickstart.arch"


def test_compile_file_gives_a_working_space() -> None:
    space = sm.compile_file(EXAMPLE, input_shape=(1, 8, 8), classes=10)
    assert space.name == "quickstart"
    assert len(space.searchable) == 14
    ax_names = {p.name for p in space.search_space.parameters.values()}
    assert ax_names == {p.ax_name for p in space.parameters}
    points = space.sample(5, seed=1)
    assert points == space.sample(5, seed=1)
    for point in points:
        assert space.validate(point)
        assert space.active(point) == point
        net = space.build(point)
        assert net(torch.randn(2, 1, 8, 8)).shape == (2, 10)


def test_overrides_change_shape_and_classes() -> None:
    space = sm.compile_file(EXAMPLE, input_shape=(3, 16, 16), classes=4)
    net = space.build(space.sample(1, seed=0)[0])
    assert net(torch.randn(2, 3, 16, 16)).shape == (2, 4)


def test_invalid_points_are_explained_and_refused() -> None:
    space = sm.compile_file(EXAMPLE)
    point = {"layer": 2, "layer[1].filters": 5}  # not a multiple of the step 4 from 4
    check = space.validate(point)
    assert not check and "layer[1].filters" in check.reason
    with pytest.raises(BuildError, match="layer\\[1\\].filters"):
        space.build(point)


def test_compile_text_and_errors() -> None:
    text = EXAMPLE.read_text()
    space = sm.compile_text(text, "q.arch")
    assert len(space.searchable) == 14
    with pytest.raises(sm.ArchError) as info:
        sm.compile_text(text.replace("linear(classes)", "linear(klasses)"), "q.arch")
    assert info.value.diagnostics[0].span.file == "q.arch"
    with pytest.raises(sm.UsageError, match="input shape"):
        sm.compile_text(text.replace("image(1, 8, 8)", "image"), "q.arch")
    with pytest.raises(sm.UsageError, match="no network"):
        sm.compile_file(ROOT / "stdlib" / "sparse_blocks.arch")


def test_builder_source_is_the_generated_module() -> None:
    space = sm.compile_file(EXAMPLE)
    namespace: dict[str, object] = {}
    exec(compile(space.builder_source(), "net.py", "exec"), namespace)
    point = space.sample(1, seed=2)[0]
    generated, runtime = namespace["build"](point), space.build(point)  # type: ignore[operator]
    assert list(generated.state_dict()) == list(runtime.state_dict())


def test_the_package_ships_its_grammar_and_stdlib() -> None:
    # `pip install .` maps grammar/ and stdlib/ into the package: they must be readable
    # through importlib.resources, wherever the package was installed from.
    assert "start:" in resources.files("sparsemod_dsl.grammar").joinpath("arch.lark").read_text()
    shipped = {p.name for p in resources.files("sparsemod_dsl.stdlib").iterdir()}
    assert {p.name for p in (ROOT / "stdlib").glob("*.arch")} <= shipped
