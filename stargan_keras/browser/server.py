"""The in-browser demo's server side: a TFLite file and its metadata for the page, and a server that only
serves files.

Inference happens in the page (`page/app.js`), which runs the TFLite file with LiteRT.js
(npm `@litertjs/core`, https://ai.google.dev/edge/litert/web): this module turns what the user
has (a `.tflite` file, an export version directory, a run or model directory) into a TFLite file
and `model.json` (its signatures, names and sizes), and serves them, the page and the LiteRT.js files
from 127.0.0.1. The page's contract is the TFLite signatures of a family's table in `serving.signatures`
(static shapes: one S x S uint8 image, a scalar psi; see `serving.tflite`): StarGAN v2's latent- and
reference-guided translation, StarGAN v1's `translate` with a target label vector.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import math
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from stargan_keras.core.config import ConfigError
from stargan_keras.core.errors import UserError
from stargan_keras.browser.http_server import LocalHTTPServer, LocalRequestHandler
from stargan_keras.serving.signatures import TARGET_DOMAIN

PAGE_DIR = Path(__file__).with_name("page")
PACKAGED_LITERT = PAGE_DIR / "litert"  # a built package's copy of LiteRT.js (setup.py, `litert_files.vendor`)
MODEL_URL, METADATA_URL = "/model.tflite", "/model.json"
LITERT_URL = "/litert/"          # LiteRT.js: /litert/core/{dist,wasm}/..., /litert/wasm-utils/dist/...
LITERT_PACKAGES = ("core", "wasm-utils")  # @litertjs/core and the one package it imports
HOST = "127.0.0.1"               # the demo is for the person at this machine: never another interface
QUANTIZATIONS = ("none", "float16", "dynamic")  # as `python -m stargan_keras.tflite --quantize`


class DemoError(UserError, ValueError):
    """Something the user passed that the demo cannot use; the message names it and says what to do."""


@dataclass(frozen=True)
class DemoModel:
    """The file the page runs and what the page needs to know about it (`model.json`)."""

    tflite: Path
    metadata: dict


# -- the TFLite file and its metadata ------------------------------------------------------------------------------
def tflite_metadata(path: Path, names_dir: Path | None = None, config=None) -> dict:
    """What the page needs to know about a TFLite file, read from the file's signatures.

    The signatures say which family's table the file follows (the registry: the family whose TFLite
    signatures are all there) and so which translation UI the page shows (`signatures`). img_size and the
    table's other sizes are static input shapes of the signatures; the number of names is the table's
    `names_dim` when an input has it (StarGAN v1's label columns), else the rows of the per-domain mean
    styles that `style_from_latent` gathers by `target_domain` (StarGAN v2, psi truncation). The names
    are read from the table's names asset in `names_dir` (the export's assets, or a copy beside the
    file), else numbered; the family adds what else its page needs (`Family.demo_metadata`, from `config`
    when there is one).
    """
    from ai_edge_litert.interpreter import Interpreter

    from stargan_keras import families

    try:
        interpreter = Interpreter(model_path=str(path))
        present = interpreter.get_signature_list()
    except (ValueError, RuntimeError) as err:
        raise DemoError(f"--model {path}: not a TFLite file of `python -m stargan_keras.tflite` ({_first_line(err)}). "
                        "Convert an export with that command, or pass the export or run directory.") from None
    family = families.of_tflite_signatures(present)
    if family is None:
        raise DemoError(f"--model {path}: its signatures ({', '.join(present) or 'none'}) are not those of "
                        "`python -m stargan_keras.tflite`. Convert an export with that command, or pass the export "
                        "or run directory.")
    table = family.signatures
    dims = {}
    for signature in table.signatures:
        if signature.name in table.tflite_names:
            details = interpreter.get_signature_runner(signature.name).get_input_details()
            for tensor in signature.inputs:
                dims.update((dim, int(size)) for dim, size in zip(tensor.shape, details[tensor.name]["shape"])
                            if isinstance(dim, str) and dim != "N")
    count = dims.get(table.names_dim) or _mean_style_rows(path.read_bytes(), dims.get("style_dim"))
    names_file = names_dir / table.names_asset if names_dir is not None else None
    names = _read_names(names_file) if names_file is not None and names_file.exists() else None
    kind = Path(table.names_asset).stem  # domain_names, attribute_names
    names = names or [f"{kind.removesuffix('_names')}_{i}" for i in range(count or 0)]
    if count is not None and len(names) != count:
        raise DemoError(f"--model {path}: the file has {count} {kind.replace('_', ' ')} but {len(names)} were found "
                        f"({', '.join(names)}); pass the export directory the file was converted from.")
    if not names:
        raise DemoError(f"--model {path}: cannot find the number of {kind.replace('_', ' ')} in the file; pass the "
                        "export directory it was converted from instead.")
    sizes = {field: dims[dim] for dim, field in table.sizes if dim in dims}  # images are static S x S: H = W = S
    sizes[dict(table.sizes).get(table.names_dim, table.names_dim)] = len(names)
    return {"title": table.title, "signatures": sorted(present), "img_size": dims["H"], **sizes, "names": names,
            kind: names, **family.demo_metadata(config, names)}


def _mean_style_rows(data: bytes, style_dim: int | None) -> int | None:
    """D of the [D, style_dim] tensor that `style_from_latent`'s subgraph gathers with its target_domain input."""
    from ai_edge_litert import schema_py_generated as schema

    if style_dim is None:
        return None
    model = schema.Model.GetRootAs(data, 0)
    gather = schema.BuiltinOperator.GATHER
    for s in range(model.SignatureDefsLength()):
        signature = model.SignatureDefs(s)
        if signature.SignatureKey() != b"style_from_latent":
            continue
        graph = model.Subgraphs(signature.SubgraphIndex())
        domain_inputs = {signature.Inputs(i).TensorIndex() for i in range(signature.InputsLength())
                         if signature.Inputs(i).Name() == TARGET_DOMAIN.name.encode()}
        for o in range(graph.OperatorsLength()):
            op = graph.Operators(o)
            code = model.OperatorCodes(op.OpcodeIndex())
            if max(code.BuiltinCode(), code.DeprecatedBuiltinCode()) != gather or op.InputsLength() < 2:
                continue
            params = graph.Tensors(op.Inputs(0)).ShapeAsNumpy()
            if op.Inputs(1) in domain_inputs and len(params) == 2 and params[1] == style_dim:
                return int(params[0])
    return None


def _first_line(err) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def prepare_model(path, workdir, quantize: str | None = None, mean_style_samples: int | None = None) -> DemoModel:
    """A TFLite file and its metadata from a .tflite file, an export version directory, a run/model directory
    or a preset name.

    Conversions write into `workdir` and print one progress line per step.
    """

    from stargan_keras.presets import resolve_model

    path, workdir = resolve_model(path), Path(workdir)
    if not path.exists():
        raise DemoError(f"--model {path}: no such file or directory; pass a .tflite file, an export version "
                        "directory (models/stargan/1) or a run directory (runs/shapes).")
    if path.is_file():
        if quantize is not None:
            raise DemoError(f"--quantize {quantize}: the .tflite file {path} is served as it is; drop --quantize, or "
                            "pass the export or run directory to convert it.")
        # the names come from a copy of the export's assets file beside it, if the user put one there
        return _with_metadata(path, tflite_metadata(path, path.parent))
    quantize = quantize or "none"
    config = None
    if (path / "saved_model.pb").exists():
        export_dir = path
    elif (path / "config.yaml").exists():
        export_dir, config = _export(path, workdir / "export", mean_style_samples)
    else:
        raise DemoError(f"--model {path}: a directory with neither saved_model.pb (an export version directory) nor "
                        "config.yaml (a run or model directory); pass one of those or a .tflite file.")
    tflite = _convert(export_dir, workdir / f"model-{quantize}.tflite", quantize)
    return _with_metadata(tflite, tflite_metadata(tflite, export_dir / "assets", config))


def _with_metadata(tflite: Path, metadata: dict) -> DemoModel:
    return DemoModel(tflite, {**metadata, "model_file": tflite.name, "model_bytes": tflite.stat().st_size})


def _read_names(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _export(model_dir: Path, output: Path, mean_style_samples: int | None) -> tuple[Path, object]:
    """(the export version directory, the model's config)."""
    from stargan_keras import families
    from stargan_keras.serving.export import export_saved_model

    with progress_line(f"loading {model_dir}"):
        translator = families.load(model_dir)
    try:
        with progress_line("exporting a SavedModel"):
            return (export_saved_model(translator, output, version=1, mean_style_samples=mean_style_samples),
                    translator.config)
    except ConfigError as err:
        raise DemoError(str(err)) from None


def _convert(export_dir: Path, output: Path, quantize: str) -> Path:
    from stargan_keras.serving.tflite import TFLiteError, convert

    try:
        with progress_line(f"converting {export_dir} to TFLite (--quantize {quantize})"):
            return convert(export_dir, output, quantize)
    except TFLiteError as err:
        raise DemoError(str(err)) from None


@contextlib.contextmanager
def progress_line(what: str, stream=None):
    """One line that counts the seconds while a step runs (on a terminal), then says how long it took."""
    stream = stream or sys.stdout
    tty = stream.isatty()
    done = threading.Event()
    start = time.perf_counter()

    def tick():
        while not done.wait(1.0):
            stream.write(f"\r{what}... {time.perf_counter() - start:.0f}s")
            stream.flush()

    stream.write(f"{what}...{'' if tty else chr(10)}")
    stream.flush()
    ticker = threading.Thread(target=tick, daemon=True) if tty else None
    if ticker:
        ticker.start()
    try:
        yield
    finally:
        done.set()
        if ticker:
            ticker.join()
        stream.write(f"{chr(13) if tty else ''}{what}: {time.perf_counter() - start:.1f}s\n")
        stream.flush()


# -- what the page computes, for Python users and the tests ---------------------------------------------------------
def latent_from_seed(seed: int, latent_dim: int):
    """The z the page draws for a seed (app.js `latentFromSeed`): mulberry32 uniforms, Box-Muller normals.

    float32 [latent_dim]; equal to the page's up to the last bit of its float64 log/cos.
    """
    import numpy as np

    state = seed & 0xFFFFFFFF

    def uniform():
        nonlocal state
        state = (state + 0x6D2B79F5) & 0xFFFFFFFF
        t = _imul(state ^ (state >> 15), state | 1)
        t = ((t + _imul(t ^ (t >> 7), t | 61)) & 0xFFFFFFFF) ^ t
        return ((t ^ (t >> 14)) & 0xFFFFFFFF) / 4294967296.0

    values = []
    while len(values) < latent_dim:
        radius = math.sqrt(-2.0 * math.log(1.0 - uniform()))
        angle = 2.0 * math.pi * uniform()
        values += [radius * math.cos(angle), radius * math.sin(angle)]
    return np.array(values[:latent_dim], np.float32)


def _imul(a: int, b: int) -> int:
    """JavaScript's Math.imul on uint32 bit patterns, as a uint32."""
    return (a * b) & 0xFFFFFFFF


# -- the server -----------------------------------------------------------------------------------------------------
def find_litert(search=None, packaged: Path | None = None) -> Path:
    """The LiteRT.js files: the installed package's own copy (`litert_files`, written when a wheel is
    built), else node_modules/@litertjs, installed by `npm ci` from the repository's package.json.

    node_modules is looked for in `search` (directories), else the current directory and the
    repository this package sits in (an editable install).
    """
    from stargan_keras.browser.litert_files import complete

    packaged = PACKAGED_LITERT if packaged is None else packaged
    if complete(packaged):
        return packaged
    roots = [Path(p) for p in search] if search else [Path.cwd(), Path(__file__).resolve().parents[2]]
    roots = list(dict.fromkeys(root.resolve() for root in roots))
    for root in roots:
        candidate = root / "node_modules" / "@litertjs"
        if all((candidate / name / "package.json").exists() for name in LITERT_PACKAGES):
            return candidate
    raise DemoError(f"LiteRT.js is not installed (not in this package, no node_modules/@litertjs in "
                    f"{', '.join(map(str, roots))}): run `npm ci` in the repository root, where package.json is, "
                    "or install a wheel built with it (README, \"Demo in the browser\").")


def routes(model: DemoModel, metadata_file: Path, litert: Path) -> dict:
    """URL path -> file, and URL prefix (ending in /) -> directory: everything the server answers."""
    table = {"/": PAGE_DIR / "index.html", MODEL_URL: model.tflite, METADATA_URL: metadata_file}
    table.update({f"/{page.name}": page for page in PAGE_DIR.iterdir() if page.is_file()})
    table[f"{LITERT_URL}core/dist/"] = litert / "core" / "dist"
    table[f"{LITERT_URL}core/wasm/"] = litert / "core" / "wasm"
    table[f"{LITERT_URL}wasm-utils/dist/"] = litert / "wasm-utils" / "dist"
    return table


class _Handler(LocalRequestHandler, http.server.SimpleHTTPRequestHandler):
    """GET/HEAD of the route table's files; anything else is 404, directories are never listed."""

    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, ".js": "text/javascript",
                      ".mjs": "text/javascript", ".wasm": "application/wasm", ".json": "application/json",
                      ".tflite": "application/octet-stream", ".map": "application/json"}

    def __init__(self, *args, table: dict, **kwargs):
        self.table = table
        super().__init__(*args, **kwargs)

    def translate_path(self, path):
        path = path.split("?", 1)[0].split("#", 1)[0]
        if path in self.table:
            return str(self.table[path])
        for prefix, directory in self.table.items():
            if prefix.endswith("/") and path.startswith(prefix) and prefix != "/":
                target = (directory / path[len(prefix):]).resolve()
                if target.is_file() and target.is_relative_to(directory.resolve()):
                    return str(target)
        return str(PAGE_DIR / "does-not-exist")

    def list_directory(self, path):
        self.send_error(404)

    def end_headers(self):
        # Cross-origin isolation lets the page use LiteRT.js's threaded WebAssembly (SharedArrayBuffer);
        # no-cache: a restarted demo with another --model is never shown a stale model.
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("X-Content-Type-Options", "nosniff")
        super().end_headers()


def make_server(model: DemoModel, workdir, port: int = 8000, litert: Path | None = None):
    """A LocalHTTPServer on 127.0.0.1:port (0: any free port) serving the page, the model and LiteRT.js."""
    litert = litert or find_litert()
    metadata_file = Path(workdir) / "model.json"
    metadata_file.write_text(json.dumps(model.metadata, indent=1), encoding="utf-8")
    handler = functools.partial(_Handler, table=routes(model, metadata_file, litert))
    try:
        return LocalHTTPServer((HOST, port), handler)
    except OSError as err:
        raise DemoError(f"--port {port}: cannot listen on {HOST}:{port} ({err.strerror}); pass another --port.") \
            from None


def url(server) -> str:
    host, port = server.server_address[:2]
    return f"http://{host}:{port}/"
