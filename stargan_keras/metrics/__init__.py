"""Evaluation metrics of the paper: FID on InceptionV3 features and LPIPS diversity.

Names load lazily, so `python -m stargan_keras.metrics.convert_weights` runs its module
only once and importing the package does not load TensorFlow.
"""

import importlib

_EXPORTS = {
    "FidFeatureExtractor": "fid", "InceptionWeightsError": "fid", "feature_statistics": "fid",
    "frechet_distance": "fid", "fid_from_features": "fid", "LPIPS": "lpips", "mean_pairwise_lpips": "lpips",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
