"""Fréchet Inception Distance: InceptionV3 pool features and the Fréchet distance of Gaussians.

Two feature networks are offered. `torchvision` (the default) is the network the StarGAN v2
authors used (see `inception.py`); only its numbers are comparable with the paper's.
`keras` is `keras.applications.InceptionV3` with its ImageNet weights.

Two ways to bring images to the network's 299 px, as in the authors' `metrics/fid.py`:
`pil` (the default for torchvision) follows their pipeline: generated [-1, 1] images are
clamped and quantized to uint8 like their `save_image` (`imaging.to_uint8`), then resized by
PIL's bilinear filter from uint8 as their `get_eval_loader` does; `tf` (the default for
keras) resizes the float images in the graph (antialiased bilinear) without quantizing.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
from scipy import linalg

from stargan_keras.core.errors import UserError
from stargan_keras.core.imaging import as_uint8, from_uint8, load_uint8, resize_uint8

INCEPTION_SIZE = 299
FEATURE_DIM = 2048
KERAS_INCEPTION_FILE = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
KERAS_INCEPTION_URL = ("https://storage.googleapis.com/tensorflow/keras-applications/"
                       f"inception_v3/{KERAS_INCEPTION_FILE}")
KERAS_INCEPTION_HASH = "bcbd6486424b2319ff4ef7d526e38f63"
# TensorFlow and Keras load lazily: the commands' --help and argument errors stay fast.
INCEPTION_CHOICES = ("torchvision", "keras")
RESIZE_CHOICES = ("pil", "tf")
DEFAULT_RESIZE = {"torchvision": "pil", "keras": "tf"}
TORCH_INSTALL = "pip install torch==2.13.0"
AUTHORS_IMG_SIZE = 256  # the authors' `metrics/fid.py --img_size` default


class FidError(UserError, ValueError):
    """FID settings or image folders that cannot work; the message names the flag or folder."""


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
    import keras

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
    """torchvision's InceptionV3 trunk; "imagenet" means the torchvision file, downloaded and cached.

    The torchvision file is a PyTorch state dict: reading it needs torch, unless it was
    converted once to `.weights.h5` (`python -m stargan_keras.metrics.convert_weights`).
    """
    import keras

    from stargan_keras.metrics import inception as tv_inception

    url = tv_inception.TORCHVISION_INCEPTION_URL
    fixes = (f"pass --inception-weights PATH (the .pth file from {url}, or its .weights.h5 conversion by "
             "python -m stargan_keras.metrics.convert_weights --torchvision-inception), or use --inception keras")
    if weights not in ("imagenet", None) and not Path(weights).is_file():
        raise FileNotFoundError(f"--inception-weights {weights}: no such file; {fixes}.")
    needs_torch = weights == "imagenet" or (weights is not None and not str(weights).endswith(".weights.h5"))
    if needs_torch and importlib.util.find_spec("torch") is None:
        raise InceptionWeightsError(f"the torchvision InceptionV3 weights (the paper's FID network) are a PyTorch "
                                    f"file and PyTorch is not installed: {TORCH_INSTALL}, {fixes}.")
    if weights == "imagenet":
        try:
            weights = keras.utils.get_file(url.rsplit("/", 1)[-1], url, cache_subdir="models")
        except Exception as error:
            raise InceptionWeightsError(f"Could not download the torchvision InceptionV3 weights ({error}); "
                                        f"{fixes}.") from error
    return tv_inception.torchvision_inception_v3(weights)


class FidFeatureExtractor:
    """Images (uint8, or floats in [-1, 1]; any size) -> 2048-d InceptionV3 pool features.

    `inception`: "torchvision" (the paper's network) or "keras"; `weights`: "imagenet"
    (download and cache the published weights), None (random, for tests) or a local file.
    `resize`: "pil" (the authors' uint8 pipeline) or "tf" (float, in the graph); default
    `DEFAULT_RESIZE[inception]`. The network then gets what it expects: ImageNet mean/std of
    [0, 1] images for torchvision, [-1, 1] for Keras.
    """

    def __init__(self, inception: str = "torchvision", weights="imagenet", batch_size: int = 50,
                 resize: str | None = None):
        if inception not in INCEPTION_CHOICES:
            raise ValueError(f"--inception {inception}: choose one of {', '.join(INCEPTION_CHOICES)}.")
        resize = DEFAULT_RESIZE[inception] if resize is None else resize
        if resize not in RESIZE_CHOICES:
            raise ValueError(f"--fid-resize {resize}: choose one of {', '.join(RESIZE_CHOICES)}.")
        import tensorflow as tf

        self.inception, self.resize, self.batch_size = inception, resize, batch_size
        self.model = (_keras_inception if inception == "keras" else _torchvision_inception)(weights)
        spec = (tf.TensorSpec([None, INCEPTION_SIZE, INCEPTION_SIZE, 3], tf.uint8) if resize == "pil"
                else tf.TensorSpec([None, None, None, 3], tf.float32))  # one trace for every batch
        self._features = tf.function(lambda x: self.model(self._network_input(x), training=False),
                                     input_signature=[spec])

    def host_preprocess(self, images) -> np.ndarray:
        """The step outside the graph: for `pil`, uint8 quantization (`imaging.to_uint8`) and PIL's bilinear
        resize to 299 px (uint8 [N, 299, 299, 3]); for `tf`, float32 images in [-1, 1]."""
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"FID expects RGB images [N, H, W, 3]; got shape {images.shape}.")
        if self.resize == "pil":
            return resize_uint8(as_uint8(images), INCEPTION_SIZE)
        return from_uint8(images) if images.dtype == np.uint8 else images.astype(np.float32, copy=False)

    def _network_input(self, x) -> tf.Tensor:
        """The graph part: [0, 1] images (uint8 / 255, or [-1, 1] floats shifted), `tf` resize, normalisation."""
        import tensorflow as tf

        from stargan_keras.metrics import inception as tv_inception

        x = tf.cast(x, tf.float32) / 255.0 if x.dtype == tf.uint8 else (tf.cast(x, tf.float32) + 1.0) / 2.0
        if self.resize == "tf":
            x = tf.image.resize(x, (INCEPTION_SIZE, INCEPTION_SIZE), method="bilinear", antialias=True)
        if self.inception == "torchvision":
            mean = tf.constant(tv_inception.IMAGENET_MEAN, tf.float32)
            std = tf.constant(tv_inception.IMAGENET_STD, tf.float32)
            return (x - mean) / std
        return x * 2.0 - 1.0

    def preprocess(self, images) -> tf.Tensor:
        """The network's input for `images`: [N, 299, 299, 3] float32 in its expected range."""
        import tensorflow as tf

        return self._network_input(tf.convert_to_tensor(self.host_preprocess(images)))

    def __call__(self, images) -> np.ndarray:
        """Features [N, 2048] (float32) of an image array, computed `batch_size` at a time."""
        images = np.asarray(images)
        batches = [self._features(self.host_preprocess(images[i:i + self.batch_size])).numpy()
                   for i in range(0, len(images), self.batch_size)]
        return np.concatenate(batches) if batches else np.zeros((0, FEATURE_DIM), np.float32)

    def features(self, batches: Iterable, total: int | None = None, progress: bool = True) -> np.ndarray:
        """Features [N, 2048] of an iterable of image batches; the progress bar counts `total` images."""
        import keras

        bar = keras.utils.Progbar(total, unit_name="image") if progress else None
        features, seen = [], 0
        for batch in batches:
            features.append(self(batch))
            seen += len(features[-1])
            if bar is not None:
                bar.update(seen)
        return np.concatenate(features) if features else np.zeros((0, FEATURE_DIM), np.float32)

    def statistics(self, batches: Iterable, total: int | None = None,
                   progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Mean and covariance of the features of an iterable of image batches (e.g. a tf.data set)."""
        return feature_statistics(self.features(batches, total, progress))


def add_inception_arguments(parser) -> None:
    """The FID network flags shared by `evaluate` and `fid`."""
    parser.add_argument("--inception", nargs="+", default=[INCEPTION_CHOICES[0]], metavar=("KIND", "PATH"),
                        help="FID network: torchvision (default: the network behind the paper's numbers; "
                             "its PyTorch weights are downloaded and need torch, or give their .weights.h5 "
                             "conversion) or keras "
                             "(keras.applications ImageNet weights), optionally followed by its weights file")
    parser.add_argument("--inception-weights", type=Path, default=None,
                        help="local weights file for --inception (default: download and cache)")
    parser.add_argument("--fid-resize", choices=RESIZE_CHOICES, default=None,
                        help="how images reach 299 px: pil = the authors' pipeline (uint8 quantization, PIL "
                             "bilinear; default for torchvision), tf = float images resized in the graph "
                             "(default for keras)")


def inception_from_args(args, untrained: bool = False) -> dict:
    """FidFeatureExtractor keyword arguments (inception, weights, resize) from the flags above.

    `untrained`: random weights (tests and dry runs).
    """
    kind, *rest = args.inception
    if kind not in INCEPTION_CHOICES or len(rest) > 1:
        raise FidError(f"--inception {' '.join(args.inception)}: expected KIND [PATH] with KIND one of "
                       f"{', '.join(INCEPTION_CHOICES)}.")
    if rest and args.inception_weights is not None:
        raise FidError("give the Inception weights once: --inception KIND PATH or --inception-weights PATH.")
    weights = Path(rest[0]) if rest else args.inception_weights
    if untrained:
        weights = None
    elif weights is None:
        weights = "imagenet"
    return {"inception": kind, "weights": weights, "resize": args.fid_resize or DEFAULT_RESIZE[kind]}


def folder_image_files(folder) -> list[Path]:
    """The image files under `folder` (recursively, like the authors' `listdir`); at least 2, for a covariance."""
    from stargan_keras.data.folders import IMAGE_EXTENSIONS, image_files

    folder = Path(folder)
    if not folder.is_dir():
        raise FidError(f"--paths {folder}: no such folder.")
    files = image_files(folder)
    if len(files) < 2:
        raise FidError(f"--paths {folder}: FID needs at least 2 images, found {len(files)} "
                       f"{'/'.join(IMAGE_EXTENSIONS)} files.")
    return files


def read_uint8_batches(files: list[Path], img_size: int, batch_size: int) -> Iterator[np.ndarray]:
    """uint8 batches [n, img_size, img_size, 3] of image files, read like the authors' eval loader."""
    for start in range(0, len(files), batch_size):
        yield np.stack([load_uint8(path, img_size) for path in files[start:start + batch_size]])


def fid_of_folders(extractor: FidFeatureExtractor, folders, img_size: int = AUTHORS_IMG_SIZE,
                   progress: bool = True) -> float:
    """The FID between the images of two folders, each image resized to img_size first (the authors'
    `calculate_fid_given_paths`)."""
    file_lists = [folder_image_files(folder) for folder in folders]  # both checked before any work
    features = []
    for folder, files in zip(folders, file_lists):
        if progress:
            print(f"FID features of the {len(files)} images of {folder}", flush=True)
        batches = read_uint8_batches(files, img_size, extractor.batch_size)
        features.append(extractor.features(batches, len(files), progress))
    return fid_from_features(*features)
