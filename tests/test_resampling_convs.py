"""The resampling folded into 3x3 convolutions equals the authors' separate ops, to second order.

`conv3x3_avg_pool` and `upsample_conv3x3` replace upstream's conv-then-avg_pool2d and
interpolate-then-conv with one 4x4 stride-2 (transposed) convolution each. Here both are
checked against PyTorch doing the authors' ops: the outputs, the gradients with respect to
input, kernel and bias, and the kernel gradient of a squared input gradient (the shape of
the R1 penalty, which differentiates D twice).
"""

import numpy as np
import pytest
import tensorflow as tf

from stargan_keras.layers import FOLD_MIN_SIZE, authors_resampling, conv2d, conv3x3_avg_pool, upsample_conv3x3

torch = pytest.importorskip("torch")
functional = torch.nn.functional

CASES = [("pool", FOLD_MIN_SIZE), ("pool", 2 * FOLD_MIN_SIZE), ("pool", FOLD_MIN_SIZE // 2),
         ("upsample", FOLD_MIN_SIZE), ("upsample", FOLD_MIN_SIZE // 2)]


def _torch_authors_ops(kind, x, kernel, bias, weights):
    """Output, first-order gradients and the R1-shaped kernel gradient, by the authors' ops in NCHW."""
    x = torch.tensor(x.transpose(0, 3, 1, 2), dtype=torch.float64, requires_grad=True)
    w = torch.tensor(kernel.transpose(3, 2, 0, 1), dtype=torch.float64, requires_grad=True)
    b = torch.tensor(bias, dtype=torch.float64, requires_grad=True)
    if kind == "pool":
        y = functional.avg_pool2d(functional.conv2d(x, w, b, padding=1), 2)
    else:
        y = functional.conv2d(functional.interpolate(x, scale_factor=2, mode="nearest"), w, b, padding=1)
    weights = torch.tensor(weights.transpose(0, 3, 1, 2), dtype=torch.float64)
    grad_x, grad_w, grad_b = torch.autograd.grad((y * weights).sum(), (x, w, b), create_graph=True)
    (r1_grad_w,) = torch.autograd.grad(grad_x.square().sum(), w)
    nhwc = (0, 2, 3, 1)
    return (y.detach().numpy().transpose(nhwc), grad_x.detach().numpy().transpose(nhwc),
            grad_w.detach().numpy().transpose(2, 3, 1, 0), grad_b.detach().numpy(),
            r1_grad_w.numpy().transpose(2, 3, 1, 0))


def _ours(kind, x, kernel, bias, weights):
    conv = conv2d(kernel.shape[-1], 3)
    conv.build((None, None, None, kernel.shape[2]))
    conv.kernel.assign(kernel)
    conv.bias.assign(bias)
    fold = conv3x3_avg_pool if kind == "pool" else upsample_conv3x3
    x = tf.constant(x)
    with tf.GradientTape() as outer:
        with tf.GradientTape() as inner:
            inner.watch(x)
            y = fold(conv, x)
            loss = tf.reduce_sum(y * weights)
        grad_x, grad_w, grad_b = inner.gradient(loss, [x, conv.kernel, conv.bias])
        r1 = tf.reduce_sum(tf.square(grad_x))
    r1_grad_w = outer.gradient(r1, conv.kernel)
    return tuple(np.asarray(t) for t in (y, grad_x, grad_w, grad_b, r1_grad_w))


@pytest.mark.parametrize("kind, size", CASES)
def test_folded_resampling_matches_the_authors_ops_to_second_order(kind, size):
    rng = np.random.default_rng(size)
    cin, cout = 5, 6
    x = rng.normal(size=(2, size, size, cin)).astype("float32")
    kernel = (rng.normal(size=(3, 3, cin, cout)) / 4).astype("float32")
    bias = rng.normal(size=cout).astype("float32")
    out_size = size // 2 if kind == "pool" else size * 2
    weights = rng.normal(size=(2, out_size, out_size, cout)).astype("float32")
    expected = _torch_authors_ops(kind, x, kernel, bias, weights)
    got = _ours(kind, x, kernel, bias, weights)
    names = ("output", "d/dx", "d/dkernel", "d/dbias", "R1-shaped d/dkernel")
    for name, want, have in zip(names, expected, got):
        assert have.shape == want.shape, name
        scale = np.abs(want).max()
        np.testing.assert_allclose(have, want, rtol=0, atol=2e-6 * scale, err_msg=f"{kind} at {size} px: {name}")


def test_folded_forms_do_less_arithmetic():
    """The point of folding: 4x4 taps at a quarter of the positions, 16/36 of a 3x3 conv at full size."""
    x = tf.TensorSpec((1, 32, 32, 8), tf.float32)
    conv = conv2d(8, 3)
    conv.build((None, None, None, 8))

    def flops(function, spec):
        graph = tf.function(function).get_concrete_function(spec).graph
        options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
        options["output"] = "none"
        return tf.compat.v1.profiler.profile(graph, options=options).total_float_ops

    direct_pool = flops(lambda t: tf.nn.avg_pool2d(conv(t), 2, 2, "VALID"), x)
    direct_upsample = flops(lambda t: conv(tf.image.resize(t, (64, 64), method="nearest")), x)
    folded_pool = flops(lambda t: conv3x3_avg_pool(conv, t), x)
    folded_upsample = flops(lambda t: upsample_conv3x3(conv, t), x)
    assert folded_pool < 0.5 * direct_pool
    assert folded_upsample < 0.5 * direct_upsample
    with authors_resampling():  # what the TFLite functions are traced with
        assert flops(lambda t: conv3x3_avg_pool(conv, t), x) == direct_pool
        assert flops(lambda t: upsample_conv3x3(conv, t), x) == direct_upsample
    assert flops(lambda t: upsample_conv3x3(conv, t), x) == folded_upsample  # and only within the block
