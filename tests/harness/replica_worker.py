"""A worker process of the family harness's replica test (`tests/test_families.py`).

    python -m tests.harness.replica_worker FAMILY MODES CONFIG_YAML INITIAL_CHECKPOINT OUTPUT_DIR

from the repository root.

MODES lists what this process runs, each from the initial checkpoint: `default` (one device), `half_batches` (one
device summing the gradients of the two half-batches, `tests.harness.replicas`), `mirrored` (two logical CPUs),
or `multi_worker` alone (this process's replica of TF_CONFIG's two-worker cluster: its collective ops must be
configured before TensorFlow initialises, and MirroredStrategy refuses a cluster's devices in eager mode). Each
mode's two iterations go to OUTPUT_DIR/MODE.npz (the multi-worker ones from worker 0). The logical CPU devices
are set before TensorFlow initialises, in every worker alike.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path

import numpy as np


def main(family: str, modes: str, config_path: str, initial_checkpoint: str, output: str) -> None:
    """Two iterations of `family` for each of `modes` from a training checkpoint -> `output`/MODE.npz."""
    import tensorflow as tf

    modes = modes.split(",")
    assert modes == ["multi_worker"] or "multi_worker" not in modes, modes
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from stargan_keras.core.distribute import make_strategy
    from stargan_keras.families import load_config
    from tests.harness.families import CASES, two_iterations
    from tests.harness.replicas import half_batch_sum_step

    case, config = CASES[family], load_config(config_path)
    writes = modes != ["multi_worker"] or json.loads(os.environ["TF_CONFIG"])["task"]["index"] == 0
    strategies, models = {}, {}
    for mode in modes:
        name = "default" if mode == "half_batches" else mode
        if name not in strategies:
            strategies[name] = make_strategy(name)
            assert strategies[name].num_replicas_in_sync == (1 if name == "default" else 2)
            with strategies[name].scope():
                models[name] = case.build_trainer(config, run_eagerly=True)
        with strategies[name].scope():
            models[name].checkpoint().read(initial_checkpoint).assert_consumed()
        step = functools.partial(half_batch_sum_step, case, models[name]) if mode == "half_batches" else None
        result = two_iterations(case, models[name], config, step)
        if writes:
            np.savez(Path(output) / f"{mode}.npz", **result)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main(*sys.argv[1:])
