"""The loss terms of StarGAN v2 (paper Section 2 and Appendix A), one function per term.

Every term returns one value per example ([N], float32), not a batch mean: the
trainer averages them over the *global* batch (`tf.nn.compute_average_loss`),
so the gradients summed across replicas equal the single-device gradients. The
batch mean of each term is the authors' loss (their image-space means are over
equally sized examples).
"""

from __future__ import annotations

import tensorflow as tf

from stargan_keras.core.losses import mean_absolute_error, per_example_mean


def adversarial_loss(logits, target: float):
    """Binary cross-entropy of the discriminator's logits against a constant label (1 real, 0 fake)."""
    logits = tf.cast(logits, tf.float32)
    labels = tf.fill(tf.shape(logits), tf.constant(float(target), tf.float32))
    return per_example_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))


def r1_penalty(discriminator, x_real, y_real):
    """Zero-centred gradient penalty on real images (Mescheder et al. 2018).

    Returns `(logits, penalty)`: the discriminator's logits on `x_real` (reused for
    the real-image adversarial term, so D runs once) and, per example,
    0.5 * sum over pixels of (d sum(D(x_real)) / d x_real)^2. The inner tape is
    nested inside the caller's tape, which differentiates the penalty again.
    Examples are independent in D (no batch statistics), so the per-example
    gradient of the batch sum is that example's own gradient.
    """
    x_real = tf.convert_to_tensor(x_real)
    with tf.GradientTape() as tape:
        tape.watch(x_real)
        logits = discriminator(x_real, y_real)
        total = tf.reduce_sum(tf.cast(logits, tf.float32))
    grad = tf.cast(tape.gradient(total, x_real), tf.float32)
    penalty = 0.5 * tf.reduce_sum(tf.reshape(tf.square(grad), [tf.shape(grad)[0], -1]), axis=1)
    return logits, penalty


def style_reconstruction_loss(s_pred, s_trg):
    """|E(G(x, s), y) - s|, mean over the style dimensions."""
    return per_example_mean(tf.abs(tf.cast(s_pred, tf.float32) - tf.cast(s_trg, tf.float32)))


def diversity_sensitive_loss(x_fake, x_fake2):
    """|G(x, s1) - G(x, s2)|, mean over pixels; the second image is a constant (the authors detach it)."""
    x_fake2 = tf.stop_gradient(x_fake2)
    return per_example_mean(tf.abs(tf.cast(x_fake, tf.float32) - tf.cast(x_fake2, tf.float32)))


def cycle_consistency_loss(x_rec, x_real):
    """|G(G(x, s), E(x, y)) - x|, mean over pixels."""
    return mean_absolute_error(x_rec, x_real)


def lambda_ds_at(step, lambda_ds0: float, ds_iter: int):
    """The diversity weight after `step` completed iterations: lambda_ds0 * max(0, 1 - step / ds_iter).

    A function of the step counter rather than a running decrement, so a resumed
    run continues the schedule (the authors restart it: their issue #98).
    """
    step = tf.cast(step, tf.float64)
    fraction = tf.maximum(tf.constant(0.0, tf.float64), 1.0 - step / float(ds_iter))
    return tf.cast(lambda_ds0 * fraction, tf.float32)
