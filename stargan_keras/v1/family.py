"""StarGAN v1's part of a training session: `stargan_keras.core.session` runs the session (run directory, lock,
resume, callbacks, `fit`) and asks this family for the data, the trainer, the batches and the samples."""

from __future__ import annotations

from stargan_keras.core import session as training
from stargan_keras.core.config import Config, ConfigError

SAMPLE_ROWS = 8  # input images of the sample figures, one row each


class V1Family(training.Family):
    """StarGAN v1 (`model_family: v1`): labelled images, `StarGANv1`, the authors' translation figure."""

    model_family = "v1"
    resume_ignore = ("c_dim", "c2_dim", "selected_attrs", "label_type")  # known only after the dataset scan
    lr_flags = "--g-lr / --d-lr"

    def check(self, config: Config, run, warm_start) -> None:
        if warm_start is not None:
            raise ConfigError("--init-from starts StarGAN v2 runs; a StarGAN v1 run starts from the authors' "
                              "{step}-G.ckpt / {step}-D.ckpt once they are converted (python -m stargan_keras.convert).")

    def load_data(self, config: Config):
        from stargan_keras.v1.data import load_labelled

        return training.as_config_error(load_labelled, config)

    def adopt(self, config: Config, data, explicit: dict) -> Config:
        from stargan_keras.v1.data import adopt_labels

        return adopt_labels(config, data, explicit)

    def image_size(self, config: Config) -> int:
        return config.v1.image_size

    def build_model(self, config: Config, strategy, checkpoint_dir, run, chief: bool):
        from stargan_keras.v1.trainer import StarGANv1

        return training.build_model(config, strategy, checkpoint_dir, run, lambda: StarGANv1(config))

    def train_dataset(self, config: Config, data, start_step: int):
        from stargan_keras.v1.data import make_train_dataset

        return make_train_dataset(config, data, start_step=start_step)

    def sample_callback(self, config: Config, model, data, run, writer):
        from stargan_keras.v1.data import fixed_test_batch
        from stargan_keras.v1.figures import TranslationGrids

        batch = fixed_test_batch(config, data, SAMPLE_ROWS)
        return TranslationGrids(config, model.nets.generator, batch, config.train.sample_every, run.samples, writer)
