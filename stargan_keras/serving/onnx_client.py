"""The client's translations run locally by ONNX Runtime on the files `export --format onnx` writes.

`OnnxClient` is a `StarGANClient` whose transport is an ONNX Runtime session per signature file, and
whose metadata comes from the files' metadata_props: domain names, seeds, --attrs and the resizing of
images to S x S are the client's own, so `python -m stargan_keras.client --onnx DIR latent ...` gives
what the same command gives against TF Serving.
"""

from __future__ import annotations

from pathlib import Path

from stargan_keras.serving.client import ServingError, StarGANClient
from stargan_keras.serving.onnx_export import file_metadata, require_converter, run, session
from stargan_keras.serving.signatures import TABLES

METADATA_KEYS = {"v2": ("domain_names", "img_size", "num_domains", "latent_dim", "style_dim"),
                 "v1": ("attribute_names", "image_size", "c_dim", "label_type")}


class OnnxClient(StarGANClient):
    """latent / reference / translate / metadata over a directory of .onnx files (CPU)."""

    def __init__(self, directory, threads: int | None = None):
        require_converter()
        self.directory = Path(directory)
        super().__init__(server=str(self.directory), model_name=self.directory.name)
        self.threads = threads
        self._sessions = {}
        if not self.directory.is_dir() or not any(self.directory.glob("*.onnx")):
            raise ServingError(f"--onnx {self.directory}: no .onnx files there. Write them with `python -m "
                               "stargan_keras.export --format onnx --output DIR`.", "NOT_FOUND")

    def _session(self, signature: str):
        if signature not in self._sessions:
            path = self.directory / f"{signature}.onnx"
            if not path.is_file():
                raise ServingError(f"--onnx {self.directory} has no {path.name}: the model there is not of the family "
                                   "this command needs, or the export is incomplete; export it again.", "NOT_FOUND")
            self._sessions[signature] = session(path, self.threads)
        return self._sessions[signature]

    def metadata(self) -> dict:
        if self._metadata is None:
            first = sorted(self.directory.glob("*.onnx"))[0]
            props = file_metadata(self._session(first.stem))
            family = props.get("model_family")
            if family not in METADATA_KEYS:
                raise ServingError(f"--onnx {first} was not written by `python -m stargan_keras.export --format onnx` "
                                   "(no model_family in its metadata).", "INVALID_ARGUMENT")
            self.table = TABLES[family]
            self._metadata = {key: props[key] for key in METADATA_KEYS[family]}
        return self._metadata

    def predict(self, signature: str, inputs: dict) -> dict:
        from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidArgument

        try:
            return {"image": run(self._session(signature), **inputs)}
        except (InvalidArgument, Fail) as err:
            raise ServingError(f"{self.directory / signature}.onnx refused the input: {' '.join(str(err).split())}",
                               "INVALID_ARGUMENT") \
                from None
