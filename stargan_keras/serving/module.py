"""The exported `tf.Module`: the `Translator`'s methods as TF Serving signatures, with uint8 edges and checks.

The signatures, their tensor names, dtypes and shapes are those of `serving.signatures`
(the table in serving/README.md). Their inputs are declared with unknown shapes, so
that every shape check happens inside the graph (`serving.checks`): a bad input fails
with INVALID_ARGUMENT and a message naming it, in TF Serving as in any other runtime.
Images of any size up to the export's pixel limit are resized to the model's S x S
(bilinear, antialiased); images already S x S are used as they are. (`metadata` has an input only because TF Serving's
REST API rejects signatures without inputs, and answers one row per `domain` entry so
that `--enable_batching` can split its outputs by row.)

The module also holds `tflite_<name>` functions (not signatures) for the signatures the
table marks `tflite`: the same computation without the checks (assert ops) and without
the resize (antialiased resizing is not a TFLite builtin), on one S x S image with a
scalar psi. They run G and E traced with the authors' resampling ops
(`Translator.with_authors_ops`), so that the TFLite files store the 3x3 kernels.
`serving.tflite` converts them.

A `tf.Module` saved with explicit signatures, not `keras.export.ExportArchive`: the
archive publishes every endpoint as a signature (the tflite_* functions must not be one)
and has no place for assets.
"""

from __future__ import annotations

import inspect

import tensorflow as tf

from .. import imaging
from ..imaging import from_uint8_tensor, to_uint8_tensor
from ..inference import Translator
from ..layers import torch_named_variables
from ..networks import EMA_NETWORKS
from . import checks
from .signatures import (DEFAULT_SIGNATURE, MAX_IMAGE_PIXELS_OUT, NAMES, SERVING_DEFAULT, SIGNATURES, SIZE_OUTS,
                         dimensions, signature)

TFLITE_PREFIX = "tflite_"
DOMAIN_NAMES_ASSET = "domain_names.txt"


def input_specs(entry) -> list[tf.TensorSpec]:
    """A signature's inputs with unknown shapes: the graph checks shapes itself."""
    return [tf.TensorSpec(None, t.dtype, name=t.name) for t in entry.inputs]


def tflite_specs(entry, model) -> list[tf.TensorSpec]:
    """A TFLite twin's inputs: static shapes for one S x S image (N = 1), psi a scalar.

    With a dynamic batch the converter loses the shapes of the upsampled decoder
    features at 256 px and cannot lower their convolutions.
    """
    dims = dimensions(model)
    return [tf.TensorSpec([] if t.scalar_ok else t.resolve(**dims), t.dtype, name=t.name) for t in entry.inputs]


def _outputs(name, *values) -> dict:
    """Values keyed by the table's output names of signature `name`."""
    return {t.name: value for t, value in zip(signature(name).outputs, values, strict=True)}


def _translate(translator: Translator, name: str, *inputs):
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


def _encode_png(images):
    return tf.map_fn(tf.io.encode_png, images, fn_output_signature=tf.string)


class StarGANServing(tf.Module):
    """The exported object: the EMA networks' variables, the mean styles, and the serving functions.

    `translator` gives the config and networks; its mean styles are computed here, eagerly,
    and saved as the `mean_styles` variable that the traced functions read. Input images
    (decoded or declared by an encoded file's header) may have up to `max_image_pixels`
    pixels (default `imaging.MAX_IMAGE_PIXELS`).
    """

    def __init__(self, translator: Translator, domain_names_file: str, max_image_pixels: int | None = None):
        super().__init__(name="stargan")
        self.model = translator.config.model
        self.max_image_pixels = int(imaging.MAX_IMAGE_PIXELS if max_image_pixels is None else max_image_pixels)
        self.domain_names = tuple(self.model.resolved_domain_names)
        # The tf.Variables under the Keras variables: tracking the Keras wrappers instead would save copies
        # that the traced functions do not read (the session loader then finds them uninitialized).
        self.weights = {name: {key: variable.value for key, variable in
                               torch_named_variables(getattr(translator.networks, name)).items()}
                        for name in EMA_NETWORKS}
        self.mean_styles = tf.Variable(translator.mean_styles(), trainable=False, name="mean_styles")
        self.domain_names_asset = tf.saved_model.Asset(domain_names_file)
        self._translator = Translator(translator.config, translator.networks, mean_styles=self.mean_styles)
        authors = self._translator.with_authors_ops()
        for entry in SIGNATURES:
            serve = getattr(self, f"_serve_{entry.name}")
            if list(inspect.signature(serve).parameters) != [t.name for t in entry.inputs]:
                raise AssertionError(f"_serve_{entry.name} does not take the inputs of the signature table")
            setattr(self, entry.name, tf.function(serve, input_signature=input_specs(entry), autograph=False))
            if entry.tflite:
                setattr(self, TFLITE_PREFIX + entry.name,
                        tf.function(self._twin(entry, authors),
                                    input_signature=tflite_specs(entry, self.model), autograph=False))

    def signatures(self) -> dict:
        """{signature name: concrete function} for `tf.saved_model.save`, with `serving_default`."""
        concrete = {name: getattr(self, name).get_concrete_function() for name in NAMES}
        concrete[SERVING_DEFAULT] = concrete[DEFAULT_SIGNATURE]
        return concrete

    @staticmethod
    def _twin(entry, translator):
        """A TFLite twin: uint8 inputs to [-1, 1], no checks, no resize."""
        def twin(*args):
            inputs = (from_uint8_tensor(a) if t.dtype == "uint8" else a for t, a in zip(entry.inputs, args))
            return _outputs(entry.name, _translate(translator, entry.name, *inputs))

        return twin

    def _run(self, name, *inputs):
        return _outputs(name, _translate(self._translator, name, *inputs))

    # -- inputs -------------------------------------------------------------------------------------------------
    def _model_input(self, images):
        """uint8-valued [N, H, W, 3] -> float32 [N, S, S, 3] in [-1, 1]; resized only when not already S x S."""
        size = self.model.img_size
        x = tf.cast(images, tf.float32)
        same = tf.reduce_all(tf.equal(tf.shape(x)[1:3], [size, size]))
        x = tf.cond(same, lambda: x,
                    lambda: tf.image.resize(x, [size, size], method="bilinear", antialias=True))
        x.set_shape([None, size, size, 3])
        return from_uint8_tensor(x)

    def _images(self, images, name, batch=None, batch_of=None):
        return self._model_input(checks.images(images, name, self.max_image_pixels, batch, batch_of))

    def _decode(self, encoded, name, batch=None, batch_of=None):
        """Encoded JPEG/PNG/GIF/BMP strings [N] -> float32 [N, S, S, 3] in [-1, 1]."""
        encoded = checks.encoded_images(encoded, name, self.max_image_pixels, batch, batch_of)

        def decode_one(data):
            image = tf.io.decode_image(data, channels=3, expand_animations=False)
            return self._model_input(image[None])[0]

        size = self.model.img_size
        # One image at a time: a request's memory is then bounded by one image at the pixel limit, whatever N is.
        return tf.map_fn(decode_one, encoded, fn_output_signature=tf.TensorSpec([size, size, 3], tf.float32),
                         parallel_iterations=1)

    def _domains(self, domains, name, batch, batch_of):
        return checks.domains(domains, name, batch, batch_of, self.domain_names)

    def _latent(self, x, target_domain, z, psi, per):
        """latent_guided's image for model-size images x, the other inputs checked against x's batch."""
        n = tf.shape(x)[0]
        target_domain = self._domains(target_domain, "target_domain", n, per)
        z, psi = checks.latents(z, self.model.latent_dim, n, per), checks.psi(psi, n, per)
        return _translate(self._translator, "latent_guided", x, target_domain, z, psi)

    # -- the signatures (argument names are the table's input names) --------------------------------------------
    def _serve_latent_guided(self, image, target_domain, z, psi):
        return _outputs("latent_guided", self._latent(self._images(image, "image"), target_domain, z, psi, "image"))

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
        return _outputs("latent_guided_bytes", _encode_png(image))

    def _serve_reference_guided_bytes(self, image_bytes, reference_bytes, reference_domain):
        x = self._decode(image_bytes, "image_bytes")
        n = tf.shape(x)[0]
        ref = self._decode(reference_bytes, "reference_bytes", n, "image_bytes")
        reference_domain = self._domains(reference_domain, "reference_domain", n, "image_bytes")
        image = _translate(self._translator, "reference_guided", x, ref, reference_domain)
        return _outputs("reference_guided_bytes", _encode_png(image))

    def _serve_metadata(self, domain):
        index = checks.domain_indices(domain, self.domain_names)
        k = tf.shape(index)[0]
        rows = lambda value: tf.fill([k], tf.constant(value, tf.int32))  # noqa: E731
        return _outputs("metadata", index, tf.tile(tf.constant(self.domain_names)[None], [k, 1]),
                        *(rows(getattr(self.model, t.name)) for t in SIZE_OUTS),
                        tf.fill([k], tf.constant(self.max_image_pixels, tf.as_dtype(MAX_IMAGE_PIXELS_OUT.dtype))))
