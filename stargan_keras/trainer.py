"""StarGAN v2 training as a `keras.Model` with a custom `train_step` (the authors' `core/solver.py`).

One call of `train_step` is one iteration of the authors' `Solver.train`: a D
update with latent styles, a D update with reference styles, a G/F/E update
with latent styles, a G update with reference styles, then the EMA of G, F, E.
All randomness comes in with the batch, so a step is a pure function of the
weights and the batch.

Exactly the authors' arithmetic, less of it:
- G, F and E do not change during the two D updates, so the forward pass of the
  latent G update is run first and its fake image doubles as the latent D
  update's fake; the D updates run while its tape is paused.
- Forward passes that share weights and need no gradient are batched together
  (instance normalisation is per example, so batching changes nothing), and G's
  style-free encoder runs once per update for all the styles applied to x_src.
- Each update differentiates only the variables it changes.
- In the networks, the nearest upsampling of G's decoder and the average pooling
  of D and E are folded into the 3x3 convolutions beside them, which then cost
  16/36 of their arithmetic (`stargan_keras.layers.upsample_conv3x3`).
"""

from __future__ import annotations

import functools

import keras
import tensorflow as tf
from keras import ops

from .checkpoint import training_checkpoint
from .config import Config
from .distribute import distribute_batch, resolve_jit_compile
from .layers import torch_named_variables
from .losses import (adversarial_loss, cycle_consistency_loss, diversity_sensitive_loss, lambda_ds_at, r1_penalty,
                     style_reconstruction_loss)
from .networks import EMA_NETWORKS, MissingFaceNetworkError, Networks, build_networks

BATCH_KEYS = ("x_src", "y_src", "x_ref", "x_ref2", "y_trg", "z_trg", "z_trg2")
D_TERMS = ("real", "fake", "reg")
G_TERMS = ("adv", "sty", "ds", "cyc")
LOG_KEYS = tuple([f"D/{mode}_{t}" for mode in ("latent", "ref") for t in D_TERMS]
                 + [f"G/{mode}_{t}" for mode in ("latent", "ref") for t in G_TERMS] + ["G/lambda_ds"])


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

    def update_step(self, gradient, variable, learning_rate):
        """One fused ResourceApplyAdam: with epsilon * sqrt(1 - beta_2^t) it computes PyTorch's update."""
        dtype = variable.dtype
        gradient = ops.cast(gradient, dtype)
        if self.l2:
            gradient = gradient + ops.cast(self.l2, dtype) * variable
        step = ops.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = ops.cast(self.beta_1, dtype), ops.cast(self.beta_2, dtype)
        beta_1_power, beta_2_power = ops.power(beta_1, step), ops.power(beta_2, step)
        index = self._get_variable_index(variable)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=self._momentums[index].value.handle, v=self._velocities[index].value.handle,
            beta1_power=beta_1_power, beta2_power=beta_2_power, lr=ops.cast(learning_rate, dtype),
            beta1=beta_1, beta2=beta_2, epsilon=self.epsilon * ops.sqrt(1 - beta_2_power), grad=gradient)

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

    def __init__(self, config: Config, log_keys, **kwargs):
        """The state every trainer has: its validated config, the step counter and a tracker per logged term;
        the subclass builds its networks (and sets `built`)."""
        super().__init__(**kwargs)
        config.validate()
        self.config = config
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


class StarGANv2(TrainerBase):
    """G, F, E, D, their EMA copies, the four optimizers and one training iteration per `train_step`.

    Create it inside `strategy.scope()`. `train_step(batch)` runs on one replica
    (as `fit` calls it); `distributed_train_step(batch)` runs a compiled
    iteration on a global batch under the model's strategy. A generator with
    high-pass skips (w_hpf > 0) needs `fan`, the frozen face-landmark network
    (`stargan_keras.face.fan`), shared by the trained and the EMA networks.
    """

    def __init__(self, config: Config, fan=None, **kwargs):
        kwargs.setdefault("name", "stargan_v2")
        super().__init__(config, LOG_KEYS, **kwargs)
        if config.model.w_hpf > 0 and fan is None:
            raise MissingFaceNetworkError(f"StarGANv2: w_hpf {config.model.w_hpf:g} needs the FAN behind the face "
                                          "masks (fan=stargan_keras.face.fan.load_fan_checkpoint('wing.ckpt')).")
        self.nets: Networks = build_networks(config.model)
        self.nets_ema: Networks = build_networks(config.model, with_discriminator=False, name_prefix="ema_")
        for name in EMA_NETWORKS:
            getattr(self.nets_ema, name).set_weights(getattr(self.nets, name).get_weights())
        self.nets.fan = self.nets_ema.fan = fan if config.model.w_hpf > 0 else None
        self.built = True

    def _make_optimizer(self, name: str) -> TorchAdam:
        """The four optimizers of `config.train` (F's with its own learning rate)."""
        train = self.config.train
        return TorchAdam(train.f_lr if name == "mapping_network" else train.lr, train.beta_1, train.beta_2,
                         train.epsilon, l2=train.weight_decay, name=f"{name}_adam")

    def call(self, inputs, training=False):
        """Latent-guided translation with the EMA networks: {x_src, y_trg, z_trg} -> images."""
        styles = self.nets_ema.mapping_network(inputs["z_trg"], inputs["y_trg"])
        return self.nets_ema.generator(inputs["x_src"], styles)

    def train_step(self, data):
        """One training iteration on this replica's slice of the global batch; returns every loss term."""
        self._check_compiled()
        batch = as_batch(data, BATCH_KEYS, type(self).__name__)
        x_src, x_ref, x_ref2 = batch["x_src"], batch["x_ref"], batch["x_ref2"]
        y_src, y_trg = batch["y_src"], batch["y_trg"]
        z_trg, z_trg2 = batch["z_trg"], batch["z_trg2"]
        G, F, E, D = self.nets.generator, self.nets.mapping_network, self.nets.style_encoder, self.nets.discriminator
        lambda_ds = lambda_ds_at(self.step, self.config.train.lambda_ds, self.config.train.ds_iter)
        logs = {}

        # With w_hpf > 0, G gets the face masks of x_src in every pass but the cycle's, which gets those of
        # x_fake (the authors' `fan.get_heatmap`, without gradient); None otherwise.
        masks = self.nets.face_masks(x_src)

        # Forward pass of the latent G update, before the D updates (which leave G, F, E unchanged).
        with tf.GradientTape() as tape:
            s_trg = F(z_trg, y_trg)
            content = G.encode_content(x_src, masks)
            x_fake = G.decode_content(content, s_trg, masks)
            with tape.stop_recording():
                s_ref = E(x_ref, y_trg)
                x_fake_ref, x_fake2 = _split(G.decode_content(_repeat(content, 2), _cat(s_ref, F(z_trg2, y_trg)),
                                                              _repeat_masks(masks, 2)), 2)
            s_pred, s_org = _split(E(_cat(x_fake, x_src), _cat(y_trg, y_src)), 2)
            x_rec = G(x_fake, s_org, self._masks_of_fake(x_fake, tape))
            with tape.stop_recording():
                logs.update(self._discriminator_step("latent", x_src, y_src, tf.stop_gradient(x_fake), y_trg))
                logs.update(self._discriminator_step("ref", x_src, y_src, x_fake_ref, y_trg))
            g_loss, g_logs = self._generator_loss("latent", x_src, x_fake, x_fake2, s_trg, s_pred, x_rec,
                                                  D(x_fake, y_trg), lambda_ds)
        self._update(tape, g_loss, ("generator", "mapping_network", "style_encoder"))
        logs.update(g_logs)

        # Reference G update (G only): the styles are constants for G's gradient.
        with tf.GradientTape() as tape:
            with tape.stop_recording():
                s_trg, s_trg2, s_org = _split(E(_cat(x_ref, x_ref2, x_src), _cat(y_trg, y_trg, y_src)), 3)
            content = G.encode_content(x_src, masks)
            x_fake = G.decode_content(content, s_trg, masks)
            with tape.stop_recording():
                x_fake2 = G.decode_content(content, s_trg2, masks)
            x_rec = G(x_fake, s_org, self._masks_of_fake(x_fake, tape))
            g_loss, g_logs = self._generator_loss("ref", x_src, x_fake, x_fake2, s_trg, E(x_fake, y_trg), x_rec,
                                                  D(x_fake, y_trg), lambda_ds)
        self._update(tape, g_loss, ("generator",))
        logs.update(g_logs)

        self._update_ema()
        self.step.assign_add(1)
        return self._finish_logs(logs)

    def _masks_of_fake(self, x_fake, tape):
        """The cycle pass's masks: those of the translation, outside the tape (no gradient flows through the FAN)."""
        with tape.stop_recording():
            return self.nets.face_masks(x_fake)

    def _discriminator_step(self, mode, x_real, y_real, x_fake, y_fake):
        D = self.nets.discriminator
        with tf.GradientTape() as tape:
            logits_real, r1 = r1_penalty(D, x_real, y_real)
            terms = {"real": average_over_global_batch(adversarial_loss(logits_real, 1)),
                     "fake": average_over_global_batch(adversarial_loss(D(x_fake, y_fake), 0)),
                     "reg": average_over_global_batch(r1)}
            loss = terms["real"] + terms["fake"] + self.config.train.lambda_reg * terms["reg"]
        self._update(tape, loss, ("discriminator",))
        return {f"D/{mode}_{key}": value for key, value in terms.items()}

    def _generator_loss(self, mode, x_real, x_fake, x_fake2, s_trg, s_pred, x_rec, logits_fake, lambda_ds):
        train = self.config.train
        terms = {"adv": average_over_global_batch(adversarial_loss(logits_fake, 1)),
                 "sty": average_over_global_batch(style_reconstruction_loss(s_pred, s_trg)),
                 "ds": average_over_global_batch(diversity_sensitive_loss(x_fake, x_fake2)),
                 "cyc": average_over_global_batch(cycle_consistency_loss(x_rec, x_real))}
        loss = (terms["adv"] + train.lambda_sty * terms["sty"] - lambda_ds * terms["ds"]
                + train.lambda_cyc * terms["cyc"])
        return loss, {f"G/{mode}_{key}": value for key, value in terms.items()}

    def _update_ema(self):
        """w_ema <- lerp(w, w_ema, beta) for G, F, E, on every replica's own copy."""
        beta = self.config.train.ema_beta
        pairs = [(ema.value, w.value) for name in EMA_NETWORKS
                 for ema, w in zip(getattr(self.nets_ema, name).weights, getattr(self.nets, name).weights)]

        def lerp(ema, w):
            return ema.assign(w + ops.cast(beta, w.dtype) * (ema - w))

        def update_all(strategy):
            for ema, w in pairs:
                strategy.extended.update(ema, lerp, args=(w,), group=False)

        context = tf.distribute.get_replica_context()
        if context is None:
            update_all(tf.distribute.get_strategy())
        else:
            context.merge_call(update_all)

    def _finish_logs(self, logs):
        """Global-batch values of every term (summed over replicas), the trackers updated."""
        result = self._global_logs(logs, LOG_KEYS)
        # What the authors log: the weight after this iteration's decay.
        result["G/lambda_ds"] = lambda_ds_at(self.step, self.config.train.lambda_ds, self.config.train.ds_iter)
        for key, value in result.items():
            self.loss_trackers[key].update_state(value)
        return result

    def progress_terms(self, logs: dict) -> list[tuple[str, float]]:
        """The progress line's terms from the latest logged values: D's and G's total losses (both modes, as
        they are minimised) and the adversarial, cycle and diversity terms, which tell a run is healthy."""
        train = self.config.train
        if not all(key in logs for key in LOG_KEYS):
            return []
        modes = ("latent", "ref")
        d_total = sum(logs[f"D/{m}_real"] + logs[f"D/{m}_fake"] + train.lambda_reg * logs[f"D/{m}_reg"] for m in modes)
        g_total = sum(logs[f"G/{m}_adv"] + train.lambda_sty * logs[f"G/{m}_sty"]
                      - logs["G/lambda_ds"] * logs[f"G/{m}_ds"] + train.lambda_cyc * logs[f"G/{m}_cyc"] for m in modes)
        return [("D", d_total), ("G", g_total), ("adv", (logs["G/latent_adv"] + logs["G/ref_adv"]) / 2),
                ("cyc", (logs["G/latent_cyc"] + logs["G/ref_cyc"]) / 2), ("ds", logs["G/latent_ds"])]

    def checkpoint(self, **extra) -> tf.train.Checkpoint:
        """The training state: networks, EMA networks, optimizers, step, plus `extra` trackables."""
        return training_checkpoint(self.nets, self.nets_ema, optimizers=self.optimizers, step=self.step, **extra)

    def load_upstream_weights(self, nets_ckpt, nets_ema_ckpt) -> dict:
        """Load the authors' `*_nets.ckpt` (G, F, E, D) and `*_nets_ema.ckpt` (EMA G, F, E) into all eight networks.

        Every tensor is checked against the config before any is assigned (see `stargan_keras.convert`).
        Returns the state dicts read from `nets_ckpt`, whose key order numbers the parameters of the authors'
        optimizer states (`warm_start.load_authors_optimizers`).
        """
        from .authors_checkpoints import check_fit, read_checkpoint
        from .torch_io import assign_state_dict

        sources = ((nets_ckpt, self.nets, EMA_NETWORKS + ("discriminator",)),
                   (nets_ema_ckpt, self.nets_ema, EMA_NETWORKS))
        loaded = []
        for path, networks, names in sources:
            states = read_checkpoint(path, names)
            check_fit(states, networks, self.config.model, {name: path for name in names})
            loaded.append((states, networks))
        for states, networks in loaded:
            for name, network in networks.items():
                assign_state_dict(torch_named_variables(network), states[name])
        return loaded[0][0]


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


def _cat(*tensors):
    return tf.concat(tensors, axis=0)


def _split(tensor, parts):
    return tf.split(tensor, parts, axis=0)


def _repeat(content, times):
    """G's encoder output for `times` copies of its batch, stacked as `_cat` stacks images."""
    features, skips = content
    return _cat(*[features] * times), {size: _cat(*[skip] * times) for size, skip in skips.items()}


def _repeat_masks(masks, times):
    """The face masks (or None) for `times` copies of their batch."""
    return None if masks is None else tuple(_cat(*[mask] * times) for mask in masks)
