"""The standard library: the SpArSe re-expressions match the earlier implementation's
spaces, and every file is documented, checks and is formatted.

The earlier implementation coded categorical parameters as integers: a layer type
`*_type` or the `cell_type` in 0..k-1 is our choice of k alternatives, and the
0..1 flag `downsample_input_depth_*` is our boolean `optional`. Every other
parameter (repeat counts included) must have the same type and bounds.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from typing import Any

import pytest
from helpers import PROGRAM_FILES, REFERENCE, STDLIB_FILES, program

from sparsemod_dsl.lang import ir
from sparsemod_dsl.lang.compiler import check_file
from sparsemod_dsl.lang.fmt import format_source
from sparsemod_dsl.lang.parser import parse
from sparsemod_dsl.lang.syntax import Docstring

SEEDS = {
    "sparse_cnn": ("cnn", 43),
    "sparse_cnn_seq": ("cnn2d_cost", 44),
    "sparse_rnn": ("rnn", 12),
    "sparse_cnn_rnn": ("cnn2d_plus_rnn_cost", 64),
}

Signature = tuple[Any, ...]


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    if not REFERENCE.is_file():
        pytest.skip(f"the earlier implementation's spaces are not available at {REFERENCE}")
    return json.loads(REFERENCE.read_text())


def seed_signature(param: dict[str, Any]) -> Signature:
    """A seed parameter as (kind, bounds...), with integer-coded categories decoded."""
    name, kind, lower, upper = param["name"], param["type"], param["lower"], param["upper"]
    assert not param["log"], name
    if re.search(r"(^|_)type(_\d+)?$", name) or name == "cell_type":
        assert kind == "int" and lower == 0, name
        return ("choice", upper + 1)
    if name.startswith("downsample_input_depth_"):
        assert (kind, lower, upper) == ("int", 0, 1), name
        return ("bool",)
    return (kind, lower, upper)


def our_signature(param: ir.Parameter) -> Signature:
    domain = param.domain
    if isinstance(domain, ir.ChoiceDomain):
        if set(domain.values) == {False, True} and all(isinstance(v, bool) for v in domain.values):
            return ("bool",)
        assert all(isinstance(v, str) for v in domain.values), param.name
        return ("choice", len(domain.values))
    assert isinstance(domain, (ir.IntDomain, ir.FloatDomain)), param.name
    assert not domain.log and getattr(domain, "step", 1) == 1, param.name
    return (domain.type, domain.low, domain.high)


def _sorted(signatures: list[Signature]) -> list[Signature]:
    return sorted(signatures, key=lambda s: tuple(map(str, s)))


def _same(ours: list[Signature], seed: list[Signature]) -> bool:
    """Equal multisets, floats compared with isclose."""
    if len(ours) != len(seed):
        return False
    for a, b in zip(_sorted(ours), _sorted(seed)):
        if a[0] != b[0] or len(a) != len(b):
            return False
        for x, y in zip(a[1:], b[1:]):
            if not math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12):
                return False
    return True


@pytest.mark.parametrize("name", [*SEEDS])
def test_seed_spaces_are_reexpressed(name: str, reference: dict[str, Any]) -> None:
    seed_name, count = SEEDS[name]
    seed = reference[seed_name]["parameters"]
    prog = program(name)
    assert len(seed) == count
    assert len(prog.searchable) == count == len(prog.parameters)
    ours = [our_signature(p) for p in prog.searchable]
    theirs = [seed_signature(p) for p in seed]
    assert _same(ours, theirs), (
        f"only ours: {Counter(ours) - Counter(theirs)}; only the seed's: "
        f"{Counter(theirs) - Counter(ours)}"
    )


@pytest.mark.parametrize("name", [*SEEDS])
def test_seed_spaces_match_parameter_by_parameter(name: str, reference: dict[str, Any]) -> None:
    """A few named correspondences, so that swapped ranges cannot cancel out."""
    seed = {p["name"]: seed_signature(p) for p in reference[SEEDS[name][0]]["parameters"]}
    prog = program(name)
    ours = {p.name: our_signature(p) for p in prog.parameters}
    pairs = {
        "train.learning_rate": "learning_rate", "train.learning_gamma": "learning_gamma",
        "train.learning_step": "learning_step", "train.prune_threshold": "prune_threshold",
        "train.batch_size": "batch_size",
    }
    if name != "sparse_rnn":
        pairs |= {"block": "num_conv_blocks", "block[1].layer": "conv_1_num_layers",
                  "block[1].layer[2].filters": "conv_1_layer_2_filters",
                  "block[2].layer[3].kernel": "conv_2_layer_3_kernel",
                  "block[1].layer[1].type": "conv_1_layer_1_type",
                  "block[2].layer[1].downconv2d.ratio": "conv_2_layer_1_downsample",
                  "block[2].rate": "input_downsampling_rate_2",
                  "block[1].downsample": "downsample_input_depth_1",
                  "fc": "num_fc_layers", "fc[2].linear.units": "fc_weights_layer_2",
                  "fc[1].dropout.p": "drop_fc_1"}
        pairs["block[1].dropout.p" if name == "sparse_cnn_seq" else "block[1].drop"] = "drop_1"
    else:
        pairs |= {"rnn.hidden": "neurons_layers", "rnn.layers": "rnn_layers",
                  "rnn.dropout": "rnn_dropout", "rnn.cell": "cell_type", "fc": "fc_layers",
                  "fc[1].linear.units": "neurons_fc_layer_1"}
    if name == "sparse_cnn_rnn":
        pairs |= {"rnn.hidden": "neurons_layers", "rnn.dropout": "rnn_dropout",
                  "rnn.cell": "cell_type", "block[3].layer": "conv_3_num_layers"}
    if name != "sparse_cnn":
        pairs["train.max_len"] = "max_len"
    for our_name, seed_name in pairs.items():
        assert _same([ours[our_name]], [seed[seed_name]]), (our_name, seed_name)


def test_the_reference_holds_the_four_spaces(reference: dict[str, Any]) -> None:
    assert {name for name, _ in SEEDS.values()} <= set(reference)


@pytest.mark.parametrize("path", STDLIB_FILES, ids=lambda p: p.name)
def test_every_stdlib_file_has_a_doc_string(path: Any) -> None:
    module = parse(path.read_text(), str(path))
    docs = [item for item in module.items if isinstance(item, Docstring)]
    assert docs and docs[0] is module.items[0]
    assert len(docs[0].text.strip()) > 40


@pytest.mark.parametrize("path", PROGRAM_FILES, ids=lambda p: p.name)
def test_programs_carry_their_doc_string(path: Any) -> None:
    prog = program(path.stem)
    assert prog.doc and prog.doc.split()[0] in path.read_text()
    assert prog.name == path.stem


@pytest.mark.parametrize("path", STDLIB_FILES, ids=lambda p: p.name)
def test_every_stdlib_file_checks(path: Any) -> None:
    checked = check_file(path)
    if path.stem == "sparse_blocks":
        assert checked.program is None and checked.library_blocks >= 3
    else:
        assert checked.program is not None and checked.program.searchable


@pytest.mark.parametrize("path", [*STDLIB_FILES, PROGRAM_FILES[-1]], ids=lambda p: p.name)
def test_every_stdlib_file_is_formatted(path: Any) -> None:
    text = path.read_text()
    assert format_source(text, str(path)) == text
