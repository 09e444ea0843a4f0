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

from stargan_keras.core.config import CONV_FORMS, PRECISIONS, STRATEGIES, ConfigError

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


def set_tensor_float_32(enabled: bool) -> None:
    """`--tf32`: whether float32 convolutions and matrix products may run in TF32 (Ampere and later GPUs).

    TensorFlow allows it by default, which rounds their inputs to a 10-bit mantissa; the authors' users
    report training that turns to NaN on an RTX 3090 but not on a P100 (clovaai/stargan-v2 issue #170), and
    R1's double backward multiplies such rounding. Off unless asked for; nothing changes on CPUs.
    """
    tf.config.experimental.enable_tensor_float_32_execution(bool(enabled))


def strategy_device_kinds(strategy: tf.distribute.Strategy | None = None) -> set[str]:
    """The kinds of device ("CPU", "GPU", "TPU") this process's replicas of the strategy compute on.

    The default strategy has no devices of its own: TensorFlow places ops on a GPU or TPU when it sees one,
    so every logical device counts. A worker of a multi-worker run answers for its own devices.
    """
    strategy = strategy or tf.distribute.get_strategy()
    try:
        devices = list(strategy.extended.worker_devices)
    except RuntimeError:
        devices = [device.name for device in tf.config.list_logical_devices()]
    return {tf.DeviceSpec.from_string(device).device_type or "unknown" for device in devices}


def resolve_conv_forms(requested: str = "auto", strategy: tf.distribute.Strategy | None = None) -> tuple[str, str]:
    """(`core.layers.Conv2D`'s forms, why) for `--conv-forms`: "cpu" (the rewrites measured faster on CPUs) or
    "keras" (Keras' own convolutions in the authors' op order). `auto` takes the rewrites only where every
    device of the strategy is a CPU: a GPU, a TPU (or XLA on either) gets Keras' forms."""
    if requested not in CONV_FORMS:
        raise ConfigError(f"--conv-forms {requested!r}: choose one of {', '.join(CONV_FORMS)}.")
    if requested != "auto":
        return requested, f"--conv-forms {requested}"
    kinds = strategy_device_kinds(strategy)
    if kinds == {"CPU"}:
        return "cpu", "auto: every device of the strategy is a CPU"
    return "keras", f"auto: the strategy computes on {', '.join(sorted(kinds - {'CPU'}))}"


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
