"""TFLite files from an export, and the proof that a file computes what the SavedModel computes.

A file carries the signatures the table marks `tflite`, converted from the export's
`tflite_*` functions rather than from the serving signatures themselves: those validate
inputs with assert ops and resize with antialiasing, neither of which TFLite has as a
builtin (see `serving.module`). Hence the on-device contract: S x S images, one per call,
unchecked domain indices, a scalar psi. A StarGAN v1 export's file carries its `translate`
twin (one S x S image, one [1, c_dim] label vector, unchecked); the export's signatures say
which family it is (`signatures.table_of`).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from stargan_keras.core.errors import UserError
from stargan_keras.core.imaging import load_image, to_uint8
from stargan_keras.serving.module import TFLITE_PREFIX
from stargan_keras.serving.outputs import check_writable_file
from stargan_keras.serving.signatures import (IMAGE, PSI, REFERENCE, REFERENCE_DOMAIN, STYLE, TARGET_DOMAIN,
                                              TARGET_LABELS, TFLITE_NAMES, Z, signature, table_of)

QUANTIZATIONS = ("none", "float16", "dynamic")


class TFLiteError(UserError, ValueError):
    """A SavedModel that cannot be converted, or a file that cannot be verified; the message says why."""


def _load_export(saved_model_dir, twins: bool = True):
    """The export loaded with `tf.saved_model.load`, with (twins) its tflite_* functions; errors name it."""
    path = Path(saved_model_dir)
    if not (path / "saved_model.pb").exists():
        raise TFLiteError(f"--saved-model {path}: no saved_model.pb there. Pass a version directory written by "
                          "`python -m stargan_keras.export`, e.g. models/stargan/1.")
    try:
        loaded = tf.saved_model.load(str(path))
    except (OSError, ValueError, tf.errors.OpError) as err:
        reason = (getattr(err, "message", None) or str(err) or type(err).__name__).strip().splitlines()[0]
        raise TFLiteError(f"--saved-model {path}: cannot load it ({reason[:200]}). Export it again with "
                          "`python -m stargan_keras.export`.") from None
    missing = [n for n in table_of(loaded.signatures).tflite_names if not hasattr(loaded, TFLITE_PREFIX + n)]
    if twins and missing:
        raise TFLiteError(f"--saved-model {path} has no {TFLITE_PREFIX}* functions ({', '.join(missing)} missing): "
                          "it was not written by this version of `stargan_keras.export`. Export it again.")
    return loaded


def load_export(saved_model_dir):
    """The export as `convert` and `verify` load it, for a caller that runs both on it: loading is the bulk of a
    check's cost."""
    return _load_export(saved_model_dir)


def convert(saved_model_dir, output, quantize: str = "none", loaded=None) -> Path:
    """Write the TFLite file (atomically) from an export's tflite_* functions; quantize: none|float16|dynamic.
    `loaded`: the export already loaded by `load_export`."""
    return convert_many(saved_model_dir, {quantize: output}, loaded)[quantize]


def convert_many(saved_model_dir, outputs: dict, loaded=None) -> dict:
    """{quantize: output path} -> {quantize: written path}, staging the SavedModel once for all of them."""
    for quantize in outputs:
        if quantize not in QUANTIZATIONS:
            raise TFLiteError(f"--quantize {quantize!r}: choose one of {', '.join(QUANTIZATIONS)}.")
    for output in outputs.values():
        check_writable_file(output, "--output", TFLiteError)
    loaded = _load_export(saved_model_dir) if loaded is None else loaded
    names = table_of(loaded.signatures).tflite_names
    functions = {name: getattr(loaded, TFLITE_PREFIX + name).get_concrete_function() for name in names}
    written = {}
    with tempfile.TemporaryDirectory(prefix="stargan-tflite-") as staging:
        # The converter names signatures after SignatureDefs, so the functions become signatures of a staging copy.
        # The copy holds these functions and their variables only: the converter loads it twice per file, and the
        # export's other functions would only slow those loads (the files are byte-identical either way).
        copy = tf.Module()
        copy.weights = list({id(v): v for f in functions.values() for v in f.variables}.values())
        tf.saved_model.save(copy, staging, signatures=functions)
        for quantize, output in outputs.items():
            converter = tf.lite.TFLiteConverter.from_saved_model(staging, signature_keys=list(names))
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
            if quantize != "none":
                converter.optimizations = [tf.lite.Optimize.DEFAULT]  # without a dataset: dynamic-range int8 weights
            if quantize == "float16":
                converter.target_spec.supported_types = [tf.float16]
            written[quantize] = _write_atomically(Path(output), converter.convert())
    return written


def _write_atomically(output: Path, data: bytes) -> Path:
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    partial.write_bytes(data)
    partial.replace(output)
    return output


def psnr(actual, expected, peak: float) -> float:
    mse = float(np.mean((np.asarray(actual, np.float64) - np.asarray(expected, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(peak**2 / mse)


def _picture(path, tilt, img_size):
    """One uint8 [1, S, S, 3] image: the file (resized to S x S), or smooth synthetic waves."""
    if path is not None:
        return to_uint8(load_image(path, img_size))[None]
    yy, xx = np.mgrid[0:img_size, 0:img_size] / (img_size - 1)
    waves = [0.5 + 0.4 * np.sin(2 * np.pi * (tilt * xx + (c + 1) * yy) + c) for c in range(3)]
    return np.round(np.stack(waves, -1) * 255).astype(np.uint8)[None]


def v1_sample_inputs(image_size: int, c_dim: int, image=None) -> dict:
    """Inputs of a StarGAN v1 file's `translate`: the image (or a synthetic one) and alternating 1, 0 labels."""
    labels = (np.arange(c_dim) % 2 == 0).astype(np.float32)[None]
    return {"translate": {IMAGE.name: _picture(image, 1.0, image_size), TARGET_LABELS.name: labels}}


def sample_inputs(img_size: int, latent_dim: int, style_dim: int, num_domains: int, image=None, reference=None,
                  seed: int = 0) -> dict:
    """Inputs for every TFLite signature: the given image files (resized to S x S) or smooth synthetic images."""
    rng = np.random.default_rng(seed)

    def picture(path, tilt):
        return _picture(path, tilt, img_size)

    target = np.array([1 % num_domains], np.int32)
    values = {IMAGE.name: picture(image, 1.0), REFERENCE.name: picture(reference, 2.0),
              TARGET_DOMAIN.name: target, REFERENCE_DOMAIN.name: target,
              Z.name: rng.standard_normal((1, latent_dim)).astype(np.float32), PSI.name: np.float32(0.7),
              STYLE.name: (rng.standard_normal((1, style_dim)) * 0.5).astype(np.float32)}
    return {name: {t.name: values[t.name] for t in signature(name).inputs} for name in TFLITE_NAMES}


# Sample inputs of each table's TFLite signatures, from the export's metadata sizes (the table's `sizes` fields).
SAMPLE_INPUTS = {
    "v2": lambda meta, image, reference: sample_inputs(meta["img_size"], meta["latent_dim"], meta["style_dim"],
                                                       meta["num_domains"], image, reference),
    "v1": lambda meta, image, reference: v1_sample_inputs(meta["image_size"], meta["c_dim"], image),
}


def make_interpreter(tflite_path, threads: int | None = None):
    from ai_edge_litert.interpreter import Interpreter

    try:
        return Interpreter(model_path=str(tflite_path), num_threads=threads or os.cpu_count())
    except ValueError as err:
        raise TFLiteError(f"{tflite_path} is not a TFLite file this runtime can load ({str(err).strip()[:200]}). "
                          "Convert it again with `python -m stargan_keras.tflite`.") from None


def signature_runner(interpreter, name: str):
    """The interpreter's runner of signature `name`, as a function of its inputs (keywords) that checks them
    first (`check_tflite_inputs`)."""
    available = interpreter.get_signature_list()
    if name not in available:
        raise TFLiteError(f"the TFLite file has no signature {name!r} (it has {', '.join(available)}).")
    runner = interpreter.get_signature_runner(name)
    details = runner.get_input_details()
    return lambda **inputs: runner(**check_tflite_inputs(details, inputs, name))


def check_tflite_inputs(details: dict, inputs: dict, name: str) -> dict:
    """inputs as arrays, each of the shape and dtype of the signature's input of its name (`details`: a
    signature runner's input details), or a TFLiteError naming the input and what it must be."""
    missing, unknown = sorted(set(details) - set(inputs)), sorted(set(inputs) - set(details))
    if missing or unknown:
        raise TFLiteError(f"signature {name!r} takes inputs {', '.join(sorted(details))}"
                          + (f"; missing: {', '.join(missing)}" if missing else "")
                          + (f"; unknown: {', '.join(unknown)}" if unknown else "") + ".")
    checked = {}
    for key, detail in details.items():
        value, dtype, shape = np.asarray(inputs[key]), np.dtype(detail["dtype"]), [int(d) for d in detail["shape"]]
        if value.dtype != dtype or list(value.shape) != shape:
            hint = " (TFLite signatures take one image at the model's size: resize it first)" \
                if len(shape) == 4 else ""
            raise TFLiteError(f"signature {name!r}: input {key!r} must be {dtype.name} {shape}, got "
                              f"{value.dtype.name} {list(value.shape)}{hint}.")
        checked[key] = value
    return checked


def verify(tflite_path, saved_model_dir, image=None, reference=None, runs: int = 3, threads: int | None = None,
           signatures=None, loaded=None) -> list[dict]:
    """Run each TFLite signature (default: all the export's family has) next to the SavedModel's; one dict per
    signature with the errors and timings. `loaded`: the export already loaded by `load_export`."""
    tflite_path = Path(tflite_path)
    if not tflite_path.exists():
        raise TFLiteError(f"{tflite_path} does not exist: convert it first (drop --check).")
    saved = _load_export(saved_model_dir, twins=False) if loaded is None else loaded
    table = table_of(saved.signatures)
    signatures = table.tflite_names if signatures is None else signatures
    interpreter = make_interpreter(tflite_path, threads)
    question = table.signature("metadata").inputs[0].name  # one row of sizes: any domain or attribute name
    metadata = saved.signatures["metadata"](**{question: tf.constant([""])})
    meta = {field: int(metadata[field][0]) for _, field in table.sizes}
    inputs = SAMPLE_INPUTS[table.name](meta, image, reference)
    size = tflite_path.stat().st_size
    results = []
    for name in signatures:
        runner = signature_runner(interpreter, name)
        expected = {k: v.numpy() for k, v in saved.signatures[name](**inputs[name]).items()}
        actual = runner(**inputs[name])
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            runner(**inputs[name])
            times.append(time.perf_counter() - start)
        (key,) = expected
        got, want = actual[key].astype(np.float64), expected[key].astype(np.float64)
        peak = 255.0 if expected[key].dtype == np.uint8 else float(want.max() - want.min())
        results.append({"signature": name, "output": key, "max_abs_error": float(np.max(np.abs(got - want))),
                        "psnr_db": psnr(got, want, peak), "file_bytes": size,
                        "latency_s": float(np.median(times))})
    return results
