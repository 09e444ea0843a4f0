"""The training and evaluation input pipelines (tf.data).

Training batch number `step` is a pure function of (train.seed, step): every random
choice (domains, images, crop, flip, z) is drawn with stateless RNG ops from a seed
folded with the step, over `Dataset.counter(start_step)`. Resuming at step k therefore
yields exactly the batches an uninterrupted run would have seen, and a checkpoint only
needs to store the step. Source and reference streams are domain-balanced (every domain
equally likely whatever its size, like the authors' WeightedRandomSampler); x_ref and
x_ref2 both come from the target domain y_trg.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import tensorflow as tf

from stargan_keras.data.domain_images import DatasetError, DomainImages, ImageSource
from stargan_keras.data.folders import load_folder
from stargan_keras.data.shapes import shapes_domain_images
from stargan_keras.core.imaging import from_uint8_tensor

AUTHORS_DATASETS = ("afhq", "afhq_v2", "celeba_hq")
CROP_SCALE = (0.8, 1.0)  # random-resized-crop area fraction (the authors' `core/data_loader.py`, `get_train_loader`)
CROP_RATIO = (0.9, 1.1)  # random-resized-crop aspect ratio (width / height)
_DATA_STREAM = 0x5EEDDA7A  # keeps the data RNG apart from other users of train.seed
_STREAMS = ("y_src", "y_trg", "index", "augment", "z_trg", "z_trg2")
_IMAGES = ("x_src", "x_ref", "x_ref2")  # the three images of one sample
_AUGMENT_DRAWS = 6  # per image: crop?, scale, log-ratio, top, left, flip


def load_dataset(config, progress: bool = True) -> DomainImages:
    """Resolve `config.data.dataset` (shapes | afhq | afhq_v2 | celeba_hq | a folder) with `data_dir`."""
    data = config.data
    name = data.dataset
    if name == "shapes":
        return shapes_domain_images(config.model.img_size, data.shapes_train_per_domain,
                                    data.shapes_val_per_domain, data.shapes_seed)
    if name in AUTHORS_DATASETS:
        from stargan_keras.data.tfds_builders import AUTHORS_ZIPS, prepare_authors_dataset

        root = prepare_authors_dataset(name, data.data_dir)
        return load_folder(root, name=name, progress=progress, expected_domains=list(AUTHORS_ZIPS[name].domains))
    candidates = [Path(name).expanduser()]
    if not candidates[0].is_absolute():
        candidates.append(Path(data.data_dir).expanduser() / name)
    for candidate in candidates:
        if candidate.is_dir():
            return load_folder(candidate, progress=progress)
    raise DatasetError(f"--dataset {name!r} is neither shapes, {', '.join(AUTHORS_DATASETS)} nor an existing folder "
                       f"(looked for {' and '.join(str(c) for c in candidates)}). Give the path of a folder with "
                       "train/<domain>/ and val/<domain>/ image folders.")


class ImageTable:
    """Random access, inside TF graphs, to image `index` of domain `domain` of one split (uint8 HWC)."""

    def __init__(self, sources: list[ImageSource]):
        counts = [len(source) for source in sources]
        self.counts = tf.constant(counts, tf.int64)
        self.offsets = tf.constant(np.cumsum([0] + counts[:-1]), tf.int64)
        in_memory = {source.in_memory for source in sources}
        if len(in_memory) != 1:
            raise ValueError("a split mixes in-memory arrays and files; give one kind per split.")
        self.array = None
        if in_memory.pop():
            self.array = tf.constant(np.concatenate([source.array for source in sources]))
        else:
            self.paths = tf.constant([path for source in sources for path in source.paths])
            self.inline = tf.constant([source.inline.get(i, b"") for source in sources for i in range(len(source))])

    def read(self, domain, index):
        flat = tf.gather(self.offsets, domain) + tf.cast(index, tf.int64)
        if self.array is not None:
            return tf.gather(self.array, flat)
        inline = tf.gather(self.inline, flat)
        contents = tf.cond(tf.strings.length(inline) > 0, lambda: inline,
                           lambda: tf.io.read_file(tf.gather(self.paths, flat)))
        image = tf.io.decode_image(contents, channels=3, expand_animations=False)
        image.set_shape([None, None, 3])
        return image


def resize_for_model(image, img_size: int):
    """uint8 or float [0, 255] HWC -> float32 [img_size, img_size, 3] in [-1, 1]: resized (antialiased
    bilinear), converted by `imaging.from_uint8_tensor`, clipped to [-1, 1]."""
    image = tf.image.resize(tf.cast(image, tf.float32), [img_size, img_size], antialias=True)
    return tf.clip_by_value(from_uint8_tensor(image), -1.0, 1.0)


def _augment(image, draws, img_size: int, crop_prob: float):
    """The paper's augmentation from six uniforms: maybe a random-resized crop, resize, maybe flip.

    The crop box follows torchvision's RandomResizedCrop (area fraction and log-uniform aspect
    ratio), except that a box wider or taller than the image is clipped to it instead of redrawn.
    """
    shape = tf.shape(image, out_type=tf.int64)
    height, width = shape[0], shape[1]
    area = tf.cast(height * width, tf.float32) * (CROP_SCALE[0] + (CROP_SCALE[1] - CROP_SCALE[0]) * draws[1])
    log_ratio = math.log(CROP_RATIO[0]) + (math.log(CROP_RATIO[1]) - math.log(CROP_RATIO[0])) * draws[2]
    ratio = tf.exp(log_ratio)
    crop_w = tf.clip_by_value(tf.cast(tf.round(tf.sqrt(area * ratio)), tf.int64), 1, width)
    crop_h = tf.clip_by_value(tf.cast(tf.round(tf.sqrt(area / ratio)), tf.int64), 1, height)
    top = tf.minimum(tf.cast(draws[3] * tf.cast(height - crop_h + 1, tf.float32), tf.int64), height - crop_h)
    left = tf.minimum(tf.cast(draws[4] * tf.cast(width - crop_w + 1, tf.float32), tf.int64), width - crop_w)
    crop = draws[0] < crop_prob
    top, left = tf.where(crop, top, 0), tf.where(crop, left, 0)
    crop_h, crop_w = tf.where(crop, crop_h, height), tf.where(crop, crop_w, width)
    image = resize_for_model(image[top:top + crop_h, left:left + crop_w], img_size)
    return tf.where(draws[5] < 0.5, tf.reverse(image, axis=[1]), image)


def _check_domains(config, domain_images: DomainImages) -> None:
    if config.model.num_domains != domain_images.num_domains:
        raise DatasetError(f"--num-domains is {config.model.num_domains} but dataset {domain_images.name} has "
                           f"{domain_images.num_domains} domains ({', '.join(domain_images.domain_names)}); "
                           f"pass --num-domains {domain_images.num_domains}.")


def dataset_options() -> tf.data.Options:
    """Deterministic order, and data sharding across workers (they split each global batch)."""
    options = tf.data.Options()
    options.deterministic = True
    # The stream has no files to shard: workers split each global batch.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return options


def step_seeds(key, step, names) -> dict:
    """One stateless RNG seed per name for batch `step`: `key` ([seed, stream]) folded with the step, then split."""
    seeds = tf.random.experimental.stateless_split(tf.random.experimental.stateless_fold_in(key, step),
                                                   num=len(names))
    return dict(zip(names, tf.unstack(seeds)))


def make_train_dataset(config, domain_images: DomainImages, start_step: int = 0) -> tf.data.Dataset:
    """Global batches {x_src, y_src, x_ref, x_ref2, y_trg, z_trg, z_trg2}, batch k = step start_step + k."""
    _check_domains(config, domain_images)
    table = ImageTable(domain_images.splits["train"])
    batch, num_domains = config.train.batch_size, domain_images.num_domains
    img_size, latent_dim, crop_prob = config.model.img_size, config.model.latent_dim, config.data.rrc_prob
    key = tf.constant([config.train.seed, _DATA_STREAM], tf.int64)

    @tf.autograph.experimental.do_not_convert
    def draw(step):
        seed = step_seeds(key, step, _STREAMS)
        y_src = tf.random.stateless_uniform([batch], seed["y_src"], 0, num_domains, tf.int32)
        y_trg = tf.random.stateless_uniform([batch], seed["y_trg"], 0, num_domains, tf.int32)
        domains = tf.cast(tf.stack([y_src, y_trg, y_trg], axis=1), tf.int64)  # [B, 3]: src, ref, ref2
        raw = tf.random.stateless_uniform([batch, 3], seed["index"], None, None, tf.int64)
        index = tf.math.floormod(raw, tf.gather(table.counts, domains))  # uniform within each domain
        return {
            "domains": domains, "index": index,
            "augment": tf.random.stateless_uniform([batch, 3, _AUGMENT_DRAWS], seed["augment"]),
            "y_src": y_src, "y_trg": y_trg,
            "z_trg": tf.random.stateless_normal([batch, latent_dim], seed["z_trg"]),
            "z_trg2": tf.random.stateless_normal([batch, latent_dim], seed["z_trg2"]),
        }

    @tf.autograph.experimental.do_not_convert
    def load(sample):
        out = {key: sample[key] for key in ("y_src", "y_trg", "z_trg", "z_trg2")}
        for j, name in enumerate(_IMAGES):
            image = table.read(sample["domains"][j], sample["index"][j])
            out[name] = _augment(image, sample["augment"][j], img_size, crop_prob)
        return out

    dataset = (tf.data.Dataset.counter(start_step)
               .map(draw)
               .unbatch()
               .map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
               .batch(batch, drop_remainder=True)
               .prefetch(tf.data.AUTOTUNE))
    return dataset.with_options(dataset_options())


def _eval_pairs(domain_images: DomainImages, split: str, domain: int | None) -> tuple[np.ndarray, np.ndarray]:
    counts = domain_images.counts(split)
    domains = range(len(counts)) if domain is None else [domain]
    pairs = [(d, i) for d in domains for i in range(counts[d])]
    array = np.array(pairs, np.int64).reshape(-1, 2)
    return array[:, 0], array[:, 1]


def _decode_pairs(domain_images: DomainImages, split: str, domains, indices, img_size: int) -> tf.data.Dataset:
    table = ImageTable(domain_images.splits[split])

    @tf.autograph.experimental.do_not_convert
    def load(d, i):
        return resize_for_model(table.read(d, i), img_size), tf.cast(d, tf.int32)

    return (tf.data.Dataset.from_tensor_slices((domains, indices))
            .map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True))


def make_eval_dataset(config, domain_images: DomainImages, split: str = "val", domain: int | None = None,
                      batch_size: int | None = None) -> tf.data.Dataset:
    """Batches of (image float32 [-1, 1] at img_size, label int32), domain by domain, files in order."""
    if split not in domain_images.splits:
        raise ValueError(f"split {split!r}: choose one of {', '.join(domain_images.splits)}.")
    if domain is not None and not 0 <= domain < domain_images.num_domains:
        raise ValueError(f"domain {domain}: {domain_images.name} has domains 0..{domain_images.num_domains - 1}.")
    domains, indices = _eval_pairs(domain_images, split, domain)
    dataset = _decode_pairs(domain_images, split, domains, indices, config.model.img_size)
    dataset = dataset.batch(batch_size or config.data.eval_batch_size).prefetch(tf.data.AUTOTUNE)
    return dataset.with_options(dataset_options())


def fixed_val_batch(config, domain_images: DomainImages, n: int) -> dict[str, np.ndarray]:
    """The same n sources and n references every time, for sample grids: {x_src, y_src, x_ref, y_ref}.

    Sources take the domains in turn (image i of domain i % D); references take the next
    domain's images from the end of its list, so a grid shows every domain and never pairs
    an image with itself.
    """
    counts = domain_images.counts("val")
    num_domains = len(counts)
    slots = np.arange(n)
    y_src = slots % num_domains
    y_ref = (slots + 1) % num_domains
    src_index = (slots // num_domains) % np.array(counts)[y_src]
    ref_index = (np.array(counts)[y_ref] - 1 - slots // num_domains) % np.array(counts)[y_ref]
    domains = np.concatenate([y_src, y_ref]).astype(np.int64)
    indices = np.concatenate([src_index, ref_index]).astype(np.int64)
    images, labels = next(iter(_decode_pairs(domain_images, "val", domains, indices, config.model.img_size)
                               .batch(2 * n)))
    images, labels = images.numpy(), labels.numpy()
    return {"x_src": images[:n], "y_src": labels[:n], "x_ref": images[n:], "y_ref": labels[n:]}
