"""Writing an export in TF Serving's layout: `<base>/<version>/`, each version written atomically.

TF Serving serves the highest integer subdirectory of a model's base path and skips the
others, so a version is staged under a non-integer name beside the others and renamed into
place once complete: a running server never sees half an export.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import tensorflow as tf

from ..config import ConfigError
from ..inference import MEAN_STYLE_SAMPLES, Translator
from .module import DOMAIN_NAMES_ASSET, StarGANServing
from .warmup import WARMUP_FILE, warmup_inputs, write_warmup


def existing_versions(output_dir: Path) -> list[int]:
    if not output_dir.is_dir():
        return []
    return sorted(int(p.name) for p in output_dir.iterdir() if p.is_dir() and re.fullmatch(r"\d+", p.name))


def resolve_version(output_dir: Path, version: int | None) -> int:
    """The version to write: the one asked for if free, else one more than the latest there (1 if none)."""
    versions = existing_versions(output_dir)
    following = versions[-1] + 1 if versions else 1
    if version is None:
        return following
    if version < 0:
        raise ConfigError(f"--version {version}: TF Serving versions are non-negative integers.")
    if (output_dir / str(version)).exists():
        raise ConfigError(f"{output_dir / str(version)} already exists: pass another --version, or omit it to use "
                          f"{following}, or remove that directory.")
    return version


def export_saved_model(translator: Translator, output_dir, version: int | None = None,
                       mean_style_samples: int = MEAN_STYLE_SAMPLES, model_name: str | None = None,
                       progress: bool = False) -> Path:
    """Write the translator's model to `<output_dir>/<version>/` atomically and return that path.

    version defaults to the next integer after the versions already there; the mean styles
    saved for psi < 1 average `mean_style_samples` latent codes per domain.
    """
    output_dir = Path(output_dir)
    version = resolve_version(output_dir, version)
    target = output_dir / str(version)
    cfg = translator.config.model
    bar = _Steps(4, progress)  # mean styles, trace, save, warmup
    translator = Translator(translator.config, translator.networks, mean_style_samples=mean_style_samples,
                            mean_style_seed=translator.mean_style_seed)
    translator.mean_styles()
    bar.done()
    output_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{version}.tmp-", dir=output_dir))  # TF Serving skips non-integers
    asset_dir = Path(tempfile.mkdtemp(prefix="stargan-assets-"))
    try:
        names_file = asset_dir / DOMAIN_NAMES_ASSET
        names_file.write_text("".join(f"{name}\n" for name in cfg.resolved_domain_names))
        module = StarGANServing(translator, str(names_file))
        signatures = module.signatures()
        bar.done()
        tf.saved_model.save(module, str(staging), signatures=signatures)
        bar.done()
        write_warmup(staging / WARMUP_FILE, model_name or output_dir.name, warmup_inputs(cfg))
        bar.done()
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(asset_dir, ignore_errors=True)
    return target


class _Steps:
    """A Progbar over the export's steps (silent when progress is off)."""

    def __init__(self, count, enabled):
        import keras

        self.bar = keras.utils.Progbar(count) if enabled else None

    def done(self):
        if self.bar is not None:
            self.bar.add(1)
