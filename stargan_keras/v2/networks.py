"""The four networks of StarGAN v2 (paper Figure 2): G, F, E and D.

Each class matches one box of the figure and the authors' `core/model.py`
module for module (see `stargan_keras.core.layers` for the naming contract).
Domain-specific outputs are computed for every domain and the one asked for by
`y` is picked, as upstream does; style codes and logits are float32 under every
dtype policy.
"""

from __future__ import annotations

import dataclasses
import math

import keras
import numpy as np
from keras import layers, ops

from stargan_keras.v2.config import ModelConfig
from stargan_keras.core.layers import CPU_FORMS, InstanceNormalization, SymbolicBuild, conv2d, dense, leaky_relu
from stargan_keras.v2.layers import AdainResBlk, HighPass, ResBlk

HPF_SKIP_SIZES = (32, 64, 128)  # resolutions where the CelebA-HQ generator adds high-pass skips
EMA_NETWORKS = ("generator", "mapping_network", "style_encoder")  # the networks training averages (nets_ema)


def _log2(img_size: int) -> int:
    return int(round(math.log2(img_size)))


def _pick_domain(outputs, y):
    """outputs [N, num_domains, ...] -> outputs[i, y[i]]."""
    return ops.take_along_axis(outputs, ops.reshape(ops.cast(y, "int32"), (-1, 1, 1)), axis=1)[:, 0]


def _image_and_label(img_size):
    return keras.KerasTensor((None, img_size, img_size, 3)), keras.KerasTensor((None,), dtype="int32")


@keras.saving.register_keras_serializable("stargan_keras")
class Generator(SymbolicBuild, keras.Model):
    """G(x, s): encoder of downsampling ResBlks, decoder of AdaIN ResBlks driven by the style s."""

    TORCH_MODULES = ("from_rgb", "encode", "decode", "to_rgb")

    def __init__(self, img_size=256, style_dim=64, max_conv_dim=512, w_hpf=1.0, base_dim=None, forms=CPU_FORMS,
                 **kwargs):
        super().__init__(**kwargs)
        self.img_size, self.style_dim, self.max_conv_dim = img_size, style_dim, max_conv_dim
        self.w_hpf, self.base_dim, self.forms = float(w_hpf), base_dim, forms
        dim_in = ModelConfig.first_width(img_size, base_dim)
        self.from_rgb = conv2d(dim_in, 3, name="from_rgb", forms=forms)
        encode, decode = [], []
        repeat_num = _log2(img_size) - 4 + (1 if self.w_hpf > 0 else 0)
        dim_out = dim_in
        for i in range(repeat_num):
            dim_out = min(dim_in * 2, max_conv_dim)
            encode.append(ResBlk(dim_in, dim_out, normalize=True, downsample=True, forms=forms, name=f"encode_{i}"))
            decode.insert(0, AdainResBlk(dim_out, dim_in, style_dim, self.w_hpf, upsample=True, forms=forms))
            dim_in = dim_out
        for i in range(2):
            encode.append(ResBlk(dim_out, dim_out, normalize=True, forms=forms, name=f"encode_{repeat_num + i}"))
            decode.insert(0, AdainResBlk(dim_out, dim_out, style_dim, self.w_hpf, forms=forms))
        self.encode = encode
        self.decode = decode
        self.to_rgb = [InstanceNormalization(name="to_rgb_norm"), leaky_relu(),
                       conv2d(3, 1, name="to_rgb_conv", dtype="float32", forms=forms)]
        self.hpf = HighPass(self.w_hpf, name="hpf") if self.w_hpf > 0 else None

    def build(self, x_shape, s_shape=None, masks_shape=None):
        """Nothing of G's own to create: its blocks build on the first call."""

    def symbolic_inputs(self):
        return keras.KerasTensor((None, self.img_size, self.img_size, 3)), keras.KerasTensor((None, self.style_dim))

    def call(self, x, s, masks=None):
        """x: images [N,H,W,3] in [-1,1]; s: styles [N,style_dim]; masks: optional pair of face masks [N,H,W,1]."""
        return self.decode_content(self.encode_content(x, masks), s, masks)

    def encode_content(self, x, masks=None):
        """The style-free half of G: (features, high-pass skips). Training reuses it for every style of one x."""
        use_masks = masks is not None and self.hpf is not None
        x = self.from_rgb(x)
        skips = {}
        for block in self.encode:
            if use_masks and x.shape[1] in HPF_SKIP_SIZES:
                skips[x.shape[1]] = x
            x = block(x)
        return x, skips

    def decode_content(self, content, s, masks=None):
        """The styled half of G: `encode_content`'s output and styles s -> images."""
        x, skips = content
        for block in self.decode:
            x = block(x, s)
            size = x.shape[1]
            if size in skips:
                mask = masks[0] if size == 32 else masks[1]
                mask = ops.image.resize(ops.cast(mask, x.dtype), (size, size), interpolation="bilinear",
                                        antialias=False)
                x = x + self.hpf(mask * skips[size])
        for layer in self.to_rgb:
            x = layer(x)
        return x

    def get_config(self):
        return {"img_size": self.img_size, "style_dim": self.style_dim, "max_conv_dim": self.max_conv_dim,
                "w_hpf": self.w_hpf, "base_dim": self.base_dim, "forms": self.forms, "name": self.name}


@keras.saving.register_keras_serializable("stargan_keras")
class MappingNetwork(SymbolicBuild, keras.Model):
    """F(z, y): an MLP shared by all domains, then one MLP head per domain."""

    TORCH_MODULES = ("shared", "unshared")

    def __init__(self, latent_dim=16, style_dim=64, num_domains=2, hidden_dim=512, **kwargs):
        super().__init__(**kwargs)
        self.latent_dim, self.style_dim = latent_dim, style_dim
        self.num_domains, self.hidden_dim = num_domains, hidden_dim
        shared = []
        for i in range(4):
            shared += [dense(hidden_dim, name=f"shared_{i}"), layers.ReLU()]
        self.shared = shared
        self.unshared = [
            [dense(hidden_dim), layers.ReLU(), dense(hidden_dim), layers.ReLU(), dense(hidden_dim), layers.ReLU(),
             dense(style_dim, name=f"head_{d}_out", dtype="float32")]
            for d in range(num_domains)
        ]

    def symbolic_inputs(self):
        return keras.KerasTensor((None, self.latent_dim)), keras.KerasTensor((None,), dtype="int32")

    def call(self, z, y):
        h = z
        for layer in self.shared:
            h = layer(h)
        styles = []
        for head in self.unshared:
            out = h
            for layer in head:
                out = layer(out)
            styles.append(out)
        return _pick_domain(ops.stack(styles, axis=1), y)

    def get_config(self):
        return {"latent_dim": self.latent_dim, "style_dim": self.style_dim, "num_domains": self.num_domains,
                "hidden_dim": self.hidden_dim, "name": self.name}


def _downsampling_trunk(img_size, base_dim, max_conv_dim, forms):
    """conv3x3 then log2(img)-2 downsampling ResBlks to 4x4, lrelu, conv4x4 valid, lrelu (shared by E and D)."""
    dim_in = ModelConfig.first_width(img_size, base_dim)
    trunk = [conv2d(dim_in, 3, name="from_rgb", forms=forms)]
    dim_out = dim_in
    for i in range(_log2(img_size) - 2):
        dim_out = min(dim_in * 2, max_conv_dim)
        trunk.append(ResBlk(dim_in, dim_out, downsample=True, forms=forms, name=f"block_{i}"))
        dim_in = dim_out
    trunk += [leaky_relu(), conv2d(dim_out, 4, padding="valid", name="conv4x4", forms=forms), leaky_relu()]
    return trunk, dim_out


def _run(layer_list, x):
    for layer in layer_list:
        x = layer(x)
    return x


@keras.saving.register_keras_serializable("stargan_keras")
class StyleEncoder(SymbolicBuild, keras.Model):
    """E(x, y): a downsampling trunk to a 1x1 feature, then one linear style head per domain."""

    TORCH_MODULES = ("shared", "unshared")

    def __init__(self, img_size=256, style_dim=64, num_domains=2, max_conv_dim=512, base_dim=None, forms=CPU_FORMS,
                 **kwargs):
        super().__init__(**kwargs)
        self.img_size, self.style_dim, self.num_domains = img_size, style_dim, num_domains
        self.max_conv_dim, self.base_dim, self.forms = max_conv_dim, base_dim, forms
        self.shared, _ = _downsampling_trunk(img_size, base_dim, max_conv_dim, forms)
        self.unshared = [dense(style_dim, name=f"head_{d}", dtype="float32") for d in range(num_domains)]

    def symbolic_inputs(self):
        return _image_and_label(self.img_size)

    def call(self, x, y):
        h = ops.reshape(_run(self.shared, x), (-1, self.shared[-2].filters))
        return _pick_domain(ops.stack([head(h) for head in self.unshared], axis=1), y)

    def get_config(self):
        return {"img_size": self.img_size, "style_dim": self.style_dim, "num_domains": self.num_domains,
                "max_conv_dim": self.max_conv_dim, "base_dim": self.base_dim, "forms": self.forms, "name": self.name}


@keras.saving.register_keras_serializable("stargan_keras")
class Discriminator(SymbolicBuild, keras.Model):
    """D(x, y): the same trunk as E, then a 1x1 conv with one real/fake logit per domain."""

    TORCH_MODULES = ("main",)

    def __init__(self, img_size=256, num_domains=2, max_conv_dim=512, base_dim=None, forms=CPU_FORMS, **kwargs):
        super().__init__(**kwargs)
        self.img_size, self.num_domains = img_size, num_domains
        self.max_conv_dim, self.base_dim, self.forms = max_conv_dim, base_dim, forms
        trunk, _ = _downsampling_trunk(img_size, base_dim, max_conv_dim, forms)
        self.main = trunk + [conv2d(num_domains, 1, name="logits", dtype="float32", forms=forms)]

    def symbolic_inputs(self):
        return _image_and_label(self.img_size)

    def call(self, x, y):
        logits = ops.reshape(_run(self.main, x), (-1, self.num_domains))
        return ops.take_along_axis(logits, ops.reshape(ops.cast(y, "int32"), (-1, 1)), axis=1)[:, 0]

    def get_config(self):
        return {"img_size": self.img_size, "num_domains": self.num_domains, "max_conv_dim": self.max_conv_dim,
                "base_dim": self.base_dim, "forms": self.forms, "name": self.name}


NETWORK_NAMES = ("generator", "mapping_network", "style_encoder", "discriminator")  # in checkpoint order


class MissingFaceNetworkError(ValueError):
    """A generator with high-pass skips (w_hpf > 0) was asked to run without the FAN that makes its masks."""


@dataclasses.dataclass
class Networks:
    """The four networks of one model (the trained ones or their EMA copies), and for a generator with
    high-pass skips (w_hpf > 0, the CelebA-HQ setting) the frozen face-landmark network behind its masks."""

    generator: Generator
    mapping_network: MappingNetwork
    style_encoder: StyleEncoder
    discriminator: Discriminator | None = None
    fan: keras.Model | None = None  # stargan_keras.face.fan: never trained, so not one of `items()`

    def items(self):
        """(name, network) pairs of the trained networks, in checkpoint order, skipping an absent discriminator."""
        return [(name, getattr(self, name)) for name in NETWORK_NAMES if getattr(self, name) is not None]

    def face_masks(self, x):
        """The pair of face masks G takes for images x (the authors' `FAN.get_heatmap`), or None when G has no
        high-pass skips. The authors compute them wherever G runs: a w_hpf > 0 generator without them would
        silently translate without its skips, so a missing FAN is an error."""
        if self.generator.w_hpf <= 0:
            return None
        if self.fan is None:
            raise MissingFaceNetworkError(
                f"this generator has w_hpf {self.generator.w_hpf:g} (high-pass face skips) but no face-landmark "
                "network (FAN) was given: load the model from a directory that holds fan.weights.h5, or set "
                "Networks.fan (stargan_keras.face.fan.load_fan_checkpoint).")
        from stargan_keras.face.masks import face_masks

        return face_masks(self.fan, x)

    def save_extra_files(self, directory) -> None:
        """A model directory's files besides the weights of `items()`: the FAN, when there is one."""
        if self.fan is not None:
            from stargan_keras.face.model_files import save_fan_file

            save_fan_file(self.fan, directory)


def build_networks(model: ModelConfig, with_discriminator: bool = True, name_prefix: str = "",
                   conv_forms: str = "auto") -> Networks:
    """Create the networks of a config and build their weights with a dummy forward pass; `conv_forms` as the
    config field (`auto`: by the current strategy's devices, `distribute.resolve_conv_forms`)."""
    from stargan_keras.core.distribute import resolve_conv_forms

    model.validate()
    forms, _ = resolve_conv_forms(conv_forms)
    generator = Generator(model.img_size, model.style_dim, model.max_conv_dim, model.w_hpf, model.base_dim,
                          forms=forms, name=f"{name_prefix}generator")
    mapping_network = MappingNetwork(model.latent_dim, model.style_dim, model.num_domains, model.mapping_hidden_dim,
                                     name=f"{name_prefix}mapping_network")
    style_encoder = StyleEncoder(model.img_size, model.style_dim, model.num_domains, model.max_conv_dim,
                                 model.base_dim, forms=forms, name=f"{name_prefix}style_encoder")
    discriminator = (Discriminator(model.img_size, model.num_domains, model.max_conv_dim, model.base_dim,
                                   forms=forms, name=f"{name_prefix}discriminator") if with_discriminator else None)
    x = np.zeros((1, model.img_size, model.img_size, 3), "float32")
    y = np.zeros((1,), "int32")
    s = mapping_network(np.zeros((1, model.latent_dim), "float32"), y)
    generator(x, s)
    style_encoder(x, y)
    if discriminator is not None:
        discriminator(x, y)
    return Networks(generator, mapping_network, style_encoder, discriminator)


def load_networks(path, config) -> Networks:
    """A model directory's networks, or a run's latest EMA networks with its trained discriminator; the FAN of a
    w_hpf > 0 model either way (`face.model_files`)."""
    from pathlib import Path

    import tensorflow as tf

    from stargan_keras.core.layers import torch_named_variables
    from stargan_keras.core.model_dir import is_model_directory, load_weight_files, no_weights_error, weights_file
    from stargan_keras.core.run_dir import RunDir, trackable
    from stargan_keras.face.model_files import face_network

    path = Path(path)
    forms = config.train.conv_forms
    if is_model_directory(path):
        networks = build_networks(config.model, with_discriminator=(path / weights_file("discriminator")).exists(),
                                  conv_forms=forms)
        load_weight_files(path, networks)
    else:
        run = RunDir(path)
        networks = build_networks(config.model, with_discriminator=False, name_prefix="ema_", conv_forms=forms)
        discriminator = build_networks(config.model, with_discriminator=True, conv_forms=forms).discriminator
        restore_graph = tf.train.Checkpoint(
            networks=tf.train.Checkpoint(discriminator=torch_named_variables(discriminator)),
            ema_networks=trackable(networks))
        if run.restore_latest(restore_graph, partial=True) is None:
            raise no_weights_error(run)
        networks.discriminator = discriminator
    networks.fan = face_network(config, path)
    return networks


def open_directory(path):
    """(config, networks) of a StarGAN v2 run or model directory."""
    from stargan_keras.core.model_dir import config_file
    from stargan_keras.v2.config import Config

    config = Config.read(config_file(path))
    return config, load_networks(path, config)
