"""The building blocks of StarGAN v2's networks (the authors' `core/model.py`): the residual blocks of the
encoder, D and E (`ResBlk`), the AdaIN residual blocks of G's decoder (`AdainResBlk`) and the high-pass filter
of the CelebA-HQ face skips (`HighPass`). The convolutions and norms they use are `core.layers`'."""

from __future__ import annotations

import math

import keras
import tensorflow as tf
from keras import layers, ops

from stargan_keras.core.layers import (CPU_FORMS, InstanceNormalization, avg_pool_2x, channels, conv2d,
                                       conv3x3_avg_pool, dense, leaky_relu, upsample_2x, upsample_conv3x3)


@keras.saving.register_keras_serializable("stargan_keras")
class ResBlk(layers.Layer):
    """Pre-activation residual block of the encoder, style encoder and discriminator."""

    TORCH_MODULES = ("conv1", "conv2", "norm1", "norm2", "conv1x1")

    def __init__(self, dim_in: int, dim_out: int, normalize: bool = False, downsample: bool = False,
                 forms: str = CPU_FORMS, **kwargs):
        super().__init__(**kwargs)
        self.dim_in, self.dim_out = dim_in, dim_out
        self.normalize, self.downsample, self.forms = normalize, downsample, forms
        self.learned_sc = dim_in != dim_out
        self.conv1 = conv2d(dim_in, 3, name="conv1", forms=forms)
        self.conv2 = conv2d(dim_out, 3, name="conv2", forms=forms)
        self.norm1 = InstanceNormalization(name="norm1") if normalize else None
        self.norm2 = InstanceNormalization(name="norm2") if normalize else None
        self.conv1x1 = conv2d(dim_out, 1, use_bias=False, name="conv1x1", forms=forms) if self.learned_sc else None
        self.activation = leaky_relu()

    def build(self, input_shape):
        """Create the weights from channel counts alone (faster than Keras tracing the call)."""
        in_shape, out_shape = channels(self.dim_in), channels(self.dim_in)
        self.conv1.build(in_shape)
        self.conv2.build(out_shape)
        if self.normalize:
            self.norm1.build(in_shape)
            self.norm2.build(out_shape)
        if self.learned_sc:
            self.conv1x1.build(in_shape)

    def shortcut(self, x):
        """Upstream's conv1x1 then pool, in the cheaper order: a 1x1 conv commutes with averaging."""
        if self.downsample:
            x = avg_pool_2x(x)
        if self.learned_sc:
            x = self.conv1x1(x)
        return x

    def residual(self, x):
        """In D and E, in CPU forms, the pool is folded into conv1; G's encoder keeps the authors' order (see
        `core.layers`' folding notes)."""
        if self.normalize:
            x = self.norm1(x)
        x = self.activation(x, shared_input=not self.normalize)  # the shortcut reads x too
        if self.downsample and not self.normalize:
            x = conv3x3_avg_pool(self.conv1, x)
        else:
            x = self.conv1(x)
            if self.downsample:
                x = avg_pool_2x(x)
        if self.normalize:
            x = self.norm2(x)
        return self.conv2(self.activation(x))

    def call(self, x):
        return (self.shortcut(x) + self.residual(x)) / math.sqrt(2)

    def get_config(self):
        return {**super().get_config(), "dim_in": self.dim_in, "dim_out": self.dim_out,
                "normalize": self.normalize, "downsample": self.downsample, "forms": self.forms}


@keras.saving.register_keras_serializable("stargan_keras")
class AdaIN(layers.Layer):
    """Adaptive instance normalization: the style code sets each channel's scale and shift."""

    TORCH_MODULES = ("fc",)

    def __init__(self, style_dim: int, num_features: int, **kwargs):
        super().__init__(**kwargs)
        self.style_dim, self.num_features = style_dim, num_features
        self.norm = InstanceNormalization(affine=False, name="norm")
        self.fc = dense(num_features * 2, name="fc")

    def build(self, x_shape, s_shape):
        self.norm.build(x_shape)
        self.fc.build(s_shape)

    def call(self, x, s):
        h = self.fc(s)
        gamma, beta = ops.split(h[:, None, None, :], 2, axis=-1)
        return (1 + gamma) * self.norm(x) + beta

    def get_config(self):
        return {**super().get_config(), "style_dim": self.style_dim, "num_features": self.num_features}


@keras.saving.register_keras_serializable("stargan_keras")
class AdainResBlk(layers.Layer):
    """Decoder block: AdaIN-modulated residual; without shortcut when high-pass skips are on."""

    TORCH_MODULES = ("conv1", "conv2", "norm1", "norm2", "conv1x1")

    def __init__(self, dim_in: int, dim_out: int, style_dim: int = 64, w_hpf: float = 0.0, upsample: bool = False,
                 forms: str = CPU_FORMS, **kwargs):
        super().__init__(**kwargs)
        self.dim_in, self.dim_out, self.style_dim = dim_in, dim_out, style_dim
        self.w_hpf, self.upsample, self.forms = w_hpf, upsample, forms
        self.learned_sc = dim_in != dim_out
        self.conv1 = conv2d(dim_out, 3, name="conv1", forms=forms)
        self.conv2 = conv2d(dim_out, 3, name="conv2", forms=forms)
        self.norm1 = AdaIN(style_dim, dim_in, name="norm1")
        self.norm2 = AdaIN(style_dim, dim_out, name="norm2")
        # The shortcut conv exists even when w_hpf > 0 leaves it unused: the released
        # checkpoints (and the parameter counts) include it.
        self.conv1x1 = conv2d(dim_out, 1, use_bias=False, name="conv1x1", forms=forms) if self.learned_sc else None
        self.activation = leaky_relu()

    def build(self, x_shape, s_shape):
        self.norm1.build(channels(self.dim_in), s_shape)
        self.norm2.build(channels(self.dim_out), s_shape)
        self.conv1.build(channels(self.dim_in))
        self.conv2.build(channels(self.dim_out))
        if self.learned_sc:
            self.conv1x1.build(channels(self.dim_in))

    def shortcut(self, x):
        """Upstream's upsample then conv1x1, in the cheaper order: a 1x1 conv commutes with copying pixels."""
        if self.learned_sc:
            x = self.conv1x1(x)
        if self.upsample:
            x = upsample_2x(x)
        return x

    def residual(self, x, s):
        x = self.activation(self.norm1(x, s))
        x = upsample_conv3x3(self.conv1, x) if self.upsample else self.conv1(x)
        x = self.activation(self.norm2(x, s))
        return self.conv2(x)

    def call(self, x, s):
        out = self.residual(x, s)
        if self.w_hpf == 0:
            out = (out + self.shortcut(x)) / math.sqrt(2)
        return out

    def get_config(self):
        return {**super().get_config(), "dim_in": self.dim_in, "dim_out": self.dim_out,
                "style_dim": self.style_dim, "w_hpf": self.w_hpf, "upsample": self.upsample, "forms": self.forms}


@keras.saving.register_keras_serializable("stargan_keras")
class HighPass(layers.Layer):
    """Fixed depthwise Laplacian-like filter that passes face edges through the skip connections."""

    def __init__(self, w_hpf: float, **kwargs):
        super().__init__(**kwargs)
        self.w_hpf = w_hpf

    def call(self, x):
        channels = x.shape[-1]
        kernel = tf.constant([[-1.0, -1.0, -1.0], [-1.0, 8.0, -1.0], [-1.0, -1.0, -1.0]]) / self.w_hpf
        kernel = tf.tile(ops.cast(kernel, x.dtype)[:, :, None, None], [1, 1, channels, 1])
        return tf.nn.depthwise_conv2d(x, kernel, strides=[1, 1, 1, 1], padding="SAME")

    def get_config(self):
        return {**super().get_config(), "w_hpf": self.w_hpf}
