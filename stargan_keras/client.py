"""Call a StarGAN v2 or StarGAN v1 model served by TF Serving, over gRPC (default) or REST.

    python -m stargan_keras.client latent --image cat.jpg --domain dog --seed 3 --psi 0.7 --out out.png
    python -m stargan_keras.client latent --image a.jpg b.jpg --domain dog --out results/
    python -m stargan_keras.client reference --image cat.jpg --reference wild.jpg --domain wild --out out.png
    python -m stargan_keras.client --rest --server localhost:8501 metadata
    python -m stargan_keras.client translate --image face.jpg --attrs Blond_Hair=1,Male=0 --out out.png  (v1)
    python -m stargan_keras.client --onnx models/stargan_onnx latent --image cat.jpg --domain dog --out out.png

gRPC sends uint8 tensors to the `latent_guided` / `reference_guided` signatures;
REST sends the files themselves, base64 in JSON, to the `*_bytes` signatures.
`--onnx DIR` runs the files of `export --format onnx` locally with ONNX Runtime instead of asking a server.
Domain names are resolved with the model's `metadata` signature. A seed picks
one style: every image of a request gets the same z. The image files and --out are
checked before any request is sent.

StarGAN v1 (`translate`): --attrs names target attributes as NAME=VALUE pairs, the names
those `metadata` lists (the model's selected_attrs); every attribute left out is 0, so
name all that should be on (for CelebA: one hair colour, and Male / Young when wanted).
Values are 0 (off) to 1 (on); in between interpolates. An unknown name is an error that
lists the valid ones.

Exit status: 0 done; 2 a flag, file or request that cannot work, or a server that cannot
answer it (one line, `--debug` for the traceback); 1 an internal error (with its traceback).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from stargan_keras.core.errors import UserError, command
from stargan_keras.core.imaging import save_image
from stargan_keras.serving.client import GRPC_PORT, REST_PORT, ServingError, StarGANClient
from stargan_keras.serving.outputs import check_writable_file

__all__ = ["ServingError", "StarGANClient", "main", "output_paths"]


def output_paths(out: str, inputs: list[str]) -> list[Path]:
    """Where each result goes: --out itself for one input; for several, a directory or a {stem}/{index} pattern.

    Two results never share a path (`a/cat.jpg` and `b/cat.png` would), and no result replaces an input."""
    paths = _output_paths(out, inputs)
    seen = {}
    sources = {Path(str(p)).resolve(): p for p in inputs}
    for source, path in zip(inputs, paths):
        key = path.resolve()
        if key in seen:
            raise UserError(f"--out {out}: {seen[key]} and {source} would both be written to {path}; pass a pattern "
                            "with {index}, such as 'out/{stem}_{index}.png'.")
        if key in sources:
            raise UserError(f"--out {out}: the result of {source} would replace the input {sources[key]}; pass "
                            "another --out.")
        seen[key] = source
    return paths


def _output_paths(out: str, inputs: list[str]) -> list[Path]:
    if "{" in out:
        try:
            return [Path(out.format(stem=Path(str(p)).stem, index=i)) for i, p in enumerate(inputs)]
        except (KeyError, IndexError, ValueError) as err:
            raise UserError(f"--out {out}: not a pattern of {{stem}} and {{index}} ({type(err).__name__}: {err}).") \
                from None
    path = Path(out)
    if len(inputs) == 1 and path.suffix:
        return [path]
    if path.suffix and not path.is_dir():
        raise UserError(f"--out {out}: with {len(inputs)} images, --out must be a directory or a pattern "
                        "such as 'out/{stem}_dog.png' ({stem}: input file name, {index}: position).")
    return [path / f"{Path(str(p)).stem}.png" for p in inputs]


@command
def main(argv=None) -> int:
    common = argparse.ArgumentParser(add_help=False)
    parser = argparse.ArgumentParser(prog="python -m stargan_keras.client", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    _add_connection_flags(parser, argparse.SUPPRESS)
    _add_connection_flags(common, argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", required=True)
    latent = commands.add_parser("latent", parents=[common], help="latent-guided translation (a seed picks a style)")
    latent.add_argument("--image", nargs="+", required=True, help="source image file(s)")
    latent.add_argument("--domain", required=True, help="target domain name (or index)")
    latent.add_argument("--seed", type=int, default=0, help="picks the style code z (default 0)")
    latent.add_argument("--psi", type=float, default=1.0, help="truncation toward the domain's mean style (1 = none)")
    latent.add_argument("--out", required=True, help="output PNG; with several images a directory or a pattern")
    reference = commands.add_parser("reference", parents=[common], help="reference-guided translation")
    reference.add_argument("--image", nargs="+", required=True, help="source image file(s)")
    reference.add_argument("--reference", nargs="+", required=True, help="reference image(s): one, or one per image")
    reference.add_argument("--domain", required=True, help="the reference's domain name (or index)")
    reference.add_argument("--out", required=True, help="output PNG; with several images a directory or a pattern")
    translate = commands.add_parser("translate", parents=[common],
                                    help="StarGAN v1: translate to target attributes (--attrs)")
    translate.add_argument("--image", nargs="+", required=True, help="source image file(s)")
    translate.add_argument("--attrs", required=True, metavar="NAME=VALUE,...",
                           help="target attributes, e.g. Blond_Hair=1,Male=0 (names from `metadata`); attributes "
                                "left out are 0; values 0 (off) to 1 (on)")
    translate.add_argument("--out", required=True, help="output PNG; with several images a directory or a pattern")
    commands.add_parser("metadata", parents=[common], help="print the model's domains (v1: attributes) and sizes")
    args = parser.parse_args(argv)
    options = {name: getattr(args, name, default) for name, default in CONNECTION_DEFAULTS.items()}
    paths = [] if args.command == "metadata" else output_paths(args.out, args.image)
    for path in paths:  # before the request: a result that cannot be written is lost
        check_writable_file(path, "--out")
    if options["onnx"] is not None:
        from stargan_keras.serving.onnx_client import OnnxClient

        client = OnnxClient(options["onnx"])
    else:
        client = StarGANClient(options["server"], options["model_name"], options["rest"], options["timeout"],
                               options["retries"], options["version"])
    with client:
        if args.command == "metadata":
            print(json.dumps(client.metadata(), indent=2))
            return 0
        if args.command == "latent":
            results = client.latent(args.image, args.domain, seed=args.seed, psi=args.psi)
        elif args.command == "translate":
            results = client.translate(args.image, args.attrs)
        else:
            results = client.reference(args.image, args.reference, args.domain)
    for path, result in zip(paths, results):
        try:
            print(save_image(path, result))
        except OSError as err:
            raise UserError(f"--out {path}: cannot write it ({err.strerror or err}).") from None
    return 0


CONNECTION_DEFAULTS = {"server": None, "model_name": "stargan", "rest": False, "timeout": 60.0, "retries": 2,
                       "version": None, "onnx": None}


def _add_connection_flags(parser, default):
    """The same flags before or after the command; SUPPRESS keeps a sub-command's absent flag from masking them."""
    parser.add_argument("--server", default=default,
                        help=f"HOST:PORT (default localhost:{GRPC_PORT}, or localhost:{REST_PORT} with --rest)")
    parser.add_argument("--rest", action="store_true", default=default, help="use the REST API instead of gRPC")
    parser.add_argument("--model-name", default=default, help="the served model's name (default stargan)")
    parser.add_argument("--version", type=int, default=default, help="a model version (default: the latest)")
    parser.add_argument("--timeout", type=float, default=default, help="seconds per attempt (default 60)")
    parser.add_argument("--retries", type=int, default=default,
                        help="extra attempts while the server is unreachable (default 2)")
    parser.add_argument("--onnx", default=default, metavar="DIR",
                        help="run the .onnx files in DIR (export --format onnx) with ONNX Runtime, no server")


if __name__ == "__main__":
    sys.exit(main())
