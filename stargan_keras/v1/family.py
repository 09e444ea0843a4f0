"""StarGAN v1 in the registry (`stargan_keras.families`): what the commands and the training session
(`core.session`) ask of this family, each answer delegating to the module that owns it."""

from __future__ import annotations

from pathlib import Path


from stargan_keras.core import session
from stargan_keras.core.config import ConfigError
from stargan_keras.core.errors import UserError
from stargan_keras.core.family import Family
from stargan_keras.serving.signatures import TABLES
from stargan_keras.v1.config import Config

SAMPLE_ROWS = 8  # input images of the sample figures, one row each
DATASET_PRESETS = {"shapes": "v1_shapes", "celeba": "v1_celeba", "rafd": "v1_rafd", "both": "v1_both"}
FOLDER_PRESET = "v1_rafd"  # a folder of class folders: categorical labels, as RaFD's


class V1(Family):
    name = "v1"
    title = "StarGAN v1"
    config_class = Config
    signatures = TABLES["v1"]
    run_dir_prefix = "v1_"
    resume_ignore = ("c_dim", "c2_dim", "selected_attrs", "label_type")  # known only after the dataset scan
    lr_flags = "--g-lr / --d-lr"
    model_flags = Config.NETWORK_FIELDS

    def preset_for(self, dataset, preset_names):
        return DATASET_PRESETS.get(dataset or "shapes", FOLDER_PRESET)

    # -- networks and directories --------------------------------------------------------------------------------
    def load_networks(self, path: Path, config: Config):
        from stargan_keras.v1.networks import load_networks

        return load_networks(path, config)

    def translator(self, config, networks, **kwargs):
        from stargan_keras.v1.inference import Translator

        return Translator(config, networks, **kwargs)

    # -- the training session ------------------------------------------------------------------------------------
    def resolve_warm_start(self, init_from, discriminator_checkpoint):
        raise ConfigError("--init-from starts StarGAN v2 runs; a StarGAN v1 run starts from the authors' "
                          "{step}-G.ckpt / {step}-D.ckpt once they are converted (python -m stargan_keras.convert).")

    def load_data(self, config: Config):
        from stargan_keras.v1.data import load_labelled

        return session.as_config_error(load_labelled, config)

    def adopt(self, config: Config, data, explicit: dict) -> Config:
        from stargan_keras.v1.data import adopt_labels

        return adopt_labels(config, data, explicit)

    def image_size(self, config: Config) -> int:
        return config.model.image_size

    def label_names(self, config) -> list[str]:
        return config.model.label_names

    def build_model(self, config: Config, strategy, checkpoint_dir, run, chief: bool):
        from stargan_keras.v1.trainer import StarGANv1

        return session.build_model(config, strategy, checkpoint_dir, run, lambda: StarGANv1(config))

    def train_dataset(self, config: Config, data, start_step: int):
        from stargan_keras.v1.data import make_train_dataset

        return make_train_dataset(config, data, start_step=start_step)

    def sample_callback(self, config: Config, model, data, run, writer):
        from stargan_keras.v1.data import fixed_test_batch
        from stargan_keras.v1.figures import TranslationGrids

        batch = fixed_test_batch(config, data, SAMPLE_ROWS)
        return TranslationGrids(config, model.nets.generator, batch, config.train.sample_every, run.samples, writer)

    # -- commands ------------------------------------------------------------------------------------------------
    def convert(self, checkpoint, config, output, discriminator_checkpoint=None, overwrite: bool = False, log=print):
        from stargan_keras.v1.convert import convert_checkpoint

        return convert_checkpoint(checkpoint, config, output, discriminator_checkpoint, log=log, overwrite=overwrite)

    def sample(self, args) -> dict:
        """The authors' test mode: translations and label interpolations of the model's own test images."""
        from stargan_keras.v1.figures import write_test_figures
        from stargan_keras.v1.networks import open_directory

        translator = self.translator(*open_directory(args.checkpoint))
        return write_test_figures(translator, args.out, args.rows, progress=not args.quiet)

    def evaluate(self, args, metrics, data_flags):
        from stargan_keras.v1 import evaluation

        return evaluation.run(args, metrics, data_flags)

    # -- serving -------------------------------------------------------------------------------------------------
    def check_exportable(self, config: Config) -> None:
        if config.model.c2_dim:
            raise UserError("a joint two-dataset StarGAN v1 model (--dataset both, c2_dim > 0) cannot be exported: "
                            "the serving signatures take one dataset's labels. Export a model of one dataset.")

    def serving_names(self, translator) -> tuple[str, list[str]]:
        from stargan_keras.v1.serving import NAMES_ASSET

        return NAMES_ASSET, translator.attribute_names

    def serving_module(self, translator, names_file: str, max_image_pixels):
        from stargan_keras.v1.serving import Serving

        return Serving(translator, names_file, max_image_pixels)

    def demo_metadata(self, config, names):
        """The page's label layout: `exclusive`, the labels of which exactly one is on (radio buttons), the
        others free (checkboxes). As the authors' test mode (`Solver.create_labels`): the hair colours, by
        name, for attributes (a config's `exclusive_attrs`); every class for categorical labels. A file or an
        export carries no config: its labels are taken as attributes with the authors' hair colours."""
        from stargan_keras.v1.labels import HAIR_COLOURS

        label_type = config.model.label_type if config is not None else "attributes"
        exclusive = config.model.exclusive_attrs if config is not None else HAIR_COLOURS
        if label_type == "categorical":
            exclusive = names
        return {"label_type": label_type, "exclusive": [name for name in names if name in exclusive]}


FAMILY = V1()
