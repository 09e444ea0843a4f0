"""StarGAN v1's networks (Choi et al., CVPR 2018, Appendix; the authors' yunjey/stargan `model.py`), NHWC.

Every network keeps the authors' `nn.Sequential` indices: `main` is a list whose
i-th item is their `main.i` (activations included), so `torch_named_variables`
names each Keras variable by the authors' state-dict key and the converter maps
keys one to one.

Instance normalisation. The authors build G's norms as
`nn.InstanceNorm2d(affine=True, track_running_stats=True)`, which in PyTorch's
eval mode would normalise with running averages. Their `solver.py` never puts G
in eval mode, neither in training nor in `test()`, so every output they report
is made with each image's own statistics, and the running buffers saved in
their checkpoints never touch an output. G here therefore always uses per-image
statistics (the v2 `InstanceNormalization`, affine), and the converter skips the
buffers.

Initial weights are PyTorch's defaults, which the authors keep: kernels and
biases uniform in +-1/sqrt(fan_in), norms' scale 1 and shift 0.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import keras
import numpy as np
from keras import layers, ops

from stargan_keras.v1.config import ModelConfig
from stargan_keras.core.layers import CPU_FORMS, Conv2D, InstanceNormalization
from stargan_keras.core.layers import SymbolicBuild

D_LEAKY_SLOPE = 0.01  # the authors' nn.LeakyReLU(0.01)
G_SAMPLING_LEVELS = 2  # stride-2 convs down, and transposed convs up, in G


def torch_default_conv(filters: int, kernel_size: int, in_channels: int, strides: int = 1, use_bias: bool = False,
                       padding: str = "same", transpose: bool = False, name=None, dtype=None, forms=CPU_FORMS):
    """A Conv2D (or Conv2DTranspose) initialised as PyTorch initialises nn.Conv2d (nn.ConvTranspose2d).

    PyTorch's kaiming_uniform_(a=sqrt(5)) bounds kernels by 1/sqrt(fan_in), fan_in taken
    from dimension 1 of its weight: the input channels of a conv, the output channels of
    a transposed conv, as Keras counts fan_in of both kernels. With padding "same", stride 2
    and an even size, a 4x4 kernel pads one pixel on each side: the authors' padding=1.
    A convolution takes `forms` (`core.layers.Conv2D`); a transposed one is always Keras' own.
    """
    fan_in = (filters if transpose else in_channels) * kernel_size ** 2
    bound = 1.0 / math.sqrt(fan_in)
    layer = layers.Conv2DTranspose if transpose else functools.partial(Conv2D, forms=forms)
    return layer(filters, kernel_size, strides=strides, padding=padding, use_bias=use_bias,
                 kernel_initializer=keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform"),
                 bias_initializer=keras.initializers.RandomUniform(-bound, bound), name=name, dtype=dtype)


def _run(layer_list, x):
    for layer in layer_list:
        x = layer(x)
    return x


@keras.saving.register_keras_serializable("stargan_keras.v1")
class ResidualBlock(layers.Layer):
    """x + [conv3x3, IN, ReLU, conv3x3, IN](x), no biases (the authors' `ResidualBlock`)."""

    TORCH_MODULES = ("main",)

    def __init__(self, dim: int, forms: str = CPU_FORMS, **kwargs):
        super().__init__(**kwargs)
        self.dim, self.forms = dim, forms
        self.main = [torch_default_conv(dim, 3, dim, name="conv1", forms=forms), InstanceNormalization(name="norm1"),
                     layers.ReLU(), torch_default_conv(dim, 3, dim, name="conv2", forms=forms),
                     InstanceNormalization(name="norm2")]

    def build(self, input_shape):
        shape = (None, None, None, self.dim)
        for layer in self.main:
            layer.build(shape)

    def call(self, x):
        return x + _run(self.main, x)

    def get_config(self):
        return {**super().get_config(), "dim": self.dim, "forms": self.forms}


@keras.saving.register_keras_serializable("stargan_keras.v1")
class Generator(SymbolicBuild, keras.Model):
    """G(x, c): the label vector c tiled over the image and concatenated to it, then conv7x7, two stride-2
    convs, `repeat_num` residual blocks, two stride-2 transposed convs, conv7x7 to RGB and tanh."""

    TORCH_MODULES = ("main",)

    def __init__(self, conv_dim=64, c_dim=5, repeat_num=6, image_size=128, forms=CPU_FORMS, **kwargs):
        super().__init__(**kwargs)
        self.conv_dim, self.c_dim, self.repeat_num, self.image_size = conv_dim, c_dim, repeat_num, image_size
        self.forms = forms
        main = [torch_default_conv(conv_dim, 7, 3 + c_dim, name="main_0", forms=forms),
                InstanceNormalization(name="main_1"), layers.ReLU()]
        dim = conv_dim
        for _ in range(G_SAMPLING_LEVELS):
            main += [torch_default_conv(dim * 2, 4, dim, strides=2, name=f"main_{len(main)}", forms=forms),
                     InstanceNormalization(name=f"main_{len(main) + 1}"), layers.ReLU()]
            dim *= 2
        main += [ResidualBlock(dim, forms=forms, name=f"main_{len(main) + i}") for i in range(repeat_num)]
        for _ in range(G_SAMPLING_LEVELS):
            main += [torch_default_conv(dim // 2, 4, dim, strides=2, transpose=True, name=f"main_{len(main)}"),
                     InstanceNormalization(name=f"main_{len(main) + 1}"), layers.ReLU()]
            dim //= 2
        main += [torch_default_conv(3, 7, dim, name=f"main_{len(main)}", dtype="float32", forms=forms),
                 layers.Activation("tanh", dtype="float32")]
        self.main = main

    def build(self, x_shape, c_shape=None):
        """Nothing of G's own to create: its layers build on the first call."""

    def symbolic_inputs(self):
        size = self.image_size
        return keras.KerasTensor((None, size, size, 3)), keras.KerasTensor((None, self.c_dim))

    def call(self, x, c):
        """x: images [N, H, W, 3] in [-1, 1]; c: target labels [N, c_dim] (floats) -> images [N, H, W, 3]."""
        c = ops.cast(c, x.dtype)[:, None, None, :]
        tiled = ops.zeros_like(x[..., :1]) + c
        return _run(self.main, ops.concatenate([x, tiled], axis=-1))

    def get_config(self):
        return {"conv_dim": self.conv_dim, "c_dim": self.c_dim, "repeat_num": self.repeat_num,
                "image_size": self.image_size, "forms": self.forms, "name": self.name}


@keras.saving.register_keras_serializable("stargan_keras.v1")
class Discriminator(SymbolicBuild, keras.Model):
    """D(x) -> (out_src, out_cls): `repeat_num` stride-2 convs with LeakyReLU(0.01), then a 3x3 conv to the
    PatchGAN real/fake map [N, H/2^r, W/2^r, 1] and a conv spanning the last map to class logits [N, c_dim]."""

    TORCH_MODULES = ("main", "conv1", "conv2")

    def __init__(self, image_size=128, conv_dim=64, c_dim=5, repeat_num=6, forms=CPU_FORMS, **kwargs):
        super().__init__(**kwargs)
        self.image_size, self.conv_dim, self.c_dim, self.repeat_num = image_size, conv_dim, c_dim, repeat_num
        self.forms = forms
        main, dim_in, dim = [], 3, conv_dim
        for i in range(repeat_num):
            main += [torch_default_conv(dim, 4, dim_in, strides=2, use_bias=True, name=f"main_{2 * i}", forms=forms),
                     layers.LeakyReLU(negative_slope=D_LEAKY_SLOPE)]
            dim_in, dim = dim, dim * 2
        self.main = main
        self.head_size = image_size // 2 ** repeat_num
        self.conv1 = torch_default_conv(1, 3, dim_in, name="conv1", dtype="float32", forms=forms)
        self.conv2 = torch_default_conv(c_dim, self.head_size, dim_in, padding="valid", name="conv2",
                                        dtype="float32", forms=forms)

    def build(self, x_shape):
        """Nothing of D's own to create: its layers build on the first call."""

    def symbolic_inputs(self):
        return (keras.KerasTensor((None, self.image_size, self.image_size, 3)),)

    def call(self, x):
        h = _run(self.main, x)
        return self.conv1(h), ops.reshape(self.conv2(h), (-1, self.c_dim))

    def get_config(self):
        return {"image_size": self.image_size, "conv_dim": self.conv_dim, "c_dim": self.c_dim,
                "repeat_num": self.repeat_num, "forms": self.forms, "name": self.name}


@dataclasses.dataclass
class V1Networks:
    """G and (when built) D of one StarGAN v1 model."""

    generator: Generator
    discriminator: Discriminator | None = None

    def items(self):
        """(name, network) pairs, in checkpoint order, skipping an absent discriminator."""
        return [(f.name, getattr(self, f.name)) for f in dataclasses.fields(self) if getattr(self, f.name) is not None]

    def save_extra_files(self, directory) -> None:
        """A v1 model directory holds the networks' weights only."""


def build_networks(config: ModelConfig, with_discriminator: bool = True, conv_forms: str = "auto") -> V1Networks:
    """Create G (and D) of a v1 config and build their weights with a dummy forward pass; `conv_forms` as the
    config field (`auto`: by the current strategy's devices, `distribute.resolve_conv_forms`).

    G takes `label_dim` labels and D classifies `num_classes`: both c_dim for one dataset; in joint
    mode G's label adds the second dataset's c2_dim and the mask vector, D's head only the c2_dim.
    """
    from stargan_keras.core.distribute import resolve_conv_forms

    config.validate()
    forms, _ = resolve_conv_forms(conv_forms)
    generator = Generator(config.g_conv_dim, config.label_dim, config.g_repeat_num, config.image_size, forms=forms,
                          name="generator")
    x = np.zeros((1, config.image_size, config.image_size, 3), "float32")
    generator(x, np.zeros((1, config.label_dim), "float32"))
    discriminator = None
    if with_discriminator:
        discriminator = Discriminator(config.image_size, config.d_conv_dim, config.num_classes, config.d_repeat_num,
                                      forms=forms, name="discriminator")
        discriminator(x)
    return V1Networks(generator, discriminator)


def load_networks(path, config) -> V1Networks:
    """G and D of a model directory (D if present), or of a run's latest checkpoint (v1 keeps no EMA copies: the
    trained networks themselves)."""
    from pathlib import Path

    import tensorflow as tf

    from stargan_keras.core.model_dir import is_model_directory, load_weight_files, no_weights_error, weights_file
    from stargan_keras.core.run_dir import RunDir, trackable

    path, forms = Path(path), config.train.conv_forms
    if is_model_directory(path):
        networks = build_networks(config.model, with_discriminator=(path / weights_file("discriminator")).exists(),
                                  conv_forms=forms)
        load_weight_files(path, networks)
        return networks
    networks, run = build_networks(config.model, conv_forms=forms), RunDir(path)
    if run.restore_latest(tf.train.Checkpoint(networks=trackable(networks)), partial=True) is None:
        raise no_weights_error(run)
    return networks


def open_directory(path):
    """(config, networks) of a StarGAN v1 run or model directory."""
    from stargan_keras.core.model_dir import config_file
    from stargan_keras.v1.config import Config

    config = Config.read(config_file(path))
    return config, load_networks(path, config)
