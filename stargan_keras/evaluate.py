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
by `stargan_keras.v1.evaluation`: target-attribute accuracy of translations and FID.

    python -m stargan_keras.evaluate --checkpoint runs/shapes --metrics accuracy
    python -m stargan_keras.evaluate --checkpoint models/afhq --metrics fid --seeds 10 \\
        --inception-weights inception_torchvision.weights.h5
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stargan_keras import evaluation
from stargan_keras.config import ConfigArgumentParser, add_config_flags, overrides_from_args
from stargan_keras.errors import command
from stargan_keras.evaluation import EVAL_DIR, METRICS, MODES, EvaluationError, MetricNetworks
from stargan_keras.metrics.fid import add_inception_arguments, inception_from_args

DATA_FLAGS = ("dataset", "data_dir", "eval_batch_size")  # config fields the command may override
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
                             "(python -m stargan_keras presets; results then go to its cached directory's eval/ unless "
                             "--out); a "
                             "StarGAN v1 one is scored by stargan_keras.v1.evaluation (accuracy of the target labels, FID)")
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
    add_config_flags(parser, only=DATA_FLAGS)
    return parser


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


def run(args) -> list[Path]:
    """The command: load, score each mode, write JSON (and TensorBoard scalars for a run directory)."""
    from stargan_keras.checkpoint import RunDir, is_v1_directory, load_networks
    from stargan_keras.data import load_dataset
    from stargan_keras.inference import Translator
    from stargan_keras.metrics import domain_classifier
    from stargan_keras.presets import resolve_model
    from stargan_keras.v1 import evaluation as v1_evaluation

    metrics = parse_metrics(args.metrics)
    for flag in ("num_outputs", "max_images_per_domain", "classifier_steps", "seeds"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise EvaluationError(f"--{flag.replace('_', '-')} {value}: must be at least 1.")
    args.checkpoint = resolve_model(args.checkpoint)  # a preset name: its cached model directory
    if is_v1_directory(args.checkpoint):  # StarGAN v1: target-attribute accuracy and FID, its own protocol
        data_flags = {k: v for k, v in overrides_from_args(args).items() if k in DATA_FLAGS}
        return v1_evaluation.run(args, metrics, build_metric_networks, data_flags)
    config, model_networks = load_networks(args.checkpoint)
    # The data flags change where images come from, never the networks.
    config = config.replace(**{k: v for k, v in overrides_from_args(args).items() if k in DATA_FLAGS})
    translator = Translator(config, model_networks)
    step = evaluation.checkpoint_step(args.checkpoint)
    out_dir = args.out if args.out is not None else args.checkpoint / EVAL_DIR
    progress = not args.quiet
    networks = build_metric_networks(args, metrics)
    domain_images = load_dataset(config, progress=progress)
    evaluation.check_domains(config.model.resolved_domain_names, domain_images)
    if "accuracy" in metrics:
        steps = args.classifier_steps or domain_classifier.STEPS
        networks.classifier = domain_classifier.load_or_train_classifier(out_dir, config, domain_images, steps,
                                                                         args.seed, progress)
    real = None
    if networks.fid is not None:
        data = evaluation.EvalData(config, domain_images, args.max_images_per_domain)
        real = evaluation.RealFeatures(data, networks.fid, out_dir, networks.fid_fingerprint, progress)
    seeds = list(range(args.seed, args.seed + args.seeds))
    written = []
    for mode in (MODES if args.mode == "both" else (args.mode,)):
        results = evaluation.evaluate_seeds(translator, domain_images, mode, networks, seeds,
                                            num_outputs=args.num_outputs,
                                            max_images_per_domain=args.max_images_per_domain, real_features=real,
                                            image_dir=out_dir / "images" if args.save_images else None,
                                            progress=progress)
        fid = networks.fid
        report = {"checkpoint": str(args.checkpoint), "step": step, "mode": mode, "dataset": domain_images.name,
                  "num_outputs": args.num_outputs, **results,
                  "settings": {"seed": args.seed, "seeds": args.seeds,
                               "max_images_per_domain": args.max_images_per_domain,
                               "inception": fid.inception if fid is not None else None,
                               "fid_resize": fid.resize if fid is not None else None,
                               "untrained_metric_networks": args.untrained_metric_networks}}
        if networks.classifier is not None:
            report["domain_classifier"] = {"val_accuracy": networks.classifier.info.val_accuracy,
                                           "weights": str(out_dir / domain_classifier.WEIGHTS_FILE)}
        path = evaluation.write_results(out_dir, mode, step, report)
        written.append(path)
        if step is not None:
            evaluation.write_tensorboard(RunDir(args.checkpoint).logs / EVAL_DIR, results["metrics"], step)
        print_summary(mode, results, path)
    return written


def print_summary(mode: str, results: dict, path: Path) -> None:
    seeds = results["seeds"]
    print(f"\n{mode}-guided, mean ± std over {len(seeds)} seed(s) {', '.join(map(str, seeds))} ({path}):")
    for key, value in results["metrics"].items():
        print(f"  {key:<40} {value:.4f} ± {results['metrics_std'][key]:.4f}")


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
