"""The worker process of the replica tests in `test_trainer`.

    python -m tests.replica_worker MODE CONFIG_YAML INITIAL_CHECKPOINT OUTPUT_NPZ   (cwd: the repository)

Logical CPU devices and TF_CONFIG must be set before TensorFlow initialises, so each
strategy runs in a fresh process.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

from tests.trainer_helpers import build_model, keras_weights, make_batches


def two_iterations(model) -> dict:
    """Logs and weights after two iterations on the fixed batches (global batch 4)."""
    logs = [model.distributed_train_step(batch) for batch in make_batches(2)]
    result = {f"log/{i}/{key}": float(value) for i, step_logs in enumerate(logs) for key, value in step_logs.items()}
    result.update(keras_weights(model))
    result["step"] = int(model.step.numpy())
    return result


def main(mode: str, config_path: str, initial_checkpoint: str, output: str) -> None:
    """Two iterations under `mode` (default | mirrored | multi_worker) from a training checkpoint -> `output` (.npz)."""
    import tensorflow as tf

    if mode == "mirrored":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from stargan_keras.families import load_config
    from stargan_keras.core.distribute import make_strategy

    strategy = make_strategy(mode)
    assert strategy.num_replicas_in_sync == (1 if mode == "default" else 2)
    with strategy.scope():
        model = build_model(load_config(config_path), run_eagerly=True)
        model.checkpoint().read(initial_checkpoint).assert_consumed()
    result = two_iterations(model)
    if mode != "multi_worker" or json.loads(os.environ["TF_CONFIG"])["task"]["index"] == 0:
        np.savez(output, **result)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main(*sys.argv[1:])
