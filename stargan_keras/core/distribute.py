"""Where training runs: tf.distribute strategies, dtype policies and the XLA decision.

`config.train.batch_size` is the *global* batch. Each replica gets an equal
slice of it and the trainer averages its losses over the global batch, so the
summed gradients (and therefore the weights) do not depend on the replica count.
"""

from __future__ import annotations

import json
import logging
import os

import keras
import numpy as np
import tensorflow as tf

from stargan_keras.core.config import PRECISIONS, STRATEGIES, ConfigError

log = logging.getLogger(__name__)


def make_strategy(name: str = "auto") -> tf.distribute.Strategy:
    """The strategy for `--strategy NAME`; create it before building any model or optimizer."""
    if name not in STRATEGIES:
        raise ConfigError(f"--strategy {name!r}: choose one of {', '.join(STRATEGIES)}.")
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "auto":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
    if name == "mirrored":
        if tf.config.list_logical_devices("GPU"):
            return tf.distribute.MirroredStrategy()
        cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=cpus)
    if name == "multi_worker":
        check_tf_config()
        return tf.distribute.MultiWorkerMirroredStrategy()
    return _tpu_strategy()


def check_tf_config() -> dict:
    """Validate the TF_CONFIG environment variable that MultiWorkerMirroredStrategy reads."""
    raw = os.environ.get("TF_CONFIG")
    hint = ('Set it on every worker, e.g. TF_CONFIG=\'{"cluster": {"worker": ["host1:port", "host2:port"]}, '
            '"task": {"type": "worker", "index": 0}}\' (index 1 on the second worker).')
    if not raw:
        raise ConfigError(f"--strategy multi_worker needs the TF_CONFIG environment variable, which is unset. {hint}")
    try:
        tf_config = json.loads(raw)
        workers = tf_config["cluster"]["worker"]
        task = tf_config["task"]
        index = int(task["index"])
    except (ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"TF_CONFIG={raw!r} is not valid for --strategy multi_worker ({err!r}). {hint}") from None
    if not isinstance(workers, list) or not workers or task.get("type") not in ("worker", "chief"):
        raise ConfigError(f"TF_CONFIG={raw!r}: cluster.worker must be a non-empty list of host:port and "
                          f"task.type 'worker' (or 'chief'). {hint}")
    if task.get("type") == "worker" and not 0 <= index < len(workers):
        raise ConfigError(f"TF_CONFIG={raw!r}: task.index {index} is outside the {len(workers)} workers listed.")
    return tf_config


def _tpu_strategy() -> tf.distribute.Strategy:
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=os.environ.get("TPU_NAME", ""))
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, tf.errors.OpError) as err:
        raise ConfigError(f"--strategy tpu: no TPU found ({err}). Run on a TPU VM or set TPU_NAME to the TPU's "
                          "name or grpc:// address, or choose --strategy auto.") from None
    return tf.distribute.TPUStrategy(resolver)


def set_precision(name: str) -> None:
    """Set Keras' global dtype policy (`--precision`); call it before building the networks."""
    if name not in PRECISIONS:
        raise ConfigError(f"--precision {name!r}: choose one of {', '.join(PRECISIONS)}.")
    keras.config.set_dtype_policy(name)


def resolve_jit_compile(requested: bool, strategy: tf.distribute.Strategy | None = None) -> bool:
    """Whether to compile the training step with XLA.

    XLA cannot place mirrored variables that live on several CPU devices (the step
    fails with "resource located in device CPU:1"), so it is turned off for
    multi-replica strategies on CPU; TPUStrategy compiles with XLA anyway.
    """
    if not requested:
        return False
    strategy = strategy or tf.distribute.get_strategy()
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return False
    if strategy.num_replicas_in_sync > 1 and not tf.config.list_logical_devices("GPU"):
        log.warning("--jit-compile ignored: XLA cannot place the variables of %s on %d CPU replicas.",
                    type(strategy).__name__, strategy.num_replicas_in_sync)
        return False
    return True


def replica_batch_size(global_batch_size: int, strategy: tf.distribute.Strategy) -> int:
    """The per-replica slice of the global batch; it must split evenly."""
    replicas = strategy.num_replicas_in_sync
    if global_batch_size % replicas:
        raise ConfigError(f"--batch-size {global_batch_size} is the global batch and must be divisible by the "
                          f"{replicas} replicas of {type(strategy).__name__}; use a multiple of {replicas}.")
    return global_batch_size // replicas


def distribute_batch(strategy: tf.distribute.Strategy, batch: dict):
    """Give replica r the r-th equal slice (in order) of a global batch dict of arrays.

    Under the default strategy the batch is returned unchanged. Every worker of a
    multi-worker run passes the same global batch and keeps its replicas' slices.
    """
    if strategy.num_replicas_in_sync == 1:
        return batch
    batch = {key: np.asarray(value) for key, value in batch.items()}
    size = replica_batch_size(len(next(iter(batch.values()))), strategy)

    def slice_for(context):
        start = context.replica_id_in_sync_group * size
        return {key: tf.constant(value[start:start + size]) for key, value in batch.items()}

    return strategy.experimental_distribute_values_from_function(slice_for)
