"""Call a StarGAN v2 model served by TF Serving, over gRPC (default) or REST.

    python -m stargan_keras.client latent --image cat.jpg --domain dog --seed 3 --psi 0.7 --out out.png
    python -m stargan_keras.client latent --image a.jpg b.jpg --domain dog --out results/
    python -m stargan_keras.client reference --image cat.jpg --reference wild.jpg --domain wild --out out.png
    python -m stargan_keras.client --rest --server localhost:8501 metadata

gRPC sends uint8 tensors to the `latent_guided` / `reference_guided` signatures;
REST sends the files themselves, base64 in JSON, to the `*_bytes` signatures.
Domain names are resolved with the model's `metadata` signature. A seed picks
one style: every image of a request gets the same z.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import socket
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

from .imaging import open_rgb, save_image

GRPC_PORT, REST_PORT = 8500, 8501
SINGLE_OUTPUTS = {"style_from_latent": "style", "style_from_reference": "style",
                  "latent_guided_bytes": "image_bytes", "reference_guided_bytes": "image_bytes"}  # others: "image"
MAX_MESSAGE_BYTES = 256 * 1024 * 1024


class ServingError(RuntimeError):
    """A request TF Serving could not answer; the message says why and what to do. `code`: gRPC status name."""

    def __init__(self, message: str, code: str = "UNKNOWN"):
        super().__init__(message)
        self.code = code


def _read_image(image) -> np.ndarray:
    """A path, encoded bytes or an array -> uint8 [H, W, 3]."""
    if isinstance(image, np.ndarray):
        return image if image.dtype == np.uint8 else np.asarray(image, np.uint8)
    if isinstance(image, bytes):
        return np.asarray(Image.open(io.BytesIO(image)).convert("RGB"))
    return np.asarray(open_rgb(image))


def _encoded(image) -> bytes:
    """A path, encoded bytes or an array -> the bytes of an image file (arrays are PNG-encoded)."""
    if isinstance(image, bytes):
        return image
    if isinstance(image, np.ndarray):
        buffer = io.BytesIO()
        Image.fromarray(_read_image(image)).save(buffer, format="PNG")
        return buffer.getvalue()
    try:
        return Path(image).read_bytes()
    except OSError as err:
        raise ValueError(f"cannot read image {image}: {err.strerror}. Check the path.") from None


def _batch(images, size: int) -> np.ndarray:
    """Images as one uint8 [N, S, S, 3] batch at the model's size (Pillow's bilinear filter antialiases).

    Resizing here, not on the server, keeps requests mergeable by TF Serving's batching.
    """
    arrays = [_read_image(image) for image in images]
    return np.stack([a if a.shape[:2] == (size, size) else
                     np.asarray(Image.fromarray(a).resize((size, size), Image.BILINEAR)) for a in arrays])


class StarGANClient:
    """A TF Serving client for the signatures `stargan_keras.export` writes."""

    def __init__(self, server: str | None = None, model_name: str = "stargan", rest: bool = False,
                 timeout: float = 60.0, retries: int = 2, version: int | None = None):
        self.rest = rest
        self.server = server or f"localhost:{REST_PORT if rest else GRPC_PORT}"
        self.model_name, self.timeout, self.retries, self.version = model_name, timeout, retries, version
        self._metadata = None
        self._stub = self._channel = None

    # -- transport ---------------------------------------------------------------------------------------------
    def predict(self, signature: str, inputs: dict) -> dict:
        """Run one signature: {input name: array} -> {output name: array}, retrying while the server is unreachable."""
        call = self._predict_rest if self.rest else self._predict_grpc
        for attempt in range(self.retries + 1):
            try:
                return call(signature, inputs)
            except _Retryable as err:
                if attempt == self.retries:
                    transport = "REST" if self.rest else "gRPC"
                    raise ServingError(
                        f"TF Serving at {self.server} did not answer ({transport}: {err}) after {attempt + 1} "
                        f"attempt(s) with a {self.timeout:g}s timeout. Is it running? Start it as serving/README.md "
                        f"shows, or point --server at it (HOST:PORT; gRPC {GRPC_PORT}, REST {REST_PORT}).",
                        err.code) from None
                time.sleep(min(0.5 * 2**attempt, 5.0))
        raise AssertionError("unreachable")

    def _explain(self, signature: str, code: str, details: str) -> ServingError:
        model = f"model {self.model_name!r}" + (f" version {self.version}" if self.version is not None else "")
        if code == "NOT_FOUND":
            text = (f"{model} is not served at {self.server}: {details}. Check --model-name and --version against "
                    "the server's models.config (serving/models.config).")
        elif "signature" in details.lower() and code in ("FAILED_PRECONDITION", "INVALID_ARGUMENT"):
            text = (f"{model} at {self.server} has no signature {signature!r}: {details}. Export it again with "
                    "`python -m stargan_keras.export` to get every signature.")
        elif code == "INVALID_ARGUMENT":
            text = f"{model} rejected the {signature!r} request: {details}"
        else:
            text = f"{model} at {self.server} failed on {signature!r} ({code}): {details}"
        return ServingError(text, code)

    def _predict_grpc(self, signature, inputs):
        import grpc
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

        if self._stub is None:
            options = [("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                       ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)]
            self._channel = grpc.insecure_channel(self.server, options=options)
            self._stub = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = self.model_name
        request.model_spec.signature_name = signature
        if self.version is not None:
            request.model_spec.version.value = self.version
        for key, value in inputs.items():
            request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
        try:
            response = self._stub.Predict(request, timeout=self.timeout)
        except grpc.RpcError as err:
            code, details = err.code(), err.details() or ""
            if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise _Retryable(f"{code.name}: {details}", code.name) from None
            raise self._explain(signature, code.name, details) from None
        return {key: tf.make_ndarray(proto) for key, proto in response.outputs.items()}

    def _predict_rest(self, signature, inputs):
        version = f"/versions/{self.version}" if self.version is not None else ""
        url = f"http://{self.server}/v1/models/{self.model_name}{version}:predict"
        body = json.dumps({"signature_name": signature, "inputs": {k: _to_json(v) for k, v in inputs.items()}})
        request = urllib.request.Request(url, body.encode(), {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                outputs = json.loads(answer.read())["outputs"]
        except urllib.error.HTTPError as err:
            try:
                details = json.loads(err.read()).get("error", "")
            except ValueError:
                details = err.reason
            code = {404: "NOT_FOUND", 400: "INVALID_ARGUMENT"}.get(err.code, f"HTTP {err.code}")
            if err.code in (502, 503, 504):
                raise _Retryable(f"HTTP {err.code}: {details}", "UNAVAILABLE") from None
            raise self._explain(signature, code, details) from None
        except (urllib.error.URLError, socket.timeout, ConnectionError) as err:
            reason = getattr(err, "reason", err)
            code = "DEADLINE_EXCEEDED" if isinstance(reason, socket.timeout) else "UNAVAILABLE"
            raise _Retryable(str(reason), code) from None
        if not isinstance(outputs, dict):  # TF Serving unwraps a signature's only output
            outputs = {SINGLE_OUTPUTS.get(signature, "image"): outputs}
        return {key: _from_json(value) for key, value in outputs.items()}

    def close(self):
        if self._channel is not None:
            self._channel.close()
            self._channel = self._stub = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- the model's API ---------------------------------------------------------------------------------------
    def metadata(self) -> dict:
        """The `metadata` signature's answer: {"domain_names", "img_size", "num_domains", "latent_dim", "style_dim"}."""
        if self._metadata is None:
            out = self.predict("metadata", {"domain": np.array([b""], dtype=object)})  # one row, no name to resolve
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in np.asarray(out["domain_names"])[0]]
            self._metadata = {"domain_names": names,
                              **{k: int(np.asarray(out[k]).ravel()[0]) for k in ("img_size", "num_domains",
                                                                                  "latent_dim", "style_dim")}}
        return self._metadata

    def domain_index(self, domain) -> int:
        """A domain name (or index, as int or digits) -> its index."""
        names = self.metadata()["domain_names"]
        if isinstance(domain, (int, np.integer)) or str(domain).isdigit():
            index = int(domain)
            if not 0 <= index < len(names):
                raise ServingError(f"domain index {index} is out of range: the model's domains are "
                                   f"{', '.join(f'{i}={n}' for i, n in enumerate(names))}.", "INVALID_ARGUMENT")
            return index
        if domain not in names:
            raise ServingError(f"unknown domain {domain!r}: the model's domains are {', '.join(names)}.",
                               "INVALID_ARGUMENT")
        return names.index(domain)

    def latent_code(self, seed: int) -> np.ndarray:
        """The z that a seed stands for: float32 [latent_dim], N(0, I)."""
        return np.random.default_rng(seed).standard_normal(self.metadata()["latent_dim"]).astype(np.float32)

    def latent(self, images, domain, seed: int = 0, psi: float = 1.0, z=None) -> list[np.ndarray]:
        """Latent-guided translation of several images into `domain` with one style (z, or the seed's z)."""
        images = list(images)
        z = self.latent_code(seed) if z is None else np.asarray(z, np.float32)
        z = np.tile(z.reshape(1, -1), (len(images), 1)) if z.ndim == 1 or len(z) == 1 else z
        target = np.full((len(images),), self.domain_index(domain), np.int32)
        inputs = {"target_domain": target, "z": z, "psi": np.full((len(images),), psi, np.float32)}
        if self.rest:
            inputs["image_bytes"] = np.array([_encoded(im) for im in images], dtype=object)
            return _decode_all(self.predict("latent_guided_bytes", inputs)["image_bytes"])
        inputs["image"] = _batch(images, self.metadata()["img_size"])
        return list(self.predict("latent_guided", inputs)["image"])

    def reference(self, images, references, domain) -> list[np.ndarray]:
        """Reference-guided translation: the style of each reference (one reference serves all images)."""
        images, references = list(images), list(references)
        if len(references) == 1:
            references = references * len(images)
        if len(references) != len(images):
            raise ValueError(f"{len(images)} images but {len(references)} references: pass one reference, "
                             "or one per image.")
        domains = np.full((len(images),), self.domain_index(domain), np.int32)
        if self.rest:
            inputs = {"image_bytes": np.array([_encoded(im) for im in images], dtype=object),
                      "reference_bytes": np.array([_encoded(im) for im in references], dtype=object),
                      "reference_domain": domains}
            return _decode_all(self.predict("reference_guided_bytes", inputs)["image_bytes"])
        size = self.metadata()["img_size"]
        inputs = {"image": _batch(images, size), "reference": _batch(references, size), "reference_domain": domains}
        return list(self.predict("reference_guided", inputs)["image"])


class _Retryable(Exception):
    def __init__(self, message, code):
        super().__init__(message)
        self.code = code


def _to_json(value):
    array = np.asarray(value)
    if array.dtype == object:
        return [{"b64": base64.b64encode(v).decode()} for v in array.ravel()]
    return array.tolist()


def _from_json(value):
    if isinstance(value, list) and value and isinstance(value[0], dict) and "b64" in value[0]:
        return np.array([base64.b64decode(v["b64"]) for v in value], dtype=object)
    return np.asarray(value)


def _decode_all(encoded) -> list[np.ndarray]:
    return [np.asarray(Image.open(io.BytesIO(data)).convert("RGB")) for data in np.asarray(encoded).ravel()]


def output_paths(out: str, inputs: list[str]) -> list[Path]:
    """Where each result goes: --out itself for one input; for several, a directory or a {stem}/{index} pattern."""
    if "{" in out:
        return [Path(out.format(stem=Path(str(p)).stem, index=i)) for i, p in enumerate(inputs)]
    path = Path(out)
    if len(inputs) == 1 and path.suffix:
        return [path]
    if path.suffix and not path.is_dir():
        raise ValueError(f"--out {out}: with {len(inputs)} images, --out must be a directory or a pattern "
                         "such as 'out/{stem}_dog.png' ({stem}: input file name, {index}: position).")
    return [path / f"{Path(str(p)).stem}.png" for p in inputs]


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
    commands.add_parser("metadata", parents=[common], help="print the model's domains and sizes")
    args = parser.parse_args(argv)
    options = {name: getattr(args, name, default) for name, default in CONNECTION_DEFAULTS.items()}
    try:
        with StarGANClient(options["server"], options["model_name"], options["rest"], options["timeout"],
                           options["retries"], options["version"]) as client:
            if args.command == "metadata":
                print(json.dumps(client.metadata(), indent=2))
                return 0
            paths = output_paths(args.out, args.image)
            if args.command == "latent":
                results = client.latent(args.image, args.domain, seed=args.seed, psi=args.psi)
            else:
                results = client.reference(args.image, args.reference, args.domain)
    except (ServingError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for path, result in zip(paths, results):
        print(save_image(path, result))
    return 0


CONNECTION_DEFAULTS = {"server": None, "model_name": "stargan", "rest": False, "timeout": 60.0, "retries": 2,
                       "version": None}


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


if __name__ == "__main__":
    sys.exit(main())
