"""The in-test TF Serving: a PredictionService (gRPC) and the REST predict API over an export loaded with the
session-based loader, the way TF Serving runs it, answering errors as its predict_util.cc does.

`python -m tests.harness.serving EXPORT_DIR` serves an export over gRPC on 127.0.0.1 in a process of its own
(so that a test can measure that process's memory): it prints `port N` once serving, and stops when its
standard input closes.

Also here: the shared export fixtures (`v2_export`, `v2_served`, re-exported by tests/conftest.py), and hostile
image files, small files that declare huge images (decompression bombs).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import base64
import functools
import io
import json
import re
import struct
import sys
import zlib
from concurrent import futures
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import grpc
import keras
import numpy as np
import tensorflow as tf
from PIL import Image
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from benchmarks.saved_model_session import SavedModelSession
from stargan_keras import families
from stargan_keras.core.model_dir import save_networks
from stargan_keras.v2.networks import build_networks
from stargan_keras.serving.export import export_saved_model
from tests.harness.artifacts import built_once

MODEL_NAME = "stargan"
SHARED_SEED, SHARED_MEAN_SAMPLES = 4321, 32  # the shared export's weights and mean-style sample count
STATUS = {code.value[0]: code for code in grpc.StatusCode}  # TF error codes are gRPC's canonical codes


def serving_message(error: tf.errors.OpError) -> str:
    """The status message TF Serving would return (the Python session adds a prefix)."""
    return error.message.replace("Graph execution error:", "").strip()


class ExportPredictor:
    """TF Serving's Predict over a session-loaded export: the checks of predict_util.cc, then Session::Run."""

    def __init__(self, session: SavedModelSession, version: int):
        self.session, self.version = session, version

    def predict(self, model_name, version, signature_name, inputs):
        """-> (outputs, None) or (None, (grpc.StatusCode, message))."""
        if model_name != MODEL_NAME or version not in (None, self.version):
            which = f"Latest({model_name})" if version is None else f"Specific({model_name}, {version})"
            return None, (grpc.StatusCode.NOT_FOUND, f"Servable not found for request: {which}")
        name = signature_name or "serving_default"
        signature = self.session.signatures.get(name)
        if signature is None or name.startswith("__"):
            return None, (grpc.StatusCode.FAILED_PRECONDITION, f'Serving signature key "{name}" not found.')
        sent, expected = sorted(inputs), sorted(signature.inputs)
        if len(sent) != len(expected):
            extra, missing = sorted(set(sent) - set(expected)), sorted(set(expected) - set(sent))
            return None, (grpc.StatusCode.INVALID_ARGUMENT,
                          f"input size does not match signature: {len(sent)}!={len(expected)} "
                          f"len({{{','.join(sent)}}}) != len({{{','.join(expected)}}}). Sent extra: "
                          f"{{{','.join(extra)}}}. Missing but required: {{{','.join(missing)}}}.")
        unknown = [key for key in sent if key not in signature.inputs]
        if unknown:
            return None, (grpc.StatusCode.INVALID_ARGUMENT,
                          f"input tensor alias not found in signature: {unknown[0]}. Inputs expected to be in the "
                          f"set {{{','.join(expected)}}}.")
        try:
            return self.session.run(name, inputs), None
        except tf.errors.OpError as error:
            return None, (STATUS[error.error_code], serving_message(error))


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, predictor: ExportPredictor):
        self.predictor = predictor

    def Predict(self, request, context):
        spec = request.model_spec
        inputs = {}
        for key, proto in request.inputs.items():
            signature = self.predictor.session.signatures.get(spec.signature_name or "serving_default")
            if signature is not None and key in signature.inputs and proto.dtype != signature.inputs[key].dtype:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                              f"Expects arg {key} to be {tf.as_dtype(signature.inputs[key].dtype).name} but "
                              f"{tf.as_dtype(proto.dtype).name} is provided")
            inputs[key] = tf.make_ndarray(proto)
        version = spec.version.value if spec.HasField("version") else None
        outputs, error = self.predictor.predict(spec.name, version, spec.signature_name, inputs)
        if error is not None:
            context.abort(*error)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = spec.name
        response.model_spec.signature_name = spec.signature_name or "serving_default"
        response.model_spec.version.value = self.predictor.version
        for key, value in outputs.items():
            response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
        return response


def rest_handler(predictor: ExportPredictor):
    """TF Serving's REST predict API, columnar ("inputs") format: b64 strings in, `*_bytes` outputs b64 out."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def reply(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):  # noqa: N802 (http.server's naming)
            match = re.fullmatch(r"/v1/models/([^/:]+)(?:/versions/(\d+))?:predict", self.path)
            if match is None:
                return self.reply(404, {"error": "Malformed request: POST " + self.path})
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            name = body.get("signature_name") or "serving_default"
            signature = predictor.session.signatures.get(name)
            inputs = {}
            for key, value in body["inputs"].items():
                if signature is not None and key in signature.inputs and \
                        signature.inputs[key].dtype == tf.string.as_datatype_enum:
                    inputs[key] = np.array([base64.b64decode(v["b64"]) if isinstance(v, dict) else v.encode()
                                            for v in value], dtype=object)
                elif signature is not None and key in signature.inputs:
                    inputs[key] = np.array(value, dtype=tf.as_dtype(signature.inputs[key].dtype).as_numpy_dtype)
            version = int(match.group(2)) if match.group(2) else None
            outputs, error = predictor.predict(match.group(1), version, name, inputs)
            if error is not None:
                status = 404 if error[0] == grpc.StatusCode.NOT_FOUND else 400
                return self.reply(status, {"error": error[1]})
            encoded = {key: [{"b64": base64.b64encode(v).decode()} for v in value] if key.endswith("_bytes")
                       else np.vectorize(bytes.decode, otypes=[object])(value).tolist() if value.dtype == object
                       else value.tolist()
                       for key, value in outputs.items()}
            self.reply(200, {"outputs": encoded if len(encoded) > 1 else next(iter(encoded.values()))})

    return Handler


def shared_v2_export(tmp_path_factory, tiny_config):
    """(Translator, export path `.../stargan/1`): one tiny v2 model of random weights and its export, built once
    per session for every test file that only reads an export; the Translator opens the saved model directory,
    so its weights and mean styles (SHARED_MEAN_SAMPLES) are the export's in whichever worker built it."""
    def build(folder):
        keras.utils.set_random_seed(SHARED_SEED)
        config = tiny_config()
        save_networks(folder / "model", config, build_networks(config.model, with_discriminator=False))
        export_saved_model(families.load(folder / "model", mean_style_samples=SHARED_MEAN_SAMPLES),
                           folder / "models" / MODEL_NAME, mean_style_samples=SHARED_MEAN_SAMPLES)

    root = built_once(tmp_path_factory, "v2_export", build)
    return families.load(root / "model", mean_style_samples=SHARED_MEAN_SAMPLES), root / "models" / MODEL_NAME / "1"


def served(path) -> SavedModelSession:
    """The export loaded by the session-based loader, as TF Serving runs it."""
    return SavedModelSession(path)


# -- decompression bombs ------------------------------------------------------------------------------------------
def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@functools.lru_cache(maxsize=None)
def png_bomb(width: int, height: int) -> bytes:
    """A valid black RGB PNG of width x height (height >= 200) in about a thousandth of its size: its rows are
    compressed in blocks of 100 that each end in a full flush, so one compressed block is computed once and
    repeated."""
    block_rows = 100
    block = b"\0" * ((1 + 3 * width) * block_rows)  # each row: filter type 0, then zeros
    compressor = zlib.compressobj(9)
    first = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    repeated = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    rest = b"\0" * ((1 + 3 * width) * (height % block_rows))
    last = compressor.compress(rest) + compressor.flush()
    count = height // block_rows
    checksum = ((1 + 3 * width) * height % 65521) << 16 | 1  # Adler-32 (RFC 1950) of that many zero bytes
    stream = first + repeated * (count - 1) + last[:-4] + struct.pack(">I", checksum)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", stream)
            + _png_chunk(b"IEND", b""))


def encoded(image: np.ndarray, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def jpeg_declaring(width: int, height: int) -> bytes:
    """A small JPEG whose frame header (SOF0) declares width x height."""
    data = bytearray(encoded(np.zeros((8, 8, 3), np.uint8), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def bmp_declaring(width: int, height: int) -> bytes:
    """A small BMP whose info header declares width x height."""
    data = bytearray(encoded(np.zeros((2, 2, 3), np.uint8), "BMP"))
    data[18:26] = struct.pack("<ii", width, height)
    return bytes(data)


@functools.lru_cache(maxsize=None)
def gif_frame_bomb(size: int) -> bytes:
    """A valid GIF whose logical screen is 32 x 32 but whose one frame is size x size (TensorFlow's decoder
    allocates the frame)."""
    data = bytearray(encoded(np.zeros((size, size), np.uint8), "GIF"))
    data[6:10] = struct.pack("<HH", 32, 32)
    return bytes(data)


def start_grpc_server(session: SavedModelSession, version: int, workers: int = 4):
    """(server, address): a PredictionService serving the session's export on 127.0.0.1 (loopback only)."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionServicer(ExportPredictor(session, version)), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, f"127.0.0.1:{port}"


class LoadedOnce:
    """`tflite._load_export` once per export path: the conversion and each check of a file load the export
    (`tf.saved_model.load`, the bulk of a check's cost); here they share the first load, which checks the
    tflite_* functions. Loading itself and its errors are tested by test_commands.py and test_tflite.py's error
    cases."""

    def __init__(self):
        from stargan_keras.serving import tflite

        self.load, self.loaded = tflite._load_export, {}

    def __call__(self, path, twins=True):
        if str(path) not in self.loaded:
            self.loaded[str(path)] = self.load(path, twins)
        return self.loaded[str(path)]


def main(export_dir: str) -> None:
    session = SavedModelSession(export_dir)
    server, address = start_grpc_server(session, int(Path(export_dir).name))
    print(f"port {address.rsplit(':', 1)[1]}", flush=True)
    sys.stdin.read()  # until the parent closes the pipe (or dies)
    server.stop(grace=None)
    session.close()


if __name__ == "__main__":
    main(sys.argv[1])
