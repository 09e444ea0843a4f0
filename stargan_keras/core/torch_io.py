"""Reading PyTorch files safely: the authors' checkpoints and the LPIPS / Inception weights.

One home for everything torch-shaped: safe loading, state dicts as NumPy arrays, the
layout conversion (OIHW -> HWIO, (out, in) -> (in, out)) and the key-by-key checks of a
state dict against the Keras variables it is meant for.

Torch is an optional extra, imported only here and only when a file is read.
Files are opened with `torch.load(weights_only=True)`, so a file that carries
code is refused, never run.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from stargan_keras.core.errors import UserError

INSTALL_HINT = "pip install 'stargan-keras[torch]'"
MAX_NESTING = 8  # state dicts nest two or three levels; deeper nesting is not a checkpoint


class TorchFileError(UserError, ValueError):
    """A PyTorch file that cannot be read; the message names it and says what to do."""


def import_torch(error: type[Exception] = TorchFileError):
    try:
        import torch
    except ImportError:
        raise error(f"Reading PyTorch files needs PyTorch, which is an optional extra: {INSTALL_HINT}") from None
    return torch


def load_torch_file(path: str | Path, error: type[Exception] = TorchFileError, hint: str = ""):
    """The object in a torch.save file, read weights-only; `error` is the exception type the caller raises."""
    torch = import_torch(error)
    path = Path(path)
    if not path.is_file():
        raise error(f"{path} does not exist (or is not a file). {hint}")
    with open(path, "rb") as f:
        head = f.read(64)
    if not head:
        raise error(f"{path} is empty: the download did not complete. Download it again.")
    if head.lstrip().startswith(b"<"):
        raise error(f"{path} is an HTML page, not a PyTorch file: Dropbox links must end in ?dl=1 "
                    "(dl=0 serves a web page). Download it again with dl=1.")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        reason = next((line.strip() for line in str(err).splitlines() if "GLOBAL" in line), "")
        raise error(f"refused {path}: it is not a plain state dict of tensors. It may carry code (or be damaged), "
                    "so it was refused on purpose: PyTorch files are read with torch.load(weights_only=True), which "
                    f"never runs code from the file. {reason} {hint}") from None
    except Exception as err:  # torch raises RuntimeError, EOFError, KeyError... for damaged files
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise error(f"{path} is truncated or corrupt, not a complete PyTorch file "
                    f"({type(err).__name__}: {first}). Download it again.") from None
    check_tensor_sizes(loaded, path, error)
    return loaded


def tensors_in(value, depth: int = 0):
    """Every tensor in the nested dicts, lists and tuples of a loaded file."""
    if depth > MAX_NESTING:
        return
    if isinstance(value, dict):
        value = value.values()
    elif not isinstance(value, (list, tuple)):
        if import_torch().is_tensor(value):
            yield value
        return
    for item in value:
        yield from tensors_in(item, depth + 1)


def check_tensor_sizes(loaded, path: Path, error: type[Exception]) -> None:
    """Refuse a file whose tensors claim more bytes than their storage holds, or than the file itself.

    A tensor is a view (shape, strides) of a storage: `zeros(1).expand(10**9)` is a few bytes
    on disk but a billion elements once converted to NumPy. The weights of a network are
    dense, so no tensor may be larger than its storage, and all of them together no larger
    than the file (twice, for weights shared between two keys).
    """
    budget, total = 2 * path.stat().st_size + 2**20, 0
    for tensor in tensors_in(loaded):
        logical = tensor.numel() * tensor.element_size()
        stored = tensor.untyped_storage().nbytes() - tensor.storage_offset() * tensor.element_size()
        total += logical
        if logical > stored:
            raise error(f"refused {path}: a tensor of shape {tuple(tensor.shape)} is a view of {stored} stored bytes "
                        f"that would take {logical} bytes in memory (repeated, stride-0 data); a state dict of "
                        "weights never has those. Use the original file.")
        if total > budget:
            raise error(f"refused {path}: its tensors would take more than {budget} bytes in memory, more than the "
                        "file holds (views repeating the same data). Use the original file.")


def is_tensor(value) -> bool:
    return import_torch().is_tensor(value)


def to_numpy(tensor) -> np.ndarray:
    """A float32 copy of a tensor (NumPy arrays pass through): called only once its shape was checked."""
    if isinstance(tensor, np.ndarray):
        return tensor
    return tensor.detach().float().numpy()


def to_keras_layout(array: np.ndarray) -> np.ndarray:
    """OIHW conv kernels -> HWIO, Linear (out, in) -> (in, out), vectors as they are."""
    if array.ndim == 4:
        return array.transpose(2, 3, 1, 0)
    if array.ndim == 2:
        return array.T
    return array


def torch_shape(keras_shape) -> tuple[int, ...]:
    """The PyTorch shape of a Keras variable's shape (the inverse of `to_keras_layout`)."""
    shape = tuple(int(d) for d in keras_shape)
    if len(shape) == 4:
        return (shape[3], shape[2], shape[0], shape[1])
    if len(shape) == 2:
        return shape[::-1]
    return shape


class StateDictError(TorchFileError):
    """A torch state dict that does not fit the network it is converted into."""


def load_torch_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """Read a torch state dict file on the CPU, safely (weights only): its floating-point tensors, converted
    to float32 NumPy arrays by `take` once their shapes are checked.

    A `{'state_dict': ...}` wrapper, as some checkpoints carry, is opened.
    """
    loaded = load_torch_file(path, error=StateDictError)
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict):
        raise StateDictError(f"{path}: expected a torch state dict, found {type(loaded).__name__}.")
    return {key: value for key, value in loaded.items() if is_tensor(value) and value.is_floating_point()}


def take(state_dict: dict[str, np.ndarray], key: str, shape: tuple, source: str) -> np.ndarray:
    """`state_dict[key]`, checked against the shape the Keras layer expects."""
    if key not in state_dict:
        raise StateDictError(f"{source}: key '{key}' is missing; is this the right weights file?")
    value = state_dict[key]
    if tuple(value.shape) != tuple(shape):
        raise StateDictError(f"{source}: '{key}' has shape {tuple(value.shape)}, "
                             f"expected {tuple(shape)}.")
    return to_numpy(value)


def state_dict_mismatches(name: str, expected: dict, found: dict, ignored=()) -> list[str]:
    """Missing, mis-shaped and unexpected keys of one network, in state-dict order.

    `expected` maps state-dict keys to the Keras variables they fill; `ignored` keys may be extra.
    """
    problems = []
    for key, variable in expected.items():
        want = torch_shape(variable.shape)
        if key not in found:
            problems.append(f"{name}: {key} missing (expected shape {want})")
        elif tuple(found[key].shape) != want:
            problems.append(f"{name}: {key} expected shape {want}, found {tuple(found[key].shape)}")
    problems += [f"{name}: {key} unexpected (found shape {tuple(value.shape)})"
                 for key, value in found.items() if key not in expected and key not in ignored]
    return problems


def assign_state_dict(variables: dict, state: dict[str, np.ndarray]) -> None:
    """Copy a checked state dict (tensors or arrays) into the Keras variables named by its keys."""
    for key, variable in variables.items():
        variable.assign(to_keras_layout(to_numpy(state[key])).astype(variable.dtype))


class ConversionError(TorchFileError):
    """A checkpoint that cannot be read or does not fit the config; the message says why and what to do."""


MAX_LISTED = 5  # misfits listed in a ConversionError


def check_state_dicts(states: dict, networks, sources: dict, explain, expected: str, ignored=()) -> None:
    """Every tensor of `states` ({network: state dict}) against `networks`, before any is assigned; raise a
    ConversionError listing the misfits and `explain(states)`, the config values that probably differ
    (`expected` names the kind of file when none does; `ignored` keys may be extra)."""
    from stargan_keras.core.layers import torch_named_variables

    problems, files = [], []
    for name, network in networks.items():
        found = state_dict_mismatches(name, torch_named_variables(network), states[name], ignored)
        problems += found
        if found and str(sources[name]) not in files:
            files.append(str(sources[name]))
    if not problems:
        return
    files = " and ".join(files)
    listed = "\n  ".join(problems[:MAX_LISTED])
    more = f"\n  ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
    hints = explain(states)
    advice = ("Probably: " + "; ".join(hints) + ".") if hints else f"No config value explains it: is this {expected}?"
    raise ConversionError(f"{files}: {len(problems)} tensors do not fit the config (nothing was written):\n"
                          f"  {listed}{more}\n{advice}")
