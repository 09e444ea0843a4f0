"""Loss arithmetic every family's terms share. Each term returns one value per example ([N], float32), not a
batch mean: the trainer averages over the *global* batch (`tf.nn.compute_average_loss`), so the gradients
summed across replicas equal the single-device gradients."""

from __future__ import annotations

import tensorflow as tf


def per_example_mean(x):
    """Mean over every axis but the batch axis."""
    x = tf.cast(x, tf.float32)
    return tf.reduce_mean(tf.reshape(x, [tf.shape(x)[0], -1]), axis=1)


def mean_absolute_error(x, target):
    """|x - target|, mean over pixels: the L1 reconstruction of both papers' cycle terms."""
    return per_example_mean(tf.abs(tf.cast(x, tf.float32) - tf.cast(target, tf.float32)))
