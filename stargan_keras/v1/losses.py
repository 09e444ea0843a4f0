"""StarGAN v1's loss terms (Choi et al., CVPR 2018, Section 3; the authors' yunjey/stargan `solver.py`).

As in `core.losses`, every term returns one value per example ([N], float32)
and the trainer averages over the global batch, so replicas' summed gradients are the
single-device ones; the batch mean of each term is the authors' loss.
"""

from __future__ import annotations

import tensorflow as tf

from stargan_keras.core.losses import mean_absolute_error, per_example_mean


def critic_real_loss(out_src):
    """-mean of D's PatchGAN map on real images (the authors' `d_loss_real`)."""
    return -per_example_mean(out_src)


def critic_fake_loss(out_src):
    """mean of D's map on translated images (`d_loss_fake`); its negation is G's adversarial term."""
    return per_example_mean(out_src)


def classification_loss(logits, target, label_type: str = "attributes"):
    """Domain classification: for attributes (CelebA), binary cross-entropies summed over the attributes (the
    authors' `size_average=False` sum divided by the batch size); for categorical labels (RaFD), the softmax
    cross-entropy against the one-hot target."""
    logits, target = tf.cast(logits, tf.float32), tf.cast(target, tf.float32)
    if label_type == "categorical":
        return tf.nn.softmax_cross_entropy_with_logits(labels=target, logits=logits)
    return tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(labels=target, logits=logits), axis=1)


def dataset_classification_loss(logits, labels, slices):
    """Domain classification with one or two datasets: `classification_loss` of each dataset's slice.

    `slices` are `ModelConfig.label_slices`. With one, logits and labels are that dataset's. With
    two (joint mode), labels are G's layout, [c_1, c_2, mask], and an example's loss is its own
    dataset's, picked by its mask bit: the authors' per-dataset `out_cls[:, :c_dim]` or
    `out_cls[:, c_dim:]`, for batches that may hold either dataset.
    """
    if len(slices) == 1:
        return classification_loss(logits, labels[:, :slices[0].stop], slices[0].label_type)
    labels = tf.cast(labels, tf.float32)
    mask = labels[:, slices[-1].stop:]
    terms = [classification_loss(logits[:, s.start:s.stop], labels[:, s.start:s.stop], s.label_type) for s in slices]
    return tf.add_n([mask[:, j] * term for j, term in enumerate(terms)])


def gradient_penalty(discriminator, x_real, x_fake, alpha):
    """WGAN-GP (Gulrajani et al. 2017): (||d D_src(x_hat) / d x_hat||_2 - 1)^2 per example.

    x_hat = alpha * x_real + (1 - alpha) * x_fake with one alpha per example ([N] or
    [N, 1, 1, 1], uniform in [0, 1], drawn with the batch); both images are constants,
    as the authors' `.data`. The inner tape is nested in the caller's, which
    differentiates the penalty again (the second derivative through D). D has no
    batch statistics, so the gradient of the batch sum is each example's own.
    """
    x_real, x_fake = tf.stop_gradient(x_real), tf.stop_gradient(x_fake)
    alpha = tf.reshape(tf.cast(alpha, x_real.dtype), [-1, 1, 1, 1])
    x_hat = alpha * x_real + (1 - alpha) * x_fake
    with tf.GradientTape() as tape:
        tape.watch(x_hat)
        out_src, _ = discriminator(x_hat)
        total = tf.reduce_sum(tf.cast(out_src, tf.float32))
    grad = tf.cast(tape.gradient(total, x_hat), tf.float32)
    norm = tf.sqrt(tf.reduce_sum(tf.reshape(tf.square(grad), [tf.shape(grad)[0], -1]), axis=1))
    return tf.square(norm - 1.0)


def reconstruction_loss(x_rec, x_real):
    """|G(G(x, c_trg), c_org) - x|, mean over pixels: v2's cycle-consistency term, the same arithmetic."""
    return mean_absolute_error(x_rec, x_real)


def learning_rate_at(step, lr0: float, total_iters: int, num_iters_decay: int, mode: str = "linear",
                     lr_update_step: int = 1000):
    """The learning rate of the iteration after `step` completed ones (a function of the step counter, so a
    resumed run continues the schedule).

    - linear (the paper, Section 4): lr0 until the last `num_iters_decay` iterations, then
      lr0 * (total_iters - step) / num_iters_decay, falling linearly towards 0.
    - released (the authors' `solver.py`): after every iteration k (1-based) with
      k % lr_update_step == 0 and k > total_iters - num_iters_decay, lr -= lr0 / num_iters_decay,
      which with their defaults lowers the rates by 0.1% in all.
    - none: lr0 throughout.
    """
    step = tf.cast(step, tf.float64)
    if mode == "linear":
        fraction = tf.clip_by_value((float(total_iters) - step) / float(num_iters_decay), 0.0, 1.0)
    elif mode == "released":
        start = max(total_iters - num_iters_decay, 0)  # decrements after iterations k > start, k >= 1
        decrements = tf.maximum(tf.floor(step / lr_update_step) - float(start // lr_update_step), 0.0)
        fraction = 1.0 - decrements / float(num_iters_decay)
    elif mode == "none":
        fraction = tf.constant(1.0, tf.float64)
    else:
        raise ValueError(f"unknown learning-rate decay {mode!r}")
    return tf.cast(lr0 * fraction, tf.float32)
