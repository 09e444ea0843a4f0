"""StarGAN v1's labelled images: datasets of (image, label vector), and their tf.data pipelines.

The datasets follow the authors' yunjey/stargan `data_loader.py` and `main.py`:
- `celeba`: `DATA_DIR/celeba/images/` (their default) or `img_align_celeba/`, with
  `list_attr_celeba.txt` beside it; the selected attributes, their test split (`labels`),
  a centre crop of 178 then a resize;
- `rafd`, or any FOLDER of class folders (torchvision's ImageFolder): one-hot labels of
  the sorted folder names; `ROOT/train/<class>/` with `ROOT/test/<class>/` (or `val/`), or
  the class folders alone (`ROOT/<class>/`, then the test split is the train split); a
  centre crop of 256 (or the shorter side) then a resize. `rafd` is `DATA_DIR/RaFD/` (or
  `rafd/`), the authors' `data/RaFD/train` and `test`;
- `both`: CelebA and RaFD at once (their `train_multi`): labels in G's layout
  [c_celeba, c_rafd, mask], the other dataset's columns zero, the mask one-hot;
- `shapes`: the embedded offline default, drawn by `stargan_keras.data.shapes` with five
  attributes: the shape (circle, square, triangle: exactly one, like the authors' hair
  colours), `red` (red or blue fill) and `large` (two separated size ranges).

Training batch number `step` is a pure function of (train.seed, step), as in
`stargan_keras.data.pipeline`: the images, flips, target labels (the labels of a random
permutation of the batch, the authors' `torch.randperm`) and interpolation weights are
all drawn with stateless RNG ops from the seed folded with the step, so resuming at step
k gives the batches an uninterrupted run would have seen. In joint mode step k draws from
dataset k % 2 (the authors alternate CelebA and RaFD batches).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf

from stargan_keras.core.config import ConfigError
from stargan_keras.v1.config import Config
from stargan_keras.data import shapes
from stargan_keras.data.domain_images import BadFile, DatasetError, ImageSource
from stargan_keras.data.folders import check_files, display_path, load_folder
from stargan_keras.data.pipeline import ImageTable, dataset_options, resize_for_model, step_seeds
from stargan_keras.v1.labels import read_celeba_attributes

SPLITS = ("train", "test")
NAMED_DATASETS = ("celeba", "rafd", "both", "shapes")
CELEBA_IMAGE_FOLDERS = ("images", "img_align_celeba")  # the authors' data/celeba/images, or CelebA's own name
CELEBA_ATTR_FILE = "list_attr_celeba.txt"
RAFD_FOLDERS = ("RaFD", "rafd")
SHAPES_BINARY = ("red", "large")
SHAPES_ATTRS = (*shapes.DOMAINS, *SHAPES_BINARY)
SHAPES_COLOURS = (2, 0)  # PALETTE indices of red = 0 (blue) and red = 1 (red)
SHAPES_SIZES = ((0.20, 0.23), (0.27, 0.30))  # radius ranges of large = 0 and 1, fraction of the image side
_SHAPES_STREAM = 0x5EED51  # keeps v1's shapes apart from v2's scenes of the same seed
_DATA_STREAM = 0x5EEDDA71  # keeps the data RNG apart from other users of train.seed
_STREAMS = ("index", "flip", "order", "alpha")


@dataclass
class LabelledSplit:
    """One split of one dataset: its images (files or a uint8 array) and float32 labels [N, its label count]."""

    source: ImageSource
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.source)


@dataclass
class LabelledDataset:
    """One dataset: label names and type, the centre crop of its images (0: none) and its splits.

    `exclusive`: the attributes of which exactly one is on, when the dataset defines them
    (shapes); None leaves `v1.exclusive_attrs` as configured.
    """

    name: str
    label_names: list[str]
    label_type: str
    crop: int
    splits: dict[str, LabelledSplit]
    exclusive: list[str] | None = None
    bad_files: list[BadFile] = field(default_factory=list)


@dataclass
class LabelledImages:
    """What a v1 run trains on: one dataset, or CelebA and RaFD in joint mode."""

    datasets: list[LabelledDataset]

    @property
    def name(self) -> str:
        return "+".join(d.name for d in self.datasets)

    @property
    def label_names(self) -> list[str]:
        return [name for d in self.datasets for name in d.label_names]

    @property
    def joint(self) -> bool:
        return len(self.datasets) > 1

    def model_labels(self, index: int, split: str) -> np.ndarray:
        """Dataset `index`'s labels of `split` in G's layout: alone, its own; in joint mode
        [c_1, c_2, mask] with the other dataset's columns zero and its own mask bit set."""
        own = self.datasets[index].splits[split].labels
        if not self.joint:
            return own
        widths = [len(d.label_names) for d in self.datasets]
        full = np.zeros((len(own), sum(widths) + len(widths)), np.float32)
        start = sum(widths[:index])
        full[:, start:start + widths[index]] = own
        full[:, sum(widths) + index] = 1.0
        return full

    def describe(self) -> str:
        """One line for the start of a run: each dataset's labels and split sizes."""
        parts = [f"{d.name}: {len(d.label_names)} {d.label_type} ({', '.join(d.label_names)}); "
                 f"train {len(d.splits['train'])}, test {len(d.splits['test'])}" for d in self.datasets]
        return " | ".join(parts)

    def bad_file_summary(self, limit: int = 10) -> str:
        """The end-of-run summary of skipped files (empty when there were none)."""
        bad = [b for d in self.datasets for b in d.bad_files]
        if not bad:
            return ""
        lines = [f"{len(bad)} image file(s) of {self.name} could not be used and were skipped:"]
        lines += [f"  {b.path}: {b.reason}" for b in bad[:limit]]
        if len(bad) > limit:
            lines.append(f"  ... and {len(bad) - limit} more")
        return "\n".join(lines)


def load_labelled(config: Config, progress: bool = True) -> LabelledImages:
    """Resolve `config.data.dataset` (celeba | rafd | both | shapes | a folder of class folders)."""
    name, v1, data_dir = config.data.dataset, config.model, Path(config.data.data_dir).expanduser()
    if name == "shapes":
        return LabelledImages([shapes_dataset(v1.image_size, config.data.shapes_train_per_domain,
                                              config.data.shapes_val_per_domain, config.data.shapes_seed)])
    if name == "celeba":
        return LabelledImages([load_celeba(data_dir, v1.selected_attrs, config.data.celeba_crop_size, progress)])
    if name == "rafd":
        return LabelledImages([load_class_folders(find_rafd(data_dir), config.data.rafd_crop_size, "rafd", progress)])
    if name == "both":
        return LabelledImages([load_celeba(data_dir, v1.selected_attrs[:v1.c_dim], config.data.celeba_crop_size, progress),
                               load_class_folders(find_rafd(data_dir), config.data.rafd_crop_size, "rafd", progress)])
    candidates = [Path(name).expanduser()]
    if not candidates[0].is_absolute():
        candidates.append(data_dir / name)
    for candidate in candidates:
        if candidate.is_dir():
            return LabelledImages([load_class_folders(candidate, config.data.rafd_crop_size, progress=progress)])
    raise DatasetError(f"--dataset {name!r} is neither {', '.join(NAMED_DATASETS)} nor an existing folder (looked "
                       f"for {' and '.join(str(c) for c in candidates)}). Give a folder of class folders: "
                       "ROOT/train/<class>/ and ROOT/test/<class>/, or ROOT/<class>/ alone.")


def shapes_dataset(image_size: int, train_per_shape: int, test_per_shape: int, seed: int = 0) -> LabelledDataset:
    """The synthetic shapes with five attributes, drawn by `data.shapes.render`; a pure function of its arguments.

    Position and background vary freely (what a translation keeps); the fill is solid.
    """
    splits = {}
    for index, (split, count) in enumerate((("train", train_per_shape), ("test", test_per_shape))):
        if count < 1:
            raise DatasetError(f"shapes: {count} {split} images per shape; pass at least 1.")
        rng = np.random.default_rng(np.random.SeedSequence([seed, _SHAPES_STREAM, index]))
        classes = np.repeat(np.arange(len(shapes.DOMAINS), dtype=np.int32), count)
        factors = shapes.sample_factors(classes, rng)
        binary = rng.integers(0, 2, size=(len(classes), len(SHAPES_BINARY)))
        red, large = binary[:, 0], binary[:, 1]
        factors["colour"] = np.asarray(SHAPES_COLOURS, np.int32)[red]
        low, high = np.asarray(SHAPES_SIZES, np.float32)[large].T
        factors["size"] = (low + (high - low) * rng.uniform(size=len(classes))).astype(np.float32)
        factors["stripes"] = np.zeros(len(classes), np.int32)
        labels = np.concatenate([np.eye(len(shapes.DOMAINS), dtype=np.float32)[classes], binary.astype(np.float32)],
                                axis=1)
        images = shapes.render(classes, factors, image_size)
        splits[split] = LabelledSplit(ImageSource(array=images, factors=factors), labels)
    return LabelledDataset("shapes", list(SHAPES_ATTRS), "attributes", 0, splits, exclusive=list(shapes.DOMAINS))


def find_celeba(data_dir: Path) -> tuple[Path, Path]:
    """(image folder, attribute file) under DATA_DIR/celeba/ or DATA_DIR/."""
    for root in (data_dir / "celeba", data_dir):
        attr = root / CELEBA_ATTR_FILE
        folders = [root / f for f in CELEBA_IMAGE_FOLDERS if (root / f).is_dir()]
        if attr.is_file() and folders:
            return folders[0], attr
    raise DatasetError(f"--dataset celeba: no CelebA under {data_dir}: expected {data_dir}/celeba/images/ (or "
                       f"img_align_celeba/) and {data_dir}/celeba/{CELEBA_ATTR_FILE}; pass --data-dir DIR.")


def load_celeba(data_dir: Path, selected_attrs: list[str], crop: int, progress: bool = True) -> LabelledDataset:
    """CelebA's selected attributes with the authors' split; files that cannot be decoded are skipped."""
    images, attr = find_celeba(Path(data_dir))
    splits, bad_files = {}, []
    for split, rows in zip(SPLITS, read_celeba_attributes(attr, list(selected_attrs))):
        paths = [images / filename for filename, _ in rows]
        keep, inline = [], {}
        for (path, (_, labels)), verdict in zip(zip(paths, rows), check_files(paths, f"{images} ({split})", progress)):
            if verdict.kind == "bad":
                bad_files.append(BadFile(display_path(path), verdict.reason))
                continue
            if verdict.kind == "inline":
                inline[len(keep)] = verdict.inline
            keep.append((str(path), labels))
        if not keep:
            raise DatasetError(f"none of the {len(rows)} CelebA {split} images listed in {attr} can be read from "
                               f"{images} (e.g. {bad_files[0].path}: {bad_files[0].reason}).")
        source = ImageSource(paths=tuple(p for p, _ in keep), inline=inline)
        splits[split] = LabelledSplit(source, np.stack([labels for _, labels in keep]))
    return LabelledDataset("celeba", list(selected_attrs), "attributes", crop, splits, bad_files=bad_files)


def find_rafd(data_dir: Path) -> Path:
    for name in RAFD_FOLDERS:
        if (data_dir / name).is_dir():
            return data_dir / name
    raise DatasetError(f"--dataset rafd: no {' or '.join(RAFD_FOLDERS)} folder in {data_dir}: expected "
                       f"{data_dir}/RaFD/train/<expression>/ and {data_dir}/RaFD/test/<expression>/; pass --data-dir.")


def load_class_folders(root: Path, crop: int, name: str | None = None, progress: bool = True) -> LabelledDataset:
    """A folder of class folders with categorical labels (one-hot of the sorted class names)."""
    folder = load_folder(root, name=name, progress=progress, flat=True)
    splits = {}
    for split, own in zip(SPLITS, ("train", "val")):
        sources = folder.splits[own]
        paths, inline = [], {}
        for source in sources:
            inline.update({len(paths) + i: data for i, data in source.inline.items()})
            paths += source.paths
        classes = np.repeat(np.arange(len(sources)), [len(s) for s in sources])
        labels = np.eye(len(sources), dtype=np.float32)[classes]
        splits[split] = LabelledSplit(ImageSource(paths=tuple(paths), inline=inline), labels)
    return LabelledDataset(folder.name, list(folder.domain_names), "categorical", crop, splits,
                           bad_files=folder.bad_files)


def adopt_labels(config: Config, data: LabelledImages, explicit: dict) -> Config:
    """The networks get the data's labels (names, count, type), unless the user named others on the command line."""
    first = data.datasets[0]
    wanted = {"c_dim": len(first.label_names), "c2_dim": sum(len(d.label_names) for d in data.datasets[1:]),
              "selected_attrs": data.label_names, "label_type": first.label_type}
    if first.exclusive is not None:
        wanted["exclusive_attrs"] = first.exclusive
    current = {key: getattr(config.model, key) for key in wanted}
    if current == wanted:
        return config
    given = [f"--{k.replace('_', '-')} {explicit[k]}" for k in wanted if k in explicit and current[k] != wanted[k]]
    if given:
        raise ConfigError(f"{' '.join(given)} does not match dataset {data.name}, whose labels are "
                          f"{', '.join(data.label_names)} ({first.label_type}); drop the flag.")
    return config.replace(**wanted)


def centre_crop(image, size):
    """The centre square of side min(size, height, width), placed as torchvision's CenterCrop places it (which
    would pad an image smaller than the crop with black); size 0 leaves the image whole."""
    shape = tf.shape(image, out_type=tf.int64)
    height, width = shape[0], shape[1]
    side = tf.minimum(tf.cast(size, tf.int64), tf.minimum(height, width))
    crop_h, crop_w = tf.where(size > 0, side, height), tf.where(size > 0, side, width)
    top = tf.cast(tf.round(tf.cast(height - crop_h, tf.float32) / 2.0), tf.int64)
    left = tf.cast(tf.round(tf.cast(width - crop_w, tf.float32) / 2.0), tf.int64)
    return image[top:top + crop_h, left:left + crop_w]


class _SplitTable:
    """Image `index` of dataset `dataset` of one split, cropped and resized, with its labels in G's layout."""

    def __init__(self, data: LabelledImages, split: str, image_size: int):
        self.images = ImageTable([d.splits[split].source for d in data.datasets])
        self.labels = tf.constant(np.concatenate([data.model_labels(i, split) for i in range(len(data.datasets))]))
        self.crops = tf.constant([d.crop for d in data.datasets], tf.int64)
        self.image_size = image_size

    def read(self, dataset, index):
        image = centre_crop(self.images.read(dataset, index), tf.gather(self.crops, dataset))
        label = tf.gather(self.labels, tf.gather(self.images.offsets, dataset) + tf.cast(index, tf.int64))
        return resize_for_model(image, self.image_size), label


def make_train_dataset(config: Config, data: LabelledImages, start_step: int = 0) -> tf.data.Dataset:
    """Global batches {x_real, c_org, c_trg, alpha} (the v1 trainer's), batch k = step start_step + k."""
    table = _SplitTable(data, "train", config.model.image_size)
    batch, num_datasets = config.train.batch_size, len(data.datasets)
    key = tf.constant([config.train.seed, _DATA_STREAM], tf.int64)

    @tf.autograph.experimental.do_not_convert
    def draw(step):
        seed = step_seeds(key, step, _STREAMS)
        dataset = tf.fill([batch], tf.math.floormod(step, num_datasets))
        raw = tf.random.stateless_uniform([batch], seed["index"], None, None, tf.int64)
        return {"dataset": dataset, "index": tf.math.floormod(raw, tf.gather(table.images.counts, dataset)),
                **{name: tf.random.stateless_uniform([batch], seed[name]) for name in ("flip", "order", "alpha")}}

    @tf.autograph.experimental.do_not_convert
    def load(sample):
        image, label = table.read(sample["dataset"], sample["index"])
        image = tf.where(sample["flip"] < 0.5, tf.reverse(image, axis=[1]), image)
        return {"x_real": image, "c_org": label, "order": sample["order"], "alpha": sample["alpha"]}

    @tf.autograph.experimental.do_not_convert
    def permute(examples):
        """c_trg: the labels of a random permutation of the batch (sorting uniform draws gives one)."""
        order = tf.argsort(examples.pop("order"))
        return {**examples, "c_trg": tf.gather(examples["c_org"], order)}

    dataset = (tf.data.Dataset.counter(start_step)
               .map(draw)
               .unbatch()
               .map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
               .batch(batch, drop_remainder=True)
               .map(permute)
               .prefetch(tf.data.AUTOTUNE))
    return dataset.with_options(dataset_options())


def make_eval_dataset(config: Config, data: LabelledImages, split: str = "test", dataset: int = 0,
                      batch_size: int | None = None, limit: int | None = None) -> tf.data.Dataset:
    """Batches of (image float32 [-1, 1], labels in G's layout) of one dataset's split, in file order, unflipped;
    at most `limit` images."""
    if split not in SPLITS:
        raise ValueError(f"split {split!r}: choose one of {', '.join(SPLITS)}.")
    table = _SplitTable(data, split, config.model.image_size)
    count = len(data.datasets[dataset].splits[split])
    indices = np.arange(count if limit is None else min(count, limit), dtype=np.int64)
    pairs = tf.data.Dataset.from_tensor_slices((np.full_like(indices, dataset), indices))
    return (pairs.map(table.read, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .batch(batch_size or config.data.eval_batch_size).prefetch(tf.data.AUTOTUNE).with_options(dataset_options()))


def fixed_test_batch(config: Config, data: LabelledImages, n: int) -> dict[str, np.ndarray]:
    """n test images of the first dataset (CelebA in joint mode, as the authors' figures), evenly spaced over
    its test split (which may be sorted by class), and their labels: {x_real, c_org}, the same every time."""
    table = _SplitTable(data, "test", config.model.image_size)
    count = len(data.datasets[0].splits["test"])
    images, labels = zip(*[table.read(0, index) for index in np.linspace(0, count - 1, n).round().astype(np.int64)])
    return {"x_real": np.stack(images), "c_org": np.stack(labels)}
