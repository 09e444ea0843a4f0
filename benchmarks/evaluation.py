"""The evaluation protocol's cost: its translation stage with and without reusing G's content encoding, and
an estimate of the paper's full AFHQ protocol on this machine.

    python benchmarks/evaluation.py [--batch 4] [--runs 2] [--val-per-domain 500]

Builds the AFHQ preset's networks (256 px, the paper's widths) with random weights (time does not depend on
the values) and times, on one batch of sources and `evaluate`'s outputs per source:
- the translation stage as `v2.evaluation.evaluate` runs it: G's content encoding once per source
  (`Translator.synthesize_each`), and all of G per output (`reuse_content=False`, the authors' way);
- the metric networks on those outputs: FID's Inception features and LPIPS over each source's pairs.
The full protocol's counts come from the code: the domains of the authors' AFHQ zip, `make_tasks` (every
ordered pair), `evaluate`'s default outputs per source and its two modes; only the val images per domain,
a property of the data set (500 in AFHQ's val split), is a flag. Not counted: the FID features of the
train images (once per data set, cached), reading images, and the reference styles (one E pass per val
image). Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import statistics
import time

AFHQ_VAL_PER_DOMAIN = 500  # images per domain in AFHQ's val split (the authors' data set)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="afhq", help="preset whose networks are timed (default afhq)")
    parser.add_argument("--batch", type=int, default=4, help="sources per timed batch (evaluate: --eval-batch-size)")
    parser.add_argument("--runs", type=int, default=2, help="timed rounds (median reported), after one warm-up")
    parser.add_argument("--val-per-domain", type=int, default=AFHQ_VAL_PER_DOMAIN,
                        help="val images per domain of the protocol's data set (AFHQ: 500)")
    return parser.parse_args(argv)


def protocol_counts(domain_names, val_per_domain: int) -> dict:
    """The paper's protocol, as `v2.evaluation` runs it: tasks, sources and translations per mode."""
    from stargan_keras.v2 import evaluation

    tasks = evaluation.make_tasks(list(domain_names))
    outputs = inspect.signature(evaluation.evaluate).parameters["num_outputs"].default
    sources = len(tasks) * val_per_domain
    return {"domains": len(domain_names), "tasks": len(tasks), "modes": len(evaluation.MODES),
            "val_per_domain": val_per_domain, "outputs_per_source": outputs, "sources_per_mode": sources,
            "translations": len(evaluation.MODES) * sources * outputs}


def timed(call, runs: int) -> float:
    """Median seconds of `runs` calls after one warm-up call (the first traces)."""
    call()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None) -> dict:
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf

    from stargan_keras.data.tfds_builders import AUTHORS_ZIPS
    from stargan_keras.families import load_config
    from stargan_keras.metrics import LPIPS, FidFeatureExtractor, mean_pairwise_lpips
    from stargan_keras.v2.inference import Translator
    from stargan_keras.v2.networks import build_networks

    counts = protocol_counts(AUTHORS_ZIPS["afhq"].domains, args.val_per_domain)
    config = load_config(args.config)
    model = config.model
    translator = Translator(config, build_networks(model, with_discriminator=False))
    rng = np.random.default_rng(0)
    k = counts["outputs_per_source"]
    x = tf.constant(rng.uniform(-1, 1, (args.batch, model.img_size, model.img_size, 3)).astype(np.float32))
    styles = tf.constant(rng.normal(size=(k, args.batch, model.style_dim)).astype(np.float32))
    print(f"{model.img_size} px, {args.batch} sources x {k} outputs a batch; timing the translation stage",
          flush=True)

    def with_reuse():
        return translator.synthesize_each(x, styles).numpy()

    def without_reuse():
        return np.stack([translator.synthesize(x, s).numpy() for s in styles])

    seconds = {"reuse": timed(with_reuse, args.runs), "no_reuse": timed(without_reuse, args.runs)}
    outputs = with_reuse()
    print("timing the metric networks (random weights) on the same outputs", flush=True)
    fid, lpips = FidFeatureExtractor("torchvision", weights=None), LPIPS()
    flat = outputs.reshape(-1, *outputs.shape[2:])
    seconds["fid_features"] = timed(lambda: fid(flat), args.runs)
    seconds["lpips"] = timed(lambda: mean_pairwise_lpips(lpips, tf.constant(outputs)), args.runs)

    batches = counts["modes"] * counts["sources_per_mode"] / args.batch
    per_source = {key: value / args.batch for key, value in seconds.items()}
    estimate = {"translation_reuse_h": batches * seconds["reuse"] / 3600,
                "translation_no_reuse_h": batches * seconds["no_reuse"] / 3600,
                "metrics_h": batches * (seconds["fid_features"] + seconds["lpips"]) / 3600}
    estimate["total_h"] = estimate["translation_reuse_h"] + estimate["metrics_h"]
    speedup = seconds["no_reuse"] / seconds["reuse"]
    print(f"translation stage, per source ({k} outputs): {per_source['reuse']:.3f} s with G's content encoding "
          f"reused, {per_source['no_reuse']:.3f} s without: {speedup:.2f}x")
    print(f"metric networks, per source: FID features {per_source['fid_features']:.3f} s, LPIPS "
          f"{per_source['lpips']:.3f} s")
    print(f"the paper's AFHQ protocol ({counts['domains']} domains, {counts['tasks']} tasks, {counts['modes']} "
          f"modes, {counts['val_per_domain']} val images per domain, {k} outputs each: "
          f"{counts['translations']:,} translations) on this machine: about {estimate['total_h']:.1f} h "
          f"(translation {estimate['translation_reuse_h']:.1f} h, {estimate['translation_no_reuse_h']:.1f} h "
          f"without reuse; metric networks {estimate['metrics_h']:.1f} h)")
    result = {"img_size": model.img_size, "batch": args.batch, "runs": args.runs, "seconds_per_batch": seconds,
              "seconds_per_source": per_source, "reuse_speedup": speedup, "protocol": counts,
              "estimate": estimate, "cpu_count": os.cpu_count()}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
