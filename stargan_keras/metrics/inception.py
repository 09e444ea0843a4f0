"""torchvision's InceptionV3 as a Keras model, for FID numbers comparable with the paper.

The StarGAN v2 authors compute FID on the 2048-d average-pooled features of torchvision's
`inception_v3(pretrained=True)`, calling its blocks directly (so without torchvision's
`transform_input`), on ImageNet mean/std normalised inputs. Those weights differ from
Keras' ImageNet InceptionV3, and so do the FIDs. This module rebuilds torchvision's layout
in NHWC with torch's module names as layer names, so a torchvision state dict converts key
by key.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from stargan_keras.core.torch_io import StateDictError, load_torch_state_dict, take, to_keras_layout, torch_shape
from stargan_keras.core.safe_files import check_weights_file

TORCHVISION_INCEPTION_URL = "https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth"
# torchvision ImageNet statistics, applied to [0, 1] images by the upstream eval loader.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# State dict entries the pooled features do not use.
_UNUSED_PREFIXES = ("AuxLogits.", "fc.")


def _pair(value):
    return value if isinstance(value, tuple) else (value, value)


def basic_conv(x, name: str, filters: int, kernel, strides=1, padding=0):
    """torchvision's BasicConv2d: conv without bias, BatchNorm (eps 1e-3, with scale), ReLU."""
    if padding:
        x = keras.layers.ZeroPadding2D(_pair(padding), name=f"{name}.pad")(x)
    x = keras.layers.Conv2D(filters, kernel, strides, use_bias=False, name=f"{name}.conv")(x)
    x = keras.layers.BatchNormalization(epsilon=1e-3, name=f"{name}.bn")(x)
    return keras.layers.ReLU(name=f"{name}.relu")(x)


def _avg_pool_3x3(x, name: str):
    """torch's avg_pool2d(3, stride 1, padding 1), which counts the zero padding."""
    x = keras.layers.ZeroPadding2D(1, name=f"{name}.pool_pad")(x)
    return keras.layers.AveragePooling2D(3, 1, name=f"{name}.pool")(x)


def _max_pool_3x3_s2(x, name: str):
    return keras.layers.MaxPooling2D(3, 2, name=name)(x)


def _concat(branches, name: str):
    return keras.layers.Concatenate(name=f"{name}.concat")(branches)


def inception_a(x, name: str, pool_features: int):
    b1 = basic_conv(x, f"{name}.branch1x1", 64, 1)
    b5 = basic_conv(x, f"{name}.branch5x5_1", 48, 1)
    b5 = basic_conv(b5, f"{name}.branch5x5_2", 64, 5, padding=2)
    b3 = basic_conv(x, f"{name}.branch3x3dbl_1", 64, 1)
    b3 = basic_conv(b3, f"{name}.branch3x3dbl_2", 96, 3, padding=1)
    b3 = basic_conv(b3, f"{name}.branch3x3dbl_3", 96, 3, padding=1)
    bp = basic_conv(_avg_pool_3x3(x, name), f"{name}.branch_pool", pool_features, 1)
    return _concat([b1, b5, b3, bp], name)


def inception_b(x, name: str):
    b3 = basic_conv(x, f"{name}.branch3x3", 384, 3, strides=2)
    bd = basic_conv(x, f"{name}.branch3x3dbl_1", 64, 1)
    bd = basic_conv(bd, f"{name}.branch3x3dbl_2", 96, 3, padding=1)
    bd = basic_conv(bd, f"{name}.branch3x3dbl_3", 96, 3, strides=2)
    bp = _max_pool_3x3_s2(x, f"{name}.pool")
    return _concat([b3, bd, bp], name)


def inception_c(x, name: str, c7: int):
    row, col = ((1, 7), (0, 3)), ((7, 1), (3, 0))  # (kernel, padding) of the factorised 7x7
    b1 = basic_conv(x, f"{name}.branch1x1", 192, 1)
    b7 = basic_conv(x, f"{name}.branch7x7_1", c7, 1)
    b7 = basic_conv(b7, f"{name}.branch7x7_2", c7, row[0], padding=row[1])
    b7 = basic_conv(b7, f"{name}.branch7x7_3", 192, col[0], padding=col[1])
    bd = basic_conv(x, f"{name}.branch7x7dbl_1", c7, 1)
    for index, (kernel, padding) in enumerate((col, row, col, row), start=2):
        filters = 192 if index == 5 else c7
        bd = basic_conv(bd, f"{name}.branch7x7dbl_{index}", filters, kernel, padding=padding)
    bp = basic_conv(_avg_pool_3x3(x, name), f"{name}.branch_pool", 192, 1)
    return _concat([b1, b7, bd, bp], name)


def inception_d(x, name: str):
    b3 = basic_conv(x, f"{name}.branch3x3_1", 192, 1)
    b3 = basic_conv(b3, f"{name}.branch3x3_2", 320, 3, strides=2)
    b7 = basic_conv(x, f"{name}.branch7x7x3_1", 192, 1)
    b7 = basic_conv(b7, f"{name}.branch7x7x3_2", 192, (1, 7), padding=(0, 3))
    b7 = basic_conv(b7, f"{name}.branch7x7x3_3", 192, (7, 1), padding=(3, 0))
    b7 = basic_conv(b7, f"{name}.branch7x7x3_4", 192, 3, strides=2)
    bp = _max_pool_3x3_s2(x, f"{name}.pool")
    return _concat([b3, b7, bp], name)


def _split_1x3_3x1(x, name: str):
    """InceptionE's fork: a 1x3 and a 3x1 conv side by side, concatenated."""
    a = basic_conv(x, f"{name}a", 384, (1, 3), padding=(0, 1))
    b = basic_conv(x, f"{name}b", 384, (3, 1), padding=(1, 0))
    return keras.layers.Concatenate(name=f"{name}.concat")([a, b])


def inception_e(x, name: str):
    b1 = basic_conv(x, f"{name}.branch1x1", 320, 1)
    b3 = basic_conv(x, f"{name}.branch3x3_1", 384, 1)
    b3 = _split_1x3_3x1(b3, f"{name}.branch3x3_2")
    bd = basic_conv(x, f"{name}.branch3x3dbl_1", 448, 1)
    bd = basic_conv(bd, f"{name}.branch3x3dbl_2", 384, 3, padding=1)
    bd = _split_1x3_3x1(bd, f"{name}.branch3x3dbl_3")
    bp = basic_conv(_avg_pool_3x3(x, name), f"{name}.branch_pool", 192, 1)
    return _concat([b1, b3, bd, bp], name)


def build_torchvision_inception_v3() -> keras.Model:
    """Randomly initialised torchvision Inception3 trunk: normalised NHWC images -> [N, 2048]."""
    inputs = keras.Input((None, None, 3), name="normalized_images")
    x = basic_conv(inputs, "Conv2d_1a_3x3", 32, 3, strides=2)
    x = basic_conv(x, "Conv2d_2a_3x3", 32, 3)
    x = basic_conv(x, "Conv2d_2b_3x3", 64, 3, padding=1)
    x = _max_pool_3x3_s2(x, "maxpool1")
    x = basic_conv(x, "Conv2d_3b_1x1", 80, 1)
    x = basic_conv(x, "Conv2d_4a_3x3", 192, 3)
    x = _max_pool_3x3_s2(x, "maxpool2")
    for name, pool_features in (("Mixed_5b", 32), ("Mixed_5c", 64), ("Mixed_5d", 64)):
        x = inception_a(x, name, pool_features)
    x = inception_b(x, "Mixed_6a")
    for name, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
        x = inception_c(x, name, c7)
    x = inception_d(x, "Mixed_7a")
    x = inception_e(x, "Mixed_7b")
    x = inception_e(x, "Mixed_7c")
    outputs = keras.layers.GlobalAveragePooling2D(name="avgpool")(x)
    return keras.Model(inputs, outputs, name="torchvision_inception_v3")


def load_torchvision_state_dict(model: keras.Model, state_dict: dict[str, np.ndarray],
                                source: str = "state dict") -> None:
    """Copy a torchvision Inception3 state dict (numpy arrays) into `model`'s layers.

    Every conv and BatchNorm of `model` must find its keys; keys other than the
    classifier's (`fc.`, `AuxLogits.`) that no layer uses are an error too, as they
    mean the file is not a torchvision InceptionV3.
    """
    used = set()
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            key = f"{layer.name}.weight"
            layer.set_weights([to_keras_layout(take(state_dict, key, torch_shape(layer.kernel.shape), source))])
            used.add(key)
        elif isinstance(layer, keras.layers.BatchNormalization):
            keys = [f"{layer.name}.{n}" for n in ("weight", "bias", "running_mean", "running_var")]
            shape = tuple(layer.gamma.shape)
            layer.set_weights([take(state_dict, key, shape, source) for key in keys])
            used.update(keys)
    unexpected = sorted(key for key in state_dict if key not in used
                        and not key.startswith(_UNUSED_PREFIXES)
                        and not key.endswith("num_batches_tracked"))
    if unexpected:
        raise StateDictError(f"{source}: {len(unexpected)} keys fit no layer of torchvision's "
                             f"InceptionV3, e.g. {unexpected[:3]}; is this the right file?")


def torchvision_inception_v3(weights: str | Path | None = None) -> keras.Model:
    """The torchvision InceptionV3 trunk with `weights`.

    `weights`: None (random), a torchvision state dict file (`.pth`, converted with torch),
    or a `.weights.h5` file written by `convert_weights --torchvision-inception`.
    """
    path = None if weights is None else Path(weights)
    if path is not None and not path.is_file():
        raise FileNotFoundError(
            f"torchvision InceptionV3 weights {path} not found: download "
            f"{TORCHVISION_INCEPTION_URL} and pass --inception-weights PATH, or use --inception keras.")
    model = build_torchvision_inception_v3()
    if path is None:
        return model
    if path.name.endswith(".weights.h5"):
        check_weights_file(path, model, "--inception-weights")
        model.load_weights(path)
    else:
        load_torchvision_state_dict(model, load_torch_state_dict(path), str(path))
    return model
