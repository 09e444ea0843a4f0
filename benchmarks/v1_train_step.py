"""Time StarGAN v1 training beside the authors' (yunjey/stargan `Solver.train`), one n_critic cycle per round.

    python benchmarks/v1_train_step.py --image-size 64 --conv-dim 32 --batch 8 \
        [--upstream-dir PATH/TO/yunjey/stargan] [--rounds 3 --warmup 1]

A round is `n_critic` iterations (n_critic - 1 D updates alone, then a D and a G update),
the unit in which the algorithm repeats: ours through `StarGANv1.distributed_train_step`,
theirs through their own `Solver.train` with `num_iters = n_critic` on in-memory batches
(their logging, sampling and saving steps set beyond the round, so they do not run).
Rounds alternate between the two, so the ratio does not depend on how busy the machine
is. The paper's setting (128 px, widths 64, batch 16) takes minutes a round on two CPU
cores; the defaults here are the size the CPU allows. Prints seconds per iteration and
the ratio, and ends with one JSON line.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import types
from pathlib import Path


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--conv-dim", type=int, default=32, help="g_conv_dim and d_conv_dim (the paper's 64)")
    parser.add_argument("--batch", type=int, default=8, help="global batch size (the paper's 16)")
    parser.add_argument("--c-dim", type=int, default=5)
    parser.add_argument("--n-critic", type=int, default=5)
    parser.add_argument("--conv-forms", default="auto", choices=("auto", "cpu", "keras"),
                        help="the convolutions' forms (train --conv-forms): time both on a new device")
    parser.add_argument("--upstream-dir", type=Path, default=None,
                        help="a checkout of yunjey/stargan whose Solver.train is timed round by round beside ours")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds of n_critic iterations")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first (the first one traces)")
    return parser.parse_args(argv)


def random_batches(args, count: int, seed: int = 0) -> list[dict]:
    """`count` batches of the trainer's keys: images, attribute labels, permuted target labels, GP weights."""
    import numpy as np

    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(count):
        c_org = rng.integers(0, 2, (args.batch, args.c_dim)).astype("float32")
        batches.append(dict(x_real=rng.uniform(-1, 1, (args.batch, args.image_size, args.image_size, 3)).astype(
            "float32"), c_org=c_org, c_trg=c_org[rng.permutation(args.batch)],
            alpha=rng.uniform(0, 1, args.batch).astype("float32")))
    return batches


def upstream_round(upstream_dir: Path, args, batches: list[dict]):
    """One call = the authors' `Solver.train` over `n_critic` iterations of `batches` (NCHW tensors)."""
    import torch

    source = Path(upstream_dir)
    if not (source / "solver.py").is_file() or not (source / "model.py").is_file():
        raise SystemExit(f"--upstream-dir {upstream_dir}: no solver.py / model.py; pass a checkout of yunjey/stargan")
    # Their solver imports torchvision's save_image (for sample steps, which a round never reaches) and their
    # model module by its bare name.
    sys.modules.setdefault("torchvision", types.ModuleType("torchvision"))
    sys.modules.setdefault("torchvision.utils", types.SimpleNamespace(save_image=None))
    model = types.ModuleType("model")
    exec(compile((source / "model.py").read_text(), str(source / "model.py"), "exec"), model.__dict__)
    sys.modules["model"] = model
    solver_module = types.ModuleType("upstream_solver")
    exec(compile((source / "solver.py").read_text(), str(source / "solver.py"), "exec"), solver_module.__dict__)
    torch.set_num_threads(os.cpu_count())
    torch.manual_seed(0)
    loader = [(torch.from_numpy(b["x_real"].transpose(0, 3, 1, 2).copy()), torch.from_numpy(b["c_org"]))
              for b in batches]
    never = 10**9
    config = types.SimpleNamespace(
        c_dim=args.c_dim, c2_dim=8, image_size=args.image_size, g_conv_dim=args.conv_dim, d_conv_dim=args.conv_dim,
        g_repeat_num=6, d_repeat_num=6, lambda_cls=1.0, lambda_rec=10.0, lambda_gp=10.0, dataset="CelebA",
        batch_size=args.batch, num_iters=args.n_critic, num_iters_decay=never, g_lr=1e-4, d_lr=1e-4,
        n_critic=args.n_critic, beta1=0.5, beta2=0.999, resume_iters=None,
        selected_attrs=["Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"][:args.c_dim], test_iters=None,
        use_tensorboard=False, log_dir=None, sample_dir=None, model_save_dir=None, result_dir=None,
        log_step=never, sample_step=never, model_save_step=never, lr_update_step=never)
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):  # their network summaries
        solver = solver_module.Solver(loader, None, config)

    def run_round():
        with contextlib.redirect_stdout(io.StringIO()):  # 'Start training...'
            solver.train()

    return run_round


def main(argv=None) -> dict:
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    from stargan_keras.families import load_config
    from stargan_keras.v1.trainer import StarGANv1

    config = load_config("v1_celeba").replace(image_size=args.image_size, c_dim=args.c_dim,
                                              g_conv_dim=args.conv_dim, d_conv_dim=args.conv_dim,
                                              n_critic=args.n_critic, batch_size=args.batch,
                                              conv_forms=args.conv_forms)
    keras.utils.set_random_seed(0)
    model = StarGANv1(config)
    model.compile()
    batches = random_batches(args, args.n_critic + 1)
    upstream = upstream_round(args.upstream_dir, args, batches) if args.upstream_dir else None

    def our_round():
        for batch in batches[1:]:
            logs = model.distributed_train_step(batch)
        float(logs["D/loss_real"])  # wait for the last step

    times, upstream_times = [], []
    progress = keras.utils.Progbar(args.warmup + args.rounds, unit_name="round")
    for index in range(args.warmup + args.rounds):
        start = time.perf_counter()
        our_round()
        values = [("s/iter", (time.perf_counter() - start) / args.n_critic)]
        if upstream is not None:
            start = time.perf_counter()
            upstream()
            values.append(("upstream s/iter", (time.perf_counter() - start) / args.n_critic))
        if index >= args.warmup:
            times.append(values[0][1])
            if upstream is not None:
                upstream_times.append(values[1][1])
        progress.add(1, values=values)
    seconds = statistics.median(times)
    result = {"s_per_iter": seconds, "times": times, "image_size": args.image_size, "conv_dim": args.conv_dim,
              "batch": args.batch, "c_dim": args.c_dim, "n_critic": args.n_critic, "conv_forms": model.conv_forms}
    print(f"{seconds:.3f} s/iter ({args.image_size} px, conv dims {args.conv_dim}, batch {args.batch})")
    from upstream import finish  # benchmarks/, the script's own folder

    return finish(result, upstream_times)


if __name__ == "__main__":
    main()
