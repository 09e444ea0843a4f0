"""The worker process of the family harness's replica test (`tests/test_families.py`).

    python -m tests.harness.replica_worker FAMILY MODE CONFIG_YAML INITIAL_CHECKPOINT OUTPUT_NPZ   (cwd: the repository)

Logical CPU devices and TF_CONFIG must be set before TensorFlow initialises, so each strategy runs in a
fresh process.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np


def main(family: str, mode: str, config_path: str, initial_checkpoint: str, output: str) -> None:
    """Two iterations of `family` under `mode` (default | mirrored | multi_worker) from a training checkpoint ->
    `output` (.npz)."""
    import tensorflow as tf

    if mode == "mirrored":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from stargan_keras.core.distribute import make_strategy
    from stargan_keras.families import load_config
    from tests.harness.families import CASES, two_iterations

    case, config = CASES[family], load_config(config_path)
    strategy = make_strategy(mode)
    assert strategy.num_replicas_in_sync == (1 if mode == "default" else 2)
    with strategy.scope():
        model = case.build_trainer(config, run_eagerly=True)
        model.checkpoint().read(initial_checkpoint).assert_consumed()
    result = two_iterations(case, model, config)
    if mode != "multi_worker" or json.loads(os.environ["TF_CONFIG"])["task"]["index"] == 0:
        np.savez(output, **result)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main(*sys.argv[1:])
