"""The deployment command: `export` a network to int8 TFLite, C for TFLite Micro, or ONNX.

    sparsemodc export RESULTS_DIR --trial N --format tflite|c|onnx|onnx-int8 [-o PATH]
    sparsemodc export FILE.arch --params P.json --weights W.pt --calibration X.npy ...

From a results directory the network of a trial is rebuilt from its saved weights,
quantised exactly as the search measured it, written, and run in its runtime on the
experiment's test split; from a `.arch` file the network is one trained elsewhere.
"""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from ..search.results import write_atomic
from .args import Command, add_shape_options
from .exits import EXIT_ERRORS, EXIT_OK
from .point import read_params

if TYPE_CHECKING:
    from ..nets.deploy.export import Exported

FORMATS = ("tflite", "c", "onnx", "onnx-int8")


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="RESULTS_DIR|FILE.arch",
                        help="a search's results directory, or a .arch file")
    parser.add_argument("--format", choices=FORMATS, default="tflite",
                        help="tflite: int8 TFLite; c: C++ source for TensorFlow Lite Micro "
                        "(NAME_model.h/.cc, NAME_ops.h); onnx: float; onnx-int8: static int8 "
                        "QDQ (default: tflite)")
    parser.add_argument("-o", "--output", metavar="PATH",
                        help="the file to write (a folder for --format c; default: the "
                        "current folder)")
    parser.add_argument("--name", help="base name of the files and C symbols "
                        "(default: ARCH_trialN, or the arch's name)")
    parser.add_argument("--trial", type=int, metavar="N", help="the trial (results directory)")
    parser.add_argument("--params", metavar="P.json", help="the point (.arch source)")
    parser.add_argument("--weights", metavar="W.pt",
                        help="the trained float network's state dict (.arch source)")
    parser.add_argument("--calibration", metavar="X.npy",
                        help="float inputs (N, *input shape) that calibrate int8 (.arch source)")
    add_shape_options(parser)


def _write(exported: Exported, output: str | None) -> list[Path]:
    single = len(exported.files) == 1 and exported.format != "c"
    target = Path(output) if output else Path(".")
    folder = target.parent if single and target.suffix else target
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder}: not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in exported.files.items():
        path = target if single and target.suffix else folder / name
        write_atomic(path, data)
        written.append(path)
    return written


def _load(path: str, what: str) -> Any:
    import numpy as np  # noqa: PLC0415
    import torch  # noqa: PLC0415

    try:
        if what == "weights":
            return torch.load(path, map_location="cpu", weights_only=True)
        return torch.from_numpy(np.load(path, allow_pickle=False)).float()
    except (OSError, ValueError, RuntimeError, pickle.UnpicklingError) as error:
        raise UsageError(f"{path}: cannot read the {what}: {error}") from None


def _from_arch(args: argparse.Namespace) -> Exported:
    from ..space import compile_file  # noqa: PLC0415 (torch and Ax load only when needed)

    if args.weights is None:
        raise UsageError("exporting from a .arch file needs --weights W.pt (and --params)")
    space = compile_file(args.source, args.input, args.classes)
    params = read_params(args.params)
    check = space.validate(params)
    if not check:
        raise UsageError(f"{args.params or args.source}: the point cannot be built: "
                         f"{check.reason}")
    net = space.build(params)
    try:
        net.load_state_dict(_load(args.weights, "weights"))
    except (RuntimeError, TypeError) as error:
        raise UsageError(f"{args.weights}: not the weights of this network: {error}") from None
    batches = [_load(args.calibration, "calibration data")] if args.calibration else []
    if args.format != "onnx" and not batches:
        raise UsageError(f"--format {args.format} needs --calibration X.npy: float inputs "
                         "that set the int8 ranges")
    return space.export(params, net, args.format, batches, args.name)


def _export(args: argparse.Namespace) -> int:
    source = Path(args.source)
    if source.is_dir():
        from ..search.export import export_trial  # noqa: PLC0415

        if args.trial is None:
            raise UsageError("exporting from a results directory needs --trial N "
                             "(see `sparsemodc report` for the Pareto networks)")
        result = export_trial(source, args.trial, args.format, args.name)
        exported = result.exported
    elif source.is_file():
        result, exported = None, _from_arch(args)
    else:
        raise UsageError(f"{source}: no such results directory or .arch file")
    for path in _write(exported, args.output):
        print(f"wrote {path}")
    if exported.flash_bytes is not None:
        print(f"  flash: {exported.flash_bytes:,} bytes (the .tflite model)")
    if exported.arena_bytes is not None:
        how = "measured by TensorFlow Lite Micro" if exported.arena_measured else (
            "modelled: install sparsemod-dsl[deploy] to measure it")
        print(f"  arena: {exported.arena_bytes:,} bytes ({how})")
    if result is not None and result.torch_error is not None:
        line = f"  test accuracy: {result.reference} {100 * (1 - result.torch_error):.1f}%"
        if result.runtime_error is not None:
            line += (f", {result.runtime} {100 * (1 - result.runtime_error):.1f}% "
                     f"({result.examples} test examples)")
        print(line)
    return EXIT_OK if exported.files else EXIT_ERRORS


EXPORT = Command(
    "export",
    help="write a network as int8 TFLite, C for TensorFlow Lite Micro, or ONNX",
    description="Export the network of a search's trial (RESULTS_DIR --trial N) or one "
    "trained elsewhere (FILE.arch --params P.json --weights W.pt --calibration X.npy): "
    "int8 TFLite, C++ source for a TensorFlow Lite Micro firmware (the model array, its "
    "arena size, input/output quantisation, an op resolver of exactly the operators used), "
    "float ONNX or int8 QDQ ONNX. Prints the file size, TFLite Micro's measured arena and, "
    "for a trial, the test accuracy in the runtime next to torch's.",
    arguments=_arguments,
    run=_export,
)
