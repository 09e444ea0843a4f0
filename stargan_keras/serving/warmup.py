"""TF Serving warmup: one small valid request per signature, replayed when the model loads.

With `--enable_model_warmup`, TF Serving runs these before it reports the version as
available, so the first client request does not pay for graph optimization.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from stargan_keras.serving.signatures import ATTRIBUTE, DOMAIN, IMAGE, SERVING_DEFAULT, TARGET_LABELS

WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"


def warmup_inputs(table, model, seed: int = 0) -> dict:
    """{signature: {input: ndarray}} for every signature of the model family's table and `serving_default`.

    Batch 1, model-size images: every uint8 input is one random image, every string input
    its PNG (the `domain` / `attribute` names: ""), domain indices 0, psi 1 as [N] (TF Serving's
    batching cannot merge scalars), v1 target labels random 0s and 1s, other floats N(0, 1).
    `table` is the family's signature table, `model` its config's `model` section.
    """
    rng = np.random.default_rng(seed)
    dims = table.dimensions(model)
    image = rng.integers(0, 256, IMAGE.resolve(**dims), dtype=np.uint8)
    png = np.array([tf.io.encode_png(image[0]).numpy()], dtype=object)

    def value(tensor):
        shape = tensor.resolve(**dims)
        if tensor.dtype == "uint8":
            return image
        if tensor.dtype == "string":
            return np.full(shape, b"", dtype=object) if tensor in (DOMAIN, ATTRIBUTE) else png
        if tensor.dtype == "int32":
            return np.zeros(shape, np.int32)
        if tensor == TARGET_LABELS:
            return rng.integers(0, 2, shape).astype(np.float32)
        if tensor.scalar_ok:
            return np.ones(shape, np.float32)
        return rng.standard_normal(shape).astype(np.float32)

    values = {}  # one value per input name, shared by the signatures that take it
    for entry in table.signatures:
        for tensor in entry.inputs:
            if tensor.name not in values:
                values[tensor.name] = value(tensor)
    inputs = {entry.name: {t.name: values[t.name] for t in entry.inputs} for entry in table.signatures}
    inputs[SERVING_DEFAULT] = inputs[table.default]
    return inputs


def write_warmup(path: Path, model_name: str, inputs: dict) -> Path:
    """TF Serving warmup: one PredictionLog record per signature, replayed when the model loads."""
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for signature, tensors in inputs.items():
            request = predict_pb2.PredictRequest()
            request.model_spec.name = model_name
            request.model_spec.signature_name = signature
            for key, value in tensors.items():
                request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return path
