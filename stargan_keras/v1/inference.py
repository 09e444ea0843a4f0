"""StarGAN v1's translation object: G(x, c) of a converted or trained model, for users and the serving module.

`stargan_keras.load(DIR)` returns one when the directory's config has `model_family: v1`
(a `v2.inference.Translator` for StarGAN v2). Translation is the paper's single
mapping G(x, c) (Choi et al., CVPR 2018, Section 3): the target label vector c,
floats [N, c_dim] (in joint mode the `label_dim` columns with the mask vector, see
`ModelConfig.label_dim`), tiled over the image and fed with it to G.
"""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf

from stargan_keras.v1.config import Config
from stargan_keras.v1.networks import V1Networks


class Translator:
    """A v1 model's config and networks, and G(x, c) traced once for any batch size.

    Images are float32 [N, image_size, image_size, 3] in [-1, 1] (use `imaging` at the edges),
    labels float32 [N, label_dim].
    """

    def __init__(self, config: Config, networks: V1Networks):
        if not isinstance(config, Config):
            raise ValueError(f"a StarGAN v1 Translator needs a v1 config, got {type(config).__module__}")
        self.config, self.networks = config, networks
        v1 = config.model
        images = tf.TensorSpec([None, v1.image_size, v1.image_size, 3], tf.float32)
        labels = tf.TensorSpec([None, v1.label_dim], tf.float32)
        self._generate = tf.function(lambda x, c: tf.cast(networks.generator(x, c), tf.float32),
                                     input_signature=[images, labels], autograph=False)

    @classmethod
    def from_directory(cls, path: str | Path) -> "Translator":
        """A v1 model directory, or a v1 run directory's latest checkpoint."""
        from stargan_keras.v1.networks import open_directory

        return cls(*open_directory(path))

    @property
    def generator(self):
        """G, called as generator(x, c)."""
        return self.networks.generator

    @property
    def discriminator(self):
        """D (None when the directory has no discriminator), returning (PatchGAN map, class logits)."""
        return self.networks.discriminator

    @property
    def attribute_names(self) -> list[str]:
        """The names of the label vector's columns: the config's selected_attrs (label_0, ... without them)."""
        return self.config.model.label_names

    def translate(self, x, c):
        """G(x, c): images in [-1, 1] (not clipped: use `imaging.to_uint8` to quantize)."""
        return self._generate(tf.cast(x, tf.float32), tf.cast(c, tf.float32))
