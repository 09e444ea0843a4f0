"""A tiny StarGAN v2 run made once per session by `python -m stargan_keras.train` as a user starts it (stdout and
stderr through pipes, no TensorFlow log settings), with what the command printed: the run directory that
tests/test_train.py inspects and resumes against, and whose console output tests/test_console.py checks before
exporting, sampling and evaluating it. Readers copy it into their tmp_path before writing into it."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.harness.artifacts import built_once
from tests.harness.commands import TIMEOUT, user_env

# 16 px networks of widths 4-16 on 20 shapes per domain: 6 steps, a checkpoint and samples every 3, scalars and a
# progress line every 4 steps (and the progress line of the last step).
TINY_V2_TRAIN = ["--img-size", "16", "--base-dim", "4", "--max-conv-dim", "16", "--mapping-hidden-dim", "16",
                 "--batch-size", "2", "--total-iters", "6", "--save-every", "3", "--sample-every", "3",
                 "--log-every", "4", "--shapes-train-per-domain", "20", "--shapes-val-per-domain", "4"]


@dataclass(frozen=True)
class TrainedRun:
    """A finished run: its directory (relative to `cwd`, the command's working directory) and its output."""

    cwd: Path
    run_dir: Path
    out: str
    err: str


def _train(folder: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "stargan_keras.train", *TINY_V2_TRAIN, "--run-dir", "run"],
                            cwd=folder, env=user_env(), capture_output=True, text=True, timeout=TIMEOUT)
    (folder / "stdout.txt").write_text(result.stdout)
    (folder / "stderr.txt").write_text(result.stderr)
    if result.returncode != 0:
        raise RuntimeError(f"the shared tiny v2 run failed ({result.returncode}):\n{result.stderr[-3000:]}")


@pytest.fixture(scope="session")
def tiny_v2_run(tmp_path_factory) -> TrainedRun:
    """`TINY_V2_TRAIN` trained to its end in `<artifact>/run` (started there as `--run-dir run`)."""
    folder = built_once(tmp_path_factory, "tiny_v2_run", _train)
    return TrainedRun(folder, folder / "run", (folder / "stdout.txt").read_text(), (folder / "stderr.txt").read_text())
