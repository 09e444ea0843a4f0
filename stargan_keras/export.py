"""Export the EMA networks as a SavedModel that TF Serving loads as is.

`python -m stargan_keras.export --checkpoint runs/afhq --output models/stargan` writes
`models/stargan/<version>/` (TF Serving's layout) with these signatures, whose names
and tensor names are the contract for clients:

| signature | inputs | outputs |
|---|---|---|
| `latent_guided` (= `serving_default`) | `image` uint8 [N,H,W,3], `target_domain` int32 [N], `z` float32 [N,latent_dim], `psi` float32 [] or [N] | `image` uint8 [N,S,S,3] |
| `reference_guided` | `image`, `reference` uint8 [N,H,W,3], `reference_domain` int32 [N] | `image` |
| `style_from_latent` | `target_domain`, `z`, `psi` | `style` float32 [N,style_dim] |
| `style_from_reference` | `reference`, `reference_domain` | `style` |
| `synthesize` | `image`, `style` | `image` |
| `latent_guided_bytes` | `image_bytes` string [N] (JPEG/PNG/GIF/BMP), `target_domain`, `z`, `psi` | `image_bytes` string [N] (PNG) |
| `reference_guided_bytes` | `image_bytes`, `reference_bytes`, `reference_domain` | `image_bytes` |
| `metadata` | `domain` string [K] (names to resolve, or "") | `domain_index` int32 [K] (-1 for ""), `domain_names` string [K,D], `img_size`, `num_domains`, `latent_dim`, `style_dim` int32 [K] |

Images of any size are resized to the model's S x S (bilinear, antialiased).
`psi` (truncation toward the domain's mean style, 1 = none) is a scalar or one
value per image.

Every input and output has the batch as its first dimension (psi may also be a
scalar), so that TF Serving's `--enable_batching` can merge concurrent requests
of one signature; that is also why `metadata` answers one row per `domain`
entry. Batching merges tensors of equal shapes only: batched clients send
S x S images (as `stargan_keras.client` does) or use the `*_bytes` signatures.
Signature inputs are declared with unknown shapes so that every shape check
happens inside the graph: a bad input fails with INVALID_ARGUMENT and a message
naming it, in TF Serving as in any other runtime. (`metadata` has an input only
because TF Serving's REST API rejects signatures without inputs.)

The SavedModel also holds `tflite_<name>` functions (not signatures) for the five
uint8 tensor signatures: the same computation without the checks (assert ops)
and without the resize (antialiased resizing is not a TFLite builtin), on one S x S
image. `stargan_keras.tflite` converts those.

A `tf.Module` saved with explicit signatures, not `keras.export.ExportArchive`:
the archive publishes every endpoint as a signature (the tflite_* functions must
not be one) and has no place for assets.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf

from .checkpoint import LoadedModel, load
from .config import ConfigError
from .inference import MEAN_STYLE_SAMPLES, mean_styles, truncate
from .layers import authors_resampling, torch_named_variables

TENSOR_SIGNATURES = ("latent_guided", "reference_guided", "style_from_latent", "style_from_reference", "synthesize")
BYTES_SIGNATURES = ("latent_guided_bytes", "reference_guided_bytes")
SIGNATURES = TENSOR_SIGNATURES + BYTES_SIGNATURES + ("metadata",)
DEFAULT_SIGNATURE = "latent_guided"
TFLITE_PREFIX = "tflite_"
DOMAIN_NAMES_ASSET = "domain_names.txt"
WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"
IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"BM")  # JPEG, PNG, GIF, BMP


def _spec(name, dtype):
    """An input of unknown shape: the graph checks shapes itself (see the module docstring)."""
    return tf.TensorSpec(None, dtype, name=name)


def _after(checks, tensor, shape=None):
    """The tensor, made to wait for the checks so that no op sees an input the checks reject.

    The static shape is declared with `set_shape`, never `tf.ensure_shape`: EnsureShape
    fails ahead of the control dependencies (even in an untaken tf.cond branch) and its
    message names an internal tensor instead of the input.
    """
    with tf.control_dependencies(checks):
        out = tf.identity(tensor)
    if shape is not None:
        out.set_shape(shape)
    return out


def _check_shape(tensor, dims, message):
    """One assert that `tensor` has len(dims) dimensions matching dims (None: any; a pair (op, value): a test).

    Shapes are read padded, so no op here can fail on a tensor of another rank:
    the assert is the one error a bad input can produce, and it names the input.
    """
    shape = tf.shape(tensor)
    padded = tf.concat([shape, tf.fill([len(dims)], -1)], 0)
    ok = [tf.equal(tf.rank(tensor), len(dims))]
    for i, dim in enumerate(dims):
        if isinstance(dim, tuple):
            ok.append(dim[0](padded[i], dim[1]))
        elif dim is not None:
            ok.append(tf.equal(padded[i], dim))
    return tf.debugging.Assert(tf.reduce_all(tf.stack(ok)), [message, "got shape", shape], summarize=8)


def _check_images(images, name, batch=None, batch_of=None):
    """uint8 [N, H, W, 3] with H, W >= 1 (and N == batch when given)."""
    message = f"{name} must be uint8 [N, H, W, 3] RGB images with H, W >= 1"
    if batch is not None:
        message += f" and N equal to the number of {batch_of}"
    check = _check_shape(images, [batch, (tf.greater, 0), (tf.greater, 0), 3], message)
    return _after([check], images, [None, None, None, 3])


class StarGANServing(tf.Module):
    """The exported object: the EMA networks' variables, the mean styles, and the serving functions."""

    def __init__(self, model: LoadedModel, s_avg: np.ndarray, domain_names_file: str):
        super().__init__(name="stargan")
        cfg = model.config.model
        self._nets = model  # a plain dataclass: not tracked; its variables are tracked below
        self.img_size, self.num_domains = cfg.img_size, cfg.num_domains
        self.latent_dim, self.style_dim = cfg.latent_dim, cfg.style_dim
        self.domain_names = tuple(cfg.resolved_domain_names)
        # The tf.Variables under the Keras variables: tracking the Keras wrappers instead would save copies
        # that the traced functions do not read (the session loader then finds them uninitialized).
        networks = {"generator": model.generator, "mapping_network": model.mapping_network,
                    "style_encoder": model.style_encoder}
        self.weights = {name: {key: variable.value for key, variable in torch_named_variables(network).items()}
                        for name, network in networks.items()}
        self.mean_styles = tf.Variable(s_avg.astype(np.float32), trainable=False, name="mean_styles")
        self.domain_names_asset = tf.saved_model.Asset(domain_names_file)
        self._define_networks()
        self._define_functions()

    # -- the computation, on model-size float images in [-1, 1] -------------------------------------------
    def _define_networks(self):
        """Each network traced once, as a function the signatures call (Grappler and the TFLite converter inline it).

        The TFLite twins call their own G and E, traced with the authors' resampling ops
        (`layers.authors_resampling`), so that the files hold the 3x3 kernels.
        """
        size, L, S = self.img_size, self.latent_dim, self.style_dim
        images = tf.TensorSpec([None, size, size, 3], tf.float32)
        domains, styles = tf.TensorSpec([None], tf.int32), tf.TensorSpec([None, S], tf.float32)

        def latent_style(target_domain, z, psi):
            styles = self._nets.mapping_network(z, target_domain)
            return truncate(styles, target_domain, self.mean_styles, psi[:, None])

        def synthesize(x, style):
            """G(x, s) as uint8, rounded the way `imaging.to_uint8` saves images."""
            y = self._nets.generator(x, style)
            return tf.cast(tf.round(tf.clip_by_value((y + 1.0) / 2.0, 0.0, 1.0) * 255.0), tf.uint8)

        self._latent_style = tf.function(latent_style, autograph=False, input_signature=[
            domains, tf.TensorSpec([None, L], tf.float32), tf.TensorSpec([None], tf.float32)])

        def reference_style(x, y):
            return self._nets.style_encoder(x, y)

        def authors_ops(fn):
            def traced(*args):
                with authors_resampling():
                    return fn(*args)

            return traced

        self._reference_style = tf.function(reference_style, autograph=False, input_signature=[images, domains])
        self._synthesize = tf.function(synthesize, autograph=False, input_signature=[images, styles])
        self._tflite_reference_style = tf.function(authors_ops(reference_style), autograph=False,
                                                   input_signature=[images, domains])
        self._tflite_synthesize = tf.function(authors_ops(synthesize), autograph=False,
                                              input_signature=[images, styles])

    def _to_model_input(self, images):
        """uint8-valued [N, H, W, 3] -> float32 [N, S, S, 3] in [-1, 1]; resized only when not already S x S."""
        size = self.img_size
        x = tf.cast(images, tf.float32)
        same = tf.reduce_all(tf.equal(tf.shape(x)[1:3], [size, size]))
        x = tf.cond(same, lambda: x,
                    lambda: tf.image.resize(x, [size, size], method="bilinear", antialias=True))
        x.set_shape([None, size, size, 3])
        return x / 127.5 - 1.0

    # -- input checks ------------------------------------------------------------------------------------
    def _domains(self, domains, name, batch, batch_of):
        """int32 [N] domain indices in [0, num_domains)."""
        names = ", ".join(f"{i}={n}" for i, n in enumerate(self.domain_names))
        shape = _check_shape(domains, [batch], f"{name} must be int32 [N], one domain index per {batch_of}")
        with tf.control_dependencies([shape]):
            valid = tf.reduce_all((domains >= 0) & (domains < self.num_domains))
        in_range = tf.debugging.Assert(
            valid, [f"{name} must hold domain indices in [0, {self.num_domains}) ({names}); got", domains],
            summarize=16)
        return _after([in_range], domains, [None])

    def _latents(self, z, psi, batch, batch_of):
        """z float32 [N, latent_dim]; psi float32 [] or [N], returned as [N]."""
        z_check = _check_shape(z, [batch, self.latent_dim],
                               f"z must be float32 [N, {self.latent_dim}], one latent code per {batch_of}")
        psi_ok = tf.equal(tf.rank(psi), 0) | (tf.equal(tf.rank(psi), 1) & tf.equal(tf.size(psi), batch))
        psi_check = tf.debugging.Assert(
            psi_ok, [f"psi must be a float32 scalar or [N], one per {batch_of} (1.0 = no truncation); got shape",
                     tf.shape(psi)], summarize=8)
        psi = tf.broadcast_to(tf.reshape(_after([psi_check], psi), [-1]), [batch])
        psi.set_shape([None])
        return _after([z_check], z, [None, self.latent_dim]), psi

    def _styles(self, style, batch):
        check = _check_shape(style, [batch, self.style_dim],
                             f"style must be float32 [N, {self.style_dim}], one style code per image")
        return _after([check], style, [None, self.style_dim])

    def _decode(self, encoded, name, batch=None, batch_of=None):
        """Encoded JPEG/PNG/GIF/BMP strings [N] -> float32 [N, S, S, 3] in [-1, 1]."""
        message = f"{name} must be a string [N] of encoded JPEG/PNG images"
        if batch is not None:
            message += f" with N equal to the number of {batch_of}"
        shape = _check_shape(encoded, [batch], message)
        with tf.control_dependencies([shape]):
            head = tf.strings.substr(encoded, 0, 4)
            known = tf.reduce_any(tf.stack([tf.strings.substr(head, 0, len(m)) == m for m in IMAGE_MAGIC]), axis=0)
            bad = tf.debugging.Assert(
                tf.reduce_all(known),
                [f"{name}: entries that are not JPEG, PNG, GIF or BMP data, by index:", tf.where(~known)[:, 0]])
        encoded = _after([bad], encoded, [None])

        def decode_one(data):
            image = tf.io.decode_image(data, channels=3, expand_animations=False)
            return self._to_model_input(image[None])[0]

        size = self.img_size
        return tf.map_fn(decode_one, encoded, fn_output_signature=tf.TensorSpec([size, size, 3], tf.float32))

    # -- the functions that become signatures ----------------------------------------------------------------
    def _define_functions(self):
        u8, i32, f32, string = tf.uint8, tf.int32, tf.float32, tf.string
        image, reference = _spec("image", u8), _spec("reference", u8)
        target_domain, reference_domain = _spec("target_domain", i32), _spec("reference_domain", i32)
        z, psi, style = _spec("z", f32), _spec("psi", f32), _spec("style", f32)

        def latent_guided(image, target_domain, z, psi):
            x = self._to_model_input(_check_images(image, "image"))
            n = tf.shape(x)[0]
            target_domain = self._domains(target_domain, "target_domain", n, "image")
            z, psi = self._latents(z, psi, n, "image")
            return {"image": self._synthesize(x, self._latent_style(target_domain, z, psi))}

        def reference_guided(image, reference, reference_domain):
            x = self._to_model_input(_check_images(image, "image"))
            n = tf.shape(x)[0]
            reference = _check_images(reference, "reference", n, "images")
            reference_domain = self._domains(reference_domain, "reference_domain", n, "image")
            style = self._reference_style(self._to_model_input(reference), reference_domain)
            return {"image": self._synthesize(x, style)}

        def style_from_latent(target_domain, z, psi):
            check = _check_shape(target_domain, [None], "target_domain must be int32 [N], one domain index per code")
            n = tf.shape(_after([check], target_domain, [None]))[0]
            z, psi = self._latents(z, psi, n, "target_domain")
            target_domain = self._domains(target_domain, "target_domain", n, "z")
            return {"style": self._latent_style(target_domain, z, psi)}

        def style_from_reference(reference, reference_domain):
            x = self._to_model_input(_check_images(reference, "reference"))
            reference_domain = self._domains(reference_domain, "reference_domain", tf.shape(x)[0], "reference")
            return {"style": self._reference_style(x, reference_domain)}

        def synthesize(image, style):
            x = self._to_model_input(_check_images(image, "image"))
            return {"image": self._synthesize(x, self._styles(style, tf.shape(x)[0]))}

        def encode(images):
            return tf.map_fn(tf.io.encode_png, images, fn_output_signature=tf.string)

        def latent_guided_bytes(image_bytes, target_domain, z, psi):
            x = self._decode(image_bytes, "image_bytes")
            n = tf.shape(x)[0]
            target_domain = self._domains(target_domain, "target_domain", n, "image_bytes")
            z, psi = self._latents(z, psi, n, "image_bytes")
            return {"image_bytes": encode(self._synthesize(x, self._latent_style(target_domain, z, psi)))}

        def reference_guided_bytes(image_bytes, reference_bytes, reference_domain):
            x = self._decode(image_bytes, "image_bytes")
            n = tf.shape(x)[0]
            ref = self._decode(reference_bytes, "reference_bytes", n, "image_bytes")
            reference_domain = self._domains(reference_domain, "reference_domain", n, "image_bytes")
            return {"image_bytes": encode(self._synthesize(x, self._reference_style(ref, reference_domain)))}

        def metadata(domain):
            check = _check_shape(domain, [None], 'domain must be a string [K] of domain names (or "")')
            domain = _after([check], domain, [None])
            names = tf.constant(self.domain_names)
            matches = tf.equal(domain[:, None], names[None, :])
            blank = tf.equal(domain, "")
            found = tf.reduce_any(matches, axis=1) | blank
            unknown = tf.debugging.Assert(
                tf.reduce_all(found),
                [f"domain: unknown domain name(s); the model's domains are {', '.join(self.domain_names)}. Unknown:",
                 tf.boolean_mask(domain, ~found)])
            with tf.control_dependencies([unknown]):
                index = tf.where(blank, -1, tf.cast(tf.argmax(tf.cast(matches, tf.int32), axis=1), tf.int32))
            k = tf.shape(domain)[0]
            rows = lambda value: tf.fill([k], tf.constant(value, tf.int32))  # noqa: E731
            return {"domain_index": index, "domain_names": tf.tile(names[None], [k, 1]),
                    "img_size": rows(self.img_size), "num_domains": rows(self.num_domains),
                    "latent_dim": rows(self.latent_dim), "style_dim": rows(self.style_dim)}

        specs = {
            "latent_guided": (latent_guided, [image, target_domain, z, psi]),
            "reference_guided": (reference_guided, [image, reference, reference_domain]),
            "style_from_latent": (style_from_latent, [target_domain, z, psi]),
            "style_from_reference": (style_from_reference, [reference, reference_domain]),
            "synthesize": (synthesize, [image, style]),
            "latent_guided_bytes": (latent_guided_bytes,
                                    [_spec("image_bytes", string), target_domain, z, psi]),
            "reference_guided_bytes": (reference_guided_bytes, [_spec("image_bytes", string),
                                                                _spec("reference_bytes", string), reference_domain]),
            "metadata": (metadata, [_spec("domain", string)]),
        }
        for name, (fn, signature) in specs.items():
            setattr(self, name, tf.function(fn, input_signature=signature, autograph=False))
        self._define_tflite_functions()

    def _define_tflite_functions(self):
        """Unchecked twins of the tensor signatures for one S x S image: builtin TFLite ops only.

        Shapes are static (batch 1): with a dynamic batch the converter loses the shapes
        of the upsampled decoder features at 256 px and cannot lower their convolutions.
        G and E are the authors'-resampling functions (see `_define_networks`).
        """
        size, L, S = self.img_size, self.latent_dim, self.style_dim
        image = tf.TensorSpec([1, size, size, 3], tf.uint8, name="image")
        reference = tf.TensorSpec([1, size, size, 3], tf.uint8, name="reference")
        target_domain = tf.TensorSpec([1], tf.int32, name="target_domain")
        reference_domain = tf.TensorSpec([1], tf.int32, name="reference_domain")
        z, psi = tf.TensorSpec([1, L], tf.float32, name="z"), tf.TensorSpec([], tf.float32, name="psi")
        style = tf.TensorSpec([1, S], tf.float32, name="style")
        to_float = lambda u8: tf.cast(u8, tf.float32) / 127.5 - 1.0  # noqa: E731
        per_code = lambda psi, domains: tf.broadcast_to(psi, tf.shape(domains))  # noqa: E731
        specs = {
            "latent_guided": (lambda image, target_domain, z, psi: {"image": self._tflite_synthesize(
                to_float(image), self._latent_style(target_domain, z, per_code(psi, target_domain)))},
                [image, target_domain, z, psi]),
            "reference_guided": (lambda image, reference, reference_domain: {"image": self._tflite_synthesize(
                to_float(image), self._tflite_reference_style(to_float(reference), reference_domain))},
                [image, reference, reference_domain]),
            "style_from_latent": (lambda target_domain, z, psi: {"style": self._latent_style(
                target_domain, z, per_code(psi, target_domain))}, [target_domain, z, psi]),
            "style_from_reference": (lambda reference, reference_domain: {"style": self._tflite_reference_style(
                to_float(reference), reference_domain)}, [reference, reference_domain]),
            "synthesize": (lambda image, style: {"image": self._tflite_synthesize(to_float(image), style)},
                           [image, style]),
        }
        for name, (fn, signature) in specs.items():
            setattr(self, TFLITE_PREFIX + name, tf.function(fn, input_signature=signature, autograph=False))

    def signatures(self) -> dict:
        concrete = {name: getattr(self, name).get_concrete_function() for name in SIGNATURES}
        concrete["serving_default"] = concrete[DEFAULT_SIGNATURE]
        return concrete


# -- warmup requests --------------------------------------------------------------------------------------------
def warmup_inputs(img_size: int, latent_dim: int, style_dim: int, domain_names, seed: int = 0) -> dict:
    """One small valid request (batch 1, model-size images) per signature: {signature: {input: ndarray}}."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (1, img_size, img_size, 3), dtype=np.uint8)
    png = np.array([tf.io.encode_png(image[0]).numpy()], dtype=object)
    domain = np.zeros((1,), np.int32)
    z = rng.standard_normal((1, latent_dim)).astype(np.float32)
    psi = np.ones((1,), np.float32)  # [N], not a scalar: TF Serving's batching cannot merge scalars
    latent = {"image": image, "target_domain": domain, "z": z, "psi": psi}
    inputs = {
        "latent_guided": latent,
        "reference_guided": {"image": image, "reference": image, "reference_domain": domain},
        "style_from_latent": {"target_domain": domain, "z": z, "psi": psi},
        "style_from_reference": {"reference": image, "reference_domain": domain},
        "synthesize": {"image": image, "style": rng.standard_normal((1, style_dim)).astype(np.float32)},
        "latent_guided_bytes": {"image_bytes": png, "target_domain": domain, "z": z, "psi": psi},
        "reference_guided_bytes": {"image_bytes": png, "reference_bytes": png, "reference_domain": domain},
        "metadata": {"domain": np.array([b""], dtype=object)},
        "serving_default": latent,
    }
    return inputs


def write_warmup(path: Path, model_name: str, inputs: dict) -> Path:
    """TF Serving warmup: one PredictionLog record per signature, replayed when the model loads."""
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for signature, tensors in inputs.items():
            request = predict_pb2.PredictRequest()
            request.model_spec.name = model_name
            request.model_spec.signature_name = signature
            for key, value in tensors.items():
                request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return path


# -- writing the export --------------------------------------------------------------------------------------------
def existing_versions(output_dir: Path) -> list[int]:
    if not output_dir.is_dir():
        return []
    return sorted(int(p.name) for p in output_dir.iterdir() if p.is_dir() and re.fullmatch(r"\d+", p.name))


def resolve_version(output_dir: Path, version: int | None) -> int:
    """The version to write: the one asked for if free, else one more than the latest there (1 if none)."""
    versions = existing_versions(output_dir)
    following = versions[-1] + 1 if versions else 1
    if version is None:
        return following
    if version < 0:
        raise ConfigError(f"--version {version}: TF Serving versions are non-negative integers.")
    if (output_dir / str(version)).exists():
        raise ConfigError(f"{output_dir / str(version)} already exists: pass another --version, or omit it to use "
                          f"{following}, or remove that directory.")
    return version


def export_saved_model(loaded_model: LoadedModel, output_dir, version: int | None = None,
                       mean_style_samples: int = MEAN_STYLE_SAMPLES, model_name: str | None = None,
                       progress: bool = False) -> Path:
    """Write `<output_dir>/<version>/` atomically (staged beside it, then renamed) and return its path.

    version defaults to the next integer after the versions already there.
    """
    output_dir = Path(output_dir)
    version = resolve_version(output_dir, version)
    target = output_dir / str(version)
    cfg = loaded_model.config.model
    bar = _Steps(4, progress)  # mean styles, trace, save, warmup
    s_avg = mean_styles(loaded_model.mapping_network, cfg.num_domains, cfg.latent_dim, n=mean_style_samples)
    bar.done()
    output_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{version}.tmp-", dir=output_dir))  # TF Serving skips non-integers
    asset_dir = Path(tempfile.mkdtemp(prefix="stargan-assets-"))
    try:
        names_file = asset_dir / DOMAIN_NAMES_ASSET
        names_file.write_text("".join(f"{name}\n" for name in cfg.resolved_domain_names))
        module = StarGANServing(loaded_model, s_avg, str(names_file))
        signatures = module.signatures()
        bar.done()
        tf.saved_model.save(module, str(staging), signatures=signatures)
        bar.done()
        write_warmup(staging / WARMUP_FILE, model_name or output_dir.name,
                     warmup_inputs(cfg.img_size, cfg.latent_dim, cfg.style_dim, cfg.resolved_domain_names))
        bar.done()
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(asset_dir, ignore_errors=True)
    return target


class _Steps:
    """A Progbar over the export's steps (silent when progress is off)."""

    def __init__(self, count, enabled):
        import keras

        self.bar = keras.utils.Progbar(count) if enabled else None

    def done(self):
        if self.bar is not None:
            self.bar.add(1)


# -- running an export the way TF Serving does ------------------------------------------------------------
class SavedModelSession:
    """An export loaded with the session-based SavedModel loader: the SignatureDef path TF Serving executes."""

    def __init__(self, path, tags=("serve",), config: tf.compat.v1.ConfigProto | None = None):
        self.path = str(path)
        self.graph = tf.Graph()
        self.session = tf.compat.v1.Session(graph=self.graph, config=config)
        with self.graph.as_default():
            meta_graph = tf.compat.v1.saved_model.loader.load(self.session, list(tags), self.path)
        self.signatures = dict(meta_graph.signature_def)

    def signature(self, name: str):
        if name not in self.signatures:
            raise KeyError(f'Serving signature key "{name}" not found.')
        return self.signatures[name]

    def run(self, name: str, inputs: dict) -> dict:
        """Feed inputs by signature input name, fetch every output by its name."""
        signature = self.signature(name)
        feeds = {signature.inputs[key].name: value for key, value in inputs.items()}
        fetches = {key: info.name for key, info in signature.outputs.items()}
        return self.session.run(fetches, feed_dict=feeds)

    def close(self):
        self.session.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stargan_keras.export", description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True,
                        help="a training run directory or a model directory (config.yaml + *.weights.h5)")
    parser.add_argument("--output", default="models/stargan",
                        help="TF Serving model base path; the export goes to OUTPUT/<version>/")
    parser.add_argument("--version", type=int, default=None, help="default: one more than the latest version there")
    parser.add_argument("--mean-style-samples", type=int, default=MEAN_STYLE_SAMPLES,
                        help="z samples per domain for the mean styles used by psi < 1")
    parser.add_argument("--model-name", default=None, help="model name in the warmup requests (default: OUTPUT's name)")
    args = parser.parse_args(argv)
    if args.mean_style_samples < 1:
        parser.error(f"--mean-style-samples {args.mean_style_samples}: must be at least 1")
    try:
        model = load(args.checkpoint)
        path = export_saved_model(model, args.output, args.version, args.mean_style_samples, args.model_name,
                                  progress=True)
    except (ConfigError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"exported {path} with signatures {', '.join(SIGNATURES)} (serving_default = {DEFAULT_SIGNATURE})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
