"""Convert an exported SavedModel to TFLite for on-device demos, and prove the file computes the same thing.

    python -m stargan_keras.tflite --saved-model models/stargan/1 --output stargan.tflite --quantize none
    python -m stargan_keras.tflite --saved-model models/stargan/1 --output stargan_int8.tflite --quantize dynamic
    python -m stargan_keras.tflite --saved-model models/stargan/1 --output stargan.tflite --check

The file has the five uint8 tensor signatures of the SavedModel (`latent_guided`,
`reference_guided`, `style_from_latent`, `style_from_reference`, `synthesize`) with
the same input and output names, built from builtin TFLite ops only. It is
converted from the export's `tflite_*` functions rather than from the serving
signatures themselves, because those validate inputs with assert ops and resize
with antialiasing, neither of which TFLite has as a builtin. So on device:
images must already be S x S (the app resizes them), and indices are not
range-checked (the app passes valid domains); each call translates one image (batch 1,
static shapes) and `psi` is a scalar. The bytes and metadata signatures
are not converted (string tensors); domain names are in the export's
`assets/domain_names.txt`.

Every conversion is verified on the spot: each TFLite signature runs on a test
image next to the same signature of the SavedModel, and a line per signature
reports max abs error, PSNR, file size and latency. `--check` reruns that.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from .export import TENSOR_SIGNATURES, TFLITE_PREFIX
from .imaging import load_image, to_uint8

QUANTIZATIONS = ("none", "float16", "dynamic")


class TFLiteError(ValueError):
    """A SavedModel that cannot be converted, or a file that cannot be verified; the message says why."""


def _load_export(saved_model_dir):
    path = Path(saved_model_dir)
    if not (path / "saved_model.pb").exists():
        raise TFLiteError(f"--saved-model {path}: no saved_model.pb there. Pass a version directory written by "
                          "`python -m stargan_keras.export`, e.g. models/stargan/1.")
    loaded = tf.saved_model.load(str(path))
    missing = [n for n in TENSOR_SIGNATURES if not hasattr(loaded, TFLITE_PREFIX + n)]
    if missing:
        raise TFLiteError(f"--saved-model {path} has no {TFLITE_PREFIX}* functions ({', '.join(missing)} missing): "
                          "it was not written by this version of `stargan_keras.export`. Export it again.")
    return loaded


def convert(saved_model_dir, output, quantize: str = "none") -> Path:
    """Write the TFLite file (atomically) from an export's tflite_* functions; quantize: none|float16|dynamic."""
    return convert_many(saved_model_dir, {quantize: output})[quantize]


def convert_many(saved_model_dir, outputs: dict) -> dict:
    """{quantize: output path} -> {quantize: written path}, staging the SavedModel once for all of them."""
    for quantize in outputs:
        if quantize not in QUANTIZATIONS:
            raise TFLiteError(f"--quantize {quantize!r}: choose one of {', '.join(QUANTIZATIONS)}.")
    loaded = _load_export(saved_model_dir)
    functions = {name: getattr(loaded, TFLITE_PREFIX + name).get_concrete_function() for name in TENSOR_SIGNATURES}
    written = {}
    with tempfile.TemporaryDirectory(prefix="stargan-tflite-") as staging:
        # The converter names signatures after SignatureDefs, so the functions become signatures of a staging copy.
        tf.saved_model.save(loaded, staging, signatures=functions)
        for quantize, output in outputs.items():
            converter = tf.lite.TFLiteConverter.from_saved_model(staging, signature_keys=list(TENSOR_SIGNATURES))
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


def sample_inputs(img_size: int, latent_dim: int, style_dim: int, num_domains: int, image=None, reference=None,
                  seed: int = 0) -> dict:
    """Inputs for every signature: the given image files (resized to S x S) or smooth synthetic images."""
    rng = np.random.default_rng(seed)

    def picture(path, tilt):
        if path is not None:
            return to_uint8(load_image(path, img_size))[None]
        yy, xx = np.mgrid[0:img_size, 0:img_size] / (img_size - 1)
        waves = [0.5 + 0.4 * np.sin(2 * np.pi * (tilt * xx + (c + 1) * yy) + c) for c in range(3)]
        return np.round(np.stack(waves, -1) * 255).astype(np.uint8)[None]

    x, ref = picture(image, 1.0), picture(reference, 2.0)
    target = np.array([1 % num_domains], np.int32)
    z = rng.standard_normal((1, latent_dim)).astype(np.float32)
    psi = np.float32(0.7)
    return {
        "latent_guided": {"image": x, "target_domain": target, "z": z, "psi": psi},
        "reference_guided": {"image": x, "reference": ref, "reference_domain": target},
        "style_from_latent": {"target_domain": target, "z": z, "psi": psi},
        "style_from_reference": {"reference": ref, "reference_domain": target},
        "synthesize": {"image": x, "style": (rng.standard_normal((1, style_dim)) * 0.5).astype(np.float32)},
    }


def make_interpreter(tflite_path, threads: int | None = None):
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_path=str(tflite_path), num_threads=threads or os.cpu_count())


def verify(tflite_path, saved_model_dir, image=None, reference=None, runs: int = 3, threads: int | None = None,
           signatures=TENSOR_SIGNATURES) -> list[dict]:
    """Run each TFLite signature next to the SavedModel's; one dict per signature with the errors and timings."""
    tflite_path = Path(tflite_path)
    if not tflite_path.exists():
        raise TFLiteError(f"{tflite_path} does not exist: convert it first (drop --check).")
    saved = tf.saved_model.load(str(saved_model_dir))
    metadata = saved.signatures["metadata"](domain=tf.constant([""]))  # one row
    meta = {k: int(metadata[k][0]) for k in ("img_size", "latent_dim", "num_domains", "style_dim")}
    interpreter = make_interpreter(tflite_path, threads)
    available = interpreter.get_signature_list()
    inputs = sample_inputs(meta["img_size"], meta["latent_dim"], meta["style_dim"], meta["num_domains"], image,
                           reference)
    size = tflite_path.stat().st_size
    results = []
    for name in signatures:
        if name not in available:
            raise TFLiteError(f"{tflite_path} has no signature {name!r} (it has {', '.join(available)}).")
        expected = {k: v.numpy() for k, v in saved.signatures[name](**inputs[name]).items()}
        runner = interpreter.get_signature_runner(name)
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


def format_results(results) -> str:
    lines = [f"{'signature':<22}{'max abs err':>12}{'PSNR dB':>10}{'size MB':>10}{'latency s':>11}"]
    for r in results:
        lines.append(f"{r['signature']:<22}{r['max_abs_error']:>12.4g}{r['psnr_db']:>10.2f}"
                     f"{r['file_bytes'] / 1e6:>10.2f}{r['latency_s']:>11.3f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stargan_keras.tflite", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--saved-model", required=True, help="an export version directory, e.g. models/stargan/1")
    parser.add_argument("--output", required=True, help="the .tflite file to write (or to check)")
    parser.add_argument("--quantize", choices=QUANTIZATIONS, default="none",
                        help="none: float32; float16: half-size weights; dynamic: int8 weights (dynamic range)")
    parser.add_argument("--check", action="store_true", help="only verify an existing --output file")
    parser.add_argument("--image", default=None, help="test image for the verification (default: synthetic)")
    parser.add_argument("--reference", default=None, help="test reference image (default: synthetic)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per signature (median reported)")
    parser.add_argument("--threads", type=int, default=None, help="interpreter threads (default: all cores)")
    args = parser.parse_args(argv)
    try:
        if not args.check:
            start = time.perf_counter()
            path = convert(args.saved_model, args.output, args.quantize)
            print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB, --quantize {args.quantize}) "
                  f"in {time.perf_counter() - start:.0f}s; verifying against {args.saved_model}")
        results = verify(args.output, args.saved_model, args.image, args.reference, args.runs, args.threads)
    except (TFLiteError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(format_results(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
