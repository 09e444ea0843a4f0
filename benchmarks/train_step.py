"""Time full StarGAN v2 training iterations (the compiled `StarGANv2.distributed_train_step`).

    python benchmarks/train_step.py --img-size 64 --base-dim 64 --max-conv-dim 512 \
        --batch 4 --domains 3 --precision float32 [--jit-compile] [--iters 5 --warmup 2]
    python benchmarks/train_step.py --img-size 64 --base-dim 64 --domains 2 --w-hpf 1   # CelebA-HQ: with the FAN

Prints seconds per iteration (median after warm-up), images per second and the
achieved GFLOP/s, where the FLOPs are counted on the traced step's graph (every
Conv2D/MatMul and their gradients, forward and backward, as TensorFlow's
profiler counts them), and ends with one JSON line for scripts. Issue 3's target
case is the command above. With --upstream-dir (a checkout of the
authors' code) their PyTorch iteration is timed in the same run, round by round
beside ours, so that the ratio does not depend on how busy the machine is.
With --w-hpf > 0 both sides run the face-landmark network (random weights: they do
not change the time) on x_real and, for the cycle term, on x_fake, as training does.
On a new kind of device, time `--conv-forms cpu` against `--conv-forms keras` (one run
each, the same other flags) to see which forms `auto` should pick there.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path


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
    parser.add_argument("--conv-forms", default="auto", choices=("auto", "cpu", "keras"),
                        help="the convolutions' forms (train --conv-forms): time both on a new device")
    parser.add_argument("--tf32", action="store_true", help="allow TF32 on Ampere and later GPUs (train --tf32)")
    parser.add_argument("--inter-op-threads", type=int, default=0, help="TensorFlow inter-op threads (0: default)")
    parser.add_argument("--intra-op-threads", type=int, default=0, help="TensorFlow intra-op threads (0: default)")
    parser.add_argument("--onednn", choices=("on", "off", "default"), default="default",
                        help="TF_ENABLE_ONEDNN_OPTS for this run (default: TensorFlow's choice, logged at start-up)")
    parser.add_argument("--upstream-dir", type=Path, default=None,
                        help="a checkout of clovaai/stargan-v2 whose PyTorch iteration is timed side by side")
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


def upstream_iteration(upstream_dir: Path, config, batch: dict):
    """One call = one iteration of the authors' `Solver.train` loop on the same batch (NCHW tensors)."""
    import copy

    import torch

    from upstream import Munch, model_module, solver_functions, wing_module  # benchmarks/, the script's folder

    cfg, train = config.model, config.train
    torch.set_num_threads(os.cpu_count())
    torch.manual_seed(0)
    model, solver = model_module(upstream_dir, base_dim=cfg.base_dim), solver_functions(upstream_dir)
    fan = wing_module(upstream_dir).FAN(fname_pretrained=None).eval() if cfg.w_hpf > 0 else None
    nets = Munch(generator=model.Generator(cfg.img_size, cfg.style_dim, cfg.max_conv_dim, w_hpf=cfg.w_hpf),
                 mapping_network=model.MappingNetwork(cfg.latent_dim, cfg.style_dim, cfg.num_domains),
                 style_encoder=model.StyleEncoder(cfg.img_size, cfg.style_dim, cfg.num_domains, cfg.max_conv_dim),
                 discriminator=model.Discriminator(cfg.img_size, cfg.num_domains, cfg.max_conv_dim))
    optims = {name: torch.optim.Adam(net.parameters(), lr=train.f_lr if name == "mapping_network" else train.lr,
                                     betas=(train.beta_1, train.beta_2), eps=train.epsilon,
                                     weight_decay=train.weight_decay) for name, net in nets.items()}
    if fan is not None:
        nets.fan = fan  # after the optimizers, as in their Solver: the FAN is not trained
    ema = {name: copy.deepcopy(nets[name]) for name in ("generator", "mapping_network", "style_encoder")}
    hparams = Munch(lambda_reg=train.lambda_reg, lambda_sty=train.lambda_sty, lambda_ds=train.lambda_ds,
                    lambda_cyc=train.lambda_cyc, w_hpf=cfg.w_hpf)
    t = {key: torch.from_numpy(value.numpy()) for key, value in batch.items()}
    for key in ("x_src", "x_ref", "x_ref2"):
        t[key] = t[key].permute(0, 3, 1, 2).contiguous()
    for key in ("y_src", "y_trg"):
        t[key] = t[key].long()

    def update(loss, *names):
        for optimizer in optims.values():
            optimizer.zero_grad()
        loss.backward()
        for name in names:
            optims[name].step()

    def iteration():
        x, y_org, y_trg = t["x_src"], t["y_src"], t["y_trg"]
        masks = fan.get_heatmap(x) if fan is not None else None  # their Solver.train, once per iteration
        update(solver.compute_d_loss(nets, hparams, x, y_org, y_trg, z_trg=t["z_trg"], masks=masks)[0],
               "discriminator")
        update(solver.compute_d_loss(nets, hparams, x, y_org, y_trg, x_ref=t["x_ref"], masks=masks)[0],
               "discriminator")
        update(solver.compute_g_loss(nets, hparams, x, y_org, y_trg, z_trgs=[t["z_trg"], t["z_trg2"]],
                                     masks=masks)[0], "generator", "mapping_network", "style_encoder")
        update(solver.compute_g_loss(nets, hparams, x, y_org, y_trg, x_refs=[t["x_ref"], t["x_ref2"]],
                                     masks=masks)[0], "generator")
        for name, net in ema.items():
            solver.moving_average(nets[name], net, beta=train.ema_beta)

    return iteration


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

    from stargan_keras.families import load_config
    from stargan_keras.core.distribute import make_strategy, set_precision, set_tensor_float_32
    from stargan_keras.face.fan import build_fan
    from stargan_keras.v2.trainer import StarGANv2

    tf.config.threading.set_inter_op_parallelism_threads(args.inter_op_threads)
    tf.config.threading.set_intra_op_parallelism_threads(args.intra_op_threads)
    set_precision(args.precision)
    set_tensor_float_32(args.tf32)
    strategy = make_strategy(args.strategy)
    config = load_config("shapes").replace(img_size=args.img_size, base_dim=args.base_dim,
                                           max_conv_dim=args.max_conv_dim, num_domains=args.domains,
                                           mapping_hidden_dim=args.mapping_hidden_dim,
                                           w_hpf=args.w_hpf, batch_size=args.batch, precision=args.precision,
                                           jit_compile=args.jit_compile, domain_names=[],
                                           conv_forms=args.conv_forms, tf32=args.tf32)
    keras.utils.set_random_seed(0)
    fan = build_fan() if args.w_hpf > 0 else None
    with strategy.scope():
        model = StarGANv2(config, fan=fan)
        model.compile()
    batch = random_batch(config, args.batch)
    flops = graph_flops(model, batch)
    upstream = upstream_iteration(args.upstream_dir, config, batch) if args.upstream_dir else None
    times, cpu_times, upstream_times = [], [], []
    progress = keras.utils.Progbar(args.warmup + args.iters, unit_name="iteration")
    for i in range(args.warmup + args.iters):
        start, cpu_start = time.perf_counter(), time.process_time()
        logs = model.distributed_train_step(batch)
        float(logs["G/ref_cyc"])  # wait for the step to finish
        elapsed = time.perf_counter() - start
        cpu_elapsed = time.process_time() - cpu_start
        values = [("s/iter", elapsed)]
        if upstream is not None:
            start = time.perf_counter()
            upstream()
            values.append(("upstream s/iter", time.perf_counter() - start))
        if i >= args.warmup:
            times.append(elapsed)
            cpu_times.append(cpu_elapsed)
            if upstream is not None:
                upstream_times.append(values[-1][1])
        progress.add(1, values=values)
    seconds = statistics.median(times)
    result = {"s_per_iter": seconds, "img_per_s": args.batch / seconds,
              "gflop_per_iter": flops / 1e9 if flops else None,
              "gflop_per_s": flops / 1e9 / seconds if flops else None,
              "cpu_s_per_iter": statistics.median(cpu_times), "times": times, "img_size": args.img_size,
              "base_dim": args.base_dim, "max_conv_dim": args.max_conv_dim, "batch": args.batch,
              "mapping_hidden_dim": args.mapping_hidden_dim,
              "domains": args.domains, "w_hpf": args.w_hpf,
              "precision": args.precision, "jit_compile": bool(model.jit_compile),
              "conv_forms": model.conv_forms, "tf32": args.tf32,
              "devices": sorted({d.device_type for d in tf.config.list_logical_devices()}),
              "strategy": type(strategy).__name__, "replicas": strategy.num_replicas_in_sync,
              "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
              "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
              "onednn": args.onednn}
    print(f"{seconds:.3f} s/iter, {result['img_per_s']:.2f} img/s"
          + (f", {result['gflop_per_iter']:.1f} GFLOP/iter, {result['gflop_per_s']:.1f} GFLOP/s" if flops else ""))
    from upstream import finish  # benchmarks/, the script's own folder

    return finish(result, upstream_times)


if __name__ == "__main__":
    main()
