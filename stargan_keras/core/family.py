"""What a model family gives the commands and the shared machinery (`stargan_keras.families` holds the
registered ones). Each family's `family.py` subclasses `Family`; the shared code calls these methods and
never asks which family it holds."""

from __future__ import annotations

from pathlib import Path


class Family:
    """One model family: its configuration, networks, training session parts, translation, serving,
    conversion of the authors' checkpoints, sample figures and evaluation."""

    name: str = ""
    title: str = ""
    config_class: type = None
    signatures = None  # its serving contract: a `serving.signatures.Table`
    run_dir_prefix = ""  # runs named after their dataset: runs/<prefix><dataset>
    resume_ignore: tuple[str, ...] = ()  # network fields known only after the dataset scan
    lr_flags = ""  # the learning-rate flags a non-finite loss suggests lowering
    model_flags: tuple[str, ...] = ()  # the config fields that describe an authors' checkpoint's networks

    # -- configuration -------------------------------------------------------------------------------------------
    def preset_for(self, dataset: str | None, preset_names: list[str]) -> str:
        """The preset `train --dataset DATASET` starts from."""
        raise NotImplementedError

    # -- networks and directories --------------------------------------------------------------------------------
    def load_networks(self, path: Path, config):
        """The networks of a model directory, or a run directory's latest checkpoint."""
        raise NotImplementedError

    def check_sources(self, config, directory, where: str) -> None:
        """Before any work: what the model needs besides its weights is there."""

    def translator(self, config, networks, **kwargs):
        """The family's translation object (`inference.Translator`), the one place its G runs."""
        raise NotImplementedError

    # -- the training session (`core.session`) -------------------------------------------------------------------
    def check(self, config, run, warm_start) -> None:
        """Before any work: what would make the run fail later."""
        self.check_sources(config, run.root, f"--run-dir {run.root}")

    def load_data(self, config):
        raise NotImplementedError

    def adopt(self, config, data, explicit: dict):
        """The config with what the dataset decides (domains or labels), unless given explicitly."""
        return config

    def image_size(self, config) -> int:
        raise NotImplementedError

    def label_names(self, config) -> list[str]:
        """What G's target names: StarGAN v2's domains, v1's label columns."""
        raise NotImplementedError

    def build_model(self, config, strategy, checkpoint_dir: Path, run, chief: bool):
        """(trainer, checkpoint manager, restored checkpoint prefix or None): see `core.session.build_model`."""
        raise NotImplementedError

    def warm_start(self, model, start, config) -> None:
        """Start a new run's trainer from other weights (`train --init-from`)."""
        raise NotImplementedError

    def resolve_warm_start(self, init_from, discriminator_checkpoint):
        """`train --init-from` checked before any work."""
        raise NotImplementedError

    def train_dataset(self, config, data, start_step: int):
        raise NotImplementedError

    def sample_callback(self, config, model, data, run, writer):
        raise NotImplementedError

    # -- commands ------------------------------------------------------------------------------------------------
    def convert(self, checkpoint, config, output, discriminator_checkpoint=None, overwrite: bool = False, log=print):
        """The authors' checkpoint as a model directory."""
        raise NotImplementedError

    def sample(self, args) -> dict:
        """The `sample` command's figures for `args.checkpoint`: {name: path written}."""
        raise NotImplementedError

    def evaluate(self, args, metrics: list[str], data_flags: dict) -> list[Path]:
        """The `evaluate` command's protocol; returns the reports written."""
        raise NotImplementedError

    # -- serving -------------------------------------------------------------------------------------------------
    def check_exportable(self, config) -> None:
        """Raise a UserError when the model has no serving signatures."""

    def serving_translator(self, translator, mean_style_samples: int):
        """The translator an export traces (StarGAN v2 averages its mean styles here)."""
        return translator

    def serving_names(self, translator) -> tuple[str, list[str]]:
        """(the export's asset file of names, the names): domains or label columns."""
        raise NotImplementedError

    def serving_module(self, translator, names_file: str, max_image_pixels):
        """The tf.Module whose functions are the family table's signatures (`serving.module.ServingModule`)."""
        raise NotImplementedError

    def demo_metadata(self, config, names: list[str]) -> dict:
        """What the browser demo's page needs besides the TFLite file's sizes and the names (`model.json`);
        config is None for a .tflite file or an export, which carry no config."""
        return {}
