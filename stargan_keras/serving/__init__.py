"""Serving a trained model: the signature table, the exported SavedModel, warmup, TFLite, ONNX and the client.

- `signatures`: the contract (names, inputs, outputs, dtypes, shapes), the one table every
  other module here reads.
- `checks`: the in-graph input checks that turn a bad request into INVALID_ARGUMENT.
- `module`: the exported `tf.Module`, built on the `Translator`.
- `export`: writing TF Serving's versioned directories atomically.
- `warmup`: TF Serving's warmup records.
- `tflite`: TFLite files and their verification.
- `onnx_export`: ONNX files of the translation signatures (tf2onnx), and ONNX Runtime sessions of them.
- `onnx_client`: the client's translations run by ONNX Runtime on those files (`client --onnx DIR`).
- `client`: a gRPC / REST client of a served model.
- `outputs`: the files the serving commands write, checked before the work.
"""
