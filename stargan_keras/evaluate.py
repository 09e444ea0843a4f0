"""`python -m stargan_keras.evaluate`: FID, LPIPS and domain accuracy with the paper's protocol.

For every ordered pair of domains (source != target), every val image of the source
domain is translated `--num-outputs` times (10 in the paper): with 10 random z
(latent-guided) or with 10 val images of the target domain as references
(reference-guided). Per task:
- FID between the translations and the TRAIN images of the target domain;
- LPIPS: the mean pairwise distance among each source image's outputs, averaged;
- accuracy: the share of translations a domain classifier, trained on the run's train
  split, assigns to the target domain.
Reported values are per task (`FID_latent/cat2dog`, the authors' key names) and their
mean over tasks (`FID_latent/mean`). `--seeds N` runs the protocol N times (seeds SEED,
SEED+1, ...: other latent codes and reference choices) and reports every value as
mean ± std over the seeds (the authors' README: means over 10 seeds); each seed's values
are kept in the JSON file too. Translations are scored batch by batch and never written
to disk unless `--save-images` asks for it.

FID is the paper's by default: torchvision's InceptionV3 (`--inception torchvision`),
generated images clamped and quantized to uint8 like the authors' saved PNGs, then
resized to 299 px by PIL's bilinear filter (`--fid-resize pil`). `--inception keras`
uses keras.applications' InceptionV3 and, unless `--fid-resize pil`, its float pipeline.

A StarGAN v1 run or model directory (`--run-dir` is `--checkpoint`'s other name) is scored
with its own protocol (`stargan_keras.v1.evaluation`): target-attribute accuracy of
translations and FID. Either way the report has the same keys (`core.reports.make_report`).

    python -m stargan_keras.evaluate --checkpoint runs/shapes --metrics accuracy
    python -m stargan_keras.evaluate --checkpoint models/afhq --metrics fid --seeds 10 \\
        --inception-weights inception_torchvision.weights.h5
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stargan_keras import families
from stargan_keras.core.config import ConfigArgumentParser, add_config_flags, overrides_from_args
from stargan_keras.core.errors import command
from stargan_keras.core.reports import EVAL_DIR, METRICS, EvaluationError
from stargan_keras.metrics.fid import add_inception_arguments
from stargan_keras.presets import resolve_model
from stargan_keras.v2.evaluation import MODES

DATA_FLAGS = ("dataset", "data_dir", "eval_batch_size")  # the shared data fields the command may override
COMMAND = "python -m stargan_keras.evaluate"


def parse_metrics(text: str) -> list[str]:
    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in METRICS]
    if unknown or not names:
        raise EvaluationError(f"--metrics {text!r}: choose from {', '.join(METRICS)} (comma-separated).")
    return list(dict.fromkeys(names))


def build_parser() -> ConfigArgumentParser:
    parser = ConfigArgumentParser(prog=COMMAND, description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", "--run-dir", required=True, type=Path,
                        help="a training run directory (latest checkpoint), a model directory or a preset name "
                             "(python -m stargan_keras presets; results then go to its cached directory's eval/ "
                             "unless --out); each family scores it with its own protocol")
    parser.add_argument("--mode", default="both", choices=(*MODES, "both"), help="latent-, reference-guided or both")
    parser.add_argument("--metrics", default=",".join(METRICS), help="comma-separated: fid, lpips, accuracy")
    parser.add_argument("--num-outputs", type=int, default=10, help="outputs per source image (paper: 10)")
    add_inception_arguments(parser)
    parser.add_argument("--lpips-weights", type=Path, default=None,
                        help="LPIPS .weights.h5 written by python -m stargan_keras.metrics.convert_weights")
    parser.add_argument("--max-images-per-domain", type=int, default=None,
                        help="use at most N images per domain and split (quick runs; not the paper's protocol)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the latent codes and reference choices")
    parser.add_argument("--seeds", type=int, default=1,
                        help="run the protocol N times, with seeds SEED, SEED+1, ..., and report mean ± std "
                             "(the authors' README: 10)")
    parser.add_argument("--classifier-steps", type=int, default=None,
                        help="training steps of the domain classifier (default 600)")
    parser.add_argument("--out", type=Path, default=None, help=f"output directory (default: CHECKPOINT/{EVAL_DIR})")
    parser.add_argument("--save-images", action="store_true", help="also write every translation as PNG under OUT")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--untrained-metric-networks", action="store_true", help=argparse.SUPPRESS)
    add_config_flags(parser, _data_config_class(), only=DATA_FLAGS)
    return parser


def _data_config_class():
    """Any family's config class: the data flags are fields of the shared `core.config.DataConfig`."""
    return families.get(families.DEFAULT).config_class


def run(args) -> list[Path]:
    """Check the flags, then run the protocol of the directory's family."""
    metrics = parse_metrics(args.metrics)
    for flag in ("num_outputs", "max_images_per_domain", "classifier_steps", "seeds"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise EvaluationError(f"--{flag.replace('_', '-')} {value}: must be at least 1.")
    args.checkpoint = resolve_model(args.checkpoint)  # a preset name: its cached model directory
    data_overrides = {k: v for k, v in overrides_from_args(args, _data_config_class()).items() if k in DATA_FLAGS}
    return families.of_directory(args.checkpoint).evaluate(args, metrics, data_overrides)


@command
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except FileNotFoundError as err:
        raise EvaluationError(str(err)) from None
    return 0


if __name__ == "__main__":
    sys.exit(main())
