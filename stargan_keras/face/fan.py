"""The face-landmark network (FAN) behind StarGAN v2's CelebA-HQ masks, in Keras (NHWC), from `wing.ckpt`.

With `w_hpf > 0` the StarGAN v2 authors (Choi et al., CVPR 2020; clovaai/stargan-v2
`core/wing.py`, adapted there from AdaptiveWingLoss, Wang et al., ICCV 2019) run a frozen
98-landmark FAN on each face G translates. This is that network: CoordConv (with the radius
channel), ConvBlocks, one depth-4 hourglass, BatchNorm with its running statistics (torch's
eps 1e-5). Layer names are the torch module names, so `wing.ckpt` converts key by key.
It stays float32 under any dtype policy: the masks cut its heatmaps at 0.1.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from stargan_keras.core.layers import upsample_2x
from stargan_keras.core.torch_io import (StateDictError, assign_state_dict, is_tensor, load_torch_file,
                                    state_dict_mismatches)
from stargan_keras.core.safe_files import check_weights_file

INPUT_SIZE = 256  # the authors' CoordConv maps are built for 256 x 256 inputs
HEATMAP_SIZE = 64
NUM_LANDMARKS = 98  # plus one boundary channel in the network's output
BN_EPSILON = 1e-5  # torch.nn.BatchNorm2d's default
HOURGLASS_DEPTH = 4
# Published with dl=0 in the authors' download.sh (`bash download.sh wing`); dl=1 serves the file itself.
WING_URL = "https://www.dropbox.com/s/tjxpypwpt38926e/wing.ckpt?dl=1"
WING_HINT = f"Use the authors' wing.ckpt: {WING_URL} (their download.sh `wing`)."
KERAS_WEIGHTS_SUFFIX = ".weights.h5"
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
MAX_LISTED = 5
_FLOAT32 = "float32"


class FanCheckpointError(StateDictError):
    """A FAN weights file that cannot be read or does not fit the network; the message names keys and shapes."""


@keras.saving.register_keras_serializable("stargan_keras")
class AddCoords(keras.layers.Layer):
    """Appends the authors' coordinate maps: row and column in [-1, 1], then the radius scaled to max 1."""

    def call(self, x):
        height, width = x.shape[1], x.shape[2]
        rows, cols = np.meshgrid(np.arange(height) / (height - 1) * 2 - 1, np.arange(width) / (width - 1) * 2 - 1,
                                 indexing="ij")
        radius = np.sqrt(rows ** 2 + cols ** 2)
        coords = np.stack([rows, cols, radius / radius.max()], -1)[None].astype(np.float32)
        coords = tf.broadcast_to(tf.constant(coords), [tf.shape(x)[0], height, width, 3])
        return tf.concat([x, coords], -1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] + 3)


@keras.saving.register_keras_serializable("stargan_keras")
class Upsample2x(keras.layers.Layer):
    """Nearest 2x upsampling (the hourglass' F.interpolate(scale_factor=2))."""

    def call(self, x):
        return upsample_2x(x)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 2 * input_shape[1], 2 * input_shape[2], input_shape[3])


def _conv(x, filters: int, kernel: int, name: str, use_bias: bool = True, strides: int = 1):
    padding = "same" if strides == 1 else "valid"
    return keras.layers.Conv2D(filters, kernel, strides, padding, use_bias=use_bias, name=name, dtype=_FLOAT32)(x)


def _bn_relu(x, name: str):
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=name, dtype=_FLOAT32)(x)
    return keras.layers.ReLU(dtype=_FLOAT32)(x)


def _avg_pool(x):
    return keras.layers.AveragePooling2D(2, dtype=_FLOAT32)(x)


def _add(a, b):
    return keras.layers.Add(dtype=_FLOAT32)([a, b])


def conv_block(x, name: str, filters: int):
    """Three BN-ReLU-conv3x3 steps of widths out/2, out/4, out/4, concatenated, plus the (projected) input."""
    a = _conv(_bn_relu(x, f"{name}.bn1"), filters // 2, 3, f"{name}.conv1", use_bias=False)
    b = _conv(_bn_relu(a, f"{name}.bn2"), filters // 4, 3, f"{name}.conv2", use_bias=False)
    c = _conv(_bn_relu(b, f"{name}.bn3"), filters // 4, 3, f"{name}.conv3", use_bias=False)
    residual = x
    if x.shape[-1] != filters:
        residual = _conv(_bn_relu(x, f"{name}.downsample.0"), filters, 1, f"{name}.downsample.2", use_bias=False)
    return _add(keras.layers.Concatenate(dtype=_FLOAT32)([a, b, c]), residual)


def hourglass(x, name: str, level: int):
    """up = b1(x); low = b2(pool(x)) -> next level (b2_plus_1 at the bottom) -> b3; up + upsample(low)."""
    width = x.shape[-1]
    up = conv_block(x, f"{name}.b1_{level}", width)
    low = conv_block(_avg_pool(x), f"{name}.b2_{level}", width)
    low = hourglass(low, name, level - 1) if level > 1 else conv_block(low, f"{name}.b2_plus_{level}", width)
    low = conv_block(low, f"{name}.b3_{level}", width)
    return _add(up, Upsample2x(dtype=_FLOAT32)(low))


def build_fan() -> keras.Model:
    """The FAN with random weights, frozen: [N,256,256,3] in [0,1] -> [N,64,64,99] (98 heatmaps + boundary)."""
    inputs = keras.Input((INPUT_SIZE, INPUT_SIZE, 3), name="images_01", dtype=_FLOAT32)
    x = AddCoords(name="conv1.addcoords", dtype=_FLOAT32)(inputs)
    x = keras.layers.ZeroPadding2D(3, dtype=_FLOAT32)(x)
    x = _conv(x, 64, 7, "conv1.conv", strides=2)
    x = _bn_relu(x, "bn1")
    x = _avg_pool(conv_block(x, "conv2", 128))
    x = conv_block(conv_block(x, "conv3", 128), "conv4", 256)
    x = AddCoords(name="m0.coordconv.addcoords", dtype=_FLOAT32)(x)
    x = hourglass(_conv(x, 256, 1, "m0.coordconv.conv"), "m0", HOURGLASS_DEPTH)
    x = conv_block(x, "top_m_0", 256)
    x = _bn_relu(_conv(x, 256, 1, "conv_last0"), "bn_end0")
    outputs = _conv(x, NUM_LANDMARKS + 1, 1, "l0")
    fan = keras.Model(inputs, outputs, name="fan")
    fan.trainable = False
    return fan


def fan_variables(fan: keras.Model) -> dict[str, keras.Variable]:
    """Every variable of the FAN under its `wing.ckpt` key (BatchNorm running statistics included)."""
    named = {}
    for layer in fan.layers:
        if isinstance(layer, keras.layers.Conv2D):
            named[f"{layer.name}.weight"] = layer.kernel
            if layer.use_bias:
                named[f"{layer.name}.bias"] = layer.bias
        elif isinstance(layer, keras.layers.BatchNormalization):
            named.update({f"{layer.name}.weight": layer.gamma, f"{layer.name}.bias": layer.beta,
                          f"{layer.name}.running_mean": layer.moving_mean,
                          f"{layer.name}.running_var": layer.moving_variance})
    return named


def _fan_state(contents, path: Path) -> dict[str, np.ndarray]:
    """The FAN's float tensors from wing.ckpt's `state_dict`, or a `*_nets_ema.ckpt`'s `fan` entry."""
    state = None
    if isinstance(contents, dict):
        for entry in ("state_dict", "fan"):
            if isinstance(contents.get(entry), dict):
                state = contents[entry]
                break
        else:
            if contents and all(is_tensor(value) for value in contents.values()):
                state = contents
    if state is None:
        found = ", ".join(map(str, contents)) if isinstance(contents, dict) else type(contents).__name__
        raise FanCheckpointError(f"{path} has neither a 'state_dict' nor a 'fan' entry (it has: {found or 'nothing'})"
                                 f". {WING_HINT}")
    prefix = "module."  # nn.DataParallel's, in checkpoints saved from a wrapped network
    return {(key[len(prefix):] if key.startswith(prefix) else key): value
            for key, value in state.items() if is_tensor(value) and value.is_floating_point()}


def _listed(items: list[str]) -> str:
    more = f"; ... and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else ""
    return "; ".join(items[:MAX_LISTED]) + more


def load_fan_checkpoint(path: str | Path) -> keras.Model:
    """The frozen Keras FAN with the weights of the authors' `wing.ckpt` (or a checkpoint's `fan` entry).

    Read safely (weights only). Keys the FAN does not use are ignored, as the authors' loader
    does; a missing or mis-shaped tensor is an error naming them, and the unused keys as hints.
    """
    path = Path(path)
    state = _fan_state(load_torch_file(path, error=FanCheckpointError, hint=WING_HINT), path)
    fan = build_fan()
    variables = fan_variables(fan)
    problems = state_dict_mismatches("FAN", variables, {k: v for k, v in state.items() if k in variables})
    if problems:
        unexpected = [f"{key} {tuple(value.shape)}" for key, value in state.items() if key not in variables]
        hint = f" Keys the FAN does not use: {_listed(unexpected)}." if unexpected else ""
        raise FanCheckpointError(f"{path} does not fit the FAN of clovaai/stargan-v2 core/wing.py: "
                                 f"{len(problems)} tensors missing or mis-shaped: {_listed(problems)}.{hint} "
                                 f"{WING_HINT}")
    assign_state_dict(variables, state)
    return fan


def save_fan(fan: keras.Model, path: str | Path) -> Path:
    """Write the FAN's weights (running statistics included) as Keras `.weights.h5`."""
    path = Path(path)
    if not path.name.endswith(KERAS_WEIGHTS_SUFFIX):
        raise FanCheckpointError(f"{path}: a converted FAN is saved as a {KERAS_WEIGHTS_SUFFIX} file.")
    path.parent.mkdir(parents=True, exist_ok=True)
    fan.save_weights(str(path))
    return path


def load_fan(path: str | Path) -> keras.Model:
    """The frozen FAN from a `.weights.h5` file written by `save_fan`."""
    path = Path(path)
    if not path.is_file():
        raise FanCheckpointError(f"{path} does not exist (or is not a file): expected a FAN saved by save_fan.")
    with open(path, "rb") as f:
        if f.read(len(HDF5_SIGNATURE)) != HDF5_SIGNATURE:
            raise FanCheckpointError(f"{path} is not a converted FAN (not an HDF5 file): expected a FAN saved by "
                                     "save_fan.")
    fan = build_fan()
    try:
        check_weights_file(path, fan, "FAN file")
        fan.load_weights(str(path))
    except (ValueError, OSError, KeyError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise FanCheckpointError(f"{path} is not a converted FAN ({type(err).__name__}: {first}).") from None
    return fan


def fan_from_file(path: str | Path) -> keras.Model:
    """`load_fan` for `.weights.h5` files, else `load_fan_checkpoint` (the authors' PyTorch files)."""
    return load_fan(path) if str(path).endswith(KERAS_WEIGHTS_SUFFIX) else load_fan_checkpoint(path)
