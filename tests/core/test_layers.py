"""Our convolutions' other forms equal the authors' ops, to second order.

`conv3x3_avg_pool` and `upsample_conv3x3` replace upstream's conv-then-avg_pool2d and
interpolate-then-conv with one 4x4 stride-2 (transposed) convolution each; `Conv2D` runs
convolutions on small maps as one matrix product and takes the gradients of stride-1 ones
as forward convolutions. Each is checked against PyTorch doing
the authors' ops: the outputs, the gradients with respect to input, kernel and bias, and
the kernel gradient of a squared input gradient (the shape of the R1 penalty and of
StarGAN v1's gradient penalty, which differentiate D twice).
"""

import math

import numpy as np
import pytest
import tensorflow as tf

from stargan_keras.core.layers import (FOLD_MIN_SIZE, KERAS_FORMS, SMALL_MAP_MIN_FILTERS, SMALL_MAP_SIZE, Conv2D,
                                       authors_resampling, conv2d, conv3x3_avg_pool, upsample_conv3x3)
from tests.harness.components import require

torch = require("torch")
functional = torch.nn.functional

CASES = [("pool", FOLD_MIN_SIZE), ("pool", 2 * FOLD_MIN_SIZE), ("pool", FOLD_MIN_SIZE // 2),
         ("upsample", FOLD_MIN_SIZE), ("upsample", FOLD_MIN_SIZE // 2)]


def _torch_reference(forward, x, kernel, bias, weights):
    """forward(x, w, b) in float64 NCHW: its output, first-order gradients and the R1-shaped kernel gradient."""
    x = torch.tensor(x.transpose(0, 3, 1, 2), dtype=torch.float64, requires_grad=True)
    w = torch.tensor(kernel.transpose(3, 2, 0, 1), dtype=torch.float64, requires_grad=True)
    b = torch.tensor(bias, dtype=torch.float64, requires_grad=True)
    y = forward(x, w, b)
    weights = torch.tensor(weights.transpose(0, 3, 1, 2), dtype=torch.float64)
    grad_x, grad_w, grad_b = torch.autograd.grad((y * weights).sum(), (x, w, b), create_graph=True)
    (r1_grad_w,) = torch.autograd.grad(grad_x.square().sum(), w)
    nhwc = (0, 2, 3, 1)
    return (y.detach().numpy().transpose(nhwc), grad_x.detach().numpy().transpose(nhwc),
            grad_w.detach().numpy().transpose(2, 3, 1, 0), grad_b.detach().numpy(),
            r1_grad_w.numpy().transpose(2, 3, 1, 0))


def _torch_authors_ops(kind, x, kernel, bias, weights):
    def forward(x, w, b):
        if kind == "pool":
            return functional.avg_pool2d(functional.conv2d(x, w, b, padding=1), 2)
        return functional.conv2d(functional.interpolate(x, scale_factor=2, mode="nearest"), w, b, padding=1)

    return _torch_reference(forward, x, kernel, bias, weights)


def _ours(forward, conv, x, weights):
    """forward(conv, x) for our layer `conv`: the same five values as `_torch_reference`."""
    x = tf.constant(x)
    with tf.GradientTape() as outer:
        with tf.GradientTape() as inner:
            inner.watch(x)
            y = forward(conv, x)
            loss = tf.reduce_sum(y * weights)
        grad_x, grad_w, grad_b = inner.gradient(loss, [x, conv.kernel, conv.bias])
        r1 = tf.reduce_sum(tf.square(grad_x))
    r1_grad_w = outer.gradient(r1, conv.kernel)
    return tuple(np.asarray(t) for t in (y, grad_x, grad_w, grad_b, r1_grad_w))


def _conv_with(kernel, bias, padding="same", strides=1):
    conv = Conv2D(kernel.shape[-1], kernel.shape[0], strides=strides, padding=padding)
    conv.build((None, None, None, kernel.shape[2]))
    conv.kernel.assign(kernel)
    conv.bias.assign(bias)
    return conv


def _assert_all_close(expected, got, label):
    names = ("output", "d/dx", "d/dkernel", "d/dbias", "R1-shaped d/dkernel")
    for name, want, have in zip(names, expected, got):
        assert have.shape == want.shape, name
        scale = np.abs(want).max()
        np.testing.assert_allclose(have, want, rtol=0, atol=2e-6 * scale, err_msg=f"{label}: {name}")


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
    fold = conv3x3_avg_pool if kind == "pool" else upsample_conv3x3
    got = _ours(fold, _conv_with(kernel, bias), x, weights)
    _assert_all_close(expected, got, f"{kind} at {size} px")


# (map size, kernel, stride, padding, filters). As matrix products: D's layers (4x4 stride 2, "same",
# from 8 px down to 1 px; the 4x4 "valid" head of v2), E's and D's 3x3 and 1x1 convolutions, odd sizes where
# "same" pads unevenly. As `same_convolution`: v1 G's 7x7 convolutions, from and to RGB, and the 3x3
# and 5x5 ones at sizes above the small maps'.
CONV2D_CASES = [(8, 4, 2, "same", 64), (4, 4, 2, "same", 64), (2, 4, 2, "same", 64), (1, 4, 2, "same", 64),
                (3, 4, 2, "same", 64), (4, 3, 1, "same", 64), (2, 3, 1, "same", 64), (3, 3, 2, "same", 64), (4, 1, 1, "same", 64),
                (4, 4, 1, "valid", 64), (3, 2, 1, "valid", 64),
                (9, 7, 1, "same", 3), (8, 7, 1, "same", 16), (8, 3, 1, "same", 64), (7, 5, 1, "same", 8)]


def _tf_same_padding(size, kernel, stride):
    """TensorFlow's "same" zeros (before, after), computed here independently of the code under test."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


@pytest.mark.parametrize("size, kernel_size, stride, padding, cout", CONV2D_CASES)
def test_conv2d_forms_match_pytorch_to_second_order(size, kernel_size, stride, padding, cout):
    rng = np.random.default_rng(size * 100 + kernel_size * 10 + stride)
    cin = 5
    x = rng.normal(size=(2, size, size, cin)).astype("float32")
    kernel = (rng.normal(size=(kernel_size, kernel_size, cin, cout)) / 4).astype("float32")
    bias = rng.normal(size=cout).astype("float32")
    conv = _conv_with(kernel, bias, padding, stride)
    out_size = conv.compute_output_shape((2, size, size, cin))[1]
    weights = rng.normal(size=(2, out_size, out_size, cout)).astype("float32")
    before, after = _tf_same_padding(size, kernel_size, stride) if padding == "same" else (0, 0)

    def forward(x, w, b):
        return functional.conv2d(functional.pad(x, (before, after, before, after)), w, b, stride=stride)

    expected = _torch_reference(forward, x, kernel, bias, weights)
    _assert_all_close(expected, _ours(lambda conv, x: conv(x), conv, x, weights),
                      f"{kernel_size}x{kernel_size} stride {stride} {padding} at {size} px")


def _traced_op_types(conv, size):
    """The op types of conv's forward pass and of its gradients with respect to input and kernel."""
    def forward_and_gradients(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = conv(x)
        return tape.gradient(y, [x, conv.kernel])

    spec = tf.TensorSpec((2, size, size, conv.kernel.shape[2]))
    graph = tf.function(forward_and_gradients).get_concrete_function(spec).graph
    return {op.type for op in graph.get_operations()}


def _built_conv(filters, kernel_size, strides=1):
    conv = Conv2D(filters, kernel_size, strides=strides, padding="same")
    conv.build((None, None, None, 8))
    return conv


def test_each_form_runs_where_it_is_faster():
    convolutions = {"Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter"}
    for small in (_traced_op_types(_built_conv(SMALL_MAP_MIN_FILTERS, 3), SMALL_MAP_SIZE),
                  _traced_op_types(_built_conv(SMALL_MAP_MIN_FILTERS, 4, strides=2), 2 * SMALL_MAP_SIZE)):
        assert "MatMul" in small and not convolutions & small  # outputs of SMALL_MAP_SIZE
    head = _traced_op_types(_built_conv(SMALL_MAP_MIN_FILTERS // 2, 3), SMALL_MAP_SIZE)  # few filters
    assert "Conv2D" in head and "MatMul" not in head
    stride_one = _traced_op_types(_built_conv(SMALL_MAP_MIN_FILTERS, 3), 2 * SMALL_MAP_SIZE)
    assert "Conv2D" in stride_one and "MatMul" not in stride_one
    assert not {"Conv2DBackpropInput", "Conv2DBackpropFilter"} & stride_one  # gradients as forward convolutions
    for plain in (_built_conv(8, 1), _built_conv(8, 4, strides=2)):  # 1x1 and strided: TensorFlow's own gradients
        assert {"Conv2DBackpropInput", "Conv2DBackpropFilter"} <= _traced_op_types(plain, 2 * SMALL_MAP_SIZE)


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


def test_keras_forms_are_keras_own_convolutions_in_the_authors_order():
    """KERAS_FORMS (GPUs, TPUs): no matrix product, TensorFlow's own gradients, no folding; the same sums."""
    def keras_conv(filters, kernel_size, strides=1):
        conv = Conv2D(filters, kernel_size, strides=strides, padding="same", forms=KERAS_FORMS)
        conv.build((None, None, None, 8))
        return conv

    for conv, size in ((keras_conv(SMALL_MAP_MIN_FILTERS, 3), SMALL_MAP_SIZE),
                       (keras_conv(SMALL_MAP_MIN_FILTERS, 4, strides=2), 2 * SMALL_MAP_SIZE),
                       (keras_conv(8, 3), 2 * SMALL_MAP_SIZE)):
        types = _traced_op_types(conv, size)
        assert "MatMul" not in types and {"Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter"} <= types
    conv = keras_conv(8, 3)
    x = tf.random.stateless_normal((1, 2 * FOLD_MIN_SIZE, 2 * FOLD_MIN_SIZE, 8), (1, 2))
    np.testing.assert_array_equal(conv3x3_avg_pool(conv, x), tf.nn.avg_pool2d(conv(x), 2, 2, "VALID"))
    np.testing.assert_array_equal(upsample_conv3x3(conv, x),
                                  conv(tf.image.resize(x, (4 * FOLD_MIN_SIZE, 4 * FOLD_MIN_SIZE), method="nearest")))
    with pytest.raises(ValueError, match="forms 'gpu'"):
        Conv2D(8, 3, forms="gpu")
