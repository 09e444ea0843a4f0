"""The paper's evaluation protocol: tasks, translations batch by batch, their scores, and where results go.

For every ordered pair of domains (source != target), every val image of the source
domain is translated `num_outputs` times (10 in the paper): with random z
(latent-guided) or with val images of the target domain as references
(reference-guided), as in the authors' `metrics/eval.py` `calculate_metrics`. Per task:
- FID between the translations and the TRAIN images of the target domain;
- LPIPS: the mean pairwise distance among each source image's outputs, averaged;
- accuracy: the share of translations a domain classifier, trained on the run's train
  split, assigns to the target domain.
Values are reported per task (`FID_latent/cat2dog`, the authors' key names) and as
their mean over tasks (`FID_latent/mean`). Translations are scored batch by batch and
written to disk only when asked. `evaluate_seeds` repeats the protocol with several seeds
(other latent codes and reference choices) and reports each value's mean and standard
deviation over them; the authors' README reports means over 10 seeds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stargan_keras.core import reports
from stargan_keras.core.reports import EvaluationError
from stargan_keras.metrics.networks import MetricNetworks

MODES = ("latent", "reference")
KEY_PREFIX = {"fid": "FID", "lpips": "LPIPS", "accuracy": "accuracy"}


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

    def uint8_batches(self, split: str, domain: int):
        """uint8 batches [n, img_size, img_size, 3] read like the authors' eval loader: the decoded file
        resized to img_size by PIL's bilinear filter, no float step (`imaging.load_uint8`)."""
        from stargan_keras.core.imaging import load_uint8, resize_uint8

        source, size = self.domain_images.splits[split][domain], self.config.model.img_size
        count = self.count(split, domain)
        for start in range(0, count, self.batch_size):
            stop = min(count, start + self.batch_size)
            if source.in_memory:
                yield resize_uint8(source.array[start:stop], size)
            else:
                yield np.stack([load_uint8(source.inline.get(i) or source.paths[i], size) for i in range(start, stop)])


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
        """The authors' path reads the files as uint8 (`EvalData.uint8_batches`); `tf` takes the float pipeline."""
        count = self.data.count("train", domain)
        if self.progress:
            print(f"FID features of the {count} train images of {name}", flush=True)
        if self.extractor.resize == "pil":
            batches = self.data.uint8_batches("train", domain)
        else:
            batches = (images for images, _ in self.data.batches("train", domain))
        return self.extractor.features(batches, count, self.progress)


@dataclass
class TaskScores:
    """What one task's translations add up to, batch after batch."""

    generated: int = 0
    lpips: list = field(default_factory=list)
    features: list = field(default_factory=list)
    correct: int = 0


def choose_references(rng: np.random.Generator, num_sources: int, num_references: int,
                      num_outputs: int) -> np.ndarray:
    """[num_sources, num_outputs] reference indices: distinct for each source when there are enough."""
    if num_references >= num_outputs:
        order = rng.permuted(np.tile(np.arange(num_references), (num_sources, 1)), axis=1)
        return order[:, :num_outputs]
    return rng.integers(0, num_references, (num_sources, num_outputs))


def evaluate(translator, domain_images, mode: str, networks: MetricNetworks, *, num_outputs: int = 10,
             max_images_per_domain: int | None = None, seed: int = 0, real_features: RealFeatures | None = None,
             image_dir: str | Path | None = None, progress: bool = True, reuse_content: bool = True) -> dict:
    """Score one mode ("latent" or "reference") of an `inference.Translator` on every task.

    Latent-guided styles are F(z, y) without truncation, as in the paper's numbers. G's content
    encoding of each source runs once for its `num_outputs` styles (`Translator.synthesize_each`);
    `reuse_content=False` runs all of G per output, as the authors do (the benchmark's baseline).
    Returns {"metrics": {key: value} with per-task and mean values, "tasks": [names],
    "num_source_images": {task: n}, "num_generated": {task: n * num_outputs}}.
    """
    import keras
    import tensorflow as tf

    if mode not in MODES:
        raise EvaluationError(f"--mode {mode!r}: choose latent, reference or both.")
    if num_outputs < 2 and networks.lpips is not None:
        raise EvaluationError(f"--num-outputs {num_outputs}: LPIPS compares outputs pairwise and needs at least 2.")
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
            latent_dim = translator.config.model.latent_dim
            z = rng.standard_normal((num_sources, num_outputs, latent_dim)).astype(np.float32)
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
            masks = translator.face_masks(x_src)
            if mode == "latent":
                styles = tf.stack([translator.style_from_latent(z[start:start + size, j], y_trg)
                                   for j in range(num_outputs)])
            else:
                styles = tf.gather(refs, picks[start:start + size].T)
            # [num_outputs, size, H, W, 3]
            outputs = (translator.synthesize_each(x_src, styles, masks) if reuse_content
                       else tf.stack([translator.synthesize(x_src, s, masks) for s in styles]))
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


def evaluate_seeds(translator, domain_images, mode: str, networks: MetricNetworks, seeds: list[int], *,
                   image_dir: str | Path | None = None, progress: bool = True, **kwargs) -> dict:
    """`evaluate` once per seed; real FID features are computed once and shared by all seeds.

    Returns `evaluate`'s dict with "metrics" the mean over seeds of every value, "metrics_std"
    their standard deviation (NumPy's, ddof 0), "seeds", and "per_seed" [{"seed", "metrics"}].
    With several seeds, `image_dir` gets one subfolder per seed (`seed_7/`).
    """
    if not seeds:
        raise EvaluationError("--seeds must be at least 1.")
    if networks.fid is not None and kwargs.get("real_features") is None:
        data = EvalData(translator.config, domain_images, kwargs.get("max_images_per_domain"))
        kwargs["real_features"] = RealFeatures(data, networks.fid, None, None, progress)
    runs = []
    for index, seed in enumerate(seeds):
        directory = image_dir
        if image_dir is not None and len(seeds) > 1:
            directory = Path(image_dir) / f"seed_{seed}"
        if progress and len(seeds) > 1:
            print(f"[{mode}] seed {seed} ({index + 1} of {len(seeds)})", flush=True)
        runs.append(evaluate(translator, domain_images, mode, networks, seed=seed, image_dir=directory,
                             progress=progress, **kwargs))
    mean, std = summarize_seeds([run["metrics"] for run in runs])
    return {**runs[0], "metrics": mean, "metrics_std": std, "seeds": list(seeds),
            "per_seed": [{"seed": seed, "metrics": run["metrics"]} for seed, run in zip(seeds, runs)]}


def summarize_seeds(per_seed: list[dict]) -> tuple[dict, dict]:
    """({key: mean}, {key: standard deviation}) over runs with the same keys (ddof 0, as np.std)."""
    keys = list(per_seed[0])
    values = {key: np.array([metrics[key] for metrics in per_seed], np.float64) for key in keys}
    return ({key: float(np.mean(v)) for key, v in values.items()},
            {key: float(np.std(v)) for key, v in values.items()})


def _reference_styles(translator, data: EvalData, domain: int):
    """E(x_ref, target) of every val image of the target domain: each reference is encoded once."""
    import tensorflow as tf

    styles = [translator.style_from_reference(images, tf.fill([len(images)], domain))
              for images, _ in data.batches("val", domain)]
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
    from stargan_keras.metrics.fid import fid_from_features

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
    """Every translation as PNG, with the authors' names <source number>_<output number>.png, both 1-based."""
    from stargan_keras.core.imaging import save_image

    for j, batch in enumerate(outputs.numpy()):
        for k, image in enumerate(batch):
            save_image(directory / f"{start + k + 1:04d}_{j + 1:02d}.png", image)


def check_domains(model_domains: list[str], domain_images) -> None:
    if list(model_domains) != list(domain_images.domain_names):
        raise EvaluationError(
            f"the model's domains ({', '.join(model_domains)}) differ from those of dataset {domain_images.name} "
            f"({', '.join(domain_images.domain_names)}); pass the dataset the model was trained on with "
            "--dataset / --data-dir.")


def check_lpips_size(metrics: list[str], img_size: int, checkpoint) -> None:
    from stargan_keras.metrics.lpips import min_image_size

    if "lpips" in metrics and img_size < min_image_size():
        raise EvaluationError(f"--metrics lpips: LPIPS's AlexNet needs images of at least {min_image_size()} px and "
                              f"{checkpoint} is a {img_size} px model; leave lpips out of --metrics.")


def run(args, metrics: list[str], data_overrides: dict) -> list[Path]:
    """The evaluate command on a v2 run or model directory: score each mode, write one JSON report per mode
    (and TensorBoard scalars for a run directory). `data_overrides`: the data flags, which change where the
    images come from, never the networks."""
    from stargan_keras.core.model_dir import config_file
    from stargan_keras.core.run_dir import RunDir
    from stargan_keras.data import load_dataset
    from stargan_keras.metrics import domain_classifier
    from stargan_keras.metrics.networks import build_metric_networks
    from stargan_keras.v2.config import Config
    from stargan_keras.v2.inference import Translator
    from stargan_keras.v2.networks import load_networks

    model_config = Config.read(config_file(args.checkpoint))
    config = model_config.replace(**data_overrides)
    check_lpips_size(metrics, config.model.img_size, args.checkpoint)
    networks = build_metric_networks(args, metrics)  # the metric flags' errors before the model's weights load
    translator = Translator(config, load_networks(args.checkpoint, model_config))
    step = reports.checkpoint_step(args.checkpoint)
    out_dir = args.out if args.out is not None else Path(args.checkpoint) / reports.EVAL_DIR
    progress = not args.quiet
    domain_images = load_dataset(config, progress=progress)
    check_domains(config.model.resolved_domain_names, domain_images)
    classifiers = {}
    if "accuracy" in metrics:
        steps = args.classifier_steps or domain_classifier.STEPS
        networks.classifier = domain_classifier.load_or_train_classifier(out_dir, config, domain_images, steps,
                                                                         args.seed, progress)
        classifiers["domains"] = {"accuracy": networks.classifier.info.val_accuracy,
                                  "weights": str(out_dir / domain_classifier.WEIGHTS_FILE)}
    real = None
    if networks.fid is not None:
        data = EvalData(config, domain_images, args.max_images_per_domain)
        real = RealFeatures(data, networks.fid, out_dir, networks.fid_fingerprint, progress)
    seeds = list(range(args.seed, args.seed + args.seeds))
    written = []
    for mode in (MODES if args.mode == "both" else (args.mode,)):
        results = evaluate_seeds(translator, domain_images, mode, networks, seeds, num_outputs=args.num_outputs,
                                 max_images_per_domain=args.max_images_per_domain, real_features=real,
                                 image_dir=out_dir / "images" if args.save_images else None, progress=progress)
        fid = networks.fid
        report = reports.make_report(
            checkpoint=args.checkpoint, step=step, family="v2", dataset=domain_images.name, mode=mode,
            num_outputs=args.num_outputs, results=results, classifiers=classifiers,
            settings={"seed": args.seed, "seeds": args.seeds, "max_images_per_domain": args.max_images_per_domain,
                      "inception": fid.inception if fid is not None else None,
                      "fid_resize": fid.resize if fid is not None else None,
                      "untrained_metric_networks": args.untrained_metric_networks})
        path = reports.write_results(out_dir, mode, step, report)
        written.append(path)
        if step is not None:
            reports.write_tensorboard(RunDir(args.checkpoint).logs / reports.EVAL_DIR, results["metrics"], step)
        reports.print_summary(f"{mode}-guided", results, path)
    return written
