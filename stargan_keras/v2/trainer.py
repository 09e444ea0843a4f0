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
- In the networks, on CPUs (`--conv-forms`), the nearest upsampling of G's decoder and the
  average pooling of D and E are folded into the 3x3 convolutions beside them, which then
  cost 16/36 of their arithmetic (`stargan_keras.core.layers.upsample_conv3x3`).
"""

from __future__ import annotations


import tensorflow as tf
from keras import ops

from stargan_keras.core.run_dir import training_checkpoint
from stargan_keras.core.trainer_base import TorchAdam, TrainerBase, as_batch, average_over_global_batch
from stargan_keras.v2.config import Config
from stargan_keras.core.layers import torch_named_variables
from stargan_keras.v2.losses import (adversarial_loss, cycle_consistency_loss, diversity_sensitive_loss, lambda_ds_at, r1_penalty,
                     style_reconstruction_loss)
from stargan_keras.v2.networks import EMA_NETWORKS, MissingFaceNetworkError, Networks, build_networks

BATCH_KEYS = ("x_src", "y_src", "x_ref", "x_ref2", "y_trg", "z_trg", "z_trg2")
D_TERMS = ("real", "fake", "reg")
G_TERMS = ("adv", "sty", "ds", "cyc")
LOG_KEYS = tuple([f"D/{mode}_{t}" for mode in ("latent", "ref") for t in D_TERMS]
                 + [f"G/{mode}_{t}" for mode in ("latent", "ref") for t in G_TERMS] + ["G/lambda_ds"])


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
        self.nets: Networks = build_networks(config.model, conv_forms=self.conv_forms)
        self.nets_ema: Networks = build_networks(config.model, with_discriminator=False, name_prefix="ema_",
                                                 conv_forms=self.conv_forms)
        for name in EMA_NETWORKS:
            getattr(self.nets_ema, name).set_weights(getattr(self.nets, name).get_weights())
        self.nets.fan = self.nets_ema.fan = fan if config.model.w_hpf > 0 else None
        self._traced_face_masks = tf.function(self.nets.face_masks, autograph=False)
        self.built = True

    def _face_masks(self, x):
        """`Networks.face_masks` of x. A compiled iteration calls one traced function for its three FAN passes,
        so that its graph holds the FAN once: a third of the tracing, and the same ops run."""
        if self.run_eagerly or self.nets.fan is None:
            return self.nets.face_masks(x)
        return self._traced_face_masks(x)

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
        masks = self._face_masks(x_src)

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
            return self._face_masks(x_fake)

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

    def _schedule_logs(self) -> dict:
        """What the authors log: lambda_ds after this iteration's decay."""
        return {"G/lambda_ds": lambda_ds_at(self.step, self.config.train.lambda_ds, self.config.train.ds_iter)}

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

    def load_authors_weights(self, nets_ckpt, nets_ema_ckpt) -> dict:
        """Load the authors' `*_nets.ckpt` (G, F, E, D) and `*_nets_ema.ckpt` (EMA G, F, E) into all eight networks.

        Every tensor is checked against the config before any is assigned (see `stargan_keras.convert`).
        Returns the state dicts read from `nets_ckpt`, whose key order numbers the parameters of the authors'
        optimizer states (`warm_start.load_authors_optimizers`).
        """
        from stargan_keras.v2.convert import check_fit, read_checkpoint
        from stargan_keras.core.torch_io import assign_state_dict

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
