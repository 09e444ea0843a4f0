"""The networks that score translations, built from the `evaluate` command's flags before any long work, so
that missing weights fail in seconds."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from stargan_keras.core.reports import EvaluationError
from stargan_keras.metrics.fid import inception_from_args


@dataclass
class MetricNetworks:
    """The networks scoring the translations; None for metrics not asked for."""

    fid: object | None = None  # metrics.FidFeatureExtractor
    lpips: object | None = None  # metrics.LPIPS
    classifier: object | None = None  # metrics.domain_classifier.DomainClassifier
    fid_fingerprint: dict | None = None  # identifies the FID network for the real-feature cache

    @property
    def names(self) -> list[str]:
        return [name for name, net in (("fid", self.fid), ("lpips", self.lpips), ("accuracy", self.classifier))
                if net is not None]


def build_metric_networks(args, metrics: list[str]) -> MetricNetworks:
    """The FID and LPIPS networks, before any long work: missing weights fail in seconds."""
    networks = MetricNetworks()
    if "fid" in metrics:
        from stargan_keras.metrics import FidFeatureExtractor

        choice = inception_from_args(args, args.untrained_metric_networks)
        networks.fid = FidFeatureExtractor(**choice)
        weights = choice["weights"]
        if weights is not None:
            weights_id = str(Path(weights).resolve()) if weights != "imagenet" else "imagenet"
            networks.fid_fingerprint = {**choice, "weights": weights_id}
    if "lpips" in metrics:
        from stargan_keras.metrics import LPIPS
        from stargan_keras.metrics.lpips import CONVERT_HINT

        if args.untrained_metric_networks:
            networks.lpips = LPIPS()
        elif args.lpips_weights is None:
            raise EvaluationError(f"--metrics lpips needs --lpips-weights PATH: {CONVERT_HINT}.")
        else:
            networks.lpips = LPIPS.from_weights(args.lpips_weights)
    return networks
