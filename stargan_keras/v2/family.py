"""StarGAN v2 in the registry (`stargan_keras.families`): what the commands and the training session
(`core.session`) ask of this family, each answer delegating to the module that owns it."""

from __future__ import annotations

from pathlib import Path

from stargan_keras.core import session
from stargan_keras.core.config import ConfigError
from stargan_keras.core.family import Family
from stargan_keras.face.model_files import check_fan_source, face_network
from stargan_keras.serving.signatures import TABLES
from stargan_keras.v2.config import Config

SAMPLE_COLUMNS = 8  # about this many images per grid row, rounded to a multiple of the domains
DATASET_PRESETS = {"afhq_v2": "afhq"}  # datasets without a preset of their own name


def adopt_dataset_domains(config: Config, domain_images, explicit: dict) -> Config:
    """The networks get the dataset's domains, unless the user named other ones on the command line."""
    names = list(domain_images.domain_names)
    if config.model.domain_names == names and config.model.num_domains == len(names):
        return config
    given = [f"--{k.replace('_', '-')} {explicit[k]}" for k in ("num_domains", "domain_names") if k in explicit]
    if given:
        raise ConfigError(f"{' '.join(given)} does not match dataset {domain_images.name}, whose domains are "
                          f"{', '.join(names)}; drop the flag or pass --domain-names {','.join(names)}.")
    return config.replace(num_domains=len(names), domain_names=names)


class V2(Family):
    name = "v2"
    title = "StarGAN v2"
    config_class = Config
    signatures = TABLES["v2"]
    resume_ignore = ("num_domains", "domain_names")  # known only after the dataset scan
    lr_flags = "--lr / --f-lr"
    model_flags = ("img_size", "num_domains", "domain_names", "latent_dim", "style_dim", "mapping_hidden_dim",
                   "w_hpf", "fan_checkpoint", "base_dim", "max_conv_dim")

    def preset_for(self, dataset, preset_names):
        name = DATASET_PRESETS.get(dataset, dataset) if dataset else "shapes"
        return name if name in preset_names else "shapes"

    # -- networks and directories --------------------------------------------------------------------------------
    def load_networks(self, path: Path, config: Config):
        from stargan_keras.v2.networks import load_networks

        return load_networks(path, config)

    def check_sources(self, config, directory, where: str) -> None:
        check_fan_source(config, directory, where)

    def translator(self, config, networks, **kwargs):
        from stargan_keras.v2.inference import Translator

        return Translator(config, networks, **kwargs)

    # -- the training session ------------------------------------------------------------------------------------
    def load_data(self, config):
        from stargan_keras.data.pipeline import load_dataset

        return session.as_config_error(load_dataset, config)

    def adopt(self, config, data, explicit: dict):
        return adopt_dataset_domains(config, data, explicit)

    def image_size(self, config) -> int:
        return config.model.img_size

    def label_names(self, config) -> list[str]:
        return config.model.resolved_domain_names

    def build_model(self, config, strategy, checkpoint_dir: Path, run, chief: bool):
        """`core.session.build_model` of StarGANv2, with the face-landmark network of a w_hpf > 0 model."""
        from stargan_keras.v2.trainer import StarGANv2

        fan = face_network(config, run.root, save=chief)
        return session.build_model(config, strategy, checkpoint_dir, run, lambda: StarGANv2(config, fan=fan))

    def resolve_warm_start(self, init_from, discriminator_checkpoint):
        from stargan_keras.v2 import warm_start

        return warm_start.resolve(init_from, discriminator_checkpoint)

    def warm_start(self, model, start, config) -> None:
        from stargan_keras.v2 import warm_start

        warm_start.apply(model, start, config)

    def train_dataset(self, config, data, start_step: int):
        from stargan_keras.data.pipeline import make_train_dataset

        return make_train_dataset(config, data, start_step=start_step)

    def sample_callback(self, config, model, data, run, writer):
        from stargan_keras.data.pipeline import fixed_val_batch
        from stargan_keras.v2.figures import SampleGrids

        columns = data.num_domains * max(1, round(SAMPLE_COLUMNS / data.num_domains))
        batch = fixed_val_batch(config, data, columns)
        return SampleGrids(config, model.nets_ema, batch, config.train.sample_every, run.samples, writer,
                           seed=config.train.seed)

    # -- commands ------------------------------------------------------------------------------------------------
    def convert(self, checkpoint, config, output, discriminator_checkpoint=None, overwrite: bool = False, log=print):
        from stargan_keras.v2.convert import convert_checkpoint

        return convert_checkpoint(checkpoint, config, output, discriminator_checkpoint, log=log, overwrite=overwrite)

    def sample(self, args) -> dict:
        from stargan_keras.v2.figures import SampleError, sample
        from stargan_keras.v2.inference import Translator

        if args.src is None or args.ref is None:
            raise SampleError("--src and --ref are required for a StarGAN v2 model: folders of domain folders of "
                              "source and reference images.")
        translator = Translator.from_directory(args.checkpoint, mean_style_seed=args.seed)
        return sample(translator, args.src, args.ref, args.out, seed=args.seed, num_latent=args.num_latent,
                      video_sources=args.video_sources, video_format=args.video_format, progress=not args.quiet)

    def evaluate(self, args, metrics, data_flags):
        from stargan_keras.v2 import evaluation

        return evaluation.run(args, metrics, data_flags)

    # -- serving -------------------------------------------------------------------------------------------------
    def serving_translator(self, translator, mean_style_samples: int):
        """The exported translator: its mean styles (for psi < 1) average `mean_style_samples` codes per domain."""
        from stargan_keras.v2.inference import Translator

        samples = translator.mean_style_samples if mean_style_samples is None else mean_style_samples
        translator = Translator(translator.config, translator.networks, mean_style_samples=samples,
                                mean_style_seed=translator.mean_style_seed)
        translator.mean_styles()
        return translator

    def serving_names(self, translator) -> tuple[str, list[str]]:
        from stargan_keras.v2.serving import NAMES_ASSET

        return NAMES_ASSET, translator.config.model.resolved_domain_names

    def serving_module(self, translator, names_file: str, max_image_pixels):
        from stargan_keras.v2.serving import Serving

        return Serving(translator, names_file, max_image_pixels)


FAMILY = V2()
