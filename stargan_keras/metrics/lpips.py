"""LPIPS (Zhang et al. 2018) as the StarGAN v2 evaluation computes it, in Keras NHWC.

AlexNet's five ReLU feature maps of both images (torchvision's `alexnet().features`), each
unit-normalised over channels; the squared difference goes through a learned 1x1 conv
(one output, no bias), is averaged over space and summed over the five layers. Inputs are
[-1, 1] images, shifted and scaled by the constants of the upstream metric.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
from keras import ops

from stargan_keras.core.torch_io import StateDictError, load_torch_state_dict, take, to_keras_layout, torch_shape
from stargan_keras.core.safe_files import check_weights_file

ALEXNET_URL = "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"
# ImageNet mean/std expressed for [-1, 1] inputs (upstream metrics/lpips.py).
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
# torchvision alexnet().features convs: (module index, filters, kernel, stride, padding);
# a 3x3/2 max pool follows the first two.
ALEXNET_CONVS = ((0, 64, 11, 4, 2), (3, 192, 5, 1, 2), (6, 384, 3, 1, 1),
                 (8, 256, 3, 1, 1), (10, 256, 3, 1, 1))
EPSILON = 1e-10
CONVERT_HINT = ("convert it with python -m stargan_keras.metrics.convert_weights "
                "--lpips-linear lpips_weights.ckpt --alexnet alexnet-owt-7be5be79.pth "
                "--output lpips.weights.h5 (AlexNet from " + ALEXNET_URL + ", the linear "
                "weights from the StarGAN v2 release's metrics/lpips_weights.ckpt)")


def min_image_size() -> int:
    """The smallest square input whose feature maps are all non-empty (a smaller one fails in a pooling)."""
    return next(size for size in range(1, 1024) if min(_stage_sizes(size)) >= 1)


def _stage_sizes(size: int) -> list[int]:
    """The spatial size after each pooling and each convolution of the trunk."""
    sizes = []
    for index, _, kernel, stride, padding in ALEXNET_CONVS:
        if index in (3, 6):
            size = (size - 3) // 2 + 1
            sizes.append(size)
        size = (size + 2 * padding - kernel) // stride + 1
        sizes.append(size)
    return sizes


def alexnet_features() -> keras.Model:
    """torchvision AlexNet's feature trunk: NHWC images -> its five ReLU outputs."""
    x = inputs = keras.Input((None, None, 3), name="images")
    outputs = []
    for index, filters, kernel, stride, padding in ALEXNET_CONVS:
        if index in (3, 6):
            x = keras.layers.MaxPooling2D(3, 2, name=f"features.{index - 1}")(x)
        x = keras.layers.ZeroPadding2D(padding, name=f"features.{index}.pad")(x)
        x = keras.layers.Conv2D(filters, kernel, stride, name=f"features.{index}")(x)
        x = keras.layers.ReLU(name=f"features.{index + 1}")(x)
        outputs.append(x)
    return keras.Model(inputs, outputs, name="alexnet_features")


def _unit_normalize(x):
    return x * ops.rsqrt(ops.sum(ops.square(x), axis=-1, keepdims=True) + EPSILON)


class LPIPS(keras.Model):
    """`lpips(x, y)` -> per-image distance [N] between two batches of [-1, 1] images.

    The upstream code returns the mean over the batch; the per-image values average to it.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.alexnet = alexnet_features()
        self.linear = []
        for position, (_, filters, *_) in enumerate(ALEXNET_CONVS):
            layer = keras.layers.Conv2D(1, 1, use_bias=False, name=f"lpips_weights.{position}")
            layer.build((None, None, None, filters))
            self.linear.append(layer)
        self.built = True

    def call(self, x, y):
        return self.distance(self.features(x), self.features(y))

    def features(self, images) -> list:
        """The five channel-normalised AlexNet maps of [-1, 1] images (reusable across pairs)."""
        shift = ops.convert_to_tensor(SHIFT, "float32")
        scale = ops.convert_to_tensor(SCALE, "float32")
        maps = self.alexnet((ops.cast(images, "float32") - shift) / scale)
        return [_unit_normalize(feature_map) for feature_map in maps]

    def distance(self, x_features: list, y_features: list):
        """Per-image LPIPS [N] between two outputs of `features`."""
        total = 0.0
        for x_map, y_map, linear in zip(x_features, y_features, self.linear):
            total = total + ops.mean(linear(ops.square(x_map - y_map)), axis=(1, 2, 3))
        return total

    @classmethod
    def from_weights(cls, path: str | Path) -> "LPIPS":
        """LPIPS with the weights of a `.weights.h5` file written by `convert_weights`."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"LPIPS weights {path} not found: {CONVERT_HINT}, "
                                    "then pass --lpips-weights PATH.")
        model = cls()
        check_weights_file(path, model, "--lpips-weights")
        model.load_weights(path)
        return model

    @classmethod
    def from_state_dicts(cls, alexnet: dict[str, np.ndarray], linear: dict[str, np.ndarray],
                         alexnet_source: str = "AlexNet state dict",
                         linear_source: str = "LPIPS state dict") -> "LPIPS":
        """LPIPS from torchvision AlexNet and LPIPS linear-layer state dicts (numpy arrays).

        Linear keys may follow the StarGAN v2 release (`lpips_weights.{i}.main.1.weight`)
        or the original LPIPS package (`lin{i}.model.1.weight`).
        """
        model = cls()
        for index, filters, *_ in ALEXNET_CONVS:
            layer = model.alexnet.get_layer(f"features.{index}")
            weight = take(alexnet, f"features.{index}.weight", torch_shape(layer.kernel.shape), alexnet_source)
            bias = take(alexnet, f"features.{index}.bias", (filters,), alexnet_source)
            layer.set_weights([to_keras_layout(weight), bias])
        for position, layer in enumerate(model.linear):
            shape = torch_shape(layer.kernel.shape)
            keys = (f"lpips_weights.{position}.main.1.weight", f"lin{position}.model.1.weight")
            key = next((key for key in keys if key in linear), None)
            if key is None:
                raise StateDictError(f"{linear_source}: neither '{keys[0]}' nor '{keys[1]}' is "
                                     "there; is this the LPIPS linear weights file?")
            layer.set_weights([to_keras_layout(take(linear, key, shape, linear_source))])
        return model

    @classmethod
    def from_torch_files(cls, alexnet_path: str | Path, linear_path: str | Path) -> "LPIPS":
        """LPIPS from torchvision's AlexNet file and the LPIPS linear weights file (needs torch)."""
        return cls.from_state_dicts(load_torch_state_dict(alexnet_path),
                                    load_torch_state_dict(linear_path),
                                    str(alexnet_path), str(linear_path))


def mean_pairwise_lpips(lpips: LPIPS, outputs) -> np.ndarray:
    """The evaluation's diversity score: for K outputs [K, N, H, W, 3] of N sources, the mean
    LPIPS over the K(K-1)/2 pairs of each source's outputs, per source [N]."""
    count = len(outputs)
    if count < 2:
        raise ValueError(f"mean pairwise LPIPS needs at least 2 outputs per source; got {count}.")
    features = [lpips.features(output) for output in outputs]
    pairs = [ops.convert_to_numpy(lpips.distance(features[i], features[j]))
             for i in range(count - 1) for j in range(i + 1, count)]
    return np.mean(pairs, axis=0)
