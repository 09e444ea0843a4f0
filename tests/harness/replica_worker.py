"""The worker process of the family harness's replica test (`tests/test_families.py`).

    python -m tests.harness.replica_worker FAMILY MODES CONFIG_YAML INITIAL_CHECKPOINT OUTPUT_DIR   (cwd: the repository)

MODES is one strategy (default | mirrored | multi_worker), or `default,half_batches`: one device, then one device
summing the gradients of the two half-batches (`tests.harness.replicas`), each from the initial checkpoint.
Each mode's two iterations go to OUTPUT_DIR/MODE.npz. Logical CPU devices and TF_CONFIG must be set before
TensorFlow initialises, so each strategy runs in a fresh process.
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
    strategy_name = "default" if "half_batches" in modes else modes[0]
    if strategy_name == "mirrored":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from stargan_keras.core.distribute import make_strategy
    from stargan_keras.families import load_config
    from tests.harness.families import CASES, two_iterations
    from tests.harness.replicas import half_batch_sum_step

    case, config = CASES[family], load_config(config_path)
    strategy = make_strategy(strategy_name)
    assert strategy.num_replicas_in_sync == (1 if strategy_name == "default" else 2)
    with strategy.scope():
        model = case.build_trainer(config, run_eagerly=True)
    writes = strategy_name != "multi_worker" or json.loads(os.environ["TF_CONFIG"])["task"]["index"] == 0
    for mode in modes:
        with strategy.scope():
            model.checkpoint().read(initial_checkpoint).assert_consumed()
        step = functools.partial(half_batch_sum_step, case, model) if mode == "half_batches" else None
        result = two_iterations(case, model, config, step)
        if writes:
            np.savez(Path(output) / f"{mode}.npz", **result)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main(*sys.argv[1:])
