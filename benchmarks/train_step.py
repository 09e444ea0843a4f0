"""Time full StarGAN v2 training iterations (the compiled `StarGANv2.distributed_train_step`).

    python benchmarks/train_step.py --img-size 64 --base-dim 64 --max-conv-dim 512 \
        --batch 4 --domains 3 --precision float32 [--jit-compile] [--iters 5 --warmup 2]

Prints seconds per iteration (median after warm-up), images per second and the
achieved GFLOP/s, where the FLOPs are counted on the traced step's graph (every
Conv2D/MatMul and their gradients, forward and backward, as TensorFlow's
profiler counts them), and ends with one JSON line for scripts. Issue 3's target
case is the command above: the authors' PyTorch code takes about 7 s there on
the project's 2-core CPU (REFERENCE.md).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--img-size", type=int, default=64)
    parser.add_argument("--base-dim", type=int, default=64)
    parser.add_argument("--max-conv-dim", type=int, default=512)
    parser.add_argument("--batch", type=int, default=4, help="global batch size")
    parser.add_argument("--domains", type=int, default=3)
    parser.add_argument("--mapping-hidden-dim", type=int, default=512, help="F's width (the paper's 512)")
    parser.add_argument("--w-hpf", type=float, default=0.0)
    parser.add_argument("--precision", default="float32", choices=("float32", "mixed_bfloat16", "mixed_float16"))
    parser.add_argument("--strategy", default="default", help="auto | mirrored | default | ...")
    parser.add_argument("--jit-compile", action="store_true", help="compile the step with XLA")
    parser.add_argument("--inter-op-threads", type=int, default=0, help="TensorFlow inter-op threads (0: default)")
    parser.add_argument("--intra-op-threads", type=int, default=0, help="TensorFlow intra-op threads (0: default)")
    parser.add_argument("--onednn", choices=("on", "off", "default"), default="default",
                        help="TF_ENABLE_ONEDNN_OPTS for this run (TensorFlow leaves oneDNN off on AMD CPUs by default)")
    parser.add_argument("--iters", type=int, default=5, help="timed iterations")
    parser.add_argument("--warmup", type=int, default=2, help="untimed iterations first (the first one traces)")
    return parser.parse_args(argv)


def random_batch(config, batch_size: int, seed: int = 0) -> dict:
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    size, domains = config.model.img_size, config.model.num_domains

    def images():
        return tf.constant(rng.uniform(-1, 1, (batch_size, size, size, 3)).astype("float32"))

    def labels():
        return tf.constant(rng.integers(0, domains, batch_size).astype("int32"))

    def latents():
        return tf.constant(rng.normal(size=(batch_size, config.model.latent_dim)).astype("float32"))

    return dict(x_src=images(), y_src=labels(), x_ref=images(), x_ref2=images(), y_trg=labels(), z_trg=latents(),
                z_trg2=latents())


def graph_flops(model, batch: dict) -> float | None:
    """FLOPs of one iteration as TensorFlow's profiler counts them on the traced (unoptimised) graph."""
    import tensorflow as tf

    if model.distribute_strategy.num_replicas_in_sync != 1:
        return None
    graph = tf.function(model.train_step, autograph=False).get_concrete_function(batch).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return float(tf.compat.v1.profiler.profile(graph, options=options).total_float_ops)


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.onednn != "default":  # read once, when TensorFlow is first imported
        os.environ["TF_ENABLE_ONEDNN_OPTS"] = "1" if args.onednn == "on" else "0"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    from stargan_keras.config import load_config
    from stargan_keras.distribute import make_strategy, set_precision
    from stargan_keras.trainer import StarGANv2

    tf.config.threading.set_inter_op_parallelism_threads(args.inter_op_threads)
    tf.config.threading.set_intra_op_parallelism_threads(args.intra_op_threads)
    set_precision(args.precision)
    strategy = make_strategy(args.strategy)
    config = load_config("shapes").replace(img_size=args.img_size, base_dim=args.base_dim,
                                           max_conv_dim=args.max_conv_dim, num_domains=args.domains,
                                           mapping_hidden_dim=args.mapping_hidden_dim,
                                           w_hpf=args.w_hpf, batch_size=args.batch, precision=args.precision,
                                           jit_compile=args.jit_compile, domain_names=[])
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = StarGANv2(config)
        model.compile()
    batch = random_batch(config, args.batch)
    flops = graph_flops(model, batch)
    times, cpu_times = [], []
    progress = keras.utils.Progbar(args.warmup + args.iters, unit_name="iteration")
    for i in range(args.warmup + args.iters):
        start, cpu_start = time.perf_counter(), time.process_time()
        logs = model.distributed_train_step(batch)
        float(logs["G/ref_cyc"])  # wait for the step to finish
        elapsed = time.perf_counter() - start
        if i >= args.warmup:
            times.append(elapsed)
            cpu_times.append(time.process_time() - cpu_start)
        progress.add(1, values=[("s/iter", elapsed)])
    seconds = statistics.median(times)
    result = {"s_per_iter": seconds, "img_per_s": args.batch / seconds,
              "gflop_per_iter": flops / 1e9 if flops else None,
              "gflop_per_s": flops / 1e9 / seconds if flops else None,
              "cpu_s_per_iter": statistics.median(cpu_times), "times": times, "img_size": args.img_size,
              "base_dim": args.base_dim, "max_conv_dim": args.max_conv_dim, "batch": args.batch,
              "mapping_hidden_dim": args.mapping_hidden_dim,
              "domains": args.domains,
              "precision": args.precision, "jit_compile": bool(model.jit_compile),
              "strategy": type(strategy).__name__, "replicas": strategy.num_replicas_in_sync,
              "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
              "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
              "onednn": args.onednn}
    print(f"{seconds:.3f} s/iter, {result['img_per_s']:.2f} img/s"
          + (f", {result['gflop_per_iter']:.1f} GFLOP/iter, {result['gflop_per_s']:.1f} GFLOP/s" if flops else ""))
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
