"""The deployment command: `export` a network to int8 TFLite, C for TFLite Micro, or ONNX.

    sparsemodc export RESULTS_DIR --trial N --format tflite|c|onnx|onnx-int8 [-o PATH]
    sparsemodc export FILE.arch --params P.json --weights W.pt --calibration X.npy ...

From a results directory the network of a trial is rebuilt from its saved weights,
quantised exactly as the search measured it, written, and run in its runtime on the
experiment's test split; from a `.arch` file the network is one trained elsewhere.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import UsageError
from .args import Command, add_shape_options
from .exits import EXIT_ERRORS, EXIT_OK
from .output import write_output
from .point import read_params
from .trained import check_activations, load_calibration, load_weights

if TYPE_CHECKING:
    from ..nets.deploy.export import Exported
    from ..search.export import TrialExport

FORMATS = ("tflite", "c", "onnx", "onnx-int8")
#: What --name may be: it names files in the output folder, so no folder part.
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")


def parse_name(text: str) -> str:
    """A base name for the exported files: no folder part, at most 100 characters."""
    if not _NAME.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a file name: use letters, digits, '_', '-' and '.', at most 100 "
            "characters, not starting with '-' or '.'")
    return text


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
    parser.add_argument("--name", type=parse_name, help="base name of the files and C symbols "
                        "(default: ARCH_trialN, or the arch's name)")
    parser.add_argument("--trial", type=int, metavar="N", help="the trial (results directory)")
    parser.add_argument("--params", metavar="P.json", help="the point (.arch source)")
    parser.add_argument("--weights", metavar="W.pt",
                        help="the trained float network's state dict (.arch source)")
    parser.add_argument("--calibration", metavar="X.npy",
                        help="float inputs (N, *input shape) that calibrate int8 (.arch source)")
    add_shape_options(parser)


def _write(exported: Exported, output: str | None) -> list[Path]:
    """Write the files: into the folder `output` (made if missing), or for a one-file
    format to the file `output` names (one with a suffix, or any existing non-folder)."""
    if output == "":
        raise UsageError("-o: the output path is empty: give a folder or a file name")
    target = Path(output or ".")
    single = len(exported.files) == 1 and exported.format != "c"
    as_file = single and not target.is_dir() and bool(target.suffix or target.exists())
    folder = target.parent if as_file else target
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder}: not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"{folder}: cannot make the folder: {error.strerror or error}") from None
    paths = [target] if as_file else [folder / name for name in exported.files]
    for path, data in zip(paths, exported.files.values(), strict=True):
        write_output(path, data)
    return paths


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
    net = load_weights(space.build(params), args.weights)
    batches = []
    if args.calibration is not None:
        batches = [load_calibration(args.calibration, space.trace_input(params))]
        check_activations(net, batches[0], args.weights, args.calibration)
    elif args.format != "onnx":
        raise UsageError(f"--format {args.format} needs --calibration X.npy: float inputs "
                         "that set the int8 ranges")
    return space.export(params, net, args.format, batches, args.name)


def _export(args: argparse.Namespace) -> int:
    if not args.source:
        raise UsageError("the source path is empty: give a results directory or a .arch file")
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
    if result is not None and result.standardized:
        print("  input: raw data (the model's first operator standardises it)")
    if result is not None and result.torch_error is not None:
        print(_test_line(result))
    return EXIT_OK if exported.files else EXIT_ERRORS


def _test_line(result: TrialExport) -> str:
    """The test accuracy (a classifier), MSE (a regression network) or AUC (an anomaly
    detector) of torch's model and of the runtime's."""
    from ..search.objective import show_error

    def shown(error: float) -> str:
        if result.loss == "cross_entropy":
            return f"{100 * (1 - error):.1f}%"
        return show_error(error, result.loss)

    name = {"auc": "AUC", "mse": "MSE"}.get(result.loss, "accuracy")
    line = (f"  test {name}: {result.reference} "
            f"{shown(result.torch_error or 0.0)}")
    if result.runtime_error is not None:
        line += (f", {result.runtime} {shown(result.runtime_error)} "
                 f"({result.examples} test examples)")
    return line


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
