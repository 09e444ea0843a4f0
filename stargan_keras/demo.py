"""Translate images in the browser: serve the in-browser demo of a model on this machine.

    npm ci                                                       # once: LiteRT.js, from package.json
    python -m stargan_keras.demo --model runs/shapes             # a run or model directory, converted now
    python -m stargan_keras.demo --model models/stargan/1        # an export version directory, converted now
    python -m stargan_keras.demo --model stargan_int8.tflite     # a file of `python -m stargan_keras.tflite`
    python -m stargan_keras.demo --model stargan_v2_afhq         # the authors' model, downloaded on first use
    python -m stargan_keras.demo --model runs/v1_shapes          # StarGAN v1: attribute checkboxes

It prints the URL of the page (on 127.0.0.1 only). The server only serves files: the page,
the TFLite file, its metadata and LiteRT.js; the translation runs in the page, on the
visitor's CPU (WebAssembly) or GPU (WebGPU). StarGAN v2 models get a target domain and styles,
StarGAN v1 models their attributes (the hair colours as one choice, as the authors' test mode).
A .tflite file is served as it is; its names come from the export's assets file copied beside it
(`domain_names.txt`, v1: `attribute_names.txt`), else they are numbered. README.md, "Demo in the
browser", says what loading and a translation cost.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile

from stargan_keras.browser.server import QUANTIZATIONS, DemoError, make_server, prepare_model, url
from stargan_keras.core.errors import command


@command
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stargan_keras.demo", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--model", required=True,
                        help="a .tflite file, an export version directory, a run/model directory, or a preset name such "
                             "as stargan_v2_afhq (list: python -m stargan_keras presets)")
    parser.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--quantize", choices=QUANTIZATIONS, default=None,
                        help="when converting: none (float32, the default), float16 or dynamic (int8 weights)")
    parser.add_argument("--mean-style-samples", type=int, default=None,
                        help="when converting a run/model directory: z per domain for the mean styles (default "
                             "10000, as the export)")
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        raise DemoError(f"--port {args.port}: pass a port from 1 to 65535 (or 0 for any free one).")
    if args.mean_style_samples is not None and args.mean_style_samples < 1:
        raise DemoError(f"--mean-style-samples {args.mean_style_samples}: pass at least 1.")
    signal.signal(signal.SIGTERM, _interrupt)  # a terminated demo removes its converted files too
    with tempfile.TemporaryDirectory(prefix="stargan-demo-") as workdir:
        model = prepare_model(args.model, workdir, args.quantize, args.mean_style_samples)
        server = make_server(model, workdir, args.port)
        meta = model.metadata
        print(f"serving {model.tflite} ({meta['title']}, {meta['model_bytes'] / 1e6:.1f} MB, {meta['img_size']} px, "
              f"{', '.join(meta['names'])})")
        print(f"open {url(server)} in a browser (Ctrl+C stops)", flush=True)
        with server:
            try:
                server.serve_forever()
            except KeyboardInterrupt:
                return 130  # stopped by Ctrl-C or SIGTERM, as every command reports it
    return 0


def _interrupt(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
