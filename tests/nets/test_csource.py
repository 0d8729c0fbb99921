"""C/C++ source for TFLite Micro firmware (`csource`), checked with a real model.

One `.tflite` of `examples/quickstart.arch` (int8, with a SOFTMAX) is written through
the project's backend; its C sources must carry exactly its bytes and its operators,
and must compile with g++: against stub TFLM headers that declare only the resolver's
`Add*` methods (so a misspelt method fails), linked and run with a recording stub, and,
where `TFLM_INCLUDE` names a tflite-micro source tree, against the real headers.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import gxx, tflm_stub_headers

from sparsemod_dsl.nets.deploy import tflm
from sparsemod_dsl.nets.deploy.csource import (
    RESOLVER_METHODS,
    TensorInfo,
    c_identifier,
    c_sources,
)
from sparsemod_dsl.nets.deploy.int8 import int8_graph
from sparsemod_dsl.nets.deploy.tflite import OPERATORS, SOFTMAX_QPARAMS, tflite_model
from sparsemod_dsl.nets.graph import deployed_graph
from sparsemod_dsl.nets.quantize import static_int8
from sparsemod_dsl.nets.trace import trace
from sparsemod_dsl.space import compile_file

ROOT = Path(__file__).resolve().parents[2]
GXX = shutil.which("g++")
needs_gxx = pytest.mark.skipif(GXX is None, reason="g++ is not installed: cannot compile C++")
NAME = "quick-start"  # sanitised to `quick_start`
N = "quick_start"
NORMALIZATION = ([0.5], [0.25])
DESCRIPTION = "Digits classifier.\nA line ending in a backslash \\\n*/ and /* stay comments"


@dataclass(frozen=True)
class Model:
    data: bytes
    arena: int
    input: TensorInfo
    output: TensorInfo
    operators: list[str]  # of the graph, in order, with repeats


@pytest.fixture(scope="module")
def model() -> Model:
    torch.manual_seed(0)
    space = compile_file(ROOT / "examples" / "quickstart.arch")
    pt = next(p for p in space.sample(20, seed=1) if space.validate(p))
    shape, _ = trace(space.program, pt)
    q = static_int8(space.build(pt), [torch.randn(32, *shape.sizes()) for _ in range(2)])
    graph = deployed_graph(space.program, pt)
    int8 = int8_graph(graph, q)
    data = tflite_model(int8, softmax=True)
    iq = int8.activations[graph.input]
    arena = tflm.arena(data).total if tflm.available() else 4096
    return Model(
        data, arena,
        TensorInfo(graph.tensors[graph.input].shape, float(iq.scale[0]), int(iq.zero_point[0])),
        TensorInfo(graph.tensors[graph.output].shape, float(SOFTMAX_QPARAMS.scale[0]),
                   int(SOFTMAX_QPARAMS.zero_point[0])),
        [op.code for op in graph.ops] + ["SOFTMAX"])


@pytest.fixture(scope="module")
def sources(model: Model) -> dict[str, str]:
    return c_sources(NAME, model.data, model.arena, model.input, model.output, model.operators,
                     NORMALIZATION, DESCRIPTION)


def flatbuffer_operators(data: bytes) -> list[str]:
    """The operator code table of a `.tflite`, as TFLite builtin names."""
    tflite = pytest.importorskip("tflite")
    names = {code: name for name, (code, _) in OPERATORS.items()}
    root = tflite.Model.GetRootAsModel(data, 0)
    return [names[root.OperatorCodes(i).BuiltinCode()] for i in range(root.OperatorCodesLength())]


def constant(text: str, name: str) -> str:
    match = re.search(rf"constexpr [\w:]+ {name}(?:\[\w*\])? = ([^;]+);", text)
    assert match, name
    return match.group(1)


# --- the text ---------------------------------------------------------------------------

def test_files_and_determinism(model: Model, sources: dict[str, str]) -> None:
    assert set(sources) == {f"{N}_model.h", f"{N}_model.cc", f"{N}_ops.h"}
    again = c_sources(NAME, model.data, model.arena, model.input, model.output,
                      model.operators, NORMALIZATION, DESCRIPTION)
    assert again == sources


def test_the_array_is_the_model(model: Model, sources: dict[str, str]) -> None:
    cc = sources[f"{N}_model.cc"]
    assert f'#include "{N}_model.h"' in cc
    assert f"alignas(16) const unsigned char {N}_model[] = {{" in cc
    body = cc[cc.index("= {") + 3:cc.index("};")]
    rows = [row.strip() for row in body.strip().splitlines()]
    assert all(len(row.split(",")) - 1 == 12 for row in rows[:-1])  # 12 bytes a line
    assert bytes(int(b, 16) for b in re.findall(r"0x([0-9a-f]{2})", body)) == model.data
    assert f"const unsigned int {N}_model_len = {len(model.data)};" in cc


def test_the_header_constants(model: Model, sources: dict[str, str]) -> None:
    h = sources[f"{N}_model.h"]
    assert f"extern const unsigned char {N}_model[];" in h
    assert f"extern const unsigned int {N}_model_len;" in h
    assert h.startswith(f"// {N}:") and f"#ifndef {N}_MODEL_H_" in h and "#include <cstdint>" in h
    assert int(constant(h, f"{N}_ARENA_BYTES")) == model.arena + 16
    assert "16 bytes of slack" in h and f"{N}_ops.h" in h and "NHWC" in h
    assert "// Digits classifier." in h and "\\\n" not in h  # no line splicing
    for role, tensor in (("INPUT", model.input), ("OUTPUT", model.output)):
        dims = tuple(int(d) for d in constant(h, f"{N}_{role}_DIMS").strip("{}").split(","))
        assert dims == tensor.shape
        assert int(constant(h, f"{N}_{role}_RANK")) == len(tensor.shape)
        assert int(constant(h, f"{N}_{role}_ELEMENTS")) == int(np.prod(tensor.shape))
        scale = float(constant(h, f"{N}_{role}_SCALE").rstrip("f"))
        assert np.float32(scale) == np.float32(tensor.scale)
        assert int(constant(h, f"{N}_{role}_ZERO_POINT")) == tensor.zero_point
    assert constant(h, f"{N}_INPUT_MEAN") == "{0.5f}"
    assert constant(h, f"{N}_INPUT_STD") == "{0.25f}"
    assert f"real = (raw - {N}_INPUT_MEAN[c]) / {N}_INPUT_STD[c]" in h


def test_the_tensors_are_tflms(model: Model) -> None:
    if not tflm.available():
        pytest.skip("tflite-micro is not installed")
    runner = tflm.interpreter(model.data)
    for details, tensor in ((runner.get_input_details(0), model.input),
                            (runner.get_output_details(0), model.output)):
        assert tuple(int(d) for d in details["shape"]) == tensor.shape
        q = details["quantization_parameters"]
        assert (q["scales"][0], q["zero_points"][0]) == (np.float32(tensor.scale),
                                                         tensor.zero_point)


def test_the_ops_are_the_models(model: Model, sources: dict[str, str]) -> None:
    ops = sources[f"{N}_ops.h"]
    distinct = flatbuffer_operators(model.data)
    assert sorted(distinct) == sorted(set(model.operators)) and "SOFTMAX" in distinct
    calls = re.findall(r"resolver\.(\w+)\(\)", ops)
    assert sorted(calls) == sorted(RESOLVER_METHODS[op] for op in distinct)
    assert int(constant(ops, f"{N}_OP_COUNT")) == len(distinct)
    assert f"using {N}_OpResolver = tflite::MicroMutableOpResolver<{N}_OP_COUNT>;" in ops
    assert '#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"' in ops


def test_every_operator_has_a_method() -> None:
    assert set(RESOLVER_METHODS) == set(OPERATORS)


def test_without_normalization(model: Model) -> None:
    h = c_sources("m", model.data, 100, model.input, model.output, ["CONV_2D"])["m_model.h"]
    assert "MEAN" not in h and "STD" not in h and "m_ARENA_BYTES = 116;" in h


# --- names and errors -------------------------------------------------------------------

@pytest.mark.parametrize("name, ident", [
    ("kws", "kws"), ("quick-start v1.2", "quick_start_v1_2"), ("3x", "m_3x"),
    ("_x", "m_x"), ("ü", "m_"), ("a__b", "a__b"),
])
def test_names(name: str, ident: str) -> None:
    assert c_identifier(name) == ident
    assert re.fullmatch(r"[A-Za-z]\w*", ident)


def test_errors(model: Model) -> None:
    def sources(**changes: object) -> dict[str, str]:
        args: dict[str, object] = dict(name="m", model=model.data, arena_bytes=100,
                                       input=model.input, output=model.output,
                                       operators=["CONV_2D"])
        return c_sources(**(args | changes))  # type: ignore[arg-type]

    with pytest.raises(ValueError, match="name is empty"):
        sources(name="")
    with pytest.raises(ValueError, match="'LSTM'"):
        sources(operators=["CONV_2D", "LSTM"])
    with pytest.raises(ValueError, match="model is empty"):
        sources(model=b"")
    with pytest.raises(ValueError, match="1 means and stds"):
        sources(normalization=([0.5, 0.5], [0.2, 0.2]))
    with pytest.raises(ValueError, match="zero point"):
        sources(input=TensorInfo((1, 8, 8, 1), 0.1, 200))
    with pytest.raises(ValueError, match="scale"):
        sources(output=TensorInfo((1, 10), 0.0, 0))


# --- compiling --------------------------------------------------------------------------

# Defines each method: records the call; fails past the capacity or at call `fail_at`.
RECORDING_RESOLVER = """#pragma once
#include <cstdio>
#include "tensorflow/lite/c/common.h"
inline unsigned int fail_at = 0;
namespace tflite {
template <unsigned int tOpCount>
class MicroMutableOpResolver {
 public:
%s
  unsigned int count = 0;
 private:
  TfLiteStatus Record(const char* name) {
    if (count >= tOpCount || ++count == fail_at) return kTfLiteError;
    std::printf("%%s\\n", name);
    return kTfLiteOk;
  }
};
}  // namespace tflite
""" % "\n".join(f'  TfLiteStatus {m}() {{ return Record("{m}"); }}'
                for m in RESOLVER_METHODS.values())

MAIN = """#include "NAME_model.h"
#include "NAME_ops.h"
#include "NAME_model.h"  // the include guards hold
#include "NAME_ops.h"
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#ifdef REAL_TFLM
#include "tensorflow/lite/schema/schema_generated.h"
#endif

static_assert(NAME_ARENA_BYTES == @ARENA@, "arena");
static_assert(NAME_INPUT_ELEMENTS == NAME_INPUT_DIMS[1] * NAME_INPUT_DIMS[2] * NAME_INPUT_DIMS[3],
              "input");
static_assert(NAME_OUTPUT_DIMS[NAME_OUTPUT_RANK - 1] == NAME_OUTPUT_ELEMENTS, "output");
static_assert(NAME_INPUT_CHANNELS == NAME_INPUT_DIMS[3] && NAME_INPUT_MEAN[0] == 0.5f &&
              NAME_INPUT_STD[0] == 0.25f, "normalization");
static_assert(NAME_OUTPUT_SCALE == 1.0f / 256 && NAME_OUTPUT_ZERO_POINT == -128, "softmax");
static_assert(NAME_INPUT_SCALE > 0 && NAME_OP_COUNT > 0, "constants");

static std::uint8_t arena[NAME_ARENA_BYTES];

int main(int argc, char** argv) {
  NAME_OpResolver resolver;
#ifdef RECORDING
  if (argc > 1) fail_at = static_cast<unsigned int>(std::atoi(argv[1]));
#endif
  const TfLiteStatus status = NAME_register_ops(resolver);
#ifdef REAL_TFLM
  if (tflite::GetModel(NAME_model)->version() != 3) return 2;
#endif
#ifdef RECORDING
  std::printf("status %d count %u\\n", static_cast<int>(status), resolver.count);
  std::printf("aligned %d\\n", static_cast<int>(reinterpret_cast<std::uintptr_t>(NAME_model) % 16));
  if (argc > 2) {
    std::FILE* out = std::fopen(argv[2], "wb");
    std::fwrite(NAME_model, 1, NAME_model_len, out);
    std::fclose(out);
  }
#endif
  (void)argv;
  return argc > 99 ? arena[0] : static_cast<int>(status);
}
"""


def write_tree(tmp: Path, sources: dict[str, str], stubs: dict[str, str], arena: int) -> None:
    for path, text in {**sources, **stubs}.items():
        (tmp / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp / path).write_text(text)
    (tmp / "main.cc").write_text(MAIN.replace("NAME", N).replace("@ARENA@", str(arena + 16)))


@needs_gxx
def test_compiles_against_stub_headers(tmp_path: Path, model: Model,
                                       sources: dict[str, str]) -> None:
    write_tree(tmp_path, sources, tflm_stub_headers(), model.arena)
    for source in ("main.cc", f"{N}_model.cc"):
        result = gxx(tmp_path, "-c", source)
        assert result.returncode == 0, result.stderr
    ops = tmp_path / f"{N}_ops.h"
    ops.write_text(ops.read_text().replace("AddConv2D", "AddConv2d"))
    result = gxx(tmp_path, "-c", "main.cc")
    assert result.returncode != 0 and "AddConv2d" in result.stderr


@needs_gxx
def test_links_and_registers(tmp_path: Path, model: Model, sources: dict[str, str]) -> None:
    stubs = tflm_stub_headers()
    stubs["tensorflow/lite/micro/micro_mutable_op_resolver.h"] = RECORDING_RESOLVER
    write_tree(tmp_path, sources, stubs, model.arena)
    result = gxx(tmp_path, "-DRECORDING", "main.cc", f"{N}_model.cc", "-o", "firmware")
    assert result.returncode == 0, result.stderr
    run = subprocess.run([str(tmp_path / "firmware"), "0", str(tmp_path / "model.tflite")],
                         capture_output=True, text=True, timeout=60)
    lines = run.stdout.splitlines()
    distinct = flatbuffer_operators(model.data)
    assert run.returncode == 0 and lines[-2:] == [f"status 0 count {len(distinct)}", "aligned 0"]
    assert sorted(lines[:-2]) == sorted(RESOLVER_METHODS[op] for op in distinct)
    assert (tmp_path / "model.tflite").read_bytes() == model.data
    # The first failure is returned and nothing is registered after it.
    run = subprocess.run([str(tmp_path / "firmware"), "2"], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 1 and run.stdout.splitlines() == [lines[0], "status 1 count 2",
                                                               "aligned 0"]


@needs_gxx
def test_compiles_against_tflm(tmp_path: Path, model: Model, sources: dict[str, str]) -> None:
    root = os.environ.get("TFLM_INCLUDE")
    if not root or not (Path(root) / "tensorflow/lite/micro/micro_mutable_op_resolver.h").exists():
        pytest.skip("TFLM_INCLUDE does not name a tflite-micro source tree")
    downloads = Path(root) / "tensorflow/lite/micro/tools/make/downloads"
    include = [str(tmp_path), root, str(downloads / "flatbuffers/include"),
               str(downloads / "gemmlowp"), str(downloads / "ruy")]
    include += [p for p in os.environ.get("TFLM_EXTRA_INCLUDES", "").split(os.pathsep) if p]
    write_tree(tmp_path, sources, {}, model.arena)
    for source in ("main.cc", f"{N}_model.cc"):
        result = subprocess.run(
            [GXX or "g++", "-std=c++17", "-DREAL_TFLM", "-DTF_LITE_STATIC_MEMORY",
             *(f"-I{p}" for p in include), "-c", source],
            cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
