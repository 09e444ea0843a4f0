"""Load the authors' PyTorch code from a checkout of clovaai/stargan-v2, to time it beside ours.

Nothing of theirs is kept in this repository: the benchmarks take `--upstream-dir PATH` and run
the code in place. Their `core/solver.py` imports torchvision, OpenCV and the FAN landmark network,
none of which the timed work needs, so only the loss functions are taken from it; their
`core/wing.py` (the FAN) runs with stand-ins for OpenCV and scikit-image, which only its face
alignment uses.
"""

from __future__ import annotations

import ast
import sys
import types
from pathlib import Path

SOLVER_FUNCTIONS = ("compute_d_loss", "compute_g_loss", "moving_average", "adv_loss", "r1_reg")


class Munch(dict):
    """Stand-in for the `munch` package: a dict with attribute access, all their code asks of it."""

    __getattr__ = dict.__getitem__


def _source(upstream_dir: Path, relative: str) -> str:
    path = Path(upstream_dir) / relative
    if not path.is_file():
        raise SystemExit(f"--upstream-dir {upstream_dir}: no {relative}; pass a checkout of clovaai/stargan-v2")
    return path.read_text(encoding="utf-8")


def model_module(upstream_dir: Path, base_dim: int | None = None) -> types.ModuleType:
    """Their `core/model.py`; with `base_dim`, every network starts at that width instead of 2**14 // img_size."""
    sys.modules.setdefault("munch", types.SimpleNamespace(Munch=Munch))
    sys.modules.setdefault("core.wing", types.SimpleNamespace(FAN=None))
    source = _source(upstream_dir, "core/model.py")
    if base_dim is not None:
        source = source.replace("dim_in = 2**14 // img_size", f"dim_in = {int(base_dim)}")
    module = types.ModuleType("upstream_model")
    exec(compile(source, str(Path(upstream_dir) / "core/model.py"), "exec"), module.__dict__)
    return module


def solver_functions(upstream_dir: Path) -> types.SimpleNamespace:
    """compute_d_loss, compute_g_loss, moving_average, adv_loss and r1_reg from their `core/solver.py`."""
    import torch
    import torch.nn.functional as F

    path = Path(upstream_dir) / "core/solver.py"
    tree = ast.parse(_source(upstream_dir, "core/solver.py"))
    tree.body = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name in SOLVER_FUNCTIONS]
    namespace = {"torch": torch, "F": F, "Munch": Munch}
    exec(compile(tree, str(path), "exec"), namespace)
    return types.SimpleNamespace(**{name: namespace[name] for name in SOLVER_FUNCTIONS})


def wing_module(upstream_dir: Path) -> types.ModuleType:
    """Their `core/wing.py`: the FAN and its `get_heatmap` (OpenCV and scikit-image only serve alignment)."""
    sys.modules.setdefault("munch", types.SimpleNamespace(Munch=Munch))
    sys.modules.setdefault("cv2", types.ModuleType("cv2"))
    sys.modules.setdefault("skimage", types.ModuleType("skimage"))
    sys.modules.setdefault("skimage.filters", types.SimpleNamespace(gaussian=None))
    module = types.ModuleType("upstream_wing")
    exec(compile(_source(upstream_dir, "core/wing.py"), str(Path(upstream_dir) / "core/wing.py"), "exec"),
         module.__dict__)
    return module


def finish(result: dict, upstream_times: list[float]) -> dict:
    """A training benchmark's last lines: the authors' times beside ours when they were taken, then the JSON line."""
    import json

    if upstream_times:
        add_upstream_times(result, upstream_times)
    print(json.dumps(result))
    return result


def add_upstream_times(result: dict, upstream_times: list[float]) -> None:
    """Put the authors' median seconds per iteration and our speed-up over it into `result`, and print them."""
    import statistics

    result.update(upstream_s_per_iter=statistics.median(upstream_times), upstream_times=upstream_times)
    result["speedup_vs_upstream"] = result["upstream_s_per_iter"] / result["s_per_iter"]
    print(f"upstream PyTorch, same run: {result['upstream_s_per_iter']:.3f} s/iter; "
          f"speed-up {result['speedup_vs_upstream']:.2f}x")
