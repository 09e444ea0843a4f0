"""`stargan-keras COMMAND ...`: one entry point for the `python -m stargan_keras.COMMAND` tools."""

import importlib
import sys

COMMANDS = {
    "train": "train a model (default: the embedded shapes dataset)",
    "sample": "sampling grids and interpolation videos",
    "evaluate": "FID / LPIPS / domain accuracy with the paper's protocol",
    "fid": "FID between two image folders (like the authors' metrics.fid --paths)",
    "convert": "convert the authors' PyTorch checkpoints",
    "export": "export a SavedModel for TF Serving",
    "client": "call a TF Serving model over gRPC or REST",
    "tflite": "convert a SavedModel to TFLite and verify it",
    "demo": "translate images in the browser, on this machine (LiteRT.js)",
    "align": "align face photos as CelebA-HQ is aligned (the authors' FAN)",
    "presets": "the authors' trained models, usable by name wherever a model directory is",
}

MODULES = {"presets": "stargan_keras.presets.command"}  # commands that are not `stargan_keras.<name>`


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print("usage: stargan-keras COMMAND [options]   (or python -m stargan_keras.COMMAND)\n\ncommands:")
        for name, text in COMMANDS.items():
            print(f"  {name:<10}{text}")
        if argv and argv[0] not in ("-h", "--help"):
            print(f"\nerror: unknown command {argv[0]!r}", file=sys.stderr)
            return 2
        return 0
    module = importlib.import_module(MODULES.get(argv[0], f"stargan_keras.{argv[0]}"))
    return module.main(argv[1:]) or 0


if __name__ == "__main__":
    sys.exit(main())
