"""The presets' tests: tiny stand-ins for the authors' files, a mirror server, and a command runner.

The released networks are 256 px (and 128 px) with tens of millions of parameters; the tests keep
the presets' names, file names and code path but shrink the networks through each preset's config
overrides (`tiny_presets`). Files in the authors' layouts are made with the PyTorch references.

    python -m tests.harness.presets load NAME                 # stargan_keras.load(NAME), tiny presets
    python -m tests.harness.presets stargan_keras.sample ...  # a command's main, tiny presets
"""

from __future__ import annotations

import dataclasses
import http.server
import importlib
import io
import re
import sys
import threading
import time
import zipfile
from types import MappingProxyType

NARROW = dict(base_dim=8, max_conv_dim=32, mapping_hidden_dim=32, style_dim=16, latent_dim=8)
TINY = {
    "stargan_v2_afhq": dict(img_size=32, **NARROW),
    "stargan_v2_celeba_hq": dict(img_size=32, **NARROW),
    "stargan_celeba_128": dict(image_size=32, g_conv_dim=8, d_conv_dim=8, g_repeat_num=2, d_repeat_num=3),
    "stargan_celeba_256": dict(image_size=64, g_conv_dim=8, d_conv_dim=8, g_repeat_num=1, d_repeat_num=3),
}
MAX_REQUESTS = 200  # the mirror's request loop ends after this many, whatever happens


def tiny_presets() -> dict:
    """The four presets with tiny networks (same names, files and URLs)."""
    from stargan_keras.presets import PRESETS

    return {name: dataclasses.replace(preset, overrides=MappingProxyType({**preset.overrides, **TINY[name]}))
            for name, preset in PRESETS.items()}


def install_tiny_presets() -> None:
    from stargan_keras.presets import PRESETS

    PRESETS.update(tiny_presets())


def torch_bytes(obj) -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def authors_files(preset, seed: int = 0) -> dict[str, bytes]:
    """{the authors' file name: bytes} for `preset` (a tiny one), random weights in the authors' layouts."""
    import numpy as np
    import torch

    config = preset.config()
    if preset.family == "v1":
        from tests.references.torch_stargan_v1 import build_networks_like

        nets = build_networks_like(config.model, seed=seed)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:  # the release's folder inside the zip
            zf.writestr("models/200000-G.ckpt", torch_bytes(nets["generator"].state_dict()))
            zf.writestr("models/200000-D.ckpt", torch_bytes(nets["discriminator"].state_dict()))
        return {preset.file("zip").name: buffer.getvalue()}
    files = {"100000_nets_ema.ckpt": v2_nets_ema(config.model, seed)}
    if preset.file("fan") is not None:
        from tests.references import torch_fan

        torch.manual_seed(seed)
        fan = torch_fan.randomize(torch_fan.TorchFAN(), seed=seed)
        files["wing.ckpt"] = torch_bytes({"state_dict": fan.state_dict()})
        mean = io.BytesIO()
        np.savez(mean, mean=np.random.default_rng(seed).uniform(60, 200, (98, 2)).astype(np.float32))
        files["celeba_lm_mean.npz"] = mean.getvalue()
    return files


def v2_nets_ema(model_config, seed: int = 0) -> bytes:
    """The authors' `100000_nets_ema.ckpt` (G, F, E) of networks the size of a `ModelConfig`."""
    from tests.references.torch_stargan_v2 import build_networks_like

    nets = build_networks_like(model_config, seed=seed)
    return torch_bytes({name: nets[name].state_dict() for name in ("generator", "mapping_network", "style_encoder")})


class Mirror:
    """An HTTP server on 127.0.0.1 serving {url path: bytes}, with Range support.

    `cut[path] = n`: the next answer for `path` announces the whole file but sends only its first n
    bytes, then closes the connection. `delay_s` holds each file answer back. `requests` records
    (path, Range header) of every GET.
    """

    def __init__(self, files: dict[str, bytes] | None = None, delay_s: float = 0.0):
        self.files, self.cut, self.delay_s, self.requests = dict(files or {}), {}, delay_s, []
        mirror = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                mirror.requests.append((self.path, self.headers.get("Range")))
                body = mirror.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                time.sleep(mirror.delay_s)
                start = 0
                match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                if match and int(match[1]) < len(body):
                    start = int(match[1])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                cut = mirror.cut.pop(self.path, None)
                self.wfile.write(body[start:] if cut is None else body[start:cut])
                if cut is not None:
                    self.close_connection = True

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.timeout = 0.1
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop.is_set() and len(self.requests) < MAX_REQUESTS:
            self.httpd.handle_request()

    def add(self, preset_name: str, files: dict[str, bytes]) -> None:
        for name, body in files.items():
            self.files[f"/{preset_name}/{name}"] = body

    def gets(self, path: str) -> int:
        return sum(1 for p, _ in self.requests if p == path)

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=10)
        self.httpd.server_close()


def main(argv: list[str]) -> int:
    install_tiny_presets()
    if argv[0] == "load":
        import stargan_keras

        model = stargan_keras.load(argv[1])
        print(f"loaded {type(model).__name__}")
        return 0
    return importlib.import_module(argv[0]).main(argv[1:]) or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
