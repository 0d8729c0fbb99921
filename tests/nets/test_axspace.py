"""The Ax search space: parameters, hierarchy, constraints, arm <-> point round trips."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import pytest
from ax.adapter.registry import Generators
from ax.core.experiment import Experiment
from ax.core.parameter import (
    ChoiceParameter,
    FixedParameter,
    ParameterType,
    RangeParameter,
)
from ax.core.search_space import SearchSpace
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sparsemod_dsl.lang import compiler, ir
from sparsemod_dsl.nets import axconstraints, axspace
from sparsemod_dsl.nets import point as pt

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "stdlib").glob("*.arch")) + [
    "examples/quickstart.arch"
]
TYPES = {"int": ParameterType.INT, "float": ParameterType.FLOAT,
         "str": ParameterType.STRING, "bool": ParameterType.BOOL}


@lru_cache(maxsize=None)
def program(path: str) -> ir.Program | None:
    return compiler.check_file(ROOT / path).program


PROGRAMS = [f for f in FILES if program(f) is not None]


def test_only_libraries_are_skipped() -> None:
    for path in set(FILES) - set(PROGRAMS):
        assert compiler.check_file(ROOT / path).library_blocks > 0
    assert {"stdlib/sparse_cnn.arch", "examples/quickstart.arch"} <= set(PROGRAMS)


def sobol(space: SearchSpace, n: int, seed: int = 0) -> list[dict]:
    """`n` arms drawn by Ax's own Sobol generator."""
    generator = Generators.SOBOL(experiment=Experiment(search_space=space), seed=seed)
    return [dict(arm.parameters) for arm in generator.gen(n=n).arms]


def counts(prog: ir.Program) -> dict[str, ir.Domain]:
    """Repeat counts other parameters depend on."""
    names = {c.param for p in prog.parameters for c in p.when if c.op == ">="}
    return {p.name: p.domain for p in prog.parameters if p.name in names}


def count_values(domain: ir.Domain) -> list[int]:
    if isinstance(domain, ir.IntDomain):
        return list(range(domain.low, domain.high + 1, domain.step))
    assert isinstance(domain, ir.ChoiceDomain)
    return sorted(domain.values)  # type: ignore[arg-type]


# --- the flat and hierarchical spaces ---------------------------------------------------


def assert_matches(param: ir.Parameter, ax_param: object) -> None:
    """The Ax parameter has the IR parameter's type, bounds, scale and ordering."""
    domain = param.domain
    if isinstance(domain, ir.FixedDomain):
        assert isinstance(ax_param, FixedParameter) and ax_param.value == domain.value
    elif isinstance(domain, ir.FloatDomain) or (
        isinstance(domain, ir.IntDomain) and domain.step == 1
    ):
        assert isinstance(ax_param, RangeParameter)
        assert ax_param.parameter_type == TYPES[domain.type]
        assert (ax_param.lower, ax_param.upper) == (domain.low, domain.high)
        assert ax_param.log_scale == domain.log
    elif isinstance(domain, ir.IntDomain):
        assert isinstance(ax_param, ChoiceParameter) and ax_param.is_ordered
        assert ax_param.values == list(range(domain.low, domain.high + 1, domain.step))
    else:
        assert isinstance(ax_param, ChoiceParameter)
        assert ax_param.parameter_type == TYPES[domain.type]
        assert sorted(map(str, ax_param.values)) == sorted(map(str, domain.values))
        # Ax always orders a choice of two values.
        assert ax_param.is_ordered == (domain.ordered or len(domain.values) == 2)
        if not ax_param.is_ordered or domain.type == "str":
            assert ax_param.values == list(domain.values)
        assert not ax_param.log_scale and not ax_param.is_task
    assert ax_param.default_value is None, "an Ax default value disables the parameter"


@pytest.mark.parametrize("path", PROGRAMS)
def test_flat_space_has_one_parameter_per_ir_parameter(path: str) -> None:
    prog = program(path)
    space = axspace.search_space(prog)
    assert not space.is_hierarchical
    assert list(space.parameters) == [p.ax_name for p in prog.parameters]
    for param in prog.parameters:
        assert_matches(param, space.parameters[param.ax_name])


@pytest.mark.parametrize("path", PROGRAMS)
def test_hierarchical_space_is_a_tree_of_the_ir_conditions(path: str) -> None:
    prog = program(path)
    space = axspace.search_space(prog, hierarchical=True)
    gated = counts(prog)
    assert space.is_hierarchical == any(p.when for p in prog.parameters)
    gates = {axspace.gate_name(c, v) for c, d in gated.items() for v in count_values(d)[1:]}
    names = {p.ax_name for p in prog.parameters if p.name not in gated}
    assert set(space.parameters) == names | gates
    for name in gates:
        gate = space.parameters[name]
        assert isinstance(gate, ChoiceParameter) and gate.parameter_type == ParameterType.BOOL
        assert gate.values == [False, True] and set(gate.dependents or {}) <= {True}
    for param in prog.parameters:
        if param.name not in gated:
            assert_matches(param, space.parameters[param.ax_name])
    # Ax validated the tree on construction; the flattened space drops the hierarchy.
    assert not space.flatten().is_hierarchical


def test_hierarchical_encoding_of_a_repeat() -> None:
    prog = program("examples/quickstart.arch")
    space = axspace.search_space(prog, hierarchical=True)
    top = set(space.top_level_parameters)
    assert "layer" not in space.parameters and "layer__gate__2" in top
    assert "layer__gate__3" not in top and "layer__1__filters" in top
    assert space.parameters["layer__gate__2"].dependents == {
        True: ["layer__gate__3", "layer__2__filters", "layer__2__kernel", "layer__2__kind"]
    }
    assert space.parameters["layer__gate__3"].dependents == {
        True: ["layer__3__filters", "layer__3__kernel", "layer__3__kind"]
    }


def test_choose_parameters_carry_their_alternatives() -> None:
    space = axspace.search_space(program("stdlib/sparse_cnn.arch"), hierarchical=True)
    assert space.parameters["block__2__layer__2__type"].dependents == {
        "downsampled": ["block__2__layer__2__downconv2d__ratio"]
    }
    assert "block__2__layer__gate__2" in space.parameters["block__gate__2"].dependents[True]


def test_shared_count_across_scopes_is_refused_in_hierarchical_form() -> None:
    prog = compiler.compile_source(
        """arch t(input: image(1, 8, 8), classes = 3)
network {
    n = int[1..3]
    flatten
    choose kind {
        a: { repeat x = n { linear(units = int[4..8]) relu } }
        b: { relu }
    }
    linear(classes)
}
"""
    )
    assert len(axspace.search_space(prog).parameters) == 5
    with pytest.raises(ValueError, match=r"x\[2\]\.linear\.units"):
        axspace.search_space(prog, hierarchical=True)


# --- round trips -----------------------------------------------------------------------


@pytest.mark.parametrize("path", PROGRAMS)
def test_flat_round_trip_of_ax_arms(path: str) -> None:
    prog = program(path)
    space = axspace.search_space(prog)
    tree = axspace.search_space(prog, hierarchical=True)
    for arm in sobol(space, 16):
        assert space.check_membership(arm, raise_error=True)
        point = axspace.to_point(arm, prog)
        assert point == pt.active(prog, point)
        for name, value in point.items():
            assert "__" not in name and pt.contains(prog.parameter(name).domain, value)
            assert value == arm[ir.ax_name(name)]
        back = axspace.to_ax(point, prog)
        assert set(back) == set(arm)
        assert {k: back[k] for k in map(ir.ax_name, point)} == {
            k: arm[k] for k in map(ir.ax_name, point)
        }
        # Ax's own tree agrees with the IR about which parameters are active.
        assert tree.check_membership(axspace.to_ax(point, prog, True), raise_error=True)


@pytest.mark.parametrize("path", PROGRAMS)
def test_hierarchical_round_trip_of_ax_arms(path: str) -> None:
    prog = program(path)
    space = axspace.search_space(prog, hierarchical=True)
    gated = counts(prog)
    for arm in sobol(space, 16, seed=1):
        assert space.check_membership(arm, raise_error=True)
        point = axspace.to_point(arm, prog, hierarchical=True)
        assert point == pt.active(prog, point)
        for name, value in point.items():
            assert "__" not in name and pt.contains(prog.parameter(name).domain, value)
        for count, domain in gated.items():
            if count not in point:
                assert axspace.gate_name(count, count_values(domain)[1]) not in arm
                continue
            assert isinstance(domain, ir.IntDomain) and domain.step == 1
            leading = 0
            while arm.get(axspace.gate_name(count, domain.low + leading + 1)) is True:
                leading += 1
            assert point[count] == domain.low + leading
        assert axspace.to_ax(point, prog, hierarchical=True) == arm


def test_round_trip_names_unknown_parameters() -> None:
    prog = program("examples/quickstart.arch")
    with pytest.raises(pt.PointError, match="layer__gate__2"):
        axspace.to_point({"layer__gate__2": True}, prog)
    assert axspace.to_point({"layer__gate__2": True}, prog, True)["layer"] == 2


# Random programs: nested repeats (int, step and choice counts), chooses and optionals.


@st.composite
def programs(draw: st.DrawFn) -> str:
    serial = iter(range(1000))

    def body(depth: int) -> str:
        return "\n".join(stmt(depth) for _ in range(draw(st.integers(1, 2))))

    def stmt(depth: int) -> str:
        nested = ["repeat", "choose", "optional"] if depth < 3 else []
        kind = draw(st.sampled_from(["layer", "layer", *nested]))
        n = next(serial)
        if kind == "layer":
            units = draw(st.sampled_from(
                ["int[4..16]", "int[4..16] step 4", "int[4..64] log", "choice[4, 8, 16] ordered",
                 "choice[16, 4, 8]"]))
            return f"l{n}: linear(units = {units}) relu\nd{n}: dropout(p = float[0.1..0.5])"
        if kind == "repeat":
            count = draw(st.sampled_from(
                ["int[0..2]", "int[1..3]", "int[0..4] step 2", "choice[3, 0, 1]", "2"]))
            return f"repeat r{n} = {count} {{\n{body(depth + 1)}\n}}"
        if kind == "choose":
            return f"choose c{n} {{\na: {{ {body(depth + 1)} }}\nb: {{ {body(depth + 1)} }}\n}}"
        return f"optional o{n} {{\n{body(depth + 1)}\n}}"

    return (
        "arch t(input: image(1, 4, 4), classes = 3)\n"
        f"network {{\nflatten\n{body(0)}\nlinear(classes)\n}}\n"
    )


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs(), st.integers(0, 2**16))
def test_round_trip_of_points_on_random_programs(source: str, seed: int) -> None:
    prog = compiler.compile_source(source)
    flat = axspace.search_space(prog)
    tree = axspace.search_space(prog, hierarchical=True)
    assert len(flat.parameters) == len(prog.parameters)
    assert tree.is_hierarchical == any(p.when for p in prog.parameters)
    for point in pt.sample(prog, 8, seed=seed):
        arm = axspace.to_ax(point, prog)
        assert flat.check_membership(arm, raise_error=True)
        assert axspace.to_point(arm, prog) == point
        arm = axspace.to_ax(point, prog, hierarchical=True)
        assert tree.check_membership(arm, raise_error=True)
        assert axspace.to_point(arm, prog, hierarchical=True) == point


# --- constraints -------------------------------------------------------------------------

CNN_WITH_CONSTRAINTS = (ROOT / "stdlib/sparse_cnn.arch").read_text() + """
constraint block[2].layer[1].filters >= block[1].layer[1].filters
constraint fc[1].linear.units * fc[2].linear.units <= 4000
constraint block[2].layer[1].kernel > block[1].layer[1].kernel
constraint block[1].drop == block[2].drop
constraint 2 * (train.batch_size - 1) + train.learning_step / 4 <= 3 * fc[1].linear.units + classes
constraint max(train.batch_size, 3) <= 100
"""


@lru_cache(maxsize=None)
def constrained() -> ir.Program:
    return compiler.compile_source(CNN_WITH_CONSTRAINTS, "cnn.arch")


def test_linear_constraint_becomes_an_ax_constraint() -> None:
    prog = constrained()
    space = axspace.search_space(prog)
    order, _, strict, equal, affine, func = prog.constraints
    assert axconstraints.linear_form(order, prog) == (
        {"block__1__layer__1__filters": 1.0, "block__2__layer__1__filters": -1.0}, 0.0
    )
    # 2b - 2 + s/4 <= 3u + 10  <=>  2b + s/4 - 3u <= 12
    assert axconstraints.linear_form(affine, prog) == (
        {"train__batch_size": 2.0, "train__learning_step": 0.25, "fc__1__linear__units": -3.0},
        12.0,
    )
    # `order` reads block[2] and `affine` fc[1], both absent at some points, where they
    # count as 0: Ax cannot know that, so both stay filters, as in the hierarchical form.
    assert space.parameter_constraints == []
    assert axspace.filters(prog) == list(prog.constraints)
    source = (ROOT / "examples/quickstart.arch").read_text()
    prog = compiler.compile_source(
        source + "constraint 2 * train.prune_threshold - 0.1 <= 1.5\n")
    (constraint,) = prog.constraints
    space = axspace.search_space(prog)
    assert [(c.constraint_dict, c.bound) for c in space.parameter_constraints] == [
        axconstraints.linear_form(constraint, prog)]
    assert axspace.filters(prog) == []
    # Ax enforces what it is given.
    for arm in sobol(space, 12):
        full = pt.complete(prog, {ir.readable_name(k): v for k, v in arm.items()})
        assert pt.holds(constraint, prog, full)


def test_hierarchical_form_keeps_constraints_on_conditional_parameters_as_filters() -> None:
    prog = constrained()
    tree = axspace.search_space(prog, hierarchical=True)
    assert tree.parameter_constraints == []
    assert axspace.filters(prog, hierarchical=True) == list(prog.constraints)
    source = (ROOT / "examples/quickstart.arch").read_text()
    prog = compiler.compile_source(source + "constraint train.prune_threshold <= 0.5\n")
    [made] = axspace.search_space(prog, hierarchical=True).parameter_constraints
    assert made.constraint_dict == {"train__prune_threshold": 1.0} and made.bound == 0.5


def test_log_scaled_and_sympy_named_parameters_stay_filters() -> None:
    source = (ROOT / "examples/quickstart.arch").read_text()
    prog = compiler.compile_source(
        source + "constraint train.learning_rate <= train.prune_threshold\n"
    )
    assert axconstraints.linear_form(prog.constraints[0], prog) is None
    assert axspace.search_space(prog).parameter_constraints == []
    prog = compiler.compile_source(
        """arch t(input: image(1, 8, 8), classes = 3)
network {
    E = int[4..8]
    flatten
    linear(units = E)
    linear(classes)
}
constraint E <= 6
"""
    )
    assert axconstraints.linear_form(prog.constraints[0], prog) == ({"E": 1.0}, 6.0)
    assert axspace.search_space(prog).parameter_constraints == []  # SymPy's E
    assert axspace.filters(prog) == list(prog.constraints)


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 128), st.integers(1, 10000), st.integers(10, 200))
def test_linear_form_agrees_with_holds(batch: int, step: int, units: int) -> None:
    prog = constrained()
    full = pt.complete(prog, {"train.batch_size": batch, "train.learning_step": step,
                              "fc[1].linear.units": units})
    affine = prog.constraints[4]
    coeffs, bound = axconstraints.linear_form(affine, prog)  # type: ignore[misc]
    values = {ir.ax_name(n): v for n, v in full.items()}
    assert (sum(c * values[n] for n, c in coeffs.items()) <= bound) == pt.holds(affine, prog, full)


@pytest.mark.parametrize("text", [
    "block[2].layer[1].filters >= block[1].layer[1].filters",
    "block[1].layer[1].filters - (fc[1].linear.units - fc[2].linear.units) <= 3",
    "block[1].layer[1].filters * (fc[1].linear.units // 3) <= 1000",
    "-(block[1].layer[1].filters + 1) <= max(1, fc[1].linear.units / 2)",
    "(fc[1].linear.units + 1) * 2 != classes - 0.5",
    "fc[1].linear.units - (fc[2].linear.units + 1) + (fc[1].linear.units * (2 * 3)) <= 1e-05",
])
def test_show_renders_constraints_that_compile_back(text: str) -> None:
    prog = compiler.compile_source(CNN_WITH_CONSTRAINTS + f"constraint {text}\n", "cnn.arch")
    constraint = prog.constraints[-1]
    shown = f"{axspace.show(constraint.left)} {constraint.op} {axspace.show(constraint.right)}"
    again = compiler.compile_source(CNN_WITH_CONSTRAINTS + f"constraint {shown}\n", "cnn.arch")
    assert again.constraints[-1] == constraint


# --- describe ----------------------------------------------------------------------------


@pytest.mark.parametrize("path, searchable", [
    ("stdlib/sparse_cnn.arch", 43), ("stdlib/sparse_cnn_seq.arch", 44),
    ("stdlib/sparse_rnn.arch", 12), ("stdlib/sparse_cnn_rnn.arch", 64),
])
def test_describe_lists_the_seed_parameter_counts(path: str, searchable: int) -> None:
    prog = program(path)
    described = json.loads(json.dumps(axspace.describe(prog)))
    entries = described["parameters"]
    assert sum(e["type"] != "fixed" for e in entries) == searchable
    assert [e["name"] for e in entries] == [p.name for p in prog.parameters]
    assert described["constraints"] == []


def test_describe_entries() -> None:
    described = axspace.describe(program("examples/quickstart.arch"))
    json.dumps(described)
    entries = {e["name"]: e for e in described["parameters"]}
    assert entries["train.learning_rate"] == {
        "name": "train.learning_rate", "ax_name": "train__learning_rate", "type": "float",
        "value_type": "float", "bounds": [0.0001, 0.01], "log_scale": True, "default": 0.001,
        "active_when": [],
    }
    assert entries["layer[3].filters"] == {
        "name": "layer[3].filters", "ax_name": "layer__3__filters", "type": "int",
        "value_type": "int", "bounds": [4, 32], "log_scale": False, "step": 4, "default": 4,
        "active_when": [{"param": "layer", "op": ">=", "value": 3}],
    }
    assert entries["layer[1].kind"]["values"] == ["plain", "separable"]
    assert entries["layer[1].kind"]["type"] == "choice" and not entries["layer[1].kind"]["ordered"]
    assert entries["pool"]["value_type"] == "bool" and entries["pool"]["default"] is False
    described = axspace.describe(constrained())
    json.dumps(described)
    assert described["constraints"][0] == {
        "expression": "block[2].layer[1].filters >= block[1].layer[1].filters",
        "linear": True,
        "ax": None,  # linear, but over block[2], which may be absent: a filter
    }
    linear = [c["linear"] for c in described["constraints"]]
    assert linear == [True, False, False, False, True, False]
    # every constraint of this space reads a parameter that may be absent: all are filters
    assert all(c["ax"] is None for c in described["constraints"])
    source = (ROOT / "examples/quickstart.arch").read_text()
    described = axspace.describe(compiler.compile_source(
        source + "constraint 2 * train.prune_threshold <= 1.5\n"))
    assert described["constraints"][0]["ax"] == "2.0*train__prune_threshold <= 1.5"
