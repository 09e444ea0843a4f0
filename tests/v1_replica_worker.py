"""The worker process of `test_v1_trainer`'s replica test: StarGAN v1 on one device and on two mirrored replicas.

    python -m tests.v1_replica_worker G_CKPT D_CKPT OUTPUT_JSON   (cwd: the repository)

Logical CPU devices must be set before TensorFlow initialises, hence a fresh process.
"""

from __future__ import annotations

import json
import sys

import numpy as np


def main(generator_ckpt: str, discriminator_ckpt: str, output: str) -> None:
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from stargan_keras.core.distribute import make_strategy
    from stargan_keras.v1.trainer import StarGANv1
    from tests.trainer_helpers import keras_weights
    from tests.v1_helpers import make_tiny_v1_config, make_v1_batches

    config = make_tiny_v1_config(n_critic=2)
    runs = []
    for mode in ("default", "mirrored"):
        strategy = make_strategy(mode)
        with strategy.scope():
            model = StarGANv1(config)
            model.compile()
        model.load_authors_weights(generator_ckpt, discriminator_ckpt)
        logs = [{k: float(v) for k, v in model.distributed_train_step(b).items()}
                for b in make_v1_batches(2, config.model)]
        runs.append((strategy.num_replicas_in_sync, logs, keras_weights(model)))
    (one, logs1, weights1), (two, logs2, weights2) = runs
    differs = np.concatenate([(np.abs(weights1[k] - weights2[k]) > 1e-6).ravel() for k in weights1])
    result = {"replicas": [one, two], "logs": [logs1, logs2], "weights_differing": float(differs.mean()),
              "max_weight_difference": float(max(np.abs(weights1[k] - weights2[k]).max() for k in weights1))}
    with open(output, "w", encoding="utf-8") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main(*sys.argv[1:])
