"""Each loss term against PyTorch's functional forms or a closed form."""

import numpy as np
import pytest
import tensorflow as tf

from stargan_keras.v2.losses import (adversarial_loss, cycle_consistency_loss, diversity_sensitive_loss, lambda_ds_at,
                                  r1_penalty, style_reconstruction_loss)
from tests.harness.components import require

torch = require("torch")
rng = np.random.default_rng(0)


@pytest.mark.parametrize("target", [0, 1])
def test_adversarial_loss_is_pytorch_bce_with_logits(target):
    logits = (rng.normal(size=7) * 5).astype("float32")
    expected = torch.nn.functional.binary_cross_entropy_with_logits(
        torch.from_numpy(logits), torch.full((7,), float(target)))
    per_example = adversarial_loss(tf.constant(logits), target)
    assert per_example.shape == (7,)
    assert float(tf.reduce_mean(per_example)) == pytest.approx(float(expected), rel=1e-6)


def test_image_and_style_terms_are_per_example_means_of_absolute_differences():
    a, b = rng.normal(size=(2, 4, 8, 8, 3)).astype("float32")
    s, t = rng.normal(size=(2, 4, 64)).astype("float32")
    expected_images = torch.mean(torch.abs(torch.from_numpy(a) - torch.from_numpy(b)))
    for term in (cycle_consistency_loss, diversity_sensitive_loss):
        per_example = term(tf.constant(a), tf.constant(b))
        assert per_example.shape == (4,)
        np.testing.assert_allclose(per_example, np.abs(a - b).reshape(4, -1).mean(1), rtol=1e-6)
        assert float(tf.reduce_mean(per_example)) == pytest.approx(float(expected_images), rel=1e-6)
    np.testing.assert_allclose(style_reconstruction_loss(tf.constant(s), tf.constant(t)),
                               np.abs(s - t).mean(1), rtol=1e-6)


def test_diversity_term_does_not_differentiate_the_second_image():
    a, b = tf.Variable(rng.normal(size=(2, 4, 4, 3)).astype("float32")), tf.Variable(tf.zeros((2, 4, 4, 3)))
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(diversity_sensitive_loss(a, b))
    grad_a, grad_b = tape.gradient(loss, [a, b])
    assert grad_b is None
    np.testing.assert_allclose(grad_a, np.sign(a.numpy()) / a.numpy().size, rtol=1e-6)


def test_r1_penalty_and_its_gradient_match_the_closed_form():
    """D(x) = sum(w x^2 + c x): dD/dx = 2 w x + c, R1 = 0.5 sum (2 w x + c)^2, dR1/dw = sum 2x (2 w x + c)."""
    x = tf.constant(rng.normal(size=(3, 4, 4, 2)).astype("float32"))
    w, c = tf.Variable(0.7), tf.Variable(-0.3)

    def discriminator(images, labels):
        return tf.reduce_sum(w * images**2 + c * images, axis=[1, 2, 3]) + tf.cast(labels, tf.float32)

    with tf.GradientTape() as tape:
        logits, penalty = r1_penalty(discriminator, x, tf.constant([0, 1, 2]))
        total = tf.reduce_sum(penalty)
    x_np = x.numpy()
    slope = 2 * 0.7 * x_np - 0.3
    np.testing.assert_allclose(penalty, 0.5 * (slope**2).reshape(3, -1).sum(1), rtol=1e-5)
    np.testing.assert_allclose(logits, (0.7 * x_np**2 - 0.3 * x_np).reshape(3, -1).sum(1) + [0, 1, 2], rtol=1e-5)
    grad_w, grad_c = tape.gradient(total, [w, c])
    assert float(grad_w) == pytest.approx(float((2 * x_np * slope).sum()), rel=1e-5)
    assert float(grad_c) == pytest.approx(float(slope.sum()), rel=1e-5)


def test_lambda_ds_decays_linearly_from_the_step_and_stops_at_zero():
    assert float(lambda_ds_at(0, 2.0, 100_000)) == 2.0
    assert float(lambda_ds_at(25_000, 2.0, 100_000)) == pytest.approx(1.5)
    assert float(lambda_ds_at(tf.constant(100_000, tf.int64), 2.0, 100_000)) == 0.0
    assert float(lambda_ds_at(150_000, 2.0, 100_000)) == 0.0
    # The authors' running decrement, after 1000 iterations, agrees to float precision.
    value = 1.0
    for _ in range(1000):
        value -= 1.0 / 100_000
    assert float(lambda_ds_at(1000, 1.0, 100_000)) == pytest.approx(value, rel=1e-6)
