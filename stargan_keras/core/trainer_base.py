"""What every family's trainer shares: a `keras.Model` whose `train_step` is one iteration of the authors'
solver, its PyTorch-equivalent Adam, optimizers built in the strategy's scope, loss-scaled updates over the
global batch, and the compiled (optionally XLA) step under `tf.distribute`."""

from __future__ import annotations

import functools

import keras
import tensorflow as tf
from keras import ops

from stargan_keras.core.config import RunConfig
from stargan_keras.core.distribute import distribute_batch, resolve_conv_forms, resolve_jit_compile


class _StepScalars(dict):
    """A plain cache (TensorFlow's attribute tracking wraps only exact dicts), emptied around each step."""


@keras.saving.register_keras_serializable("stargan_keras")
class TorchAdam(keras.optimizers.Adam):
    """Adam computed as `torch.optim.Adam` does, with its coupled L2 weight decay.

    The decay is added to the gradient before the moments (not Keras' decoupled
    `weight_decay`), and epsilon is added to the bias-corrected sqrt(v) (Keras'
    Adam adds it before the correction). The update runs after the gradients are
    summed across replicas, so the decay is counted once.
    """

    def __init__(self, learning_rate=1e-4, beta_1=0.0, beta_2=0.99, epsilon=1e-8, l2=0.0, **kwargs):
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, **kwargs)
        self.l2 = l2
        self._step_scalars = _StepScalars()

    def apply(self, grads, trainable_variables=None):
        """One step of every variable; the scalars their updates share are made once per dtype and device."""
        self._step_scalars.clear()
        try:
            return super().apply(grads, trainable_variables)
        finally:
            self._step_scalars.clear()

    def _scalars(self, variable, learning_rate) -> dict:
        """ResourceApplyAdam's scalar inputs for this step; with epsilon * sqrt(1 - beta_2^t) it computes PyTorch's
        update."""
        dtype = variable.dtype
        key = (dtype, variable.device)
        if key not in self._step_scalars:
            step = ops.cast(self.iterations + 1, dtype)
            beta_1, beta_2 = ops.cast(self.beta_1, dtype), ops.cast(self.beta_2, dtype)
            beta_1_power, beta_2_power = ops.power(beta_1, step), ops.power(beta_2, step)
            self._step_scalars[key] = dict(
                beta1_power=beta_1_power, beta2_power=beta_2_power, lr=ops.cast(learning_rate, dtype),
                beta1=beta_1, beta2=beta_2, epsilon=self.epsilon * ops.sqrt(1 - beta_2_power))
        return self._step_scalars[key]

    def update_step(self, gradient, variable, learning_rate):
        """One fused ResourceApplyAdam, on the gradient plus PyTorch's coupled L2 term."""
        dtype = variable.dtype
        gradient = ops.cast(gradient, dtype)
        if self.l2:
            gradient = gradient + ops.cast(self.l2, dtype) * variable
        index = self._get_variable_index(variable)
        tf.raw_ops.ResourceApplyAdam(var=variable.handle, m=self._momentums[index].value.handle,
                                     v=self._velocities[index].value.handle, grad=gradient,
                                     **self._scalars(variable, learning_rate))

    def get_config(self):
        return {**super().get_config(), "l2": self.l2}


class TrainerBase(keras.Model):
    """What the StarGAN v2 and v1 trainers share: optimizers built in the strategy scope, loss-scaled updates,
    global-batch logs and compiled distributed steps.

    A subclass sets `config`, `nets` (with `items()`), `step` and `loss_trackers`, and
    provides `_make_optimizer(name)` and `train_step`. A trainer whose iterations are not
    all alike (v1 updates G every n-th one) returns the kind of the next iteration from
    `_step_kind()` and maps it to a step function in `_train_step_for(kind)`; each kind is
    compiled once.
    """

    def __init__(self, config: RunConfig, log_keys, **kwargs):
        """The state every trainer has: its validated config, the convolutions' forms for the strategy it is
        created under (`conv_forms`, and why), the step counter and a tracker per logged term; the subclass
        builds its networks in those forms (and sets `built`)."""
        super().__init__(**kwargs)
        config.validate()
        self.config = config
        self.conv_forms, self.conv_forms_reason = resolve_conv_forms(config.train.conv_forms)
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step",
                                aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        self.loss_trackers = {key: keras.metrics.Mean(name=key) for key in log_keys}
        self.optimizers: dict = {}
        self._step_functions: dict = {}

    @property
    def metrics(self):
        """Running means of every logged term since the last reset (Keras resets them each epoch)."""
        return list(self.loss_trackers.values())

    def compile(self, jit_compile: bool | None = None, **kwargs):
        """Build one optimizer per network (inside the strategy scope) and compile.

        `jit_compile` defaults to `config.train.jit_compile`; it is turned off where
        XLA cannot run the strategy (see `distribute.resolve_jit_compile`).
        """
        train = self.config.train
        strategy = self.distribute_strategy
        requested = train.jit_compile if jit_compile is None else jit_compile
        super().compile(jit_compile=resolve_jit_compile(requested, strategy), **kwargs)
        loss_scaling = keras.config.dtype_policy().name == "mixed_float16"
        with strategy.scope():
            self.optimizers = {}
            for name, network in self.nets.items():
                optimizer = self._make_optimizer(name)
                if loss_scaling:
                    optimizer = keras.optimizers.LossScaleOptimizer(optimizer, name=f"{name}_loss_scale")
                optimizer.build(network.trainable_variables)
                self.optimizers[name] = optimizer
        self._step_functions = {}

    def _make_optimizer(self, name: str) -> keras.optimizers.Optimizer:
        raise NotImplementedError

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        """Nothing to build: every variable exists once `compile()` has run.

        Under a distribution strategy Keras 3.15's `fit` would draw a batch to build the
        model symbolically and average it over replicas, which fails on a dict batch
        under MultiWorkerMirroredStrategy.
        """

    def _check_compiled(self):
        if not self.optimizers:
            raise RuntimeError(f"{type(self).__name__}.train_step: call compile() first; it builds the optimizers.")

    def _update(self, tape, loss, names):
        """Differentiate `loss` once and step the optimizers of the networks `names`.

        Under mixed_float16 the loss is scaled by the first optimizer's loss scale;
        the other networks' gradients are rescaled to their own optimizer's scale.
        """
        optimizers = [self.optimizers[name] for name in names]
        variables = [getattr(self.nets, name).trainable_variables for name in names]
        scales = [_loss_scale(opt) for opt in optimizers]
        seed = None if scales[0] is None else tf.cast(scales[0], loss.dtype)
        grads = tape.gradient(loss, [v for vs in variables for v in vs], output_gradients=seed)
        start = 0
        for index, (optimizer, vs) in enumerate(zip(optimizers, variables)):
            pairs = [(g, v) for g, v in zip(grads[start:start + len(vs)], vs) if g is not None]
            start += len(vs)
            if index > 0 and scales[index] is not None:
                pairs = [(g * (scales[index] / scales[0]), v) for g, v in pairs]
            optimizer.apply_gradients(pairs)

    @staticmethod
    def _global_logs(logs: dict, keys) -> dict:
        """The terms `keys` (those present) summed over replicas: per-replica sums / global batch -> global."""
        keys = [key for key in keys if key in logs]
        values = tf.stack([logs[key] for key in keys])
        context = tf.distribute.get_replica_context()
        if context is not None:
            values = context.all_reduce(tf.distribute.ReduceOp.SUM, values)
        return dict(zip(keys, tf.unstack(values)))

    def _finish_logs(self, logs):
        """Global-batch values of this iteration's terms (summed over replicas) and `_schedule_logs()`, the
        trackers updated."""
        result = {**self._global_logs(logs, self.loss_trackers), **self._schedule_logs()}
        for key, value in result.items():
            self.loss_trackers[key].update_state(value)
        return result

    def _schedule_logs(self) -> dict:
        """Values a family logs beside the loss terms, computed from the step (none by default)."""
        return {}

    def _step_kind(self):
        """The kind of the next iteration (see the class docstring); one kind by default."""
        return None

    def _train_step_for(self, kind):
        return self.train_step

    def distributed_train_step(self, batch: dict) -> dict:
        """One iteration on a global batch dict (split in order across replicas), compiled unless `run_eagerly`."""
        kind = self._step_kind()
        if kind not in self._step_functions:
            self._step_functions[kind] = self._compile(functools.partial(self._replica_step, kind=kind))
        if not isinstance(next(iter(batch.values())), tf.distribute.DistributedValues):
            batch = distribute_batch(self.distribute_strategy, batch)
        return self._step_functions[kind](batch)

    def make_train_function(self, force=False):
        """`fit`'s step: one iteration on the next batch of its distributed iterator.

        Keras' own averages the logs over replicas with `strategy.reduce(..., axis=0)`,
        which fails on scalars under MultiWorkerMirroredStrategy; these logs are already
        global-batch values on every replica, so replica 0's are returned.
        """
        if self.train_function is None or force:
            compiled = {}

            def train_function(iterator):
                kind = self._step_kind()
                if kind not in compiled:
                    compiled[kind] = self._compile(lambda it: self._replica_step(next(it), kind))
                return compiled[kind](iterator)

            self.train_function = train_function
        return self.train_function

    def _replica_step(self, batch, kind=None):
        strategy = self.distribute_strategy
        logs = strategy.run(self._train_step_for(kind), args=(batch,))
        return {key: strategy.experimental_local_results(value)[0] for key, value in logs.items()}

    def _compile(self, function):
        if self.run_eagerly:
            return function
        return tf.function(function, jit_compile=bool(self.jit_compile), reduce_retracing=True, autograph=False)


def as_batch(data, keys, trainer: str) -> dict:
    """`fit` hands over the dataset element (a dict, or a 1-tuple holding it)."""
    if isinstance(data, (tuple, list)) and len(data) == 1:
        data = data[0]
    missing = [key for key in keys if key not in data]
    if missing:
        raise ValueError(f"{trainer}.train_step: the batch lacks {missing}; it needs all of {list(keys)}.")
    return {key: data[key] for key in keys}


def average_over_global_batch(per_example):
    """Sum over this replica's examples / global batch: replicas' gradients then add up to the global mean."""
    return tf.nn.compute_average_loss(per_example)


def _loss_scale(optimizer):
    return optimizer.dynamic_scale if isinstance(optimizer, keras.optimizers.LossScaleOptimizer) else None
