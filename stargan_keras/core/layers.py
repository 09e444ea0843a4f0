"""The layers every family's networks are made of, channels-last: the convolution (in the forms that are
faster on a CPU), instance normalisation, the resampling (folded into the 3x3 convolutions beside it),
and the naming of every Keras variable by its upstream PyTorch state-dict key.

Each convolution is built with its `forms`: CPU_FORMS, the rewrites below (measured faster on CPUs
only), or KERAS_FORMS, Keras' own convolution in the authors' op order (GPUs and TPUs, where cuDNN's
and XLA's kernels are the well-trodden path). The networks take the choice at build time
(`distribute.resolve_conv_forms`); either way a layer has the same variables, names and sums.

Attribute names follow the authors' PyTorch modules (`conv1`, `norm1`, `conv1x1`,
`fc`, ...), and each block lists them in `TORCH_MODULES`, so that
`torch_named_variables` can name every Keras variable by its upstream
state-dict key. The converters rely on that; nothing else does.
"""

from __future__ import annotations

import contextlib
import contextvars

import keras
import tensorflow as tf
from keras import layers, ops

LEAKY_SLOPE = 0.2
INSTANCE_NORM_EPSILON = 1e-5  # PyTorch's default; Keras' GroupNormalization uses 1e-3


def he_normal():
    """Untruncated N(0, 2 / fan_in): the authors' kaiming_normal_ (Keras' HeNormal truncates)."""
    return keras.initializers.VarianceScaling(scale=2.0, mode="fan_in", distribution="untruncated_normal")


# Two forms of Keras' convolution, the same sums in an order TensorFlow's CPU kernels run faster
# (`Conv2D`; the timings are README's, "Tests and benchmarks"):
# - Outputs of at most SMALL_MAP_SIZE pixels a side, with at least SMALL_MAP_MIN_FILTERS filters, as
#   one matrix product, whose gradients are two GEMMs: there the convolution's gradient kernels are
#   slower, and D's and E's last layers are such maps. At 8 px outputs the two are even, and a head
#   with a few filters (D's 1 or c_dim) is faster as a convolution.
# - Stride-1 "same" convolutions with an odd kernel of 3 or more on larger maps, their gradients as
#   forward convolutions (`same_convolution`), faster than the gradient kernels.
SMALL_MAP_SIZE = 4
SMALL_MAP_MIN_FILTERS = 64
CPU_FORMS, KERAS_FORMS = "cpu", "keras"


def _output_and_padding(size: int, kernel: int, stride: int, padding: str) -> tuple[int, int, int]:
    """Output size and the zeros before and after along one axis, as TensorFlow pads "same" and "valid"."""
    if padding == "valid":
        return (size - kernel) // stride + 1, 0, 0
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return out, total // 2, total - total // 2


def small_map_convolution(x, kernel, stride: int, padding: str):
    """conv2d(x, kernel, stride, padding) on a static-size map, as one matrix product.

    Output pixel (i, j) is the window x_pad[s*i : s*i + k, s*j : s*j + k, :] flattened in
    (row, column, channel) order, HWIO's own, times the kernel reshaped to [k*k*C_in, filters]:
    the k*k strided slices concatenated along channels are those windows, every pixel's at once.
    """
    k_h, k_w, c_in, filters = kernel.shape
    height, pad_top, pad_bottom = _output_and_padding(x.shape[1], k_h, stride, padding)
    width, pad_left, pad_right = _output_and_padding(x.shape[2], k_w, stride, padding)
    x = tf.pad(x, [(0, 0), (pad_top, pad_bottom), (pad_left, pad_right), (0, 0)])
    windows = tf.concat([x[:, row:row + stride * (height - 1) + 1:stride, col:col + stride * (width - 1) + 1:stride]
                         for row in range(k_h) for col in range(k_w)], axis=-1)
    y = tf.matmul(tf.reshape(windows, [-1, k_h * k_w * c_in]), tf.reshape(kernel, [-1, filters]))
    return tf.reshape(y, [-1, height, width, filters])


@tf.custom_gradient
def same_convolution(x, kernel):
    """tf.nn.conv2d(x, kernel, 1, "SAME") for an odd square kernel, its gradients as forward convolutions.

    With k = 2p + 1 and dy = dL/dy:
    - dL/dx[n, y, x, c] = sum over (i, j, o) of dy[n, y+p-i, x+p-j, o] K[i, j, c, o]: dy convolved, "same"
      again, with the kernel flipped in both axes and its in and out channels swapped;
    - dL/dK[i, j, c, o] = sum over (n, y, x) of x_pad[n, y+i, x+j, c] dy[n, y, x, o]: a "valid"
      convolution of x_pad, the batch taken for channels ([C, H+2p, W+2p, N]), by dy taken for
      a kernel ([H, W, N, O]), which yields [C, k, k, O].
    Both are made of convolutions, so R1 and the gradient penalty differentiate them again.
    """
    pad = kernel.shape[0] // 2

    def gradient(dy):
        flipped = tf.transpose(tf.reverse(kernel, axis=[0, 1]), (0, 1, 3, 2))
        dx = tf.nn.conv2d(dy, flipped, 1, "SAME")
        x_pad = tf.pad(x, [(0, 0), (pad, pad), (pad, pad), (0, 0)])
        dkernel = tf.nn.conv2d(tf.transpose(x_pad, (3, 1, 2, 0)), tf.transpose(dy, (1, 2, 0, 3)), 1, "VALID")
        return dx, tf.transpose(dkernel, (1, 2, 0, 3))

    return tf.nn.conv2d(x, kernel, 1, "SAME"), gradient


@keras.saving.register_keras_serializable("stargan_keras")
class Conv2D(layers.Conv2D):
    """Keras' Conv2D, with `forms=CPU_FORMS` in the faster forms above where they apply; the same weights and sums."""

    def __init__(self, *args, forms: str = CPU_FORMS, **kwargs):
        super().__init__(*args, **kwargs)
        if forms not in (CPU_FORMS, KERAS_FORMS):
            raise ValueError(f"Conv2D forms {forms!r}: expected {CPU_FORMS!r} or {KERAS_FORMS!r}")
        self.forms = forms

    def convolution_op(self, inputs, kernel):
        if (self.forms != CPU_FORMS or self.dilation_rate != (1, 1) or self.data_format != "channels_last"
                or self.strides[0] != self.strides[1]):
            return super().convolution_op(inputs, kernel)
        height, width = self.compute_output_shape(tuple(inputs.shape))[1:3]
        if height is not None and width is not None and max(height, width) <= SMALL_MAP_SIZE:
            if self.filters >= SMALL_MAP_MIN_FILTERS:
                return small_map_convolution(inputs, kernel, self.strides[0], self.padding)
            return super().convolution_op(inputs, kernel)
        k_h, k_w = self.kernel_size
        if self.strides == (1, 1) and self.padding == "same" and k_h == k_w and k_h % 2 == 1 and k_h > 1:
            return same_convolution(inputs, tf.convert_to_tensor(kernel))
        return super().convolution_op(inputs, kernel)

    def get_config(self):
        return {**super().get_config(), "forms": self.forms}


def conv2d(filters: int, kernel_size: int, use_bias: bool = True, padding: str = "same", name=None, dtype=None,
           forms: str = CPU_FORMS):
    return Conv2D(filters, kernel_size, padding=padding, use_bias=use_bias, kernel_initializer=he_normal(),
                  bias_initializer="zeros", name=name, dtype=dtype, forms=forms)


def dense(units: int, name=None, dtype=None):
    return layers.Dense(units, kernel_initializer=he_normal(), bias_initializer="zeros", name=name, dtype=dtype)


def channels(num: int) -> tuple:
    """An NHWC shape known only by its channel count: all that a conv or norm needs to build."""
    return (None, None, None, num)


@keras.saving.register_keras_serializable("stargan_keras")
class LeakyReLU(layers.LeakyReLU):
    """Keras' LeakyReLU (the same values and gradients) in forms that grappler's remapper fuses correctly.

    With oneDNN, the remapper fuses a convolution (with its bias) and a LeakyRelu op after it into one op
    without checking who else reads the convolution's output; it then gives up on the whole training graph
    ("remapper failed: ... fanout '...' exist for missing node '...BiasAdd'") and skips every other fusion.
    Two readers occur here: the gradient op LeakyReluGrad, which reads the input (so this gradient is read
    from the output: a positive slope keeps the sign), and a residual block's shortcut, which reads the
    block's input too; `call(x, shared_input=True)` says so, and gets a form without a LeakyRelu op (the
    remapper turns max(x, slope * x) into one, so a select).
    """

    def call(self, inputs, shared_input: bool = False):
        return _leaky_relu(inputs, self.negative_slope, shared_input)


def _leaky_relu(x, slope: float, shared_input: bool):
    @tf.custom_gradient
    def forward(x):
        y = tf.where(x > 0, x, x * tf.constant(slope, x.dtype)) if shared_input else tf.nn.leaky_relu(x, slope)

        def gradient(dy):
            return tf.where(y > 0, dy, dy * tf.constant(slope, dy.dtype))

        return y, gradient

    return forward(x)


def leaky_relu(slope: float = LEAKY_SLOPE):
    return LeakyReLU(negative_slope=slope)


@tf.custom_gradient
def upsample_2x(x):
    """Nearest-neighbour 2x upsampling (the authors' F.interpolate(scale_factor=2)).

    Forward, one ResizeNearestNeighbor op (faster than the two repeats of Keras'
    UpSampling2D, and a builtin TFLite kernel); backward, the exact 2x2 sum as an
    average pool times 4, which is faster than ResizeNearestNeighborGrad and, unlike
    it, compiles with XLA.
    """
    height, width = x.shape[1], x.shape[2]
    if height is None or width is None:  # keep static sizes static: the decoder's skips are keyed by size
        height, width = tf.shape(x)[1], tf.shape(x)[2]

    def sum_2x2(upstream):
        return tf.nn.avg_pool2d(upstream, 2, 2, "VALID") * tf.constant(4, upstream.dtype)

    return tf.image.resize(x, (2 * height, 2 * width), method="nearest"), sum_2x2


def avg_pool_2x(x):
    return tf.nn.avg_pool2d(x, 2, 2, "VALID")


# Resampling folded into the 3x3 convolutions next to it. Both identities are exact
# (zero padding included) and leave the layers' weights the authors' 3x3 kernels; the
# 4x4 kernels are built from them on the fly, so autodiff maps gradients back.
# Arithmetic per output: 4x4 taps at a quarter of the positions instead of 3x3 at all
# of them (16/36). Below FOLD_MIN_SIZE pixels oneDNN's GEMMs are too small to gain
# (README, "Tests and benchmarks").
# The authors' pool averages four rounded 9-tap sums, which halves their rounding
# noise; a folded one rounds a single 16-tap sum. Behind G's instance norms that noise
# would exceed the PyTorch parity tests' tolerance, so G's encoder keeps the authors'
# order and only D and E, which have no norms, fold their pools.
FOLD_MIN_SIZE = 16
_FOLDING = contextvars.ContextVar("stargan_keras_folding", default=True)


@contextlib.contextmanager
def authors_resampling():
    """Within this block, networks called (or traced) use the authors' separate ops.

    For TFLite: the converter stores the folded 4x4 kernels as constants, 16/9 the
    bytes of the 3x3 ones, and XNNPACK gains nothing from them (README, "Tests and benchmarks").
    """
    token = _FOLDING.set(False)
    try:
        yield
    finally:
        _FOLDING.reset(token)


def _folds(conv, x) -> bool:
    return (getattr(conv, "forms", KERAS_FORMS) == CPU_FORMS and _FOLDING.get()
            and (x.shape[1] is None or x.shape[1] >= FOLD_MIN_SIZE))


def _adjacent_tap_sums(kernel):
    """A 3x3 kernel's taps (k0, k1, k2) along each spatial axis -> (k0, k0+k1, k1+k2, k2): 4x4."""
    for axis in (0, 1):
        k0, k1, k2 = tf.unstack(kernel, axis=axis)
        kernel = tf.stack([k0, k0 + k1, k1 + k2, k2], axis=axis)
    return kernel


def conv3x3_avg_pool(conv: layers.Conv2D, x):
    """avg_pool_2x(conv(x)), in CPU forms as one 4x4 stride-2 convolution.

    A pooled output averages two windows along each axis, offset by one row, so
    along each axis its 4-tap kernel is (k0, k0+k1, k1+k2, k2) / 2.
    """
    if not _folds(conv, x):
        return avg_pool_2x(conv(x))
    kernel = _adjacent_tap_sums(ops.cast(conv.kernel, x.dtype)) / 4
    x = tf.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)])
    return tf.nn.bias_add(tf.nn.conv2d(x, kernel, 2, "VALID"), ops.cast(conv.bias, x.dtype))


def upsample_conv3x3(conv: layers.Conv2D, x):
    """conv(upsample_2x(x)), in CPU forms as one 4x4 stride-2 transposed convolution.

    Along each axis an even output row sees input rows (i-1, i, i) through taps
    (k0, k1, k2) and an odd one rows (i, i, i+1): each input row reaches its four
    output rows through k2, k1+k2, k0+k1, k0, the transposed kernel (the pooling
    kernel's taps, reversed).
    """
    if not _folds(conv, x):
        return conv(upsample_2x(x))
    kernel = tf.reverse(_adjacent_tap_sums(ops.cast(conv.kernel, x.dtype)), axis=[0, 1])
    batch, height, width = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
    out_shape = tf.stack([batch, 2 * height, 2 * width, conv.filters])
    y = tf.nn.conv2d_transpose(x, tf.transpose(kernel, (0, 1, 3, 2)), out_shape, 2, "SAME")
    if x.shape[1] is not None and x.shape[2] is not None:
        y = tf.ensure_shape(y, (None, 2 * x.shape[1], 2 * x.shape[2], conv.filters))
    return tf.nn.bias_add(y, ops.cast(conv.bias, x.dtype))


@keras.saving.register_keras_serializable("stargan_keras")
class InstanceNormalization(layers.Layer):
    """Per-sample, per-channel normalization over H and W (PyTorch's InstanceNorm2d).

    Statistics are computed in float32 even under a mixed-precision policy, where
    float16 variances of large activations overflow.
    """

    def __init__(self, affine: bool = True, epsilon: float = INSTANCE_NORM_EPSILON, **kwargs):
        super().__init__(**kwargs)
        self.affine = affine
        self.epsilon = epsilon

    def build(self, input_shape):
        if self.affine:
            channels = input_shape[-1]
            self.gamma = self.add_weight(shape=(channels,), initializer="ones", name="gamma")
            self.beta = self.add_weight(shape=(channels,), initializer="zeros", name="beta")

    def call(self, x):
        x32 = ops.cast(x, "float32")
        mean, variance = ops.moments(x32, axes=[1, 2], keepdims=True)
        y = (x32 - mean) * ops.rsqrt(variance + self.epsilon)
        if self.affine:
            y = y * ops.cast(self.gamma, "float32") + ops.cast(self.beta, "float32")
        return ops.cast(y, self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "affine": self.affine, "epsilon": self.epsilon}


class SymbolicBuild:
    """`load_model` rebuilds a model from its recorded input shapes, which neither builds sub-layers
    kept in lists nor knows that y is an integer: build these networks by one symbolic call instead."""

    def build_from_config(self, config):
        self(*self.symbolic_inputs())


_TORCH_VARIABLE_NAMES = {"kernel": "weight", "bias": "bias", "gamma": "weight", "beta": "bias"}


def torch_named_variables(module, prefix: str = "") -> dict[str, keras.Variable]:
    """Every trainable variable of a network under its upstream PyTorch state-dict key."""
    if isinstance(module, (list, tuple)):
        named = {}
        for index, item in enumerate(module):
            named.update(torch_named_variables(item, f"{prefix}{index}."))
        return named
    names = getattr(module, "TORCH_MODULES", None)
    if names is not None:
        named = {}
        for name in names:
            child = getattr(module, name)
            if child is not None:
                named.update(torch_named_variables(child, f"{prefix}{name}."))
        return named
    return {prefix + _TORCH_VARIABLE_NAMES[v.path.rsplit("/", 1)[-1]]: v for v in module.weights}
