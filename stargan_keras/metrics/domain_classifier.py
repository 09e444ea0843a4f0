"""Domain accuracy: the share of translations that a domain classifier assigns to their target domain.

FID and LPIPS need published network weights; this metric needs none. A small CNN is
trained for a fixed number of steps on the run's own train split (real images only) and
cached beside the evaluation results, so a run is judged by a classifier that never saw
a generated image. It tells whether the generator changes the domain at all; FID and
LPIPS still judge realism and diversity.

The training images are blurred, noised, shifted and recoloured at random, so that the
classifier judges the domain (a shape's outline, an animal's face) rather than the
crispness or palette of the real images: otherwise any softly rendered translation, a
plainly round circle included, falls to whichever class the classifier learnt for
"not crisp". The same degradations applied to the real val images are a test of that
(`degraded_val_accuracy`).

StarGAN v1's attribute classifier (`stargan_keras.v1.evaluation`) is the same network with an
independent sigmoid per attribute (`multi_label`), trained on degradations that keep colours
and scale, since an attribute may be either (a hair colour, a fill, a size).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from stargan_keras.core.imaging import from_uint8_tensor, to_uint8_tensor
from stargan_keras.core.safe_files import check_weights_file

WEIGHTS_FILE = "domain_classifier.weights.h5"
INFO_FILE = "domain_classifier.json"
MAX_INPUT_SIZE = 32  # images are downscaled to this: shapes stay distinct, training takes seconds
WIDTHS = (16, 32, 64, 128)
STEPS = 600
BATCH_SIZE = 32
LEARNING_RATE = 2e-3
VERSION = 2  # bump when the architecture or training changes, to retire old caches


@dataclass
class ClassifierInfo:
    """What a cached classifier was trained on; a cache is reused only when all of it matches."""

    version: int
    dataset: str
    domain_names: list[str]
    train_counts: list[int]
    img_size: int
    input_size: int
    steps: int
    val_accuracy: float | None = None
    multi_label: bool = False  # StarGAN v1's attributes: a sigmoid per name instead of one softmax

    def matches(self, other: "ClassifierInfo") -> bool:
        mine, theirs = asdict(self), asdict(other)
        mine.pop("val_accuracy"), theirs.pop("val_accuracy")
        return mine == theirs


def degradations(seed: int = 0, colour_and_scale: bool = True) -> keras.Sequential:
    """Random flips, shifts, zooms, colour changes, blur and noise of images in [-1, 1] (training only);
    without `colour_and_scale`, no zooms and no colour changes."""
    value_range = (-1.0, 1.0)
    zoom_and_colour = [
        keras.layers.RandomZoom(0.15, fill_mode="nearest", seed=seed + 2),
        keras.layers.RandomColorJitter(value_range, brightness_factor=0.2, contrast_factor=0.3,
                                       saturation_factor=(0.5, 0.9), hue_factor=0.5, seed=seed + 3),
    ]
    return keras.Sequential([
        keras.layers.RandomFlip("horizontal", seed=seed),
        keras.layers.RandomTranslation(0.1, 0.1, fill_mode="nearest", seed=seed + 1),
        *(zoom_and_colour if colour_and_scale else []),
        keras.layers.RandomGaussianBlur(factor=1.0, kernel_size=5, sigma=(0.1, 1.2), value_range=value_range,
                                        seed=seed + 4),
        keras.layers.GaussianNoise(0.1, seed=seed + 5),
    ], name="degradations")


def build_classifier(num_domains: int, input_size: int, seed: int = 0, multi_label: bool = False) -> keras.Model:
    """Training-time degradations, four conv-BN-ReLU-maxpool stages, global average pooling, a logit per domain
    (or per attribute: `multi_label` keeps colours and scale in the degradations)."""
    x = inputs = keras.Input((input_size, input_size, 3), name="images")
    x = degradations(seed, colour_and_scale=not multi_label)(x)
    for stage, filters in enumerate(WIDTHS):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False,
                                kernel_initializer=keras.initializers.HeNormal(seed=seed + stage))(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.ReLU()(x)
        x = keras.layers.MaxPooling2D(2, padding="same")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    logits = keras.layers.Dense(num_domains, kernel_initializer=keras.initializers.GlorotUniform(seed=seed))(x)
    return keras.Model(inputs, logits, name="domain_classifier")


class DomainClassifier:
    """`predict(images [-1, 1] at any size) -> domain indices`; `accuracy(images, domain)`."""

    def __init__(self, model: keras.Model, info: ClassifierInfo):
        self.model, self.info = model, info
        self._logits = tf.function(lambda x: model(resize_for_classifier(x, info.input_size), training=False),
                                   reduce_retracing=True)

    def predict(self, images) -> np.ndarray:
        return np.argmax(self._logits(tf.convert_to_tensor(images, tf.float32)).numpy(), axis=-1)

    def accuracy(self, images, domain: int) -> float:
        return float(np.mean(self.predict(images) == domain))


def resize_for_classifier(images, input_size: int):
    """[N, H, W, 3] in [-1, 1] -> [N, input_size, input_size, 3] (antialiased: no aliasing on shrink)."""
    if images.shape[1] == input_size and images.shape[2] == input_size:
        return images
    return tf.image.resize(images, (input_size, input_size), antialias=True)


def classifier_info(config, domain_images, steps: int = STEPS) -> ClassifierInfo:
    return ClassifierInfo(version=VERSION, dataset=f"{domain_images.name} ({config.data.dataset})",
                          domain_names=list(domain_images.domain_names),
                          train_counts=domain_images.counts("train"), img_size=config.model.img_size,
                          input_size=min(config.model.img_size, MAX_INPUT_SIZE), steps=steps)


def _split_images(config, domain_images, split: str, input_size: int) -> tf.data.Dataset:
    """(uint8 image at input_size, label) pairs of a split, decoded once and kept in memory."""
    from stargan_keras.data import make_eval_dataset

    def shrink(images, labels):
        return to_uint8_tensor(resize_for_classifier(images, input_size)), labels

    return make_eval_dataset(config, domain_images, split=split).map(shrink).unbatch().cache()


def fit_classifier(examples: tf.data.Dataset, info: ClassifierInfo, seed: int = 0,
                   progress: bool = True) -> keras.Model:
    """A classifier trained for `info.steps` steps on (uint8 image at info.input_size, label) pairs, shuffled and
    degraded: labels are domain indices, or with `info.multi_label` float vectors of 0/1 attributes."""
    count = sum(info.train_counts)
    batches = (examples.shuffle(count, seed=seed, reshuffle_each_iteration=True).repeat().batch(BATCH_SIZE)
               .map(lambda images, labels: (from_uint8_tensor(images), labels)).prefetch(tf.data.AUTOTUNE))
    model = build_classifier(len(info.domain_names), info.input_size, seed, info.multi_label)
    if info.multi_label:
        loss, metric = keras.losses.BinaryCrossentropy(from_logits=True), keras.metrics.BinaryAccuracy(threshold=0.0)
    else:
        loss, metric = keras.losses.SparseCategoricalCrossentropy(from_logits=True), "accuracy"
    model.compile(optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(LEARNING_RATE, info.steps)),
                  loss=loss, metrics=[metric])
    if progress:
        kind = "attribute" if info.multi_label else "domain"
        print(f"training the {kind} classifier on {count} train images ({info.steps} steps)", flush=True)
    model.fit(batches, steps_per_epoch=info.steps, epochs=1, shuffle=False, verbose=1 if progress else 0)
    return model


def train_classifier(config, domain_images, steps: int = STEPS, seed: int = 0,
                     progress: bool = True) -> DomainClassifier:
    """Train on the train split (shuffled, degraded) for `steps` steps; measure on the val split."""
    info = classifier_info(config, domain_images, steps)
    model = fit_classifier(_split_images(config, domain_images, "train", info.input_size), info, seed, progress)
    classifier = DomainClassifier(model, info)
    info.val_accuracy = validation_accuracy(classifier, config, domain_images)
    return classifier


def validation_accuracy(classifier: DomainClassifier, config, domain_images) -> float:
    """The classifier's accuracy on the real val images: the ceiling to read translation accuracy against."""
    from stargan_keras.data import make_eval_dataset

    correct = total = 0
    for images, labels in make_eval_dataset(config, domain_images, split="val"):
        correct += int(np.sum(classifier.predict(images) == labels.numpy()))
        total += len(labels)
    return correct / max(total, 1)


def load_or_train_classifier(directory: str | Path, config, domain_images, steps: int = STEPS, seed: int = 0,
                             progress: bool = True) -> DomainClassifier:
    """The classifier cached in `directory` if it was trained on this data, else a new one (then cached)."""
    wanted = classifier_info(config, domain_images, steps)
    return cached_classifier(directory, wanted, DomainClassifier,
                             lambda: train_classifier(config, domain_images, steps, seed, progress), seed, progress)


def cached_classifier(directory: str | Path, wanted: ClassifierInfo, wrap, train, seed: int = 0,
                      progress: bool = True, name: str = "domain classifier"):
    """`wrap(model, info)` of the classifier cached in `directory` if its info matches `wanted`, else `train()`'s
    (which returns a wrapped classifier with `.model` and `.info`), then cached; files named by `name`."""
    directory = Path(directory)
    stem = name.replace(" ", "_")
    weights, info_path = directory / f"{stem}.weights.h5", directory / f"{stem}.json"
    if weights.is_file() and info_path.is_file():
        try:
            cached = ClassifierInfo(**json.loads(info_path.read_text()))
        except (TypeError, ValueError):
            cached = None
        if cached is not None and cached.matches(wanted):
            model = build_classifier(len(cached.domain_names), cached.input_size, seed, cached.multi_label)
            check_weights_file(weights, model, "domain classifier")
            model.load_weights(weights)
            if progress:
                print(f"{name}: {weights} (val accuracy {cached.val_accuracy:.3f})", flush=True)
            return wrap(model, cached)
        if progress:
            print(f"{name}: {weights} was trained on other data; training a new one", flush=True)
    classifier = train()
    directory.mkdir(parents=True, exist_ok=True)
    classifier.model.save_weights(weights)
    info_path.write_text(json.dumps(asdict(classifier.info), indent=2))
    if progress:
        print(f"{name}: val accuracy {classifier.info.val_accuracy:.3f}, saved to {weights}", flush=True)
    return classifier
