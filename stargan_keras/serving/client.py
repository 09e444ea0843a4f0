"""A client of a StarGAN v2 model served by TF Serving, over gRPC (default) or REST.

gRPC sends uint8 tensors to the `latent_guided` / `reference_guided` signatures;
REST sends the files themselves, base64 in JSON, to the `*_bytes` signatures.
Domain names are resolved with the model's `metadata` signature. Signature, input and
output names are those of `serving.signatures`. A StarGAN v1 model (recognized by its
`metadata` signature's input) is asked through `translate` / `translate_bytes`, with target
labels named as `--attrs Blond_Hair=1,Male=0` (`parse_attrs`). Image files are checked against the pixel
limit (`imaging.MAX_IMAGE_PIXELS`, from their headers) before anything is sent.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

from stargan_keras.core.errors import UserError
from stargan_keras.core.imaging import check_image_file, open_rgb
from stargan_keras.serving.signatures import (ATTRIBUTE_NAMES_OUT, MAX_IMAGE_PIXELS_OUT, SERVING_DEFAULT, TABLES,
                                              TARGET_LABELS)

GRPC_PORT, REST_PORT = 8500, 8501
MAX_MESSAGE_BYTES = 256 * 1024 * 1024
# TF Serving's words (predict_util.cc) for a request whose input names are not its signature's
INPUT_MISMATCH = ("does not match signature", "not found in signature")


def _table_entry(signature_name: str, table=None):
    """The entry of a signature name (in `table`, or the first table that has it), or None."""
    for table in [table] if table is not None else TABLES.values():
        name = table.default if signature_name == SERVING_DEFAULT else signature_name
        if name in table.names:
            return table.signature(name)
    return None


def only_output(signature_name: str) -> str:
    """The name of a signature's one output, which TF Serving's REST API answers without its key
    ("outputs" for a signature the tables do not know)."""
    entry = _table_entry(signature_name)
    if entry is None:
        return "outputs"
    (output,) = entry.outputs
    return output.name


def parse_attrs(attrs, names) -> np.ndarray:
    """`--attrs Blond_Hair=1,Male=0` (or a {name: value} dict) -> float32 [len(names)] target labels.

    Attributes left out are 0. An unknown name, a malformed entry, a value that is not a number or a
    name given twice is a one-line error listing the model's names."""
    names = list(names)
    valid = f"the model's attributes are {', '.join(names)}"
    if isinstance(attrs, dict):
        items = [(str(k), v) for k, v in attrs.items()]
    else:
        items = []
        for part in (p.strip() for p in str(attrs).split(",")):
            if part.count("=") != 1 or not part.split("=")[0].strip():
                raise ServingError(f"--attrs: {part!r} is not NAME=VALUE (e.g. --attrs {names[0]}=1); {valid}.",
                                   "INVALID_ARGUMENT")
            name, value = (t.strip() for t in part.split("="))
            items.append((name, value))
    labels = np.zeros(len(names), np.float32)
    seen = set()
    for name, value in items:
        if name not in names:
            raise ServingError(f"--attrs: unknown attribute {name!r}; {valid}.", "INVALID_ARGUMENT")
        if name in seen:
            raise ServingError(f"--attrs: {name} is given twice.", "INVALID_ARGUMENT")
        try:
            labels[names.index(name)] = float(value)
        except (TypeError, ValueError):
            raise ServingError(f"--attrs: {name}={value!r} is not a number (1 on, 0 off).", "INVALID_ARGUMENT") \
                from None
        seen.add(name)
    return labels


class ServingError(UserError, RuntimeError):
    """A request TF Serving could not answer; the message says why and what to do. `code`: gRPC status name."""

    def __init__(self, message: str, code: str = "UNKNOWN"):
        super().__init__(message)
        self.code = code


def _read_image(image) -> np.ndarray:
    """A path, encoded bytes or an array -> uint8 [H, W, 3] (files within the pixel limit)."""
    if isinstance(image, np.ndarray):
        return image if image.dtype == np.uint8 else np.asarray(image, np.uint8)
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
        raise ServingError(f"cannot read image {image}: {err.strerror}. Check the path.", "INVALID_ARGUMENT") from None


def check_images(images) -> None:
    """Fail before any request on an image file (a path or its bytes) that cannot be read or is over the pixel
    limit, from its header (`imaging.check_image_file`)."""
    for image in images:
        if not isinstance(image, np.ndarray):
            check_image_file(image)


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
        self.table = None  # the served model's signature table, known after the first metadata request
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

    def _predict_one(self, signature_name: str, inputs: dict):
        return self.predict(signature_name, inputs)[only_output(signature_name)]

    def _explain(self, signature: str, code: str, details: str, sent=()) -> ServingError:
        """A ServingError for TF Serving's answer (`sent`: the request's input names)."""
        model = f"model {self.model_name!r}" + (f" version {self.version}" if self.version is not None else "")
        lowered = details.lower()
        if code == "NOT_FOUND":
            text = (f"{model} is not served at {self.server}: {details}. Check --model-name and --version against "
                    "the server's models.config (serving/models.config).")
        elif "serving signature" in lowered and code in ("FAILED_PRECONDITION", "INVALID_ARGUMENT"):
            text = (f"{model} at {self.server} has no signature {signature!r}: {details}. Export it again with "
                    "`python -m stargan_keras.export` to get every signature.")
        elif code == "INVALID_ARGUMENT" and any(m in lowered for m in INPUT_MISMATCH):
            text = (f"{model} rejected the {signature!r} request: {_input_mismatch(signature, sent, self.table)}"
                    f"{details}")
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
            if code == grpc.StatusCode.UNAVAILABLE and ("parsing HTTP/2" in details or "http1.x" in details):
                raise ServingError(f"{self.server} did not answer in HTTP/2 (gRPC): it is probably TF Serving's REST "
                                   f"port ({REST_PORT}); pass --rest, or point --server at the gRPC port "
                                   f"({GRPC_PORT}).", code.name) from None
            if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise _Retryable(f"{code.name}: {details}", code.name) from None
            raise self._explain(signature, code.name, details, inputs) from None
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
            raise self._explain(signature, code, details, inputs) from None
        except http.client.BadStatusLine as err:  # before ConnectionError: RemoteDisconnected is both
            if isinstance(err, http.client.RemoteDisconnected):
                raise _Retryable(str(err), "UNAVAILABLE") from None
            raise ServingError(f"{self.server} did not answer in HTTP/1.1 (REST): it is probably TF Serving's gRPC "
                               f"port ({GRPC_PORT}); drop --rest, or point --server at the REST port ({REST_PORT}).",
                               "UNAVAILABLE") from None
        except (urllib.error.URLError, socket.timeout, ConnectionError) as err:
            reason = getattr(err, "reason", err)
            code = "DEADLINE_EXCEEDED" if isinstance(reason, socket.timeout) else "UNAVAILABLE"
            raise _Retryable(str(reason), code) from None
        if not isinstance(outputs, dict):  # TF Serving unwraps a signature's only output
            outputs = {only_output(signature): outputs}
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
        """The `metadata` signature's answer: {"domain_names", "img_size", "num_domains", "latent_dim", "style_dim"},
        or for a StarGAN v1 model {"attribute_names", "image_size", "c_dim", "label_type"} (`table` says which)."""
        if self._metadata is None:
            blank = np.array([b""], dtype=object)  # one row, no name to resolve
            for table in TABLES.values():  # each table's metadata takes its own question (`domain`, `attribute`)
                entry = table.signature("metadata")
                try:
                    out = self.predict("metadata", {entry.inputs[0].name: blank})
                except ServingError as err:
                    if err.code != "INVALID_ARGUMENT" or not any(m in str(err).lower() for m in INPUT_MISMATCH):
                        raise
                    continue
                self.table, (_, names, *rest) = table, entry.outputs
                self._metadata = {names.name: _strings(np.asarray(out[names.name])[0])}
                for t in rest:
                    value = np.asarray(out[t.name]).ravel()
                    if t != MAX_IMAGE_PIXELS_OUT:
                        self._metadata[t.name] = _strings(value)[0] if t.dtype == "string" else int(value[0])
                break
            else:
                raise ServingError(f"{self.model_name!r} at {self.server} answers no metadata signature of a "
                                   "stargan_keras export.", "INVALID_ARGUMENT")
        return self._metadata

    def _require(self, signature: str, what: str) -> dict:
        """The metadata, after checking that the served model has `signature` (`what`: the asked translation)."""
        metadata = self.metadata()
        if signature not in self.table.names:
            wanted = next(t.title for t in TABLES.values() if signature in t.names)
            raise ServingError(f"{what} needs a {wanted} model, but {self.model_name!r} at {self.server} is "
                               f"{self.table.title} ({self.table.usage}).", "INVALID_ARGUMENT")
        return metadata

    def target_labels(self, attrs) -> np.ndarray:
        """A v1 model's target label vector from `--attrs NAME=VALUE,...` text or a dict (`parse_attrs`)."""
        return parse_attrs(attrs, self._require("translate", "--attrs")[ATTRIBUTE_NAMES_OUT.name])

    def translate(self, images, attrs) -> list[np.ndarray]:
        """StarGAN v1: G(image, c) for each image, c from `attrs` (`target_labels`; unnamed attributes 0)."""
        images = list(images)
        check_images(images)
        labels = np.tile(self.target_labels(attrs)[None], (len(images), 1))
        if self.rest:
            inputs = {"image_bytes": np.array([_encoded(im) for im in images], dtype=object),
                      TARGET_LABELS.name: labels}
            return _decode_all(self._predict_one("translate_bytes", inputs))
        inputs = {"image": _batch(images, self.metadata()["image_size"]), TARGET_LABELS.name: labels}
        return list(self._predict_one("translate", inputs))

    def domain_index(self, domain) -> int:
        """A domain name (or index, as int or digits) -> its index."""
        names = self._require("latent_guided", "a domain")["domain_names"]
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
        latent_dim = self._require("latent_guided", "a latent code")["latent_dim"]
        return np.random.default_rng(seed).standard_normal(latent_dim).astype(np.float32)

    def latent(self, images, domain, seed: int = 0, psi: float = 1.0, z=None) -> list[np.ndarray]:
        """Latent-guided translation of several images into `domain` with one style (z, or the seed's z)."""
        images = list(images)
        check_images(images)
        z = self.latent_code(seed) if z is None else np.asarray(z, np.float32)
        z = np.tile(z.reshape(1, -1), (len(images), 1)) if z.ndim == 1 or len(z) == 1 else z
        target = np.full((len(images),), self.domain_index(domain), np.int32)
        inputs = {"target_domain": target, "z": z, "psi": np.full((len(images),), psi, np.float32)}
        if self.rest:
            inputs["image_bytes"] = np.array([_encoded(im) for im in images], dtype=object)
            return _decode_all(self._predict_one("latent_guided_bytes", inputs))
        inputs["image"] = _batch(images, self.metadata()["img_size"])
        return list(self._predict_one("latent_guided", inputs))

    def reference(self, images, references, domain) -> list[np.ndarray]:
        """Reference-guided translation: the style of each reference (one reference serves all images)."""
        images, references = list(images), list(references)
        if len(references) == 1:
            references = references * len(images)
        if len(references) != len(images):
            raise ServingError(f"{len(images)} images but {len(references)} references: pass one reference, "
                               "or one per image.", "INVALID_ARGUMENT")
        check_images(images + references)
        domains = np.full((len(images),), self.domain_index(domain), np.int32)
        if self.rest:
            inputs = {"image_bytes": np.array([_encoded(im) for im in images], dtype=object),
                      "reference_bytes": np.array([_encoded(im) for im in references], dtype=object),
                      "reference_domain": domains}
            return _decode_all(self._predict_one("reference_guided_bytes", inputs))
        size = self.metadata()["img_size"]
        inputs = {"image": _batch(images, size), "reference": _batch(references, size), "reference_domain": domains}
        return list(self._predict_one("reference_guided", inputs))


def _input_mismatch(signature_name: str, sent, table=None) -> str:
    """What a request's input names lack or have too many, by the model's table (empty for unknown signatures)."""
    entry = _table_entry(signature_name, table)
    if entry is None:
        return ""
    expected = [t.name for t in entry.inputs]
    missing, unknown = [n for n in expected if n not in sent], sorted(set(sent) - set(expected))
    parts = ([f"missing input(s) {', '.join(missing)}"] if missing else []) + \
        ([f"unknown input(s) {', '.join(unknown)}"] if unknown else [])
    return f"{'; '.join(parts)} (it takes {', '.join(expected)}). " if parts else ""


class _Retryable(Exception):
    def __init__(self, message, code):
        super().__init__(message)
        self.code = code


def _strings(values) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


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
