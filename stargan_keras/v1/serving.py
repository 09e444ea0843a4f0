"""StarGAN v1's serving module: G's variables and the v1 table's signatures (`translate`, `translate_bytes`,
`metadata`) over a `v1.inference.Translator` (see `serving.module` for what every family's export shares)."""

from __future__ import annotations

import tensorflow as tf

from stargan_keras.core.imaging import to_uint8_tensor
from stargan_keras.core.layers import torch_named_variables
from stargan_keras.serving import checks
from stargan_keras.serving.module import ServingModule, encode_png
from stargan_keras.serving.signatures import MAX_IMAGE_PIXELS_OUT, TABLES, V1_SIZE_OUTS

NAMES_ASSET = TABLES["v1"].names_asset


class Serving(ServingModule):
    """A StarGAN v1 export: G's variables and the v1 table's signatures over a `v1.inference.Translator`.

    Target labels are checked for their width (c_dim), finiteness and, for attribute models, values in
    [0, 1] (`checks.labels`): G was trained on such labels only. Joint two-dataset models are not served.
    """

    FAMILY = "v1"

    def __init__(self, translator, attribute_names_file: str, max_image_pixels: int | None = None):
        v1 = translator.config.model
        if v1.c2_dim:
            raise ValueError("a joint two-dataset StarGAN v1 model (c2_dim > 0) has no serving signatures")
        super().__init__(v1.image_size, max_image_pixels)
        self.model = v1
        self.attribute_names = tuple(translator.attribute_names)
        # The tf.Variables under the Keras variables, as StarGANServing keeps them.
        self.weights = {key: variable.value for key, variable in torch_named_variables(translator.generator).items()}
        self.attribute_names_asset = tf.saved_model.Asset(attribute_names_file)
        self._translator = translator
        self._add_functions(translator, v1)

    def _compute(self, translator, name, image, target_labels):
        if name != "translate":
            raise AssertionError(f"{name} is not a tensor signature of the v1 table")
        return to_uint8_tensor(translator.translate(image, target_labels))

    def metadata_values(self) -> dict:
        """What the `metadata` signature answers, for files that carry it themselves (ONNX)."""
        return {"attribute_names": self.attribute_names, "image_size": self.model.image_size,
                "c_dim": self.model.c_dim, "label_type": self.model.label_type}

    def _labels(self, target_labels, batch, batch_of):
        return checks.labels(target_labels, self.model.c_dim, batch, batch_of, self.model.label_type == "attributes")

    # -- the signatures (argument names are the v1 table's input names) ------------------------------------------
    def _serve_translate(self, image, target_labels):
        x = self._images(image, "image")
        return self._run("translate", x, self._labels(target_labels, tf.shape(x)[0], "image"))

    def _serve_translate_bytes(self, image_bytes, target_labels):
        x = self._decode(image_bytes, "image_bytes")
        image = self._compute(self._translator, "translate", x,
                              self._labels(target_labels, tf.shape(x)[0], "image_bytes"))
        return self._outputs("translate_bytes", encode_png(image))

    def _serve_metadata(self, attribute):
        index = checks.domain_indices(attribute, self.attribute_names, name="attribute")
        k = tf.shape(index)[0]

        def rows(value, dtype=tf.int32):
            return tf.fill([k], tf.constant(value, dtype))

        return self._outputs("metadata", index, tf.tile(tf.constant(self.attribute_names)[None], [k, 1]),
                             *(rows(getattr(self.model, t.name)) for t in V1_SIZE_OUTS),
                             rows(self.model.label_type, tf.string),
                             rows(self.max_image_pixels, tf.as_dtype(MAX_IMAGE_PIXELS_OUT.dtype)))
