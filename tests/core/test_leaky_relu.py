"""The LeakyReLU of the networks: TensorFlow's values and first and second derivatives, in both forms."""

import numpy as np
import pytest
import tensorflow as tf

from stargan_keras.core.layers import LeakyReLU


@pytest.mark.parametrize("shared_input", [False, True])
def test_values_and_gradients_are_tensorflows(shared_input):
    layer = LeakyReLU(negative_slope=0.2)
    x = tf.constant([[-2.0, -0.5, 0.0, 0.25, 3.0]])
    w = tf.Variable([[0.5, -1.0, 2.0, 1.5, -0.75]])
    results = []
    for activation in (lambda v: layer(v, shared_input=shared_input), lambda v: tf.nn.leaky_relu(v, 0.2)):
        with tf.GradientTape() as outer:
            outer.watch(x)
            with tf.GradientTape() as inner:
                inner.watch(x)
                y = activation(x * w)
                loss = tf.reduce_sum(y**2)
            dx = inner.gradient(loss, x)
            penalty = tf.reduce_sum(dx**2)  # as R1 and the gradient penalty differentiate a gradient again
        results.append((y, dx, outer.gradient(penalty, w)))
    for ours, theirs in zip(*results):
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6)


def test_a_wrong_slope_in_the_gradient_is_seen():
    x = tf.constant([-1.0, 2.0])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = LeakyReLU(negative_slope=0.01)(x)
    np.testing.assert_allclose(tape.gradient(y, x).numpy(), [0.01, 1.0])
