"""Reading PyTorch files safely: the authors' checkpoints and the LPIPS / Inception weights.

Torch is an optional extra, imported only here and only when a file is read.
Files are opened with `torch.load(weights_only=True)`, so a file that carries
code is refused, never run.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

INSTALL_HINT = "pip install 'stargan-keras[torch]'"


class TorchFileError(ValueError):
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
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        reason = next((line.strip() for line in str(err).splitlines() if "GLOBAL" in line), "")
        raise error(f"refused {path}: it is not a plain state dict of tensors. It may carry code (or be damaged), "
                    "so it was refused on purpose: PyTorch files are read with torch.load(weights_only=True), which "
                    f"never runs code from the file. {reason} {hint}") from None
    except Exception as err:  # torch raises RuntimeError, EOFError, KeyError... for damaged files
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise error(f"{path} is truncated or corrupt, not a complete PyTorch file "
                    f"({type(err).__name__}: {first}). Download it again.") from None


def is_tensor(value) -> bool:
    return import_torch().is_tensor(value)


def to_numpy(tensor) -> np.ndarray:
    return tensor.detach().float().numpy()


def to_keras_layout(array: np.ndarray) -> np.ndarray:
    """OIHW conv kernels -> HWIO, Linear (out, in) -> (in, out), vectors as they are."""
    if array.ndim == 4:
        return array.transpose(2, 3, 1, 0)
    if array.ndim == 2:
        return array.T
    return array
