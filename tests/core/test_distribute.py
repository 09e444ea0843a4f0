"""Device-dependent choices made where training starts: the convolutions' forms by the strategy's devices
(`distribute.resolve_conv_forms`) and TF32, off unless asked for (`--tf32`), applied by the session."""

from types import SimpleNamespace

import pytest
import tensorflow as tf

from stargan_keras.core import session
from stargan_keras.core.config import ConfigError
from stargan_keras.core.distribute import resolve_conv_forms, set_tensor_float_32
from stargan_keras.core.run_dir import RunDir


def _strategy_on(*devices):
    """A stand-in for a strategy whose replicas run in this process on `devices`."""
    return SimpleNamespace(extended=SimpleNamespace(worker_devices=devices))


@pytest.mark.parametrize("devices, forms", [
    (("/job:localhost/replica:0/task:0/device:CPU:0",), "cpu"),
    (("/job:worker/replica:0/task:1/device:CPU:0", "/job:worker/replica:0/task:1/device:CPU:1"), "cpu"),
    (("/job:localhost/replica:0/task:0/device:GPU:0",), "keras"),
    (("/job:worker/replica:0/task:0/device:CPU:0", "/job:worker/replica:0/task:0/device:GPU:0"), "keras"),
    (("/job:worker/replica:0/task:0/device:TPU:0",), "keras"),
    (("/job:localhost/replica:0/task:0",), "keras"),  # no device kind: not known to be a CPU
])
def test_auto_takes_the_cpu_forms_only_where_every_device_is_a_cpu(devices, forms):
    chosen, why = resolve_conv_forms("auto", _strategy_on(*devices))
    assert chosen == forms and why.startswith("auto")
    for forced in ("cpu", "keras"):
        assert resolve_conv_forms(forced, _strategy_on(*devices)) == (forced, f"--conv-forms {forced}")


def test_auto_under_the_default_strategy_counts_every_logical_device():
    expected = "keras" if tf.config.list_logical_devices("GPU") + tf.config.list_logical_devices("TPU") else "cpu"
    assert resolve_conv_forms("auto")[0] == expected
    with pytest.raises(ConfigError, match="--conv-forms 'gpu'"):
        resolve_conv_forms("gpu")


class _Trainer:
    """What `session.build_model` asks of a trainer, and nothing else."""

    def compile(self):
        pass

    def checkpoint(self):
        return tf.train.Checkpoint()


@pytest.mark.parametrize("tf32", [False, True])
def test_the_session_applies_tf32_before_building_the_model(tf32, tiny_config, tmp_path):
    enabled_at_build = []

    def make_trainer():
        enabled_at_build.append(tf.config.experimental.tensor_float_32_execution_enabled())
        return _Trainer()

    set_tensor_float_32(not tf32)
    try:
        session.build_model(tiny_config(tf32=tf32), tf.distribute.get_strategy(), tmp_path / "scratch",
                            RunDir(tmp_path / "run"), make_trainer)
        assert enabled_at_build == [tf32]
    finally:
        set_tensor_float_32(False)
