"""Inference latency at 256 px, batch 1, full-size networks: SavedModel (as TF Serving runs it), TFLite, ONNX.

    python benchmarks/inference.py [--runs 5] [--config afhq] [--upstream-dir PATH/TO/stargan-v2]

Builds the networks of a preset with random weights (latency does not depend on the values),
exports them with `stargan_keras.serving.export`, converts them with `stargan_keras.serving.tflite`
(none, float16, dynamic), then times latent-guided and reference-guided translation (median of --runs rounds that
each time every runtime once, after one warm-up call each) through
- the SavedModel loaded by the session-based loader (the SignatureDef path TF Serving executes),
- the SavedModel loaded by `tf.saved_model.load` (eager signature calls),
- each TFLite file (LiteRT interpreter, XNNPACK, all cores),
- the ONNX files of `export --format onnx` (ONNX Runtime, CPU; skipped with a note when tf2onnx, onnx or
  onnxruntime is not installed).
With --upstream-dir (a checkout of the authors' code; nothing of it is kept) the authors' PyTorch
networks are timed in the same run, so the comparison does not depend on how busy the machine is.
Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from saved_model_session import SavedModelSession  # noqa: E402 (benchmarks/, the script's own folder)
from stargan_keras.core.model_dir import save_networks  # noqa: E402
from stargan_keras.families import load_config  # noqa: E402
from stargan_keras.families import load  # noqa: E402
from stargan_keras.v2.networks import build_networks  # noqa: E402
from stargan_keras.serving import tflite  # noqa: E402
from stargan_keras.serving.export import export_saved_model  # noqa: E402

TARGETS_S = {"saved_model_session": 0.70, "tflite_none": 0.62}  # latent-guided, issue #5
UPSTREAM_REFERENCE_S = {"latent_guided": 0.89, "reference_guided": 1.25}  # authors' networks, 2 cores, quiet machine
TIMED = ("latent_guided", "reference_guided")


def median_latencies(calls: dict, runs: int) -> dict:
    """{key: call} -> {key: median seconds}; one warm-up call each, then `runs` rounds that time every call
    once, so that a busy spell of the shared machine hits all runtimes alike."""
    for call in calls.values():
        call()
    times = {key: [] for key in calls}
    for _ in range(runs):
        for key, call in calls.items():
            start = time.perf_counter()
            call()
            times[key].append(time.perf_counter() - start)
    return {key: float(np.median(t)) for key, t in times.items()}


def request(img_size: int, latent_dim: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (1, img_size, img_size, 3), dtype=np.uint8)
    domain = np.array([1], np.int32)
    z = rng.standard_normal((1, latent_dim)).astype(np.float32)
    return {"latent_guided": {"image": image, "target_domain": domain, "z": z, "psi": np.float32(1.0)},
            "reference_guided": {"image": image, "reference": image[:, ::-1].copy(), "reference_domain": domain}}


def upstream_calls(upstream_dir: Path, model_cfg) -> dict:
    """The authors' PyTorch G, F, E (random weights) on the same inputs, as calls to time."""
    import torch

    from upstream import model_module  # benchmarks/, the script's own folder

    upstream = model_module(upstream_dir)
    Generator, MappingNetwork, StyleEncoder = upstream.Generator, upstream.MappingNetwork, upstream.StyleEncoder
    torch.set_num_threads(os.cpu_count())
    size = model_cfg.img_size
    G = Generator(size, model_cfg.style_dim, w_hpf=model_cfg.w_hpf).eval()
    F = MappingNetwork(model_cfg.latent_dim, model_cfg.style_dim, model_cfg.num_domains).eval()
    E = StyleEncoder(size, model_cfg.style_dim, model_cfg.num_domains).eval()
    x, y = torch.rand(1, 3, size, size) * 2 - 1, torch.tensor([1])
    z = torch.randn(1, model_cfg.latent_dim)

    def no_grad(fn):
        def call():
            with torch.no_grad():
                return fn()
        return call

    return {"latent_guided": no_grad(lambda: G(x, F(z, y))),
            "reference_guided": no_grad(lambda: G(x, E(x.flip(3), y)))}


def onnx_module():
    """`stargan_keras.serving.onnx_export`, or None (with a note) without its converter and runtime."""
    from stargan_keras.serving import onnx_export

    try:
        onnx_export.require_converter()
    except onnx_export.OnnxExportError as err:
        print(f"ONNX Runtime not timed: {err}")
        return None
    return onnx_export


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="afhq", help="preset whose networks are timed (default afhq)")
    parser.add_argument("--runs", type=int, default=5, help="timed calls per measurement (median reported)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="threads for every runtime")
    parser.add_argument("--upstream-dir", type=Path, default=None,
                        help="a checkout of clovaai/stargan-v2 to time its PyTorch networks side by side")
    parser.add_argument("--work-dir", type=Path, default=None, help="keep the export and TFLite files here")
    parser.add_argument("--reuse", action="store_true",
                        help="time the export and TFLite files a previous run left in --work-dir")
    args = parser.parse_args(argv)

    keras.utils.set_random_seed(0)
    cfg = load_config(args.config)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="stargan-bench-"))
    bar = keras.utils.Progbar(5)  # build, export, convert, load, time
    files = {q: work / f"stargan_{q}.tflite" for q in tflite.QUANTIZATIONS}
    onnx_export = onnx_module()
    onnx_dir = work / "onnx"
    exports = sorted((work / "models" / "stargan").glob("[0-9]*"), key=lambda p: int(p.name))
    if args.reuse and exports and all(path.exists() for path in files.values()) and \
            (onnx_export is None or all(p.exists() for p in onnx_export.onnx_paths(onnx_dir, "v2").values())):
        export = exports[-1]
        bar.add(3)
    else:
        model = load(save_networks(work / "model", cfg, build_networks(cfg.model, with_discriminator=False)))
        bar.add(1)
        export = export_saved_model(model, work / "models" / "stargan", mean_style_samples=100)
        bar.add(1)
        files = tflite.convert_many(export, files)
        if onnx_export is not None:  # in a process of its own: tf2onnx's memory peak then adds to nothing here
            subprocess.run([sys.executable, "-m", "stargan_keras.export", "--checkpoint", str(work / "model"),
                            "--format", "onnx", "--output", str(onnx_dir), "--overwrite", "--mean-style-samples",
                            "100"], check=True)
        bar.add(1)
    inputs = request(cfg.model.img_size, cfg.model.latent_dim)
    calls = {}
    session = SavedModelSession(export, config=tf.compat.v1.ConfigProto(
        intra_op_parallelism_threads=args.threads, inter_op_parallelism_threads=1))
    calls["saved_model_session"] = {n: (lambda n=n: session.run(n, inputs[n])) for n in TIMED}
    signatures = tf.saved_model.load(str(export)).signatures
    calls["saved_model_eager"] = {n: (lambda n=n: {k: v.numpy() for k, v in signatures[n](**inputs[n]).items()})
                                  for n in TIMED}
    for quantize, path in files.items():
        interpreter = tflite.make_interpreter(path, args.threads)
        runners = {n: interpreter.get_signature_runner(n) for n in TIMED}
        calls[f"tflite_{quantize}"] = {n: (lambda n=n, r=runners: r[n](**inputs[n])) for n in TIMED}
    if onnx_export is not None:
        sessions = {n: onnx_export.session(path, args.threads)
                    for n, path in onnx_export.onnx_paths(onnx_dir, "v2").items()}
        inputs_onnx = {n: {k: np.atleast_1d(v) for k, v in inputs[n].items()} for n in TIMED}  # psi is [N]
        calls["onnxruntime"] = {n: (lambda n=n: onnx_export.run(sessions[n], **inputs_onnx[n])) for n in TIMED}
    if args.upstream_dir is not None:
        calls["upstream_pytorch"] = upstream_calls(args.upstream_dir, cfg.model)
    bar.add(1)
    flat = median_latencies({(runtime, n): call for runtime, row in calls.items() for n, call in row.items()},
                            args.runs)
    results = {runtime: {n: flat[runtime, n] for n in TIMED} for runtime in calls}
    for quantize, path in files.items():
        results[f"tflite_{quantize}"]["size_mb"] = round(path.stat().st_size / 1e6, 1)
    bar.add(1)
    session.close()

    print(f"\n{cfg.model.img_size} px, batch 1, {args.threads} threads, median of {args.runs} (seconds):")
    print(f"{'runtime':<22}{'latent':>9}{'reference':>11}")
    for runtime, row in results.items():
        print(f"{runtime:<22}{row['latent_guided']:>9.3f}{row['reference_guided']:>11.3f}"
              + (f"   {row['size_mb']} MB" if "size_mb" in row else ""))
    print(f"{'upstream (recorded)':<22}{UPSTREAM_REFERENCE_S['latent_guided']:>9.3f}"
          f"{UPSTREAM_REFERENCE_S['reference_guided']:>11.3f}")
    met = {runtime: results[runtime]["latent_guided"] <= target for runtime, target in TARGETS_S.items()}
    print(json.dumps({"img_size": cfg.model.img_size, "batch": 1, "runs": args.runs, "threads": args.threads,
                      "latency_s": {k: {n: round(v, 4) for n, v in row.items()} for k, row in results.items()},
                      "latent_targets_s": TARGETS_S, "latent_targets_met": met,
                      "upstream_reference_s": UPSTREAM_REFERENCE_S}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
