"""Writing an export in TF Serving's layout: `<base>/<version>/`, each version written atomically.

TF Serving serves the highest integer subdirectory of a model's base path and skips the
others, so a version is staged under a non-integer name beside the others and renamed into
place once complete: a running server never sees half an export. A base path holds nothing
else: an existing directory with other entries is refused (it is someone's data) unless
`overwrite`. Versions are readable by every user (directories 0755, files 0644), so that a
TF Serving process running as another user can load them.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

import tensorflow as tf

from stargan_keras import families
from stargan_keras.core.config import ConfigError
from stargan_keras.core.errors import UserError
from stargan_keras.serving.warmup import WARMUP_FILE, warmup_inputs, write_warmup

VERSION = re.compile(r"\d+")
LEFTOVER = re.compile(r"\.\d+\.(tmp|old)-.+")  # staging (and replaced) versions of an interrupted export
DIR_MODE, FILE_MODE = 0o755, 0o644
# What reading a damaged run or model directory can raise (TensorFlow's and h5py's readers, the YAML parser).
DAMAGED_MODEL_ERRORS = (tf.errors.OpError, OSError, ValueError, KeyError, IndexError, EOFError, UnicodeDecodeError)


class ExportError(ConfigError):
    """An export that cannot be written where it was asked, or a model that cannot be read; says why."""


def existing_versions(output_dir: Path) -> list[int]:
    if not output_dir.is_dir():
        return []
    return sorted(int(p.name) for p in output_dir.iterdir() if p.is_dir() and VERSION.fullmatch(p.name))


def resolve_version(output_dir: Path, version: int | None, overwrite: bool = False) -> int:
    """The version to write: the one asked for if free (or `overwrite`), else one more than the latest there
    (1 if none)."""
    versions = existing_versions(output_dir)
    following = versions[-1] + 1 if versions else 1
    if version is None:
        return following
    if version < 0:
        raise ConfigError(f"--version {version}: TF Serving versions are non-negative integers.")
    if (output_dir / str(version)).exists() and not overwrite:
        raise ConfigError(f"{output_dir / str(version)} already exists: pass another --version, or omit it to use "
                          f"{following}, or --overwrite to replace it.")
    return version


def check_output(output_dir, version: int | None = None, overwrite: bool = False) -> int:
    """The version an export to output_dir would write, after `check_base_dir` (call it before the work)."""
    check_base_dir(Path(output_dir), overwrite)
    return resolve_version(Path(output_dir), version, overwrite)


def check_base_dir(output_dir: Path, overwrite: bool = False) -> None:
    """Refuse an --output that is a file, or a directory holding anything but versions (unless overwrite)."""
    if output_dir.exists() and not output_dir.is_dir():
        raise ExportError(f"--output {output_dir} is a file: pass a directory (TF Serving's model base path), "
                          "e.g. models/stargan.")
    if overwrite or not output_dir.is_dir():
        return
    foreign = sorted(p.name + ("/" if p.is_dir() else "") for p in output_dir.iterdir()
                     if not (p.is_dir() and (VERSION.fullmatch(p.name) or LEFTOVER.fullmatch(p.name))))
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise ExportError(f"--output {output_dir} is not a TF Serving model base directory: it holds {shown}, and "
                          "only version directories (1/, 2/, ...) belong there. Pass a new or empty directory, or "
                          "--overwrite to add a version beside them (nothing there is removed).")


def load_model(path):
    """`stargan_keras.load(path)`, with a damaged or foreign directory reported as an ExportError naming it."""
    try:
        return families.load(path)
    except UserError:
        raise
    except DAMAGED_MODEL_ERRORS as err:
        reason = (getattr(err, "message", None) or str(err) or type(err).__name__).strip().splitlines()[0]
        raise ExportError(f"--checkpoint {path}: cannot read its networks ({type(err).__name__}: {reason[:200]}). "
                          "It may be damaged or incomplete: pass another run or model directory.") from None


def build_serving_module(translator, asset_dir: Path, mean_style_samples: int | None = None,
                         max_image_pixels: int | None = None):
    """The family's serving module (`Family.serving_module`) over `translator`, its names asset written in
    asset_dir: what a SavedModel saves and an ONNX export converts. Callers check `Family.check_exportable`
    first, before they create anything."""
    family = families.of_config(translator.config)
    translator = family.serving_translator(translator, mean_style_samples)
    asset_name, names = family.serving_names(translator)
    names_file = Path(asset_dir) / asset_name
    names_file.write_text("".join(f"{name}\n" for name in names))
    return family.serving_module(translator, str(names_file), max_image_pixels)


def export_saved_model(translator, output_dir, version: int | None = None,
                       mean_style_samples: int | None = None, model_name: str | None = None,
                       progress: bool = False, max_image_pixels: int | None = None,
                       overwrite: bool = False) -> Path:
    """Write the translator's model to `<output_dir>/<version>/` atomically and return that path.

    version defaults to the next integer after the versions already there; the mean styles
    saved for psi < 1 (StarGAN v2) average `mean_style_samples` latent codes per domain (None: the
    translator's own count); input images may
    have up to `max_image_pixels` pixels (default `imaging.MAX_IMAGE_PIXELS`). `overwrite`
    allows a base directory holding other files, and replaces an existing `version`.

    The signatures are those of the model family's table, traced from its serving module
    (`Family.serving_module`).
    """
    output_dir = Path(output_dir)
    families.of_config(translator.config).check_exportable(translator.config)  # before the version is made
    version = check_output(output_dir, version, overwrite)
    target = output_dir / str(version)
    created = _writable_dir(output_dir)
    bar = _Steps(3, progress)  # the family's preparation (v2: mean styles), trace and save, warmup
    staging = None
    asset_dir = Path(tempfile.mkdtemp(prefix="stargan-assets-"))
    try:
        module = build_serving_module(translator, asset_dir, mean_style_samples, max_image_pixels)
        bar.done()
        staging = Path(tempfile.mkdtemp(prefix=f".{version}.tmp-", dir=output_dir))  # TF Serving skips non-integers
        tf.saved_model.save(module, str(staging), signatures=module.signatures())
        bar.done()
        write_warmup(staging / WARMUP_FILE, model_name or output_dir.name,
                     warmup_inputs(module.table, translator.config.model))
        bar.done()
        _readable_by_all(staging)
        _put_in_place(staging, target)
    except BaseException:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        if created and not any(output_dir.iterdir()):
            output_dir.rmdir()
        raise
    finally:
        shutil.rmtree(asset_dir, ignore_errors=True)
    return target


def _writable_dir(output_dir: Path) -> bool:
    """Create output_dir if needed and make sure files can be written there; True if it was created."""
    created = not output_dir.exists()
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=output_dir):
            pass
    except OSError as err:
        raise ExportError(f"--output {output_dir}: cannot write there ({err.strerror or err}); pass a directory "
                          "you can write to.") from None
    return created


def _readable_by_all(root: Path) -> None:
    """Directories 0755 and files 0644 under root (mkdtemp makes root 0700)."""
    os.chmod(root, DIR_MODE)
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            os.chmod(os.path.join(folder, name), DIR_MODE)
        for name in files:
            os.chmod(os.path.join(folder, name), FILE_MODE)


def _put_in_place(staging: Path, target: Path) -> None:
    """Rename staging to target; an existing target (overwrite) is renamed aside first, then deleted."""
    if not target.exists():
        staging.rename(target)
        return
    retired = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    retired.rmdir()
    target.rename(retired)
    try:
        staging.rename(target)
    except BaseException:
        retired.rename(target)
        raise
    shutil.rmtree(retired, ignore_errors=True)


class _Steps:
    """A Progbar over the export's steps (silent when progress is off)."""

    def __init__(self, count, enabled):
        import keras

        self.bar = keras.utils.Progbar(count) if enabled else None

    def done(self):
        if self.bar is not None:
            self.bar.add(1)
