"""StarGAN v1 training as a `keras.Model` with a custom `train_step` (the authors' yunjey/stargan `solver.py`).

One call of `train_step` is one iteration of the authors' `Solver.train`: a D update
(WGAN critic terms on real and translated images, domain classification of the real
images, gradient penalty on random interpolates) and, on every `n_critic`-th
iteration, a G update (adversarial and classification terms on the translation,
reconstruction back to the original labels). All randomness comes in with the batch
(target labels, interpolation weights), so a step is a pure function of the weights
and the batch.

Joint training on two datasets (`v1.c2_dim` > 0, the authors' `Solver.train_multi`): each
batch holds one dataset's images, the datasets alternating step by step, and labels in G's
layout [c_1, c_2, mask]; D's classification terms use each example's own dataset's slice
(`losses.dataset_classification_loss`). The authors' iteration is then two steps, one per
dataset, and G is updated on both steps of every `n_critic`-th iteration, as theirs is.

Exactly the authors' arithmetic, less of it: G does not change during the D update,
so the translation G(x, c_trg) that D sees is also the one G's update differentiates;
D runs once on real and translated images together (it has no batch statistics).

The optimizers, loss-scaled updates, global-batch logs and compiled distributed steps
are the v2 trainer's (`stargan_keras.v2.trainer.TrainerBase`).
"""

from __future__ import annotations

import functools

import tensorflow as tf

from stargan_keras.core.run_dir import training_checkpoint
from stargan_keras.v1.config import Config
from stargan_keras.core.trainer_base import TorchAdam, TrainerBase, as_batch, average_over_global_batch
from stargan_keras.v1.losses import (critic_fake_loss, critic_real_loss, dataset_classification_loss, gradient_penalty,
                     learning_rate_at, reconstruction_loss)
from stargan_keras.v1.networks import V1Networks, build_networks

# x_real [N, H, W, 3] in [-1, 1]; c_org, c_trg [N, label_dim] float labels (one-hot for categorical labels);
# alpha [N] uniform in [0, 1], the gradient penalty's interpolation weights.
BATCH_KEYS = ("x_real", "c_org", "c_trg", "alpha")
D_TERMS = ("real", "fake", "cls", "gp")
G_TERMS = ("fake", "rec", "cls")
LOG_KEYS = tuple([f"D/loss_{t}" for t in D_TERMS] + [f"G/loss_{t}" for t in G_TERMS])  # the authors' names


class StarGANv1(TrainerBase):
    """G, D, their two optimizers and one training iteration per `train_step`.

    Create it inside `strategy.scope()` with a `v1.config.Config`.
    `distributed_train_step(batch)` runs the iteration the step counter calls for: a
    D update, plus a G update when (step + 1) % n_critic == 0, as the authors count.
    """

    def __init__(self, config: Config, **kwargs):
        kwargs.setdefault("name", "stargan_v1")
        if not isinstance(config, Config):
            raise ValueError(f"StarGANv1 needs a StarGAN v1 config, not {type(config).__module__}.Config.")
        super().__init__(config, LOG_KEYS, **kwargs)
        self.nets: V1Networks = build_networks(config.model, conv_forms=self.conv_forms)
        self.built = True

    def _make_optimizer(self, name: str) -> TorchAdam:
        """torch.optim.Adam(lr, (beta1, beta2)) of G or D, without weight decay, as the authors', its learning rate
        following `config.train.lr_decay` as a function of the step counter."""
        train = self.config.train
        lr0 = train.g_lr if name == "generator" else train.d_lr

        def learning_rate():
            return learning_rate_at(self.step, lr0, train.total_iters, train.num_iters_decay, train.lr_decay,
                                    train.lr_update_step)

        return TorchAdam(learning_rate, train.beta1, train.beta2, train.epsilon, l2=0.0, name=f"{name}_adam")

    def call(self, inputs, training=False):
        """Translation: {x_real, c_trg} -> G(x_real, c_trg)."""
        return self.nets.generator(inputs["x_real"], inputs["c_trg"])

    def _step_kind(self) -> bool:
        """Whether the next step updates G (read from the step counter, so a resumed run keeps the rhythm): the
        steps of every n_critic-th iteration, an iteration being one step per dataset."""
        iteration = int(self.step.numpy()) // len(self.config.model.label_slices)
        return (iteration + 1) % self.config.train.n_critic == 0

    def _train_step_for(self, kind):
        return functools.partial(self.train_step, update_generator=bool(kind))

    def train_step(self, data, update_generator: bool = True):
        """One iteration on this replica's slice of the global batch; returns the logged terms.

        `update_generator` is the iteration's kind: `distributed_train_step` and `fit` set it
        from the step counter; a direct call updates G unless told otherwise.
        """
        self._check_compiled()
        batch = as_batch(data, BATCH_KEYS, type(self).__name__)
        x_real, c_org, c_trg = batch["x_real"], batch["c_org"], batch["c_trg"]
        G = self.nets.generator
        if not update_generator:
            logs = self._discriminator_step(x_real, c_org, G(x_real, c_trg), batch["alpha"])
        else:
            with tf.GradientTape() as tape:
                x_fake = G(x_real, c_trg)
                with tape.stop_recording():
                    logs = self._discriminator_step(x_real, c_org, tf.stop_gradient(x_fake), batch["alpha"])
                g_loss, g_logs = self._generator_loss(x_real, x_fake, c_org, c_trg)
            self._update(tape, g_loss, ("generator",))
            logs.update(g_logs)
        self.step.assign_add(1)
        return self._finish_logs(logs)

    def _discriminator_step(self, x_real, c_org, x_fake, alpha):
        train, slices = self.config.train, self.config.model.label_slices
        D = self.nets.discriminator
        with tf.GradientTape() as tape:
            out_src, out_cls = D(tf.concat([x_real, x_fake], axis=0))
            src_real, src_fake = tf.split(out_src, 2, axis=0)
            cls_real, _ = tf.split(out_cls, 2, axis=0)
            terms = {"real": average_over_global_batch(critic_real_loss(src_real)),
                     "fake": average_over_global_batch(critic_fake_loss(src_fake)),
                     "cls": average_over_global_batch(dataset_classification_loss(cls_real, c_org, slices)),
                     "gp": average_over_global_batch(gradient_penalty(D, x_real, x_fake, alpha))}
            loss = terms["real"] + terms["fake"] + train.lambda_cls * terms["cls"] + train.lambda_gp * terms["gp"]
        self._update(tape, loss, ("discriminator",))
        return {f"D/loss_{key}": value for key, value in terms.items()}

    def _generator_loss(self, x_real, x_fake, c_org, c_trg):
        """G's loss on its translation x_fake = G(x_real, c_trg), judged by the freshly updated D."""
        train, slices = self.config.train, self.config.model.label_slices
        out_src, out_cls = self.nets.discriminator(x_fake)
        x_rec = self.nets.generator(x_fake, c_org)
        terms = {"fake": average_over_global_batch(-critic_fake_loss(out_src)),
                 "rec": average_over_global_batch(reconstruction_loss(x_rec, x_real)),
                 "cls": average_over_global_batch(dataset_classification_loss(out_cls, c_trg, slices))}
        loss = terms["fake"] + train.lambda_rec * terms["rec"] + train.lambda_cls * terms["cls"]
        return loss, {f"G/loss_{key}": value for key, value in terms.items()}

    def progress_terms(self, logs: dict) -> list[tuple[str, float]]:
        """The progress line's terms from the latest logged values (G's from its last update): D's and G's
        total losses and the classification and reconstruction terms, which tell a run is healthy."""
        train = self.config.train
        terms = []
        if all(f"D/loss_{t}" in logs for t in D_TERMS):
            terms.append(("D", logs["D/loss_real"] + logs["D/loss_fake"] + train.lambda_cls * logs["D/loss_cls"]
                          + train.lambda_gp * logs["D/loss_gp"]))
        if all(f"G/loss_{t}" in logs for t in G_TERMS):
            terms.append(("G", logs["G/loss_fake"] + train.lambda_rec * logs["G/loss_rec"]
                          + train.lambda_cls * logs["G/loss_cls"]))
            terms += [("D_cls", logs["D/loss_cls"]), ("G_cls", logs["G/loss_cls"]), ("rec", logs["G/loss_rec"])]
        return terms

    def checkpoint(self, **extra) -> tf.train.Checkpoint:
        """The training state: G, D, their optimizers, the step, plus `extra` trackables."""
        return training_checkpoint(self.nets, None, optimizers=self.optimizers, step=self.step, **extra)

    def load_authors_weights(self, generator_ckpt, discriminator_ckpt) -> None:
        """Load the authors' `{step}-G.ckpt` and `{step}-D.ckpt`, every tensor checked before any is assigned."""
        from stargan_keras.v1.convert import load_checked

        load_checked(self.nets, self.config, generator_ckpt, discriminator_ckpt)
