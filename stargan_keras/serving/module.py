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

Each family's module (`v2.serving.Serving`, `v1.serving.Serving`) subclasses `ServingModule`,
which holds what they share: the image inputs, the signature and TFLite-twin functions, and
`signatures()`.

A `tf.Module` saved with explicit signatures, not `keras.export.ExportArchive`: the
archive publishes every endpoint as a signature (the tflite_* functions must not be one)
and has no place for assets.
"""

from __future__ import annotations

import inspect

import tensorflow as tf

from stargan_keras.core import imaging
from stargan_keras.core.imaging import from_uint8_tensor
from stargan_keras.serving import checks
from stargan_keras.serving.signatures import SERVING_DEFAULT, TABLES

TFLITE_PREFIX = "tflite_"


def input_specs(entry) -> list[tf.TensorSpec]:
    """A signature's inputs with unknown shapes: the graph checks shapes itself."""
    return [tf.TensorSpec(None, t.dtype, name=t.name) for t in entry.inputs]


def tflite_specs(entry, table, model) -> list[tf.TensorSpec]:
    """A TFLite twin's inputs: static shapes for one S x S image (N = 1), psi a scalar.

    With a dynamic batch the converter loses the shapes of the upsampled decoder
    features at 256 px and cannot lower their convolutions.
    """
    dims = table.dimensions(model)
    return [tf.TensorSpec([] if t.scalar_ok else t.resolve(**dims), t.dtype, name=t.name) for t in entry.inputs]


def outputs(table, name, *values) -> dict:
    """Values keyed by `table`'s output names of signature `name`."""
    return {t.name: value for t, value in zip(table.signature(name).outputs, values, strict=True)}


def encode_png(images):
    return tf.map_fn(tf.io.encode_png, images, fn_output_signature=tf.string)


class ServingModule(tf.Module):
    """What the exports of both model families share: one tf.function per signature of the family's table
    (`_serve_<name>`, taking the table's inputs), the TFLite twins, and images in, checked and resized to the
    model's S x S. Subclasses set FAMILY (the family's name) and `_translator`, and compute a tensor signature's
    output in `_compute`."""

    FAMILY = ""

    def __init__(self, image_size: int, max_image_pixels: int | None):
        super().__init__(name="stargan")
        self.image_size = int(image_size)
        self.max_image_pixels = int(imaging.MAX_IMAGE_PIXELS if max_image_pixels is None else max_image_pixels)

    def _add_functions(self, twin_translator, config_section):
        """The signature functions, and a TFLite twin (run by twin_translator) for each the table marks."""
        for entry in self.table.signatures:
            serve = getattr(self, f"_serve_{entry.name}")
            if list(inspect.signature(serve).parameters) != [t.name for t in entry.inputs]:
                raise AssertionError(f"_serve_{entry.name} does not take the inputs of the signature table")
            setattr(self, entry.name, tf.function(serve, input_signature=input_specs(entry), autograph=False))
            if entry.tflite:
                setattr(self, TFLITE_PREFIX + entry.name,
                        tf.function(self._twin(entry, twin_translator),
                                    input_signature=tflite_specs(entry, self.table, config_section), autograph=False))

    def _compute(self, translator, name, *inputs):
        """The one output of tensor signature `name`, on checked model-size inputs (images float32 in [-1, 1])."""
        raise NotImplementedError

    def metadata_values(self) -> dict:
        """{output name: value} of what the `metadata` signature answers (names and sizes), for formats whose
        files carry it themselves."""
        raise NotImplementedError

    def signatures(self) -> dict:
        """{signature name: tf.function} for `tf.saved_model.save`, with `serving_default`. The functions, not
        their concrete functions: each has an input signature, and the save traces it once inside its own save
        context, where a concrete function traced before the save would be traced a second time."""
        functions = {name: getattr(self, name) for name in self.table.names}
        functions[SERVING_DEFAULT] = functions[self.table.default]
        return functions

    def _twin(self, entry, translator):
        """A TFLite twin: uint8 inputs to [-1, 1], no checks, no resize."""
        def twin(*args):
            inputs = (from_uint8_tensor(a) if t.dtype == "uint8" else a for t, a in zip(entry.inputs, args))
            return self._outputs(entry.name, self._compute(translator, entry.name, *inputs))

        return twin

    @property
    def table(self):
        return TABLES[self.FAMILY]

    def _outputs(self, name, *values):
        return outputs(self.table, name, *values)

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
