"""A folder of domain folders, the authors' layout: ROOT/train/<domain>/*.jpg and ROOT/val/<domain>/.

With `flat=True` (StarGAN v1's class folders, as torchvision's ImageFolder reads them),
ROOT/<class>/*.jpg alone is accepted too, as a train split without a val split.

The layout is checked before anything else (so a typo fails in a second, naming the
folder), then every file is decoded once, with the decoders training will use: a file
that cannot be used (not decodable, over `imaging.MAX_IMAGE_PIXELS` by its header, a
name that is not UTF-8) is skipped with a warning naming it and listed in the dataset's
bad-file summary, so one bad file never kills a run hours later. Grayscale, RGBA and
palette files are read as RGB by TensorFlow's decoders at training time; CMYK JPEGs and
other formats hiding behind an image extension are converted with PIL here and kept in
memory as PNG.
"""

from __future__ import annotations

import io
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import keras
import tensorflow as tf
from PIL import Image

from stargan_keras.data.domain_images import BadFile, DatasetError, DomainImages, ImageSource
from stargan_keras.core.imaging import check_image_pixels

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
VAL_FOLDERS = ("val", "test")  # AFHQ v2 ships its validation split as test/
PROGRESS_MIN_FILES = 500  # smaller folders are checked without a progress bar
LAYOUT_HELP = "expected ROOT/train/<domain>/*.jpg|jpeg|png and ROOT/val/<domain>/... with at least two domains"


@dataclass(frozen=True)
class CheckedImage:
    """The verdict on one file: `tf` (TensorFlow decodes it), `inline` (PNG bytes) or `bad`."""

    kind: str
    inline: bytes | None = None
    reason: str = ""


@dataclass
class FolderLayout:
    """The files of a valid layout, before decoding: files[split][domain] sorted by path."""

    root: Path
    domain_names: list[str]
    files: dict[str, list[list[Path]]]
    val_folder: Path | None
    train_folder: Path | None = None  # root / "train", or root itself for a flat layout

    def __post_init__(self):
        self.train_folder = self.train_folder or self.root / "train"


def _visible(path: Path) -> bool:
    return not path.name.startswith((".", "__"))  # .DS_Store, ._resource forks, __MACOSX


def domain_folders(split_dir: Path) -> list[Path]:
    return sorted((p for p in split_dir.iterdir() if p.is_dir() and _visible(p)), key=lambda p: p.name)


def image_files(domain_dir: Path) -> list[Path]:
    """Image files under a domain folder (recursively), in a fixed order."""
    return sorted(p for p in domain_dir.rglob("*")
                  if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
                  and all(_visible(part) for part in p.relative_to(domain_dir).parents if part.name)
                  and _visible(p))


def find_dataset_root(path: Path, depth: int = 2) -> Path | None:
    """The folder holding `train/`: `path` itself or a folder up to `depth` levels below it."""
    path = Path(path)
    if (path / "train").is_dir():
        return path
    if depth == 0 or not path.is_dir():
        return None
    for child in sorted(p for p in path.iterdir() if p.is_dir() and _visible(p)):
        found = find_dataset_root(child, depth - 1)
        if found is not None:
            return found
    return None


def scan_layout(root: str | Path, flat: bool = False) -> FolderLayout:
    """Check the folder structure (no decoding) and list the files; errors name the folder at fault.

    `flat`: without a train/ folder, ROOT's own subfolders are the train split's domains.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} does not exist; {LAYOUT_HELP}.")
    train_dir = root / "train"
    if flat and not train_dir.is_dir():
        train_dir = root
    if not train_dir.is_dir():
        raise DatasetError(f"{train_dir} does not exist: the dataset folder {root} needs a train/ folder; "
                           f"{LAYOUT_HELP}.")
    domains = domain_folders(train_dir)
    if len(domains) < 2:
        found = ", ".join(d.name for d in domains) or "none"
        raise DatasetError(f"{train_dir} has {len(domains)} domain folder(s) (found: {found}); StarGAN v2 "
                           f"translates between domains, so it needs at least two; {LAYOUT_HELP}.")
    names = [d.name for d in domains]
    files = {"train": _domain_files(domains)}

    val_dir = None if train_dir == root else next((root / v for v in VAL_FOLDERS if (root / v).is_dir()), None)
    if val_dir is not None:
        val_domains = domain_folders(val_dir)
        val_names = [d.name for d in val_domains]
        if val_names != names:
            missing = sorted(set(names) - set(val_names))
            extra = sorted(set(val_names) - set(names))
            raise DatasetError(f"{val_dir} has other domains than {train_dir}: missing {missing or 'none'}, "
                               f"extra {extra or 'none'}. Make the domain folders of both splits match.")
        files["val"] = _domain_files(val_domains)
    return FolderLayout(root, names, files, val_dir, train_dir)


def _domain_files(domains: list[Path]) -> list[list[Path]]:
    result = []
    for domain in domains:
        found = image_files(domain)
        if not found:
            raise DatasetError(f"domain folder {domain} is empty: it has no {'/'.join(IMAGE_EXTENSIONS)} files. "
                               "Add images or remove the folder.")
        result.append(found)
    return result


def display_path(path: str | Path) -> str:
    """A path as text that can always be printed: bytes that are not UTF-8 appear as \\x escapes."""
    return os.fsencode(str(path)).decode("utf-8", errors="backslashreplace")


def check_image(path: str | Path) -> CheckedImage:
    """Decode one file the way training will, to find bad files before training does."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        return CheckedImage("bad", reason="its name is not valid UTF-8, which TensorFlow cannot open; rename it")
    try:
        with Image.open(path) as image:
            check_image_pixels(image.width, image.height, display_path(path))  # before any decoding
            if image.format == "PNG" or (image.format == "JPEG" and image.mode in ("L", "RGB")):
                data = Path(path).read_bytes()
                if image.format == "JPEG":
                    tf.io.decode_jpeg(data, channels=3, ratio=8)  # full entropy decode, cheap IDCT
                else:
                    tf.io.decode_png(data, channels=3)
                return CheckedImage("tf")
            buffer = io.BytesIO()
            image.convert("RGB").save(buffer, format="PNG", compress_level=1)
            return CheckedImage("inline", inline=buffer.getvalue())
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, tf.errors.OpError) as err:  # ImageError too
        message = getattr(err, "message", None) or str(err) or type(err).__name__
        return CheckedImage("bad", reason=message.strip().splitlines()[-1])


def check_files(paths: list[Path], label: str, progress: bool = True) -> list[CheckedImage]:
    """check_image over many files in parallel threads (decoders release the GIL), in order."""
    bar = None
    if progress and len(paths) >= PROGRESS_MIN_FILES:
        print(f"Checking {len(paths)} images in {label}")
        bar = keras.utils.Progbar(len(paths), interval=0.5, unit_name="image")
    results = []
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        for checked in pool.map(check_image, paths):
            results.append(checked)
            if bar is not None:
                bar.update(len(results))
    return results


def load_folder(root: str | Path, name: str | None = None, progress: bool = True,
                expected_domains: list[str] | None = None, flat: bool = False) -> DomainImages:
    """A folder of domain folders as DomainImages; layout errors first, then one decoding pass."""
    layout = scan_layout(root, flat)
    if expected_domains is not None and layout.domain_names != list(expected_domains):
        raise DatasetError(f"{layout.root / 'train'} has domains {layout.domain_names}, expected "
                           f"{list(expected_domains)}.")
    bad_files: list[BadFile] = []
    converted = 0
    splits = {}
    for split, per_domain in layout.files.items():
        split_dir = layout.train_folder if split == "train" else layout.val_folder
        flat = [path for files in per_domain for path in files]
        checked = iter(check_files(flat, str(split_dir), progress))
        sources = []
        for domain, files in zip(layout.domain_names, per_domain):
            good, inline = [], {}
            for path in files:
                verdict = next(checked)
                if verdict.kind == "bad":
                    log.warning("skipping %s: cannot be used (%s)", display_path(path), verdict.reason)
                    bad_files.append(BadFile(display_path(path), verdict.reason))
                    continue
                if verdict.kind == "inline":
                    inline[len(good)] = verdict.inline
                    converted += 1
                good.append(str(path))
            if not good:
                raise DatasetError(f"no image in {split_dir / domain} could be decoded ({len(files)} file(s) "
                                   "skipped, see the warnings above); replace them.")
            sources.append(ImageSource(paths=tuple(good), inline=inline))
        splits[split] = sources
    if "val" not in splits:
        log.warning("%s has no val/ folder: sample grids and evaluation will use train images.", layout.root)
        splits["val"] = splits["train"]
    result = DomainImages(name=name or str(layout.root), domain_names=layout.domain_names, splits=splits,
                          bad_files=bad_files, converted=converted)
    if bad_files:
        log.warning("%d image file(s) of %s cannot be used and are skipped.", len(bad_files), result.name)
    return result
