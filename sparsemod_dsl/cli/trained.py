"""The files of a network trained elsewhere, as `sparsemodc export FILE.arch` reads them.

`--weights` (a `torch.save` state dict) and `--calibration` (a `.npy` array of inputs)
are checked here before anything is quantised: a damaged or foreign file, weights of
another network, NaN or infinite numbers, inputs of the wrong shape, or numbers so large
that the network's activations overflow float32 are each one `UsageError` naming the
file, never an error from deep inside torch's quantiser.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import UsageError

if TYPE_CHECKING:
    import torch
    from torch import nn


def load_weights(net: nn.Module, path: str) -> nn.Module:
    """`net` with the state dict in the file `path` loaded into it."""
    import torch  # noqa: PLC0415

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as error:
        raise UsageError(f"{path}: cannot read the weights: {error.strerror or error}") from None
    except Exception:  # noqa: BLE001 (whatever a damaged or foreign file makes torch raise)
        raise UsageError(f"{path}: not a torch state dict (a file written by "
                         "torch.save(net.state_dict()))") from None
    if not isinstance(state, dict):
        raise UsageError(f"{path}: not a state dict: a dict of tensors was expected, "
                         f"found a {type(state).__name__}")
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise UsageError(f"{path}: not a state dict: {key!r} holds a value of type "
                             f"{type(value).__name__}, not a tensor")
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise UsageError(f"{path}: the weights hold NaN or infinite numbers ({key!r})")
    try:
        net.load_state_dict(state)
    except (RuntimeError, TypeError, ValueError) as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        reason = "; ".join(lines[1:] if lines and lines[0].startswith("Error(s) in") else lines)
        raise UsageError(f"{path}: not the weights of this network: {reason}") from None
    return net


def load_calibration(path: str, shape: tuple[int, ...]) -> torch.Tensor:
    """The calibration inputs in a `.npy` file: N >= 1 finite inputs of the network's shape."""
    import numpy as np  # noqa: PLC0415
    import torch  # noqa: PLC0415

    try:
        array = np.load(path, allow_pickle=False)
    except OSError as error:
        raise UsageError(f"{path}: cannot read the calibration data: "
                         f"{error.strerror or error}") from None
    except Exception:  # noqa: BLE001 (whatever a damaged or foreign file makes numpy raise)
        raise UsageError(f"{path}: not a .npy array (a file written by numpy.save)") from None
    expected = f"(N, {', '.join(map(str, shape))}) with N >= 1"
    if not isinstance(array, np.ndarray):
        raise UsageError(f"{path}: an .npz archive, not a .npy array of shape {expected}")
    if array.dtype.kind not in "biuf":
        raise UsageError(f"{path}: calibration data of type {array.dtype.name}: expected "
                         "numbers")
    if array.ndim != len(shape) + 1 or array.shape[1:] != shape or not len(array):
        raise UsageError(f"{path}: calibration data of shape {array.shape}: expected {expected}")
    inputs = torch.from_numpy(array.astype(np.float32))
    if not torch.isfinite(inputs).all():
        raise UsageError(f"{path}: the calibration data holds NaN or infinite numbers "
                         "(as float32)")
    return inputs


def check_activations(net: nn.Module, inputs: torch.Tensor, weights: str, path: str) -> None:
    """Refuse calibration inputs (or weights) under which a layer's output is not finite:
    int8 ranges cannot be set from NaN or infinity, and torch's observers fail on them."""
    import torch  # noqa: PLC0415

    bad: list[str] = []

    def watch(name: str) -> Any:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            if not bad and not all(torch.isfinite(t).all() for t in _tensors(output)):
                bad.append(name)
        return hook

    handles = [module.register_forward_hook(watch(name))
               for name, module in net.named_modules() if name]
    training = net.training
    try:
        with torch.no_grad():
            net.eval()(inputs)
    finally:
        for handle in handles:
            handle.remove()
        net.train(training)
    if bad:
        raise UsageError(f"{path}: on these inputs, with the weights of {weights}, the output "
                         f"of layer {bad[0]} is NaN or infinite (beyond float32's range): "
                         "scale the inputs or the weights down")


def _tensors(value: Any) -> list[torch.Tensor]:
    """The floating-point tensors in a module's output (a tensor, or nested tuples)."""
    import torch  # noqa: PLC0415

    if isinstance(value, torch.Tensor):
        return [value] if value.is_floating_point() else []
    if isinstance(value, (tuple, list)):
        return [t for item in value for t in _tensors(item)]
    return []
