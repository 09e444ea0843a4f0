"""What StarGAN v1's family object tells the browser demo's page: which labels are one choice."""

from __future__ import annotations

from stargan_keras import families
from stargan_keras.v1.family import FAMILY

CELEBA = ["Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"]


def test_the_page_sets_labels_as_the_authors_test_mode_does():
    shapes = families.load_config("v1_shapes")
    names = shapes.model.selected_attrs
    assert FAMILY.demo_metadata(shapes, names) == {"label_type": "attributes",
                                                   "exclusive": ["circle", "square", "triangle"]}
    # a .tflite file or an export has no config: the authors' hair colours, by name
    assert FAMILY.demo_metadata(None, CELEBA) == {"label_type": "attributes",
                                                  "exclusive": ["Black_Hair", "Blond_Hair", "Brown_Hair"]}
    expressions = ["angry", "happy", "neutral"]
    rafd = families.load_config("v1_rafd").replace(selected_attrs=expressions, c_dim=3)
    assert FAMILY.demo_metadata(rafd, expressions) == {"label_type": "categorical", "exclusive": expressions}
    assert families.of_tflite_signatures(["translate"]) is FAMILY
    assert families.of_tflite_signatures(["latent_guided"]) is None  # v2's other TFLite signatures are missing
