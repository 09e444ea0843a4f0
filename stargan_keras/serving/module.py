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

`V1Serving` is the same for a StarGAN v1 model (`model_family: v1`): the signatures of the
v1 table (`translate`, `translate_bytes`, `metadata`) over `v1.inference.V1Translator`, with
the target labels checked (`checks.labels`). Both share `ServingModule`: the image inputs,
the signature and TFLite-twin functions, and `signatures()`.

A `tf.Module` saved with explicit signatures, not `keras.export.ExportArchive`: the
archive publishes every endpoint as a signature (the tflite_* functions must not be one)
and has no place for assets.
"""

from __future__ import annotations

import inspect

import tensorflow as tf

from stargan_keras.core import imaging
from stargan_keras.core.imaging import from_uint8_tensor, to_uint8_tensor
from stargan_keras.v2.inference import Translator
from stargan_keras.core.layers import torch_named_variables
from stargan_keras.v2.networks import EMA_NETWORKS
from stargan_keras.serving import checks
from stargan_keras.serving.signatures import FAMILIES, MAX_IMAGE_PIXELS_OUT, SERVING_DEFAULT, SIZE_OUTS, V1_SIZE_OUTS, dimensions

TFLITE_PREFIX = "tflite_"
DOMAIN_NAMES_ASSET = "domain_names.txt"
ATTRIBUTE_NAMES_ASSET = "attribute_names.txt"  # StarGAN v1: the label vector's names


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


def _outputs(name, *values, family: str = "v2") -> dict:
    """Values keyed by the table's output names of signature `name` (of the `family` table)."""
    return {t.name: value for t, value in zip(FAMILIES[family].signature(name).outputs, values, strict=True)}


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


class ServingModule(tf.Module):
    """What the exports of both model families share: one tf.function per signature of the family's table
    (`_serve_<name>`, taking the table's inputs), the TFLite twins, and images in, checked and resized to the
    model's S x S. Subclasses set FAMILY and `_translator`, and compute a tensor signature's output in
    `_compute`."""

    FAMILY = "v2"

    def __init__(self, image_size: int, max_image_pixels: int | None):
        super().__init__(name="stargan")
        self.image_size = int(image_size)
        self.max_image_pixels = int(imaging.MAX_IMAGE_PIXELS if max_image_pixels is None else max_image_pixels)

    def _add_functions(self, twin_translator, config_section):
        """The signature functions, and a TFLite twin (run by twin_translator) for each the table marks."""
        for entry in FAMILIES[self.FAMILY].signatures:
            serve = getattr(self, f"_serve_{entry.name}")
            if list(inspect.signature(serve).parameters) != [t.name for t in entry.inputs]:
                raise AssertionError(f"_serve_{entry.name} does not take the inputs of the signature table")
            setattr(self, entry.name, tf.function(serve, input_signature=input_specs(entry), autograph=False))
            if entry.tflite:
                setattr(self, TFLITE_PREFIX + entry.name,
                        tf.function(self._twin(entry, twin_translator),
                                    input_signature=tflite_specs(entry, config_section), autograph=False))

    def _compute(self, translator, name, *inputs):
        """The one output of tensor signature `name`, on checked model-size inputs (images float32 in [-1, 1])."""
        raise NotImplementedError

    def signatures(self) -> dict:
        """{signature name: concrete function} for `tf.saved_model.save`, with `serving_default`."""
        family = FAMILIES[self.FAMILY]
        concrete = {name: getattr(self, name).get_concrete_function() for name in family.names}
        concrete[SERVING_DEFAULT] = concrete[family.default]
        return concrete

    def _twin(self, entry, translator):
        """A TFLite twin: uint8 inputs to [-1, 1], no checks, no resize."""
        def twin(*args):
            inputs = (from_uint8_tensor(a) if t.dtype == "uint8" else a for t, a in zip(entry.inputs, args))
            return self._outputs(entry.name, self._compute(translator, entry.name, *inputs))

        return twin

    def _outputs(self, name, *values):
        return _outputs(name, *values, family=self.FAMILY)

    def _run(self, name, *inputs):
        return self._outputs(name, self._compute(self._translator, name, *inputs))

    # -- inputs -------------------------------------------------------------------------------------------------
    def _model_input(self, images):
        """uint8-valued [N, H, W, 3] -> float32 [N, S, S, 3] in [-1, 1]; resized only when not already S x S."""
        size = self.image_size
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

        size = self.image_size
        # One image at a time: a request's memory is then bounded by one image at the pixel limit, whatever N is.
        return tf.map_fn(decode_one, encoded, fn_output_signature=tf.TensorSpec([size, size, 3], tf.float32),
                         parallel_iterations=1)


class StarGANServing(ServingModule):
    """The exported object: the EMA networks' variables, the mean styles, and the serving functions.

    `translator` gives the config and networks; its mean styles are computed here, eagerly,
    and saved as the `mean_styles` variable that the traced functions read. Input images
    (decoded or declared by an encoded file's header) may have up to `max_image_pixels`
    pixels (default `imaging.MAX_IMAGE_PIXELS`).
    """

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
        return _translate(translator, name, *inputs)

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


class V1Serving(ServingModule):
    """A StarGAN v1 export: G's variables and the v1 table's signatures over a `v1.inference.V1Translator`.

    Target labels are checked for their width (c_dim), finiteness and, for attribute models, values in
    [0, 1] (`checks.labels`): G was trained on such labels only. Joint two-dataset models are not served.
    """

    FAMILY = "v1"

    def __init__(self, translator, attribute_names_file: str, max_image_pixels: int | None = None):
        v1 = translator.config.v1
        if v1.c2_dim:
            raise ValueError("a joint two-dataset StarGAN v1 model (c2_dim > 0) has no serving signatures")
        super().__init__(v1.image_size, max_image_pixels)
        self.v1 = v1
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

    def _labels(self, target_labels, batch, batch_of):
        return checks.labels(target_labels, self.v1.c_dim, batch, batch_of, self.v1.label_type == "attributes")

    # -- the signatures (argument names are the v1 table's input names) ------------------------------------------
    def _serve_translate(self, image, target_labels):
        x = self._images(image, "image")
        return self._run("translate", x, self._labels(target_labels, tf.shape(x)[0], "image"))

    def _serve_translate_bytes(self, image_bytes, target_labels):
        x = self._decode(image_bytes, "image_bytes")
        image = self._compute(self._translator, "translate", x,
                              self._labels(target_labels, tf.shape(x)[0], "image_bytes"))
        return self._outputs("translate_bytes", _encode_png(image))

    def _serve_metadata(self, attribute):
        index = checks.domain_indices(attribute, self.attribute_names, name="attribute")
        k = tf.shape(index)[0]

        def rows(value, dtype=tf.int32):
            return tf.fill([k], tf.constant(value, dtype))

        return self._outputs("metadata", index, tf.tile(tf.constant(self.attribute_names)[None], [k, 1]),
                             *(rows(getattr(self.v1, t.name)) for t in V1_SIZE_OUTS),
                             rows(self.v1.label_type, tf.string),
                             rows(self.max_image_pixels, tf.as_dtype(MAX_IMAGE_PIXELS_OUT.dtype)))
