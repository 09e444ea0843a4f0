"""StarGAN v1's evaluation: target-attribute accuracy of translations, and FID.

The paper's classification protocol (Choi et al. 2018, its quantitative RaFD experiment: a
facial-expression classifier trained on RaFD's training images classifies the translations
of unseen test images): a small CNN (`metrics.domain_classifier`, an independent sigmoid per attribute
for attribute labels, a softmax for classes) is trained on the run's own train split,
then every test image is translated to each of the authors' test-time target label
vectors (`labels.model_target_labels`: a hair colour set exclusively, any other attribute
flipped, every class of a categorical dataset) and classified:
- `accuracy/<label>`: the share of translations towards target `label` whose `label`
  attribute (or class) the classifier reads as the target says;
- `accuracy_all/<label>`: the share whose every attribute of that dataset is as the
  target says (the others kept);
- `FID/<label>`: FID between those translations and the real train images (of class
  `label` for categorical labels, all of them for attributes);
each with its mean over labels (`.../mean`). In joint mode each dataset's test images
are translated to its own targets and judged by a classifier of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from stargan_keras.core import reports
from stargan_keras.core.reports import EVAL_DIR, EvaluationError
from stargan_keras.v1.config import Config
from stargan_keras.core.imaging import to_uint8_tensor
from stargan_keras.metrics import domain_classifier as dc
from stargan_keras.v1.labels import model_target_labels

METRICS = ("accuracy", "fid")  # v1's G gives one output per target: no diversity (LPIPS) to measure
RESULTS_MODE = "v1"  # results file: eval/metrics_v1_<step>.json


class LabelClassifier:
    """`predict(images [-1, 1]) -> labels [N, width]` of 0/1: a sigmoid > 0.5 per attribute with one on per
    exclusive group (its largest logit), or the one-hot of the largest logit for classes."""

    def __init__(self, model: keras.Model, info: dc.ClassifierInfo, exclusive: list[int]):
        self.model, self.info, self.exclusive = model, info, exclusive
        self._logits = tf.function(lambda x: model(dc.resize_for_classifier(x, info.input_size), training=False),
                                   reduce_retracing=True)

    def predict(self, images) -> np.ndarray:
        logits = self._logits(tf.convert_to_tensor(images, tf.float32)).numpy()
        if not self.info.multi_label:
            return np.eye(logits.shape[1], dtype=np.float32)[np.argmax(logits, axis=1)]
        labels = (logits > 0).astype(np.float32)
        if self.exclusive:
            group = logits[:, self.exclusive]
            labels[:, self.exclusive] = np.eye(len(self.exclusive), dtype=np.float32)[np.argmax(group, axis=1)]
        return labels


@dataclass(frozen=True)
class DatasetPart:
    """Dataset `index` of the run's data: its columns [start, stop) of the labels, names and type."""

    index: int
    name: str
    start: int
    stop: int
    label_type: str
    label_names: list[str]
    exclusive: list[int]


def dataset_parts(config: Config, data) -> list[DatasetPart]:
    v1 = config.model
    parts = []
    for index, (dataset, part) in enumerate(zip(data.datasets, v1.label_slices)):
        names = v1.selected_attrs[part.start:part.stop]
        exclusive = [i for i, name in enumerate(names) if name in v1.exclusive_attrs] \
            if part.label_type == "attributes" else []
        parts.append(DatasetPart(index, dataset.name, part.start, part.stop, part.label_type, names, exclusive))
    return parts


def _images_and_labels(config: Config, data, part: DatasetPart, split: str, limit: int | None = None):
    from stargan_keras.v1.data import make_eval_dataset

    return make_eval_dataset(config, data, split=split, dataset=part.index, limit=limit).map(
        lambda x, c: (x, c[:, part.start:part.stop]))


def train_label_classifier(config: Config, data, part: DatasetPart, steps: int, seed: int = 0,
                           progress: bool = True) -> LabelClassifier:
    """A classifier of one dataset's labels, trained on its train split; `info.val_accuracy` is the mean
    per-label accuracy on the real test images (the ceiling of the translations' accuracy)."""
    info = classifier_info(config, data, part, steps)
    multi_label = info.multi_label

    def examples(x, c):
        small = to_uint8_tensor(dc.resize_for_classifier(x, info.input_size))
        return small, (c if multi_label else tf.argmax(c, axis=-1, output_type=tf.int32))

    train = _images_and_labels(config, data, part, "train").map(examples).unbatch().cache()
    classifier = LabelClassifier(dc.fit_classifier(train, info, seed, progress), info, part.exclusive)
    right = [np.mean(classifier.predict(x) == c.numpy(), axis=0)
             for x, c in _images_and_labels(config, data, part, "test")]
    info.val_accuracy = float(np.mean(right))
    return classifier


def classifier_info(config: Config, data, part: DatasetPart, steps: int) -> dc.ClassifierInfo:
    dataset = data.datasets[part.index]
    return dc.ClassifierInfo(version=dc.VERSION, dataset=f"{dataset.name} (v1 {config.data.dataset})",
                             domain_names=list(part.label_names), train_counts=[len(dataset.splits["train"])],
                             img_size=config.model.image_size, input_size=min(config.model.image_size, dc.MAX_INPUT_SIZE),
                             steps=steps, multi_label=part.label_type == "attributes")


def load_or_train_label_classifier(directory: Path, config: Config, data, part: DatasetPart, steps: int,
                                   seed: int = 0, progress: bool = True) -> LabelClassifier:
    """The classifier of one dataset cached in `directory` if it was trained on this data, else a new one."""
    return dc.cached_classifier(directory, classifier_info(config, data, part, steps),
                                lambda model, info: LabelClassifier(model, info, part.exclusive),
                                lambda: train_label_classifier(config, data, part, steps, seed, progress),
                                seed, progress, name=f"{Path(part.name).name} label classifier")


class RealFeatures:
    """FID features of real train images of one dataset: all of them, or of one class; computed once each."""

    def __init__(self, config: Config, data, part: DatasetPart, extractor, limit: int | None, progress: bool):
        self.config, self.data, self.part, self.extractor = config, data, part, extractor
        self.limit, self.progress = limit, progress
        self._features, self._labels = None, None

    def __call__(self, label: int | None) -> np.ndarray:
        """Features of the images whose label `label` is on (categorical), or of all (None)."""
        if self._features is None:
            features, labels = [], []
            batches = _images_and_labels(self.config, self.data, self.part, "train", self.limit)
            bar = keras.utils.Progbar(None, unit_name="real image") if self.progress else None
            for x, c in batches:
                features.append(self.extractor(x.numpy()))
                labels.append(c.numpy())
                if bar is not None:
                    bar.add(len(x))
            self._features, self._labels = np.concatenate(features), np.concatenate(labels)
        if label is None:
            return self._features
        return self._features[self._labels[:, label] == 1]


def evaluate(generator, config: Config, data, classifiers: dict | None = None, fid=None, limit: int | None = None,
             progress: bool = True) -> dict:
    """Accuracy (with `classifiers`: {dataset index: LabelClassifier}) and FID (with a `fid` feature extractor)
    of G's translations of each dataset's test images to their test-time targets; {"metrics": {...}, ...}."""
    from stargan_keras.metrics.fid import fid_from_features

    translate = tf.function(lambda x, c: generator(x, c), reduce_retracing=True)
    metrics = {prefix: {} for prefix in ("accuracy", "accuracy_all", "FID")}
    counts = {}
    for part in dataset_parts(config, data):
        classifier = (classifiers or {}).get(part.index)
        reals = RealFeatures(config, data, part, fid, limit, progress) if fid is not None else None
        right = np.zeros(part.stop - part.start)
        all_right = np.zeros(part.stop - part.start)
        fakes = [[] for _ in range(part.stop - part.start)]
        total = 0
        for x, c_org in _model_batches(config, data, part, limit, progress):
            targets = model_target_labels(c_org, config.model)[part.start:part.stop]
            for k, target in enumerate(targets):
                outputs = translate(x, target).numpy()
                if classifier is not None:
                    predicted, wanted = classifier.predict(outputs), target[:, part.start:part.stop]
                    right[k] += np.sum(predicted[:, k] == wanted[:, k])
                    all_right[k] += np.sum(np.all(predicted == wanted, axis=1))
                if fid is not None:
                    fakes[k].append(fid(outputs))
            total += len(x)
        counts[part.name] = total
        for k, name in enumerate(part.label_names):
            if classifier is not None:
                metrics["accuracy"][name] = right[k] / total
                metrics["accuracy_all"][name] = all_right[k] / total
            if fid is not None:
                real = reals(k if part.label_type == "categorical" else None)
                metrics["FID"][name] = fid_from_features(real, np.concatenate(fakes[k]))
    flat = {}
    for prefix, values in metrics.items():
        if values:
            flat.update({f"{prefix}/{name}": float(value) for name, value in values.items()})
            flat[f"{prefix}/mean"] = float(np.mean(list(values.values())))
    return {"metrics": flat, "num_test_images": counts}


def _model_batches(config: Config, data, part: DatasetPart, limit: int | None, progress: bool):
    """(images, labels in G's layout as NumPy) of one dataset's test split, with a progress bar."""
    from stargan_keras.v1.data import make_eval_dataset

    count = len(data.datasets[part.index].splits["test"])
    count = count if limit is None else min(count, limit)
    if progress:
        print(f"translating {count} {part.name} test images to {part.stop - part.start} targets each", flush=True)
    bar = keras.utils.Progbar(count, unit_name="image") if progress else None
    done = 0
    for x, c in make_eval_dataset(config, data, split="test", dataset=part.index, limit=limit):
        yield x, c.numpy()
        done += len(x)
        if bar is not None:
            bar.update(done)


def run(args, metrics: list[str], data_overrides: dict) -> list[Path]:
    """The evaluate command on a v1 run or model directory: `metrics` (accuracy, fid; LPIPS is skipped, with a
    note), the data flags `data_overrides`; one JSON report in OUT."""
    from stargan_keras.v1.networks import open_directory
    from stargan_keras.core.run_dir import RunDir
    from stargan_keras.metrics.networks import build_metric_networks
    from stargan_keras.v1.data import load_labelled

    progress = not args.quiet
    if "lpips" in metrics:
        metrics = [m for m in metrics if m != "lpips"]
        print("note: LPIPS is skipped: StarGAN v1 gives one translation per target, so there is no diversity "
              "to measure.", flush=True)
    if not metrics:
        raise EvaluationError(f"--metrics {args.metrics}: a StarGAN v1 model is scored with {', '.join(METRICS)}.")
    config, networks = open_directory(args.checkpoint)
    config = config.replace(**data_overrides)
    fid = build_metric_networks(args, metrics).fid
    data = load_labelled(config, progress=progress)
    if data.label_names != list(config.model.selected_attrs):
        raise EvaluationError(f"the model's labels ({', '.join(config.model.selected_attrs)}) differ from those of "
                              f"dataset {data.name} ({', '.join(data.label_names)}); pass the dataset the model was "
                              "trained on with --dataset / --data-dir.")
    out_dir = args.out if args.out is not None else Path(args.checkpoint) / EVAL_DIR
    classifiers = {}
    if "accuracy" in metrics:
        steps = args.classifier_steps or dc.STEPS
        classifiers = {part.index: load_or_train_label_classifier(out_dir, config, data, part, steps, args.seed,
                                                                  progress)
                       for part in dataset_parts(config, data)}
    results = evaluate(networks.generator, config, data, classifiers, fid, args.max_images_per_domain, progress)
    step = reports.checkpoint_step(args.checkpoint)
    report = reports.make_report(
        checkpoint=args.checkpoint, step=step, family="v1", dataset=data.name, results=results,
        classifiers={data.datasets[i].name: {"accuracy": c.info.val_accuracy} for i, c in classifiers.items()},
        settings={"seed": args.seed, "max_images_per_domain": args.max_images_per_domain,
                  "inception": fid.inception if fid is not None else None,
                  "untrained_metric_networks": args.untrained_metric_networks})
    path = reports.write_results(out_dir, RESULTS_MODE, step, report)
    if step is not None:
        reports.write_tensorboard(RunDir(args.checkpoint).logs / EVAL_DIR, results["metrics"], step)
    reports.print_summary("StarGAN v1 translations", results, path)
    return [path]
