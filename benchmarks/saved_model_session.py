"""An export loaded the way TF Serving runs it, for the tests and the inference benchmark.

TF Serving executes a SavedModel's SignatureDefs through the session-based loader (a graph,
a Session, feeds and fetches by tensor name), not through `tf.saved_model.load`'s eager
functions; this class does the same, so that what is tested and timed is what is served.
"""

from __future__ import annotations

import tensorflow as tf


class SavedModelSession:
    """An export loaded with the session-based SavedModel loader: the SignatureDef path TF Serving executes."""

    def __init__(self, path, tags=("serve",), config: tf.compat.v1.ConfigProto | None = None):
        self.path = str(path)
        self.graph = tf.Graph()
        self.session = tf.compat.v1.Session(graph=self.graph, config=config)
        with self.graph.as_default():
            meta_graph = tf.compat.v1.saved_model.loader.load(self.session, list(tags), self.path)
        self.signatures = dict(meta_graph.signature_def)

    def signature(self, name: str):
        if name not in self.signatures:
            raise KeyError(f'Serving signature key "{name}" not found.')
        return self.signatures[name]

    def run(self, name: str, inputs: dict) -> dict:
        """Feed inputs by signature input name, fetch every output by its name."""
        signature = self.signature(name)
        feeds = {signature.inputs[key].name: value for key, value in inputs.items()}
        fetches = {key: info.name for key, info in signature.outputs.items()}
        return self.session.run(fetches, feed_dict=feeds)

    def close(self):
        self.session.close()
