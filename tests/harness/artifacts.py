"""Expensive test inputs (a trained tiny run, an export, a model directory) built once per test session and read
by every pytest-xdist worker: the first worker to ask builds it under a file lock, the others wait and reuse it.

Users of an artifact only read it; a test that changes files copies the artifact into its own `tmp_path` first.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path
from typing import Callable


def shared_root(tmp_path_factory) -> Path:
    """The folder all workers of this session see (pytest's base temp is per worker under xdist)."""
    base = tmp_path_factory.getbasetemp()
    root = (base.parent if "PYTEST_XDIST_WORKER" in os.environ else base) / "artifacts"
    root.mkdir(exist_ok=True)
    return root


def built_once(tmp_path_factory, name: str, build: Callable[[Path], None]) -> Path:
    """The folder `name`, which `build(folder)` filled once this session; a build that failed is retried."""
    root = shared_root(tmp_path_factory)
    target = root / name
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not target.is_dir():
            partial = root / f"{name}.partial"
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir()
            build(partial)
            partial.rename(target)
    return target
