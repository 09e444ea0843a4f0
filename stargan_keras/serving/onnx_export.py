"""ONNX files of the translation signatures, converted by tf2onnx from the serving module's own networks.

One `.onnx` file per signature that makes sense outside TensorFlow (the table's `onnx_names`): StarGAN
v2's `latent_guided` and `reference_guided`, StarGAN v1's `translate`. Their inputs have the table's names and
dtypes (`serving.signatures`) with a dynamic batch N; the output is `OUTPUT` (ONNX cannot give an output
the name of an input, and the table's output is called `image` like the input). Domain names and the
model's sizes are in the file's `metadata_props`.

The functions converted are built on the family's serving module that the SavedModel saves
(its Translator, its variables, its mean styles; for a `w_hpf > 0` model the FAN and the masks): a second
trace of the same networks, not a second copy. What differs from the serving signatures, and why:

- Images must be S x S (the antialiased resize is TensorFlow's ScaleAndTranslate, which tf2onnx does not
  map); the client resizes them, as it does for TF Serving.
- ONNX has no assert op, so the checks are data flow that ONNX Runtime refuses to run (`_refuse`,
  `_rows_like`): a domain index out of range (or a NaN/inf z, or a v1 attribute label outside [0, 1])
  makes a Gather index out of bounds, a batch that differs from the images' makes a Reshape fail; the
  failing node is named after the check (e.g. `target_domain_must_hold_domain_indices_in_0_to_2`).
  Dtypes, ranks and the static sizes (S, latent_dim, C) are checked by ONNX Runtime itself.
- psi is [N] (no scalar: an ONNX input has one rank).
- The uint8 quantization adds its 1.0 per channel (`_to_uint8`): tf2onnx's transpose optimizer fails on
  a scalar added to a convolution's output and then skips the whole pass, leaving a transpose pair
  around every convolution.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf

from stargan_keras import families
from stargan_keras.core.errors import UserError
from stargan_keras.core.imaging import from_uint8_tensor
from stargan_keras.serving.export import _Steps, build_serving_module
from stargan_keras.serving.outputs import check_writable_file

OPSET = 18  # the newest tf2onnx 1.17 writes
OUTPUT = "translated"
INSTALL = 'pip install "stargan-keras[onnx]"'
PROVIDERS = ["CPUExecutionProvider"]


class OnnxExportError(UserError, ValueError):
    """An ONNX export that cannot run or be written; says why."""


def require_converter() -> None:
    """Fail with the install command when tf2onnx, onnx or onnxruntime cannot be imported."""
    missing = []
    for package in ("tf2onnx", "onnx", "onnxruntime"):
        try:
            __import__(package)
        except ImportError:
            missing.append(package)
    if missing:
        raise OnnxExportError(f"--format onnx needs {', '.join(missing)}, which is not installed: {INSTALL} "
                              "(or pip install tf2onnx onnx onnxruntime).")


def input_specs(module, name: str) -> list[tf.TensorSpec]:
    """The ONNX inputs of signature `name`: the table's names and dtypes, N dynamic, images S x S, psi [N]."""
    dims = module.table.dimensions(module.model, batch=None)
    return [tf.TensorSpec(t.resolve(**dims), t.dtype, name=t.name) for t in module.table.signature(name).inputs]


def _refuse(value, ok, check: str):
    """value, unchanged, but computed through a Gather whose index is out of bounds for every row where
    ok [N] is False: ONNX Runtime then refuses the call, naming the node after `check`."""
    with tf.name_scope(check):
        zero = tf.gather(tf.zeros([1], value.dtype), tf.where(ok, 0, 1))
        return value + tf.reshape(zero, [-1] + [1] * (value.shape.rank - 1))


def _rows_like(value, n, name: str, of: str):
    """value reshaped to n rows: a Reshape that fails (naming the check) when its batch is not n."""
    with tf.name_scope(f"{name}_must_have_one_row_per_{of}"):
        return tf.reshape(value, tf.concat([[n], tf.shape(value)[1:]], 0))


def _to_uint8(x):
    """`imaging.to_uint8_tensor` with the 1.0 added per channel (see the module docstring)."""
    ones = tf.ones([x.shape[-1]], tf.float32)
    return tf.cast(tf.round(tf.clip_by_value((tf.cast(x, tf.float32) + ones) / 2.0, 0.0, 1.0) * 255.0), tf.uint8)


def _checked(module, tensor, value, n, first: str):
    """One input of the table, checked as the ONNX graph can (see the module docstring), as the networks
    take it (images float32 in [-1, 1])."""
    if tensor.name != first:
        value = _rows_like(value, n, tensor.name, first)
    if tensor.dtype == "uint8":
        return from_uint8_tensor(value)
    if tensor.dtype == "int32":  # domain indices
        count = module.model.num_domains
        ok = (value >= 0) & (value < count)
        return _refuse(value, ok, f"{tensor.name}_must_hold_domain_indices_in_0_to_{count - 1}")
    finite = tf.reduce_all(tf.math.is_finite(value), axis=-1) if value.shape.rank == 2 else \
        tf.math.is_finite(value)
    value = _refuse(value, finite, f"{tensor.name}_must_be_finite")
    if tensor.name == "target_labels" and module.model.label_type == "attributes":
        inside = tf.reduce_all((value >= 0) & (value <= 1), axis=-1)
        value = _refuse(value, inside, "target_labels_must_be_in_0_to_1")
    return value


def onnx_function(module, name: str):
    """Signature `name` of the module's family as a tf.function over `input_specs` (uint8 images in, `OUTPUT`
    out), run by the module's own Translator."""
    entry = module.table.signature(name)
    first = entry.inputs[0].name
    translator = module._translator

    def translate(*args):
        n = tf.shape(args[0])[0]
        inputs = [_checked(module, t, value, n, first) for t, value in zip(entry.inputs, args, strict=True)]
        return {OUTPUT: _to_uint8(getattr(translator, name)(*inputs))}  # the signature is the Translator's method

    return tf.function(translate, input_signature=input_specs(module, name), autograph=False)


def metadata(module, name: str) -> dict[str, str]:
    """The file's metadata_props: family, signature, the names and sizes the `metadata` signature answers (names
    as JSON)."""
    props = {"model_family": module.FAMILY, "signature": name, "output": OUTPUT}
    for key, value in module.metadata_values().items():
        props[key] = json.dumps(list(value)) if key.endswith("_names") else str(value)
    return props


def to_onnx(module, name: str):
    """The ONNX ModelProto of signature `name`, checked by `onnx.checker`."""
    import onnx
    import tf2onnx

    function = onnx_function(module, name)
    model, _ = tf2onnx.convert.from_function(function, input_signature=function.input_signature, opset=OPSET)
    model.doc_string = f"stargan_keras {module.FAMILY} {name}: {module.table.signature(name).doc}"
    for key, value in metadata(module, name).items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model, full_check=True)
    return model


def onnx_paths(output_dir, table) -> dict[str, Path]:
    return {name: Path(output_dir) / f"{name}.onnx" for name in table.onnx_names}


def check_onnx_output(output_dir, table, overwrite: bool = False) -> dict[str, Path]:
    """The files an export to output_dir writes, after refusing existing ones (unless overwrite) and places
    that cannot be written (call it before the work)."""
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise OnnxExportError(f"--output {output_dir} is a file: pass a directory for the .onnx files.")
    paths = onnx_paths(output_dir, table)
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing and not overwrite:
        raise OnnxExportError(f"--output {output_dir} already holds {', '.join(existing)}: pass another directory, "
                              "or --overwrite to replace them.")
    for path in paths.values():
        check_writable_file(path, "--output", OnnxExportError)
    return paths


def export_onnx(translator, output_dir, mean_style_samples: int | None = None,
                overwrite: bool = False, progress: bool = False) -> dict[str, Path]:
    """Write one .onnx file per signature of the family table's `onnx_names` to output_dir; {signature: path}.

    Each file is written whole under a temporary name and then renamed into place.
    """
    require_converter()
    family = families.of_config(translator.config)
    family.check_exportable(translator.config)
    paths = check_onnx_output(output_dir, family.signatures, overwrite)
    bar = _Steps(1 + len(paths), progress)
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="stargan-onnx-"))
    try:
        module = build_serving_module(translator, workdir, mean_style_samples)
        bar.done()
        for name, path in paths.items():
            partial = path.with_name(path.name + ".partial")
            partial.write_bytes(to_onnx(module, name).SerializeToString())
            partial.replace(path)
            bar.done()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return paths


def session(path, threads: int | None = None):
    """An ONNX Runtime CPU session of a file (threads: intra-op threads; default ONNX Runtime's).

    ONNX Runtime's process-wide log is set to errors only: it warns on every load that the nearest-neighbour
    Resize tf2onnx writes uses a deprecated (and still supported) coordinate mode.
    """
    import onnxruntime as ort

    ort.set_default_logger_severity(3)
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=PROVIDERS)


def file_metadata(sess) -> dict:
    """A session's metadata_props, names decoded from JSON and sizes as ints."""
    props = dict(sess.get_modelmeta().custom_metadata_map)
    decoded = {}
    for key, value in props.items():
        if key.endswith("_names"):
            decoded[key] = json.loads(value)
        elif value.lstrip("-").isdigit():
            decoded[key] = int(value)
        else:
            decoded[key] = value
    return decoded


def run(sess, **inputs) -> np.ndarray:
    """The translated uint8 images of one session call."""
    return sess.run([OUTPUT], inputs)[0]
