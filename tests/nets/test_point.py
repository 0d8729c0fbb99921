"""Points of a search space: completion, activity, validation and sampling (`point`).

Expectations come from hand-written spaces whose rules are simple enough to state
directly in Python (which parameters exist where, which kernels fit, which groups
divide), not from the code under test.
"""

from __future__ import annotations

import math

import pytest
from helpers import PROGRAM_NAMES, program
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sparsemod_dsl.errors import ArchError
from sparsemod_dsl.lang import ir
from sparsemod_dsl.lang.compiler import compile_source
from sparsemod_dsl.nets import cost, point
from sparsemod_dsl.nets.builder import bind
from sparsemod_dsl.nets.graph import deployed_graph
from sparsemod_dsl.nets.point import PointError
from sparsemod_dsl.nets.targets import load_target
from sparsemod_dsl.nets.trace import trace

SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

DEMO = '''
arch demo(input: image(1, 8, 8), classes = 4)

train {
    learning_rate = float[0.001..0.1] log
}

network {
    repeat layer = int[1..3] {
        conv2d(filters = int[4..32] step 4, kernel = choice[3, 5])
        relu
    }
    choose head {
        pooled: global_avg_pool
        flat: flatten dropout(p = float[0.1..0.5])
    }
    optional extra {
        hidden: linear(units = int[8..64])
        relu
    }
    linear(classes)
}
'''

CONSTRAINED = '''
arch constrained(input: image(1, 16, 16), classes = 10)

network {
    repeat block = int[1..2] {
        filters = int[8..64]
        conv2d(filters, 3) relu
        maxpool(2)
    }
    global_avg_pool
    linear(classes)
}

constraint block[2].filters >= block[1].filters * min(1, block - 1)
constraint block[1].filters * block[1].filters <= 1000
constraint block[1].filters + block[2].filters <= 60
'''

KERNELS = '''
arch kernels(input: image(1, 8, 8), classes = 3)

network {
    conv2d(8, 3) relu
    maxpool(size = choice[1, 2, 4])
    last: conv2d(filters = 8, kernel = int[1..5], padding = "valid")
    global_avg_pool
    linear(classes)
}
'''

GROUPS = '''
arch grouped(input: image(6, 8, 8), classes = 3)

network {
    g: conv2d(filters = choice[4, 6, 9], kernel = 3, groups = choice[1, 2, 3, 4])
    global_avg_pool
    linear(classes)
}
'''

RESIDUAL = '''
arch skip(input: image(3, 8, 8), classes = 3)

network {
    stem: conv2d(filters = choice[8, 16], kernel = 3)
    residual {
        body: conv2d(filters = choice[8, 16], kernel = 3) relu
    }
    global_avg_pool
    linear(classes)
}
'''

RESIDUAL_REPEAT = '''
arch skips(input: image(8, 8, 8), classes = 3)

network {
    repeat unit = int[1..3] {
        residual {
            conv2d(filters = choice[8, 4], kernel = 3) relu
        }
    }
    global_avg_pool
    linear(classes)
}
'''

DIVISION = '''
arch division(input: image(1, 8, 8), classes = 3)

network {
    x = int[0..4]
    conv2d(filters = x + 1, kernel = 3)
    global_avg_pool
    linear(classes)
}

constraint 8 // x >= 3
'''

NONLINEAR = '''
arch nonlinear(input: image(1, 8, 8), classes = 3)

network {
    a = int[1..10]
    b = int[1..10]
    first: conv2d(filters = a, kernel = 3)
    second: conv2d(filters = b, kernel = 3)
    global_avg_pool
    linear(classes)
}

constraint a * b <= 20
constraint max(a, b) - min(a, b) >= 2
'''

UNSATISFIABLE = '''
arch unsatisfiable(input: image(1, 8, 8), classes = 3)

network {
    a = int[1..3]
    b = int[5..8]
    first: conv2d(filters = a, kernel = 3)
    second: conv2d(filters = b, kernel = 3)
    global_avg_pool
    linear(classes)
}

constraint a > b
'''

ARITHMETIC = '''
arch arithmetic(input: image(1, 8, 8), classes = 3)

network {
    k = int[1..4]
    big = int[1..9007199254740992]
    scale = float[1.0..1e300]
    divided: conv2d(filters = 4, kernel = 8 // (k - 2))
    squared: conv2d(filters = big * big // big, kernel = 1)
    global_avg_pool
    dropout(p = min(0.5, scale * scale / 1e300))
    linear(classes)
}
'''

DOMAINS = '''
arch domains(input: image(1, 8, 8), classes = 3)

train {
    batch_size = int[16..128] log
    learning_rate = float[0.0001..0.01] log
    learning_step = 10
}

network {
    conv2d(filters = int[4..32] step 4, kernel = choice[1, 3])
    global_avg_pool
    dropout(p = float[0.0..0.5])
    linear(classes)
}
'''

SPACES = {
    name: compile_source(text, f"{name}.arch")
    for name, text in dict(demo=DEMO, domains=DOMAINS, constrained=CONSTRAINED, kernels=KERNELS,
                           groups=GROUPS,
                           residual=RESIDUAL, residual_repeat=RESIDUAL_REPEAT,
                           division=DIVISION, nonlinear=NONLINEAR,
                           unsatisfiable=UNSATISFIABLE, arithmetic=ARITHMETIC).items()
}
DEMO_P = SPACES["demo"]


def _layer_names(i: int) -> set[str]:
    return {f"layer[{i}].conv2d.filters", f"layer[{i}].conv2d.kernel"}


def _expected_active(values: dict[str, object]) -> set[str]:
    """The demo's active parameters, from its structure: layer[i] exists when layer >= i,
    dropout.p when head is "flat", hidden.units when extra is true."""
    names = {"train.learning_rate", "layer", "head", "extra"}
    count = values.get("layer", 1)
    for i in (1, 2, 3):
        if i == 1 or (not isinstance(count, bool) and isinstance(count, (int, float))
                      and count >= i):
            names |= _layer_names(i)
    if values.get("head", "pooled") == "flat":
        names.add("dropout.p")
    if values.get("extra", False) is True:
        names.add("hidden.units")
    return names


# --- complete and active ------------------------------------------------------------------


def test_the_demo_space_has_the_parameters_and_conditions_written() -> None:
    names = [p.name for p in DEMO_P.parameters]
    assert set(names) == {"train.learning_rate", "layer", "head", "extra", "dropout.p",
                          "hidden.units"} | _layer_names(1) | _layer_names(2) | _layer_names(3)
    when = {p.name: set(p.when) for p in DEMO_P.parameters}
    assert when["layer[1].conv2d.filters"] == set()
    assert when["layer[3].conv2d.kernel"] == {ir.Condition("layer", ">=", 3)}
    assert when["dropout.p"] == {ir.Condition("head", "==", "flat")}
    assert when["hidden.units"] == {ir.Condition("extra", "==", True)}


def test_complete_fills_every_default() -> None:
    full = point.complete(DEMO_P, {"layer": 2})
    assert full == {
        "train.learning_rate": 0.001, "layer": 2,
        "layer[1].conv2d.filters": 4, "layer[1].conv2d.kernel": 3,
        "layer[2].conv2d.filters": 4, "layer[2].conv2d.kernel": 3,
        "layer[3].conv2d.filters": 4, "layer[3].conv2d.kernel": 3,
        "head": "pooled", "dropout.p": 0.1, "extra": False, "hidden.units": 8,
    }


def test_complete_keeps_given_values_and_turns_integral_floats_into_ints() -> None:
    full = point.complete(DEMO_P, {"layer[1].conv2d.filters": 12.0, "head": "flat"})
    assert full["layer[1].conv2d.filters"] == 12
    assert type(full["layer[1].conv2d.filters"]) is int
    assert full["head"] == "flat"


def test_complete_rejects_unknown_names() -> None:
    with pytest.raises(PointError, match=r"layer\[4\]\.conv2d\.filters"):
        point.complete(DEMO_P, {"layer[4].conv2d.filters": 8})
    with pytest.raises(PointError, match="nope"):
        point.complete(DEMO_P, {"layer": 1, "nope": 1})


@pytest.mark.parametrize("values, extra", [
    ({}, set()),
    ({"layer": 2}, _layer_names(2)),
    ({"layer": 3, "head": "flat"}, _layer_names(2) | _layer_names(3) | {"dropout.p"}),
    ({"extra": True, "head": "pooled"}, {"hidden.units"}),
    ({"layer": 1, "layer[3].conv2d.filters": 8, "dropout.p": 0.3, "hidden.units": 9}, set()),
])
def test_active_drops_absent_instances_unchosen_alternatives_and_absent_optionals(
    values: dict[str, object], extra: set[str]
) -> None:
    base = {"train.learning_rate", "layer", "head", "extra"} | _layer_names(1)
    act = point.active(DEMO_P, values)
    assert set(act) == base | extra
    full = point.complete(DEMO_P, values)
    assert all(act[name] == full[name] for name in act)


demo_values = st.fixed_dictionaries({}, optional={
    "layer": st.one_of(st.integers(0, 4), st.floats(0, 4), st.text(max_size=2)),
    "head": st.sampled_from(["pooled", "flat", "other", ""]),
    "extra": st.one_of(st.booleans(), st.integers(0, 1), st.sampled_from(["true"])),
})


@SETTINGS
@given(demo_values)
def test_active_and_is_active_follow_the_when_conditions(values: dict[str, object]) -> None:
    expected = _expected_active(values)
    assert set(point.active(DEMO_P, values)) == expected
    full = point.complete(DEMO_P, values)
    assert {p.name for p in DEMO_P.parameters if point.is_active(p, full)} == expected


# --- contains, value_of, holds ------------------------------------------------------------


def test_contains() -> None:
    stepped = ir.IntDomain(4, 32, 4)
    assert point.contains(stepped, 12) and point.contains(stepped, 12.0)
    assert not point.contains(stepped, 14)
    assert not point.contains(stepped, 36) and not point.contains(stepped, 0)
    assert not point.contains(stepped, True) and not point.contains(stepped, "12")
    assert not point.contains(stepped, math.nan) and not point.contains(stepped, math.inf)
    real = ir.FloatDomain(0.1, 0.5)
    assert point.contains(real, 0.1) and point.contains(real, 0.5) and point.contains(real, 0.3)
    assert not point.contains(real, 0.6) and not point.contains(real, math.nan)
    assert not point.contains(real, False)
    choice = ir.ChoiceDomain((1, 2, 4))
    assert point.contains(choice, 2) and not point.contains(choice, 3)
    assert not point.contains(choice, True)  # True == 1 in Python, not in a space
    flags = ir.ChoiceDomain((False, True))
    assert point.contains(flags, True) and not point.contains(flags, 1)
    assert point.contains(ir.FixedDomain("same"), "same")
    assert not point.contains(ir.FixedDomain("same"), "valid")


def test_value_of_and_holds() -> None:
    prog = DEMO_P
    full = {"a": 7, "b": 2}
    a, b = ir.ParamRef("a"), ir.ParamRef("b")
    assert point.value_of(ir.BinOp("//", a, b), prog, full) == 3
    assert point.value_of(ir.BinOp("/", a, b), prog, full) == 3.5
    assert point.value_of(ir.Func("max", (a, ir.Neg(b), ir.Const(9))), prog, full) == 9
    assert point.value_of(ir.BinOp("*", ir.Builtin("classes"), b), prog, full) == 8
    assert point.value_of(ir.Builtin("in_channels"), prog, full, channels=5) == 5
    with pytest.raises(PointError):
        point.value_of(ir.BinOp("//", a, ir.Const(0)), prog, full)
    with pytest.raises(PointError, match="beyond 2\\*\\*53"):
        point.value_of(ir.BinOp("*", ir.Const(2**53), b), prog, full)
    with pytest.raises(PointError, match="out of range"):
        point.value_of(ir.BinOp("*", ir.Const(1e300), ir.Const(1e300)), prog, full)
    le = ir.Constraint(ir.BinOp("+", a, b), "<=", ir.Const(9))
    assert point.holds(le, prog, full)
    assert not point.holds(ir.Constraint(a, "<", ir.Const(7)), prog, full)
    assert point.holds(ir.Constraint(ir.BinOp("/", ir.Const(1), ir.Const(3)), "==",
                                     ir.Const(1 / 3)), prog, full)


# --- validate -----------------------------------------------------------------------------


def test_validate_accepts_good_points() -> None:
    for values in ({}, {"layer": 3, "layer[3].conv2d.filters": 32, "layer[2].conv2d.kernel": 5,
                        "head": "flat", "dropout.p": 0.5, "extra": True, "hidden.units": 64,
                        "train.learning_rate": 0.1}):
        check = point.validate(DEMO_P, values)
        assert check.ok and bool(check) and check.reason == ""
        assert check.output is not None and check.output.kind == "vector"
        assert check.output.sizes() == (4,)


@pytest.mark.parametrize("name, value", [
    ("layer[1].conv2d.filters", 6),        # off the step
    ("layer[1].conv2d.filters", 36),       # above the range
    ("layer[1].conv2d.filters", 12.5),
    ("layer[1].conv2d.filters", "12"),
    ("layer[1].conv2d.filters", True),
    ("layer", 0),
    ("train.learning_rate", 0.2),          # float out of range
    ("train.learning_rate", 0.0005),
    ("layer[1].conv2d.kernel", 4),         # not a choice
    ("head", "conv"),
    ("extra", 1),
])
def test_validate_rejects_values_outside_their_domain(name: str, value: object) -> None:
    check = point.validate(DEMO_P, {name: value})
    assert not check.ok and not bool(check)
    assert name in check.reason
    assert check.parameters == (name,)


def test_validate_ignores_inactive_values() -> None:
    values = {"layer": 1, "layer[3].conv2d.filters": "junk", "dropout.p": 7.0,
              "hidden.units": -1, "head": "pooled", "extra": False}
    assert point.validate(DEMO_P, values).ok
    check = point.validate(DEMO_P, {**values, "head": "flat"})
    assert not check.ok and check.parameters == ("dropout.p",)


def test_validate_rejects_unknown_names() -> None:
    check = point.validate(DEMO_P, {"layer[9].filters": 8})
    assert not check.ok and "layer[9].filters" in check.reason


def test_validate_rejects_violated_constraints() -> None:
    prog = SPACES["constrained"]
    assert point.validate(prog, {"block": 2, "block[1].filters": 16, "block[2].filters": 16}).ok
    check = point.validate(prog, {"block": 2, "block[1].filters": 20, "block[2].filters": 16})
    assert not check.ok and "constraint" in check.reason
    assert set(check.parameters) == {"block[1].filters", "block[2].filters", "block"}
    assert "block[1].filters = 20" in check.reason and "block[2].filters = 16" in check.reason
    check = point.validate(prog, {"block[1].filters": 32})  # 32 * 32 > 1000
    assert not check.ok and check.parameters == ("block[1].filters",)


def test_an_inactive_parameter_counts_as_0_in_constraints() -> None:
    prog = SPACES["constrained"]
    # block[2] does not exist: its filters (given or defaulted to 8) count as 0, so the
    # ordering (written to be 0 >= 0 at depth 1) holds and the sum limits block[1] alone
    assert point.validate(prog, {"block": 1, "block[1].filters": 30}).ok
    assert point.validate(prog, {"block": 1, "block[1].filters": 30, "block[2].filters": 64}).ok
    assert point.validate(prog, {"block": 1, "block[2].filters": "junk"}).ok
    assert point.validate(prog, {"block": 2, "block[1].filters": 30, "block[2].filters": 30}).ok
    check = point.validate(prog, {"block": 2, "block[1].filters": 30, "block[2].filters": 31})
    assert not check.ok and "line 16" in check.reason


def test_a_sum_over_an_inactive_parameter_is_never_dropped() -> None:
    """Issue 15: `block[1].filters + block[2].filters <= 20` must not accept depth 1
    with 60 filters (it used to be skipped where block[2] did not exist)."""
    prog = compile_source(CONSTRAINED.replace("<= 60", "<= 20").replace("<= 1000", "<= 4000"),
                          "c.arch")
    check = point.validate(prog, {"block": 1, "block[1].filters": 60})
    assert not check.ok
    assert "block[2].filters inactive, counted as 0" in check.reason
    assert "block[1].filters = 60" in check.reason
    assert point.validate(prog, {"block": 1, "block[1].filters": 20}).ok
    assert all(pt["block[1].filters"] <= 20 for pt in point.sample(prog, 50, seed=2))


def test_a_constraint_dividing_by_zero_fails_without_raising() -> None:
    prog = SPACES["division"]
    check = point.validate(prog, {"x": 0})
    assert not check.ok and check.parameters == ("x",)
    assert point.validate(prog, {"x": 2}).ok and not point.validate(prog, {"x": 3}).ok
    assert {pt["x"] for pt in point.sample(prog, 30, seed=1)} == {1, 2}


@pytest.mark.parametrize("size", [1, 2, 4])
@pytest.mark.parametrize("kernel", [1, 2, 3, 4, 5])
def test_validate_rejects_kernels_larger_than_the_feature_map(size: int, kernel: int) -> None:
    prog = SPACES["kernels"]
    check = point.validate(prog, {"maxpool.size": size, "last.kernel": kernel})
    feature_map = 8 // size  # 'same' conv keeps 8x8, then pooling
    if kernel <= feature_map:
        assert check.ok, check.reason
    else:
        assert not check.ok
        assert "last" in check.reason and "kernel" in check.reason
        assert "last.kernel" in check.parameters


@pytest.mark.parametrize("filters", [4, 6, 9])
@pytest.mark.parametrize("groups", [1, 2, 3, 4])
def test_validate_rejects_groups_that_do_not_divide(filters: int, groups: int) -> None:
    check = point.validate(SPACES["groups"], {"g.filters": filters, "g.groups": groups})
    if 6 % groups == 0 and filters % groups == 0:
        assert check.ok, check.reason
    else:
        assert not check.ok and "groups" in check.reason
        assert "g.groups" in check.parameters


@pytest.mark.parametrize("stem", [8, 16])
@pytest.mark.parametrize("body", [8, 16])
def test_validate_rejects_a_residual_body_that_changes_channels(stem: int, body: int) -> None:
    check = point.validate(SPACES["residual"], {"stem.filters": stem, "body.filters": body})
    if stem == body:
        assert check.ok, check.reason
    else:
        assert not check.ok and "residual" in check.reason
        assert "body.filters" in check.parameters


def test_the_residual_blamed_is_the_instance_that_fails() -> None:
    prog = SPACES["residual_repeat"]
    good = {"unit": 3}
    assert point.validate(prog, good).ok
    # instance 3 is the only one that changes the channels
    assert point.validate(prog, {"unit": 2, "unit[3].conv2d.filters": 4}).ok
    check = point.validate(prog, {"unit": 3, "unit[3].conv2d.filters": 4})
    assert not check.ok and check.parameters == ("unit[3].conv2d.filters",)
    check = point.validate(prog, {"unit": 3, "unit[2].conv2d.filters": 4})
    assert not check.ok and check.parameters == ("unit[2].conv2d.filters",)


def test_a_value_that_cannot_be_computed_fails_validation() -> None:
    prog = SPACES["arithmetic"]
    assert point.validate(prog, {"k": 3, "big": 2**26}).ok
    check = point.validate(prog, {"k": 2})
    assert not check.ok and check.parameters == ("k",)
    assert check.reason == "divided: 'conv2d' argument 'kernel' cannot be computed: division " \
        "by zero"
    check = point.validate(prog, {"k": 3, "big": 2**27})  # big * big is 2**54
    assert not check.ok and check.parameters == ("big",)
    assert "'conv2d' argument 'filters' cannot be computed: the integer 18014398509481984 " \
        "is beyond 2**53" in check.reason
    check = point.validate(prog, {"k": 3, "scale": 1e200})
    assert not check.ok and check.parameters == ("scale",) and "out of range" in check.reason
    for bad in ({"k": 2}, {"k": 3, "big": 2**27}, {"k": 3, "scale": 1e200}):
        with pytest.raises(PointError, match="cannot be computed"):
            trace(prog, bad)


@pytest.mark.parametrize("value", [10**400, -10**400, 2**53 + 1, 1e400, -1e400, math.nan,
                                   None, [8]],
                         ids=["1e400 int", "-1e400 int", "2**53+1", "inf", "-inf", "nan",
                              "None", "list"])
def test_validate_rejects_values_that_are_out_of_range(value: object) -> None:
    """Found by fuzzing: 10**400 raised OverflowError in `validate` and `cost`."""
    check = point.validate(DEMO_P, {"layer[1].conv2d.filters": value})
    assert not check.ok and check.parameters == ("layer[1].conv2d.filters",)
    assert check.reason == f"layer[1].conv2d.filters = {value!r} is outside its domain"


def test_an_input_shape_out_of_range_fails_validation() -> None:
    for shape in ((1, 10**400, 8), (1, 0, 8)):
        prog = bind(DEMO_P, shape)
        check = point.validate(prog, {})
        assert not check.ok and "is out of range" in check.reason
        with pytest.raises(PointError, match="is out of range"):
            trace(prog, {})


garbage = st.one_of(
    st.integers(-10**9, 10**9), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=4), st.booleans(), st.none(),
    st.sampled_from([10**400, -10**400, 2**53, 2**53 + 1, 1e308, -1e308, 0, -1]),
)
ALL_SPACES = [*SPACES.values()] + [program(name) for name in PROGRAM_NAMES]
TARGET = load_target("nrf52840")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_validate_never_raises(data: st.DataObject) -> None:
    """Whatever the values: `validate` answers; a valid point is traced, priced and has a
    deployed graph; the trace of an invalid one says why it fails, as a `PointError`."""
    prog = data.draw(st.sampled_from(ALL_SPACES), label="program")
    names = [p.name for p in prog.parameters]
    base: dict[str, object] = {}
    if data.draw(st.booleans(), label="from a sample"):
        try:
            base = dict(point.sample(prog, 1, seed=data.draw(st.integers(0, 99)))[0])
        except PointError:  # the unsatisfiable space
            base = {}
    changes = data.draw(st.dictionaries(st.sampled_from(names), garbage, max_size=6))
    values = {**base, **changes}
    check = point.validate(prog, values)
    assert isinstance(check, point.Validation)
    if not check.ok:
        assert check.reason
        assert set(check.parameters) <= set(names)
        try:
            trace(prog, values)
        except PointError:
            pass
        return
    trace(prog, values)
    assert deployed_graph(prog, values).ops
    assert cost.cost(prog, values, TARGET).flash_bytes > 0


def _arithmetic(leaves: list[str], ops: list[str]) -> st.SearchStrategy[str]:
    """Arithmetic on parameters and extreme constants, as `.arch` text."""
    return st.recursive(st.sampled_from(leaves), lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(ops), inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        inner.map(lambda x: f"(-{x})"),
        st.tuples(st.sampled_from(["min", "max"]), inner, inner).map(
            lambda t: f"{t[0]}({t[1]}, {t[2]})"),
    ), max_leaves=10)


_INTS = ["a", "b", "0", "1", "2", "9007199254740992", "classes"]
_CLAMP = st.sampled_from(["{}", "min(5, max(1, {}))"])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kernel=st.tuples(_CLAMP, _arithmetic(_INTS, ["+", "-", "*", "//"])),
       rate=st.tuples(_CLAMP, _arithmetic([*_INTS, "1e300", "0.5"], ["+", "-", "*", "/"])),
       a=st.integers(-3, 3),
       b=st.one_of(st.integers(-3, 3), st.sampled_from([2**26, 2**27, 2**53])))
def test_any_arithmetic_checks_or_validates_without_raising(
    kernel: tuple[str, str], rate: tuple[str, str], a: int, b: int
) -> None:
    """Division by zero and overflow everywhere: a positioned error; somewhere: `validate`
    says so at those points; elsewhere the point is priced."""
    source = f'''
arch arith(input: image(1, 8, 8), classes = 3)

network {{
    a = int[-3..3]
    b = int[-3..9007199254740992]
    conv2d(filters = 4 + a * 0 + b * 0, kernel = 1)
    conv2d(filters = 4, kernel = {kernel[0].format(kernel[1])})
    global_avg_pool
    dropout(p = {rate[0].format(rate[1]).replace("min(5, max(1,", "min(0.5, max(0,")})
    linear(classes)
}}
'''
    try:
        prog = compile_source(source, "arith.arch")
    except ArchError as error:
        assert all(d.span.line >= 1 for d in error.diagnostics)
        event("compile error")
        return
    values = {"a": a, "b": b}
    check = point.validate(prog, values)
    if check:
        assert cost.cost(prog, values, TARGET).flash_bytes > 0
    else:
        assert check.reason
    event("valid" if check else "invalid")


# --- sample -------------------------------------------------------------------------------


def _conditions_hold(param: ir.Parameter, full: dict[str, object]) -> bool:
    """Activity, written out: a count reaches its instance, a choice or flag is equal."""
    for cond in param.when:
        value = full[cond.param]
        if cond.op == ">=" and not value >= cond.value:  # type: ignore[operator]
            return False
        if cond.op == "==" and not (type(value) is type(cond.value) and value == cond.value):
            return False
    return True


@pytest.mark.parametrize("name", [*PROGRAM_NAMES, "demo", "constrained", "nonlinear"])
def test_sample_is_reproducible_and_depends_on_the_seed(name: str) -> None:
    prog = SPACES[name] if name in SPACES else program(name)
    first = point.sample(prog, 4, seed=11)
    assert first == point.sample(prog, 4, seed=11)
    assert first != point.sample(prog, 4, seed=12)
    assert len(first) == 4


@SETTINGS
@given(st.sampled_from([*PROGRAM_NAMES, "demo", "constrained", "nonlinear", "division",
                        "domains"]),
       st.integers(0, 10**6))
def test_sample_gives_active_in_domain_values(name: str, seed: int) -> None:
    prog = SPACES[name] if name in SPACES else program(name)
    for pt in point.sample(prog, 3, seed):
        full = point.complete(prog, pt)
        active = {p.name for p in prog.parameters if _conditions_hold(p, full)}
        assert set(pt) == active
        domains = {p.name: p.domain for p in prog.parameters}
        assert all(point.contains(domains[n], v) for n, v in pt.items()), pt
        check = point.validate(prog, pt)
        assert check.ok or "constraint" not in check.reason, check.reason


@SETTINGS
@given(st.integers(0, 10**6))
def test_sample_respects_constraints(seed: int) -> None:
    for pt in point.sample(SPACES["constrained"], 5, seed):
        assert pt["block[1].filters"] ** 2 <= 1000  # type: ignore[operator]
        if pt["block"] == 2:
            assert pt["block[2].filters"] >= pt["block[1].filters"]  # type: ignore[operator]
        else:
            assert "block[2].filters" not in pt
    for pt in point.sample(SPACES["nonlinear"], 5, seed):
        a, b = pt["a"], pt["b"]
        assert a * b <= 20 and abs(a - b) >= 2  # type: ignore[operator]


def test_sample_spreads_over_the_space() -> None:
    points = point.sample(SPACES["nonlinear"], 200, seed=0)
    pairs = {(pt["a"], pt["b"]) for pt in points}
    allowed = {(a, b) for a in range(1, 11) for b in range(1, 11)
               if a * b <= 20 and abs(a - b) >= 2}
    assert pairs <= allowed and len(pairs) >= len(allowed) // 2


def test_sample_raises_when_the_constraints_cannot_hold() -> None:
    with pytest.raises(PointError):
        point.sample(SPACES["unsatisfiable"], 1, seed=0)


def test_sample_draws_every_kind_of_domain() -> None:
    points = point.sample(SPACES["domains"], 400, seed=5)
    sizes = [pt["train.batch_size"] for pt in points]
    rates = [pt["train.learning_rate"] for pt in points]
    assert all(type(v) is int and 16 <= v <= 128 for v in sizes)
    assert all(type(v) is float and 1e-4 <= v <= 1e-2 for v in rates)
    # log scales: about half the draws fall below the geometric mean of the bounds
    below = sum(v < math.sqrt(16 * 128) for v in sizes) / len(sizes)
    assert 0.4 < below < 0.6
    assert 0.4 < sum(v < 1e-3 for v in rates) / len(rates) < 0.6
    assert {pt["conv2d.filters"] for pt in points} == set(range(4, 33, 4))
    assert {pt["conv2d.kernel"] for pt in points} == {1, 3}
    assert all(pt["train.learning_step"] == 10 for pt in points)  # fixed: always its value


def test_numpy_scalars_are_accepted() -> None:
    import numpy as np

    program = compile_source(DEMO, "demo.arch")
    sampled = point.sample(program, 1, seed=0)[0]
    as_numpy = {
        k: np.int64(v) if isinstance(v, int) and not isinstance(v, bool) else v
        for k, v in sampled.items()
    }
    assert point.validate(program, as_numpy).ok == point.validate(program, sampled).ok
    assert point.complete(program, as_numpy) == point.complete(program, sampled)
