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
mean over tasks (`FID_latent/mean`). Translations are scored batch by batch and never
written to disk unless `--save-images` asks for it.

    python -m stargan_keras.evaluate --checkpoint runs/shapes --metrics accuracy
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stargan_keras.config import ConfigArgumentParser, ConfigError, add_config_flags, overrides_from_args

METRICS = ("fid", "lpips", "accuracy")
MODES = ("latent", "reference")
KEY_PREFIX = {"fid": "FID", "lpips": "LPIPS", "accuracy": "accuracy"}
EVAL_DIR = "eval"
DATA_FLAGS = ("dataset", "data_dir", "eval_batch_size")  # config fields the command may override
COMMAND = "python -m stargan_keras.evaluate"


class EvaluationError(ConfigError):
    """Evaluation settings or data that cannot work together; the message names the flag or folder."""


@dataclass(frozen=True)
class Task:
    """Translate the val images of domain `source` into domain `target`."""

    source: int
    target: int
    name: str


def make_tasks(domain_names: list[str]) -> list[Task]:
    """Every ordered pair of distinct domains, target-major like the authors' evaluation loop."""
    return [Task(src, trg, f"{domain_names[src]}2{domain_names[trg]}")
            for trg in range(len(domain_names)) for src in range(len(domain_names)) if src != trg]


def metric_key(metric: str, mode: str, task: str) -> str:
    return f"{KEY_PREFIX[metric]}_{mode}/{task}"


def fid_from_features(real, fake) -> float:
    """FID of two feature sets [N, D], in float64.

    The trace term tr((S1 S2)^½) equals the nuclear norm of A^T B / sqrt((n1-1)(n2-1)), A and B
    the centred features: exact, and far cheaper than a D x D matrix square root when one
    set has fewer images than dimensions (then both covariances are singular anyway).
    With at least D images in both sets, `metrics.frechet_distance` (scipy's sqrtm) is used.
    """
    from stargan_keras.metrics import feature_statistics, frechet_distance

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


def _limited(dataset, limit: int | None, batch_size: int):
    return dataset if limit is None else dataset.unbatch().take(limit).batch(batch_size)


class EvalData:
    """The val (sources, references) and train (FID reals) images of each domain, as tf.data batches."""

    def __init__(self, config, domain_images, max_images_per_domain: int | None = None):
        self.config, self.domain_images, self.limit = config, domain_images, max_images_per_domain
        self.batch_size = config.data.eval_batch_size

    def count(self, split: str, domain: int) -> int:
        count = self.domain_images.counts(split)[domain]
        return count if self.limit is None else min(count, self.limit)

    def batches(self, split: str, domain: int):
        from stargan_keras.data import make_eval_dataset

        dataset = make_eval_dataset(self.config, self.domain_images, split=split, domain=domain,
                                    batch_size=self.batch_size)
        return _limited(dataset, self.limit, self.batch_size)


class RealFeatures:
    """FID features of the train images of each target domain: computed once, cached on disk when possible."""

    def __init__(self, data: EvalData, extractor, cache_dir: Path | None, fingerprint: dict | None,
                 progress: bool = True):
        self.data, self.extractor, self.progress = data, extractor, progress
        self.cache_dir, self.fingerprint = cache_dir, fingerprint
        self._memory: dict[int, np.ndarray] = {}

    def _identity(self, domain: int) -> dict:
        data = self.data
        return {**self.fingerprint, "dataset": f"{data.domain_images.name} ({data.config.data.dataset})",
                "domain": data.domain_images.domain_names[domain], "img_size": data.config.model.img_size,
                "count": data.count("train", domain)}

    def __call__(self, domain: int) -> np.ndarray:
        if domain in self._memory:
            return self._memory[domain]
        name = self.data.domain_images.domain_names[domain]
        path = None
        if self.cache_dir is not None and self.fingerprint is not None:
            path = self.cache_dir / f"fid_real_{self.fingerprint['inception']}_{name}.npz"
            identity = json.dumps(self._identity(domain), sort_keys=True)
            if path.is_file():
                with np.load(path) as cached:
                    if str(cached["identity"]) == identity:
                        self._memory[domain] = cached["features"]
                        return self._memory[domain]
        features = self._compute(domain, name)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(path, features=features, identity=np.array(identity))
        self._memory[domain] = features
        return features

    def _compute(self, domain: int, name: str) -> np.ndarray:
        import keras

        count = self.data.count("train", domain)
        bar = None
        if self.progress:
            print(f"FID features of the {count} train images of {name}", flush=True)
            bar = keras.utils.Progbar(count, unit_name="image")
        features, seen = [], 0
        for images, _ in self.data.batches("train", domain):
            features.append(self.extractor(images))
            seen += len(images)
            if bar is not None:
                bar.update(seen)
        return np.concatenate(features)


@dataclass
class TaskScores:
    """What one task's translations add up to, batch after batch."""

    generated: int = 0
    lpips: list = field(default_factory=list)
    features: list = field(default_factory=list)
    correct: int = 0


class Translator:
    """A loaded model's style and translation calls as tf.functions: no per-call eager overhead."""

    def __init__(self, model):
        import tensorflow as tf

        self.model, self.config = model, model.config
        cfg = model.config.model
        self.latent_dim = cfg.latent_dim
        images = tf.TensorSpec([None, cfg.img_size, cfg.img_size, 3], tf.float32)
        labels = tf.TensorSpec([None], tf.int32)
        # One signature each, whatever the batch size: a single trace per function.
        self.generate = tf.function(lambda x, s: model.generator(x, s),
                                    input_signature=[images, tf.TensorSpec([None, cfg.style_dim], tf.float32)])
        self.map = tf.function(lambda z, y: model.mapping_network(z, y),
                               input_signature=[tf.TensorSpec([None, cfg.latent_dim], tf.float32), labels])
        self.encode = tf.function(lambda x, y: model.style_encoder(x, y), input_signature=[images, labels])


def as_translator(model) -> Translator:
    """A Translator for a loaded model; Translators pass through (so callers can share the traces)."""
    return model if isinstance(model, Translator) else Translator(model)


def choose_references(rng: np.random.Generator, num_sources: int, num_references: int,
                      num_outputs: int) -> np.ndarray:
    """[num_sources, num_outputs] reference indices: distinct for each source when there are enough."""
    if num_references >= num_outputs:
        order = rng.permuted(np.tile(np.arange(num_references), (num_sources, 1)), axis=1)
        return order[:, :num_outputs]
    return rng.integers(0, num_references, (num_sources, num_outputs))


def evaluate(model, domain_images, mode: str, networks: MetricNetworks, *, num_outputs: int = 10,
             max_images_per_domain: int | None = None, seed: int = 0, real_features: RealFeatures | None = None,
             image_dir: str | Path | None = None, progress: bool = True) -> dict:
    """Score one mode ("latent" or "reference") of a loaded model (or its Translator) on every task.

    Returns {"metrics": {key: value} with per-task and mean values, "tasks": [names],
    "num_source_images": {task: n}, "num_generated": {task: n * num_outputs}}.
    """
    import keras
    import tensorflow as tf

    if mode not in MODES:
        raise EvaluationError(f"--mode {mode!r}: choose latent, reference or both.")
    if num_outputs < 2 and networks.lpips is not None:
        raise EvaluationError(f"--num-outputs {num_outputs}: LPIPS compares outputs pairwise and needs at least 2.")
    translator = as_translator(model)
    data = EvalData(translator.config, domain_images, max_images_per_domain)
    if networks.fid is not None and real_features is None:
        real_features = RealFeatures(data, networks.fid, None, None, progress)
    reference_styles: dict[int, tf.Tensor] = {}
    metrics, counts = {}, {}
    tasks = make_tasks(domain_images.domain_names)
    for task in tasks:
        num_sources = data.count("val", task.source)
        if num_sources == 0:
            raise EvaluationError(f"domain {domain_images.domain_names[task.source]} of {domain_images.name} has "
                                  "no val images to translate; add some to its val/ folder.")
        rng = np.random.default_rng([seed, MODES.index(mode), task.source, task.target])
        if mode == "latent":
            z = rng.standard_normal((num_sources, num_outputs, translator.latent_dim)).astype(np.float32)
        else:
            if task.target not in reference_styles:
                reference_styles[task.target] = _reference_styles(translator, data, task.target)
            refs = reference_styles[task.target]
            picks = choose_references(rng, num_sources, len(refs), num_outputs)
        if progress:
            print(f"[{mode}] {task.name}: {num_sources} source images x {num_outputs} outputs", flush=True)
        bar = keras.utils.Progbar(num_sources, unit_name="image") if progress else None
        scores = TaskScores()
        for x_src, _ in data.batches("val", task.source):
            start, size = scores.generated // num_outputs, len(x_src)
            y_trg = tf.fill([size], task.target)
            outputs = []
            for j in range(num_outputs):
                if mode == "latent":
                    styles = translator.map(tf.constant(z[start:start + size, j]), y_trg)
                else:
                    styles = tf.gather(refs, picks[start:start + size, j])
                outputs.append(translator.generate(x_src, styles))
            outputs = tf.stack(outputs)  # [num_outputs, size, H, W, 3]
            _score_batch(scores, outputs, task, networks)
            if image_dir is not None:
                _save_outputs(Path(image_dir) / mode / task.name, outputs, start)
            if bar is not None:
                bar.update(start + size)
        counts[task.name] = {"sources": num_sources, "generated": scores.generated}
        metrics.update(_task_metrics(scores, task, mode, networks, real_features))
    for metric in networks.names:
        values = [metrics[metric_key(metric, mode, task.name)] for task in tasks]
        metrics[metric_key(metric, mode, "mean")] = float(np.mean(values))
    return {"metrics": metrics, "tasks": [task.name for task in tasks],
            "num_source_images": {name: c["sources"] for name, c in counts.items()},
            "num_generated": {name: c["generated"] for name, c in counts.items()}}


def _reference_styles(translator: Translator, data: EvalData, domain: int):
    """E(x_ref, target) of every val image of the target domain: each reference is encoded once."""
    import tensorflow as tf

    styles = [translator.encode(images, tf.fill([len(images)], domain)) for images, _ in data.batches("val", domain)]
    if not styles:
        name = data.domain_images.domain_names[domain]
        raise EvaluationError(f"domain {name} of {data.domain_images.name} has no val images to use as references.")
    return tf.concat(styles, axis=0)


def _score_batch(scores: TaskScores, outputs, task: Task, networks: MetricNetworks) -> None:
    from stargan_keras.metrics import mean_pairwise_lpips

    num_outputs, size = outputs.shape[:2]
    flat = np.reshape(outputs.numpy(), (num_outputs * size, *outputs.shape[2:]))
    if networks.lpips is not None:
        scores.lpips.extend(mean_pairwise_lpips(networks.lpips, outputs).tolist())
    if networks.fid is not None:
        scores.features.append(networks.fid(flat))
    if networks.classifier is not None:
        scores.correct += int(np.sum(networks.classifier.predict(flat) == task.target))
    scores.generated += num_outputs * size


def _task_metrics(scores: TaskScores, task: Task, mode: str, networks: MetricNetworks, real_features) -> dict:
    values = {}
    if networks.fid is not None:
        values[metric_key("fid", mode, task.name)] = fid_from_features(real_features(task.target),
                                                                     np.concatenate(scores.features))
    if networks.lpips is not None:
        values[metric_key("lpips", mode, task.name)] = float(np.mean(scores.lpips))
    if networks.classifier is not None:
        values[metric_key("accuracy", mode, task.name)] = scores.correct / scores.generated
    return values


def _save_outputs(directory: Path, outputs, start: int) -> None:
    """`--save-images`: the authors' names, <source number>_<output number>.png, both 1-based."""
    from stargan_keras.imaging import save_image

    for j, batch in enumerate(outputs.numpy()):
        for k, image in enumerate(batch):
            save_image(directory / f"{start + k + 1:04d}_{j + 1:02d}.png", image)


def checkpoint_step(path: str | Path) -> int | None:
    """The training step of a run directory's latest checkpoint; None for a model directory."""
    import tensorflow as tf

    from stargan_keras.checkpoint import latest_training_checkpoint, weights_file

    path = Path(path)
    latest = latest_training_checkpoint(path)
    if latest is None or (path / weights_file("generator")).exists():
        return None
    reader = tf.train.load_checkpoint(latest)
    key = "step/.ATTRIBUTES/VARIABLE_VALUE"
    if reader.has_tensor(key):
        return int(reader.get_tensor(key))
    return int(latest.rsplit("-", 1)[-1])


def results_path(out_dir: str | Path, mode: str, step: int | None) -> Path:
    return Path(out_dir) / (f"metrics_{mode}_{step}.json" if step is not None else f"metrics_{mode}.json")


def write_tensorboard(log_dir: str | Path, metrics: dict, step: int) -> None:
    """The values as scalars under their keys (`FID_latent/cat2dog`), beside the training logs."""
    import tensorflow as tf

    writer = tf.summary.create_file_writer(str(log_dir))
    with writer.as_default(step=step):
        for key, value in metrics.items():
            tf.summary.scalar(key, value)
    writer.close()


def check_domains(model_domains: list[str], domain_images) -> None:
    if list(model_domains) != list(domain_images.domain_names):
        raise EvaluationError(
            f"the model's domains ({', '.join(model_domains)}) differ from those of dataset {domain_images.name} "
            f"({', '.join(domain_images.domain_names)}); pass the dataset the model was trained on with "
            "--dataset / --data-dir.")


def parse_metrics(text: str) -> list[str]:
    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in METRICS]
    if unknown or not names:
        raise EvaluationError(f"--metrics {text!r}: choose from {', '.join(METRICS)} (comma-separated).")
    return list(dict.fromkeys(names))


def build_parser() -> ConfigArgumentParser:
    parser = ConfigArgumentParser(prog=COMMAND, description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, type=Path,
                        help="a training run directory (latest checkpoint) or a model directory")
    parser.add_argument("--mode", default="both", choices=(*MODES, "both"), help="latent-, reference-guided or both")
    parser.add_argument("--metrics", default=",".join(METRICS), help="comma-separated: fid, lpips, accuracy")
    parser.add_argument("--num-outputs", type=int, default=10, help="outputs per source image (paper: 10)")
    parser.add_argument("--inception", nargs="+", default=["keras"], metavar=("KIND", "PATH"),
                        help="FID network: keras (keras.applications ImageNet weights) or torchvision (the network "
                             "of the paper's numbers), optionally followed by its weights file")
    parser.add_argument("--inception-weights", type=Path, default=None,
                        help="local weights file for --inception (default: download and cache)")
    parser.add_argument("--lpips-weights", type=Path, default=None,
                        help="LPIPS .weights.h5 written by python -m stargan_keras.metrics.convert_weights")
    parser.add_argument("--max-images-per-domain", type=int, default=None,
                        help="use at most N images per domain and split (quick runs; not the paper's protocol)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the latent codes and reference choices")
    parser.add_argument("--classifier-steps", type=int, default=None,
                        help="training steps of the domain classifier (default 300)")
    parser.add_argument("--out", type=Path, default=None, help=f"output directory (default: CHECKPOINT/{EVAL_DIR})")
    parser.add_argument("--save-images", action="store_true", help="also write every translation as PNG under OUT")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--untrained-metric-networks", action="store_true", help=argparse.SUPPRESS)
    add_config_flags(parser, only=DATA_FLAGS)
    return parser


def inception_choice(args) -> tuple[str, str | Path | None]:
    """(kind, weights) from --inception KIND [PATH] and --inception-weights."""
    from stargan_keras.metrics.fid import INCEPTION_CHOICES

    kind, *rest = args.inception
    if kind not in INCEPTION_CHOICES or len(rest) > 1:
        raise EvaluationError(f"--inception {' '.join(args.inception)}: expected KIND [PATH] with KIND one of "
                              f"{', '.join(INCEPTION_CHOICES)}.")
    if rest and args.inception_weights is not None:
        raise EvaluationError("give the Inception weights once: --inception KIND PATH or --inception-weights PATH.")
    weights = Path(rest[0]) if rest else args.inception_weights
    if args.untrained_metric_networks:
        return kind, None
    return kind, weights if weights is not None else "imagenet"


def build_metric_networks(args, metrics: list[str]) -> MetricNetworks:
    """The FID and LPIPS networks, before any long work: missing weights fail in seconds."""
    networks = MetricNetworks()
    if "fid" in metrics:
        from stargan_keras.metrics import FidFeatureExtractor

        kind, weights = inception_choice(args)
        networks.fid = FidFeatureExtractor(kind, weights)
        if weights is not None:
            weights_id = str(Path(weights).resolve()) if weights != "imagenet" else "imagenet"
            networks.fid_fingerprint = {"inception": kind, "weights": weights_id}
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
    from stargan_keras.checkpoint import load
    from stargan_keras.data import load_dataset
    from stargan_keras.metrics import domain_classifier

    metrics = parse_metrics(args.metrics)
    for flag in ("num_outputs", "max_images_per_domain", "classifier_steps"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise EvaluationError(f"--{flag.replace('_', '-')} {value}: must be at least 1.")
    model = Translator(load(args.checkpoint))
    # The data flags change where images come from, never the networks.
    model.config = config = model.config.replace(
        **{k: v for k, v in overrides_from_args(args).items() if k in DATA_FLAGS})
    step = checkpoint_step(args.checkpoint)
    out_dir = args.out if args.out is not None else args.checkpoint / EVAL_DIR
    progress = not args.quiet
    networks = build_metric_networks(args, metrics)
    domain_images = load_dataset(config, progress=progress)
    check_domains(config.model.resolved_domain_names, domain_images)
    if "accuracy" in metrics:
        steps = args.classifier_steps or domain_classifier.STEPS
        networks.classifier = domain_classifier.load_or_train_classifier(out_dir, config, domain_images, steps,
                                                                         args.seed, progress)
    data = EvalData(config, domain_images, args.max_images_per_domain)
    real = None
    if networks.fid is not None:
        real = RealFeatures(data, networks.fid, out_dir, networks.fid_fingerprint, progress)
    is_run = step is not None
    written = []
    for mode in (MODES if args.mode == "both" else (args.mode,)):
        results = evaluate(model, domain_images, mode, networks, num_outputs=args.num_outputs,
                           max_images_per_domain=args.max_images_per_domain, seed=args.seed, real_features=real,
                           image_dir=out_dir / "images" if args.save_images else None, progress=progress)
        report = {"checkpoint": str(args.checkpoint), "step": step, "mode": mode, "dataset": domain_images.name,
                  "num_outputs": args.num_outputs, **results,
                  "settings": {"seed": args.seed, "max_images_per_domain": args.max_images_per_domain,
                               "inception": args.inception[0] if "fid" in metrics else None,
                               "untrained_metric_networks": args.untrained_metric_networks}}
        if networks.classifier is not None:
            report["domain_classifier"] = {"val_accuracy": networks.classifier.info.val_accuracy,
                                           "weights": str(out_dir / domain_classifier.WEIGHTS_FILE)}
        path = results_path(out_dir, mode, step)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2))
        written.append(path)
        if is_run:
            write_tensorboard(Path(args.checkpoint) / "logs" / EVAL_DIR, results["metrics"], step)
        print_summary(mode, results, path)
    return written


def print_summary(mode: str, results: dict, path: Path) -> None:
    print(f"\n{mode}-guided ({path}):")
    for key, value in results["metrics"].items():
        print(f"  {key:<40} {value:.4f}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from stargan_keras.metrics import InceptionWeightsError

    try:
        run(args)
    except (ConfigError, InceptionWeightsError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
