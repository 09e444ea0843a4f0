"""The mutation check: does each claim's fast test fail when the code it guards is deliberately broken?

Each mutation is one or more exact text edits of the package (an edit whose text is not found exactly once fails
loudly: the code moved, update the mutation). They are applied one at a time to a copy of the repository in a
temporary directory, never to the working tree, and the mutation's guarding tests run there in `-m "not slow"`.
A mutation is caught when a guarding test fails. Prints one row per mutation and exits 1 if any survives.

    python tools/mutations.py --jobs 3   # every mutation, three at a time
    python tools/mutations.py -k lambda  # those whose name contains "lambda"
    python tools/mutations.py --check    # only check that every edit still applies (fast, no tests)
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FAMILIES = "tests/test_families.py"


@dataclass(frozen=True)
class Mutation:
    name: str
    edits: tuple  # (file relative to the repository, old text, new text)
    tests: tuple  # pytest arguments: the guarding test files, with -k to pick the guarding tests


def _one(path, old, new):
    return ((path, old, new),)


# The guards most mutations share: the families' conversion and training-parity checks, per family.
CONVERTS_V2, CONVERTS_V1 = ((FAMILIES, "-k", f"converts and {family}") for family in ("v2", "v1"))
TRAINS_V2 = (FAMILIES, "-k", "training_iterations and v2")
NORM_AFFINE = 'y = y * ops.cast(self.gamma, "float32") + ops.cast(self.beta, "float32")'

MUTATIONS = (
    Mutation("instance norm ignores its scale and shift (v2's guard)",
             _one("stargan_keras/core/layers.py", NORM_AFFINE, "y = y"),
             CONVERTS_V2),
    Mutation("instance norm ignores its scale and shift (v1's guard)",
             _one("stargan_keras/core/layers.py", NORM_AFFINE, "y = y"),
             CONVERTS_V1),
    Mutation("instance norm ignores its shift (v2's guard)",
             _one("stargan_keras/core/layers.py", NORM_AFFINE, 'y = y * ops.cast(self.gamma, "float32")'),
             CONVERTS_V2),
    Mutation("AdaIN ignores the style's shift",
             _one("stargan_keras/v2/layers.py", "return (1 + gamma) * self.norm(x) + beta",
                  "return (1 + gamma) * self.norm(x)"),
             CONVERTS_V2),
    Mutation("the folded pool-conv drops its bias (D, E)",
             _one("stargan_keras/core/layers.py",
                  'return tf.nn.bias_add(tf.nn.conv2d(x, kernel, 2, "VALID"), ops.cast(conv.bias, x.dtype))',
                  'return tf.nn.conv2d(x, kernel, 2, "VALID")'),
             CONVERTS_V2),
    # (The folded upsample-conv's bias is no mutation to try: AdaIN's instance norm right after it removes any
    # per-channel constant, so without it G computes the same.)
    Mutation("every convolution drops its bias",
             _one("stargan_keras/core/layers.py",
                  "        self.forms = forms\n",
                  "        self.forms = forms\n\n"
                  "    def call(self, inputs):\n        return self.convolution_op(inputs, self.kernel)\n"),
             CONVERTS_V2),
    Mutation("LeakyReLU slope 0.2 -> 0.21 (v2)",
             _one("stargan_keras/core/layers.py", "LEAKY_SLOPE = 0.2\n", "LEAKY_SLOPE = 0.21\n"),
             CONVERTS_V2),
    Mutation("LeakyReLU slope 0.01 -> 0.02 (v1 D)",
             _one("stargan_keras/v1/networks.py", "D_LEAKY_SLOPE = 0.01", "D_LEAKY_SLOPE = 0.02"),
             CONVERTS_V1),
    Mutation("G's face skips ignore the masks",
             _one("stargan_keras/v2/networks.py", "x = x + self.hpf(mask * skips[size])",
                  "x = x + self.hpf(skips[size])"),
             ("tests/v2/test_convert.py", "-k", "match_the_pytorch_reference")),
    Mutation("the FAN's BatchNorm epsilon is Keras' 1e-3 (PyTorch's is 1e-5)",
             _one("stargan_keras/face/fan.py", "BN_EPSILON = 1e-5", "BN_EPSILON = 1e-3"),
             ("tests/face/test_fan.py", "-k", "heatmaps or masks")),
    Mutation("v2 swaps lambda_sty and lambda_cyc",
             _one("stargan_keras/v2/trainer.py",
                  'train.lambda_sty * terms["sty"] - lambda_ds * terms["ds"]\n'
                  '                + train.lambda_cyc * terms["cyc"]',
                  'train.lambda_cyc * terms["sty"] - lambda_ds * terms["ds"]\n'
                  '                + train.lambda_sty * terms["cyc"]'),
             TRAINS_V2),
    Mutation("v2 swaps lambda_reg and lambda_sty",
             (("stargan_keras/v2/trainer.py", 'self.config.train.lambda_reg * terms["reg"]',
               'self.config.train.lambda_sty * terms["reg"]'),
              ("stargan_keras/v2/trainer.py", 'train.lambda_sty * terms["sty"]', 'train.lambda_reg * terms["sty"]')),
             TRAINS_V2),
    Mutation("v2 EMA with a fixed beta 0.999",
             _one("stargan_keras/v2/trainer.py", "beta = self.config.train.ema_beta", "beta = 0.999"),
             TRAINS_V2),
    Mutation("v2 ignores the weight decay",
             _one("stargan_keras/v2/trainer.py", "l2=train.weight_decay", "l2=0.0"),
             TRAINS_V2),
    Mutation("v1 uses lambda_gp where lambda_rec belongs",
             _one("stargan_keras/v1/trainer.py", 'train.lambda_rec * terms["rec"] + train.lambda_cls',
                  'train.lambda_gp * terms["rec"] + train.lambda_cls'),
             (FAMILIES, "-k", "training_iterations and v1")),
    Mutation("the checkpoint drops the optimizers' step",
             _one("stargan_keras/core/run_dir.py", "variables=list(opt.variables)",
                  "variables=list(opt.variables)[1:]"),
             ("tests/v1/test_trainer.py", "-k", "checkpoint_restores")),
    Mutation("the checkpoint drops an optimizer slot",
             _one("stargan_keras/core/run_dir.py", "variables=list(opt.variables)",
                  "variables=list(opt.variables)[:-1]"),
             ("tests/v1/test_trainer.py", "-k", "checkpoint_restores")),
    Mutation("the latent-guided signature skips psi",
             _one("stargan_keras/v2/serving.py", "translator.latent_guided(image, target_domain, z, psi)",
                  "translator.latent_guided(image, target_domain, z)"),
             ("tests/serving/test_signatures.py", "-k", "latent_signatures")),
)


def apply(root: Path, mutation: Mutation) -> dict:
    """Apply the mutation's edits under `root`; returns {path: original text} to restore. Raises ValueError when an
    edit's old text is not found exactly once."""
    originals = {}
    for relative, old, new in mutation.edits:
        path = root / relative
        current = path.read_text(encoding="utf-8")
        originals.setdefault(path, current)
        count = current.count(old)
        if count != 1:
            restore(originals)
            raise ValueError(f"{mutation.name}: {relative}: the text to mutate is found {count} times, not once "
                             f"(the code moved: update tools/mutations.py): {old!r}")
        path.write_text(current.replace(old, new), encoding="utf-8")
    return originals


def restore(originals: dict) -> None:
    for path, text in originals.items():
        path.write_text(text, encoding="utf-8")


def check_edits(root: Path = REPO) -> list[str]:
    """The problems of every mutation's edits against the source under `root` (nothing written)."""
    problems = []
    for mutation in MUTATIONS:
        for relative, old, new in mutation.edits:
            path = root / relative
            count = path.read_text(encoding="utf-8").count(old) if path.is_file() else 0
            if count != 1:
                problems.append(f"{mutation.name}: {relative}: found {count} times: {old!r}")
            if old == new:
                problems.append(f"{mutation.name}: {relative}: the edit changes nothing")
    return problems


def _copy_repository(target: Path) -> None:
    """The files git tracks (and those not yet added, not ignored) of the working tree."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for relative in filter(None, listed):
        source = REPO / relative
        if source.is_file():
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / relative)


def _run_tests(root: Path, mutation: Mutation, timeout: float) -> tuple[bool, str]:
    """(caught, which test failed or why not)."""
    env = {**os.environ, "PYTHONPATH": str(root), "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider", "-m", "not slow", "-x",
               *mutation.tests]
    try:
        result = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, f"timed out after {timeout:.0f} s"
    output = result.stdout + result.stderr
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", output, flags=re.MULTILINE)
    if result.returncode == 1 and failed:
        return True, failed[0]
    if result.returncode == 0:
        passed = re.search(r"(\d+) passed", output)
        return False, f"{passed.group(1) if passed else 'no'} tests passed"
    return False, f"pytest exited {result.returncode}: {output.strip().splitlines()[-1:]}"


def _try(mutation: Mutation, timeout: float) -> tuple[str, str, bool, float]:
    """Apply `mutation` to a fresh copy of the repository and run its guarding tests there."""
    start = time.time()
    with tempfile.TemporaryDirectory(prefix="stargan_keras_mutation_") as directory:
        root = Path(directory)
        _copy_repository(root)
        apply(root, mutation)
        caught, detail = _run_tests(root, mutation, timeout)
    return mutation.name, detail, caught, time.time() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-k", default="", help="run only the mutations whose name contains this text")
    parser.add_argument("--check", action="store_true", help="only check that every edit applies")
    parser.add_argument("--jobs", type=int, default=1, help="mutations tried at once, each in its own copy")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per mutation's tests")
    args = parser.parse_args(argv)
    problems = check_edits()
    if problems:
        print("error: mutations that no longer apply (update tools/mutations.py):\n  " + "\n  ".join(problems),
              file=sys.stderr)
        return 2
    if args.check:
        print(f"all {len(MUTATIONS)} mutations apply")
        return 0
    chosen = [m for m in MUTATIONS if args.k in m.name]
    rows = {}
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = [pool.submit(_try, mutation, args.timeout) for mutation in chosen]
        for done, future in enumerate(as_completed(futures), 1):
            name, detail, caught, seconds = future.result()
            print(f"[{done}/{len(chosen)}] {name}: {'caught' if caught else 'SURVIVED'} ({seconds:.0f} s)", flush=True)
            rows[name] = (detail, caught)
    width = max(len(m.name) for m in chosen)
    print(f"\n{'mutation':<{width}}  caught  test that caught it")
    for mutation in chosen:
        detail, caught = rows[mutation.name]
        print(f"{mutation.name:<{width}}  {'yes' if caught else 'NO':<6}  {detail}")
    survivors = [name for name, (_, caught) in rows.items() if not caught]
    print(f"\n{len(rows) - len(survivors)} of {len(rows)} caught")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
