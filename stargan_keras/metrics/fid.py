"""Fréchet Inception Distance: InceptionV3 pool features and the Fréchet distance of Gaussians.

Two feature networks are offered. `keras` is `keras.applications.InceptionV3` with its
ImageNet weights (the common choice; Keras downloads and caches them). `torchvision` is
the network the StarGAN v2 authors used (see `inception.py`); only its numbers are
comparable with the paper's.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Iterable

import keras
import numpy as np
import tensorflow as tf
from scipy import linalg

from stargan_keras.imaging import from_uint8_tensor
from stargan_keras.errors import UserError
from stargan_keras.metrics import inception as tv_inception

INCEPTION_SIZE = 299
FEATURE_DIM = 2048
KERAS_INCEPTION_FILE = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
KERAS_INCEPTION_URL = ("https://storage.googleapis.com/tensorflow/keras-applications/"
                       f"inception_v3/{KERAS_INCEPTION_FILE}")
KERAS_INCEPTION_HASH = "bcbd6486424b2319ff4ef7d526e38f63"
INCEPTION_CHOICES = ("keras", "torchvision")


class InceptionWeightsError(UserError, RuntimeError):
    """Inception weights that are neither cached nor downloadable; the message says what to provide."""


def feature_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased) covariance of feature rows [N, D], in float64."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"FID needs at least 2 feature rows [N, D]; got shape {features.shape}.")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6,
                     imaginary_tolerance: float = 1e-3) -> float:
    """||mu1 - mu2||² + tr(S1 + S2 - 2 (S1 S2)^½), computed in float64.

    (S1 S2)^½ may come out complex from rounding; imaginary parts on its diagonal up to
    `imaginary_tolerance` are dropped, larger ones are an error. When the product is
    singular and the square root is not finite, `eps`·I is added to both covariances.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise ValueError(f"FID statistics do not match: means {mu1.shape} and {mu2.shape}, "
                         f"covariances {sigma1.shape} and {sigma2.shape}.")
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        warnings.warn(f"FID: the covariance product is singular; adding {eps} to the diagonals.")
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        largest = np.max(np.abs(np.diagonal(covmean).imag))
        if largest > imaginary_tolerance:
            raise ValueError(f"FID: the covariance product's square root has an imaginary "
                             f"component of {largest:.3g}; the statistics are not valid covariances.")
        covmean = covmean.real
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def fid_from_features(real, fake) -> float:
    """FID of two feature sets [N, D], in float64.

    The trace term tr((S1 S2)^½) equals the nuclear norm of A^T B / sqrt((n1-1)(n2-1)), A and B
    the centred features: exact, and far cheaper than a D x D matrix square root when one
    set has fewer images than dimensions (then both covariances are singular anyway).
    With more images than dimensions in both sets, `frechet_distance` (scipy's sqrtm) is used.
    """
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    if min(len(real), len(fake)) < 2:
        raise ValueError(f"FID needs at least 2 images per set; got {len(real)} real and {len(fake)} generated.")
    if min(len(real), len(fake)) > real.shape[1]:
        return frechet_distance(*feature_statistics(real), *feature_statistics(fake))
    a, b = real - real.mean(axis=0), fake - fake.mean(axis=0)
    scale1, scale2 = len(real) - 1, len(fake) - 1
    trace_sqrt = np.linalg.svd(a @ b.T, compute_uv=False).sum() / np.sqrt(scale1 * scale2)
    diff = real.mean(axis=0) - fake.mean(axis=0)
    return float(diff @ diff + np.sum(a * a) / scale1 + np.sum(b * b) / scale2 - 2.0 * trace_sqrt)


def _keras_inception(weights) -> keras.Model:
    """keras.applications.InceptionV3 trunk; `weights` "imagenet" (cached download), None or a file."""
    if weights == "imagenet":
        try:
            weights = keras.utils.get_file(KERAS_INCEPTION_FILE, KERAS_INCEPTION_URL,
                                           cache_subdir="models", file_hash=KERAS_INCEPTION_HASH)
        except Exception as error:
            raise InceptionWeightsError(
                f"Could not download the Keras InceptionV3 weights ({error}). Download "
                f"{KERAS_INCEPTION_URL} elsewhere and pass --inception-weights PATH, or put it "
                f"in ~/.keras/models/{KERAS_INCEPTION_FILE}.") from error
    elif weights is not None and not Path(weights).is_file():
        raise FileNotFoundError(f"--inception-weights {weights}: no such file; download "
                                f"{KERAS_INCEPTION_URL} and pass its path.")
    return keras.applications.InceptionV3(include_top=False, weights=weights, pooling="avg",
                                          input_shape=(INCEPTION_SIZE, INCEPTION_SIZE, 3))


def _torchvision_inception(weights) -> keras.Model:
    """torchvision's InceptionV3 trunk; "imagenet" means the torchvision file, downloaded and cached."""
    if weights == "imagenet":
        url = tv_inception.TORCHVISION_INCEPTION_URL
        try:
            weights = keras.utils.get_file(url.rsplit("/", 1)[-1], url, cache_subdir="models")
        except Exception as error:
            raise InceptionWeightsError(
                f"Could not download the torchvision InceptionV3 weights ({error}). Download "
                f"{url} elsewhere and pass --inception torchvision PATH (the .pth file, or its "
                f"conversion by python -m stargan_keras.metrics.convert_weights).") from error
    return tv_inception.torchvision_inception_v3(weights)


class FidFeatureExtractor:
    """Images in [-1, 1] (any size; uint8 accepted) -> 2048-d InceptionV3 pool features.

    `inception`: "keras" or "torchvision"; `weights`: "imagenet" (download and cache the
    published weights), None (random, for tests) or a local file. Images are resized
    bilinearly (antialiased when shrinking, like PIL) to 299 px and mapped to what the
    network expects: [-1, 1] for Keras, ImageNet mean/std of [0, 1] for torchvision.
    """

    def __init__(self, inception: str = "keras", weights="imagenet", batch_size: int = 50):
        if inception not in INCEPTION_CHOICES:
            raise ValueError(f"--inception {inception}: choose one of {', '.join(INCEPTION_CHOICES)}.")
        self.inception = inception
        self.batch_size = batch_size
        self.model = (_keras_inception if inception == "keras" else _torchvision_inception)(weights)
        self._features = tf.function(lambda x: self.model(self.preprocess(x), training=False),
                                     reduce_retracing=True)

    def preprocess(self, images) -> tf.Tensor:
        """The network's input for `images`: [N, 299, 299, 3] float32 in its expected range."""
        x = tf.convert_to_tensor(images)
        x = from_uint8_tensor(x) if x.dtype == tf.uint8 else tf.cast(x, tf.float32)
        if x.shape.rank != 4 or x.shape[-1] != 3:
            raise ValueError(f"FID expects RGB images [N, H, W, 3]; got shape {x.shape}.")
        x = tf.image.resize(x, (INCEPTION_SIZE, INCEPTION_SIZE), method="bilinear", antialias=True)
        if self.inception == "torchvision":
            mean = tf.constant(tv_inception.IMAGENET_MEAN, tf.float32)
            std = tf.constant(tv_inception.IMAGENET_STD, tf.float32)
            x = ((x + 1.0) / 2.0 - mean) / std
        return x

    def __call__(self, images) -> np.ndarray:
        """Features [N, 2048] (float32) of an image array, computed `batch_size` at a time."""
        images = np.asarray(images)
        batches = [self._features(images[i:i + self.batch_size]).numpy()
                   for i in range(0, len(images), self.batch_size)]
        return np.concatenate(batches) if batches else np.zeros((0, FEATURE_DIM), np.float32)

    def statistics(self, batches: Iterable, steps: int | None = None,
                   progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Mean and covariance of the features of an iterable of image batches (e.g. a tf.data set)."""
        bar = keras.utils.Progbar(steps, unit_name="batch") if progress else None
        features = []
        for index, batch in enumerate(batches, start=1):
            features.append(self(batch))
            if bar is not None:
                bar.update(index)
        return feature_statistics(np.concatenate(features) if features else np.zeros((0, FEATURE_DIM)))
