"""StarGAN v2's serving module: the EMA networks, the mean styles, and the v2 table's signatures over a
`Translator` (see `serving.module` for what every family's export shares)."""

from __future__ import annotations

import tensorflow as tf

from stargan_keras.core.imaging import to_uint8_tensor
from stargan_keras.core.layers import torch_named_variables
from stargan_keras.serving import checks
from stargan_keras.serving.module import ServingModule, encode_png
from stargan_keras.serving.signatures import MAX_IMAGE_PIXELS_OUT, TABLES, SIZE_OUTS
from stargan_keras.v2.inference import Translator
from stargan_keras.v2.networks import EMA_NETWORKS

NAMES_ASSET = TABLES["v2"].names_asset


def translate(translator: Translator, name: str, *inputs):
    """The one output of tensor signature `name`, on checked model-size inputs (images float32 in [-1, 1])."""
    compute = {
        "latent_guided": lambda image, target_domain, z, psi: to_uint8_tensor(
            translator.latent_guided(image, target_domain, z, psi)),
        "reference_guided": lambda image, reference, reference_domain: to_uint8_tensor(
            translator.reference_guided(image, reference, reference_domain)),
        "style_from_latent": lambda target_domain, z, psi: translator.style_from_latent(z, target_domain, psi),
        "style_from_reference": translator.style_from_reference,
        "synthesize": lambda image, style: to_uint8_tensor(translator.synthesize(image, style)),
    }
    return compute[name](*inputs)


class Serving(ServingModule):
    """The exported object: the EMA networks' variables, the mean styles, and the serving functions.

    `translator` gives the config and networks; its mean styles are computed here, eagerly,
    and saved as the `mean_styles` variable that the traced functions read. Input images
    (decoded or declared by an encoded file's header) may have up to `max_image_pixels`
    pixels (default `imaging.MAX_IMAGE_PIXELS`).
    """

    FAMILY = "v2"

    def __init__(self, translator: Translator, domain_names_file: str, max_image_pixels: int | None = None):
        super().__init__(translator.config.model.img_size, max_image_pixels)
        self.model = translator.config.model
        self.domain_names = tuple(self.model.resolved_domain_names)
        # The tf.Variables under the Keras variables: tracking the Keras wrappers instead would save copies
        # that the traced functions do not read (the session loader then finds them uninitialized).
        self.weights = {name: {key: variable.value for key, variable in
                               torch_named_variables(getattr(translator.networks, name)).items()}
                        for name in EMA_NETWORKS}
        fan = translator.networks.fan  # the face-landmark network of a w_hpf > 0 model: its masks are computed here
        self.fan_weights = [variable.value for variable in fan.weights] if fan is not None else []
        self.mean_styles = tf.Variable(translator.mean_styles(), trainable=False, name="mean_styles")
        self.domain_names_asset = tf.saved_model.Asset(domain_names_file)
        self._translator = Translator(translator.config, translator.networks, mean_styles=self.mean_styles)
        self._add_functions(self._translator.with_authors_ops(), self.model)

    def _compute(self, translator, name, *inputs):
        return translate(translator, name, *inputs)

    def metadata_values(self) -> dict:
        """What the `metadata` signature answers, for files that carry it themselves (ONNX)."""
        sizes = {key: getattr(self.model, key) for key in ("img_size", "num_domains", "latent_dim", "style_dim",
                                                           "w_hpf")}
        return {"domain_names": self.domain_names, **sizes}

    def _domains(self, domains, name, batch, batch_of):
        return checks.domains(domains, name, batch, batch_of, self.domain_names)

    def _latent(self, x, target_domain, z, psi, per):
        """latent_guided's image for model-size images x, the other inputs checked against x's batch."""
        n = tf.shape(x)[0]
        target_domain = self._domains(target_domain, "target_domain", n, per)
        z, psi = checks.latents(z, self.model.latent_dim, n, per), checks.psi(psi, n, per)
        return translate(self._translator, "latent_guided", x, target_domain, z, psi)

    # -- the signatures (argument names are the table's input names) --------------------------------------------
    def _serve_latent_guided(self, image, target_domain, z, psi):
        return self._outputs("latent_guided", self._latent(self._images(image, "image"), target_domain, z, psi, "image"))

    def _serve_reference_guided(self, image, reference, reference_domain):
        x = self._images(image, "image")
        n = tf.shape(x)[0]
        ref = self._images(reference, "reference", n, "images")
        reference_domain = self._domains(reference_domain, "reference_domain", n, "image")
        return self._run("reference_guided", x, ref, reference_domain)

    def _serve_style_from_latent(self, target_domain, z, psi):
        n = checks.batch_of_codes(target_domain)
        z, psi = checks.latents(z, self.model.latent_dim, n, "target_domain"), checks.psi(psi, n, "target_domain")
        target_domain = self._domains(target_domain, "target_domain", n, "z")
        return self._run("style_from_latent", target_domain, z, psi)

    def _serve_style_from_reference(self, reference, reference_domain):
        x = self._images(reference, "reference")
        reference_domain = self._domains(reference_domain, "reference_domain", tf.shape(x)[0], "reference")
        return self._run("style_from_reference", x, reference_domain)

    def _serve_synthesize(self, image, style):
        x = self._images(image, "image")
        return self._run("synthesize", x, checks.styles(style, self.model.style_dim, tf.shape(x)[0]))

    def _serve_latent_guided_bytes(self, image_bytes, target_domain, z, psi):
        image = self._latent(self._decode(image_bytes, "image_bytes"), target_domain, z, psi, "image_bytes")
        return self._outputs("latent_guided_bytes", encode_png(image))

    def _serve_reference_guided_bytes(self, image_bytes, reference_bytes, reference_domain):
        x = self._decode(image_bytes, "image_bytes")
        n = tf.shape(x)[0]
        ref = self._decode(reference_bytes, "reference_bytes", n, "image_bytes")
        reference_domain = self._domains(reference_domain, "reference_domain", n, "image_bytes")
        image = translate(self._translator, "reference_guided", x, ref, reference_domain)
        return self._outputs("reference_guided_bytes", encode_png(image))

    def _serve_metadata(self, domain):
        index = checks.domain_indices(domain, self.domain_names)
        k = tf.shape(index)[0]
        rows = lambda value: tf.fill([k], tf.constant(value, tf.int32))  # noqa: E731
        return self._outputs("metadata", index, tf.tile(tf.constant(self.domain_names)[None], [k, 1]),
                        *(rows(getattr(self.model, t.name)) for t in SIZE_OUTS),
                        tf.fill([k], tf.constant(self.max_image_pixels, tf.as_dtype(MAX_IMAGE_PIXELS_OUT.dtype))))
