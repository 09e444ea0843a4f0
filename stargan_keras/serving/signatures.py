"""The serving contract: every signature of an exported model, its inputs and outputs, in one table.

The export, the TFLite converter, the warmup records, the client and the docs read this
table; nothing else lists signature or tensor names. Shapes are tuples of dimension
names and numbers: `N` the batch, `H`/`W` any image size, `S` the model's image size,
`K` the number of domain names asked about, `D` the model's number of domains, and
`latent_dim` / `style_dim` from its config. A `scalar_ok` input may also be a scalar.

Every input and output has the batch first (psi may also be a scalar), so TF Serving's
`--enable_batching` can merge concurrent requests of one signature.

Each model family has its table: `SIGNATURES` for StarGAN v2, `V1_SIGNATURES` for StarGAN v1
(Choi et al., CVPR 2018; `model_family: v1`), where `C` is the width of the label vector
(c_dim; joint two-dataset models are not exported); `TABLES` holds both, by family name (`Table`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Tensor:
    """One input or output: its name (the request/response key), dtype name and shape."""

    name: str
    dtype: str
    shape: tuple
    doc: str = ""
    scalar_ok: bool = False

    def shape_text(self) -> str:
        text = f"[{','.join(str(d) for d in self.shape)}]"
        return f"[] or {text}" if self.scalar_ok else text

    def resolve(self, **dims) -> tuple:
        """The concrete shape for the given dimension values (e.g. N=1, S=256, latent_dim=16)."""
        return tuple(dims[d] if isinstance(d, str) else d for d in self.shape)


@dataclass(frozen=True)
class Signature:
    """A served function: inputs, outputs, whether TFLite files carry it, and what it does."""

    name: str
    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]
    tflite: bool
    doc: str

    def input(self, name: str) -> Tensor:
        return next(t for t in self.inputs if t.name == name)


IMAGE = Tensor("image", "uint8", ("N", "H", "W", 3), "source images, any size (resized to S x S)")
REFERENCE = Tensor("reference", "uint8", ("N", "H", "W", 3), "reference images, any size")
TARGET_DOMAIN = Tensor("target_domain", "int32", ("N",), "domain index per image")
REFERENCE_DOMAIN = Tensor("reference_domain", "int32", ("N",), "domain index of each reference")
Z = Tensor("z", "float32", ("N", "latent_dim"), "latent code per image")
PSI = Tensor("psi", "float32", ("N",), "truncation toward the domain's mean style (1 = none)", scalar_ok=True)
STYLE = Tensor("style", "float32", ("N", "style_dim"), "style code per image")
IMAGE_BYTES = Tensor("image_bytes", "string", ("N",), "encoded JPEG/PNG/GIF/BMP source images")
REFERENCE_BYTES = Tensor("reference_bytes", "string", ("N",), "encoded reference images")
DOMAIN = Tensor("domain", "string", ("K",), 'domain names to resolve, or ""')

IMAGE_OUT = Tensor("image", "uint8", ("N", "S", "S", 3), "translated images")
STYLE_OUT = Tensor("style", "float32", ("N", "style_dim"), "style codes")
IMAGE_BYTES_OUT = Tensor("image_bytes", "string", ("N",), "translated images, PNG")
DOMAIN_INDEX_OUT = Tensor("domain_index", "int32", ("K",), 'index of each name asked for (-1 for "")')
DOMAIN_NAMES_OUT = Tensor("domain_names", "string", ("K", "D"), "the model's domain names, one row per entry")
SIZE_OUTS = (  # named after the `ModelConfig` fields they report
    Tensor("img_size", "int32", ("K",), "S"),
    Tensor("num_domains", "int32", ("K",), "D"),
    Tensor("latent_dim", "int32", ("K",), "size of z"),
    Tensor("style_dim", "int32", ("K",), "size of a style code"),
)
MAX_IMAGE_PIXELS_OUT = Tensor("max_image_pixels", "int64", ("K",), "the most pixels (H x W) an input image may have")
METADATA_OUT = (DOMAIN_INDEX_OUT, DOMAIN_NAMES_OUT, *SIZE_OUTS, MAX_IMAGE_PIXELS_OUT)

SIGNATURES: tuple[Signature, ...] = (
    Signature("latent_guided", (IMAGE, TARGET_DOMAIN, Z, PSI), (IMAGE_OUT,), True,
              "G(image, F(z, target_domain)), truncated by psi"),
    Signature("reference_guided", (IMAGE, REFERENCE, REFERENCE_DOMAIN), (IMAGE_OUT,), True,
              "G(image, E(reference, reference_domain))"),
    Signature("style_from_latent", (TARGET_DOMAIN, Z, PSI), (STYLE_OUT,), True,
              "F(z, target_domain), truncated by psi"),
    Signature("style_from_reference", (REFERENCE, REFERENCE_DOMAIN), (STYLE_OUT,), True,
              "E(reference, reference_domain)"),
    Signature("synthesize", (IMAGE, STYLE), (IMAGE_OUT,), True, "G(image, style)"),
    Signature("latent_guided_bytes", (IMAGE_BYTES, TARGET_DOMAIN, Z, PSI), (IMAGE_BYTES_OUT,), False,
              "latent_guided on encoded images (REST clients send files)"),
    Signature("reference_guided_bytes", (IMAGE_BYTES, REFERENCE_BYTES, REFERENCE_DOMAIN), (IMAGE_BYTES_OUT,), False,
              "reference_guided on encoded images"),
    Signature("metadata", (DOMAIN,), METADATA_OUT, False,
              "the model's domains, sizes and pixel limit; resolves domain names to indices"),
)
DEFAULT_SIGNATURE = "latent_guided"  # also published as `serving_default`
SERVING_DEFAULT = "serving_default"
BY_NAME = {signature.name: signature for signature in SIGNATURES}
NAMES = tuple(BY_NAME)
TFLITE_NAMES = tuple(signature.name for signature in SIGNATURES if signature.tflite)

# -- StarGAN v1 ----------------------------------------------------------------------------------------------------
TARGET_LABELS = Tensor("target_labels", "float32", ("N", "C"),
                       "target label vector per image (attributes in [0, 1]; classes one-hot)")
ATTRIBUTE = Tensor("attribute", "string", ("K",), 'attribute (label) names to resolve, or ""')
ATTRIBUTE_INDEX_OUT = Tensor("attribute_index", "int32", ("K",), 'column of each name asked for (-1 for "")')
ATTRIBUTE_NAMES_OUT = Tensor("attribute_names", "string", ("K", "C"), "the label vector's names, one row per entry")
LABEL_TYPE_OUT = Tensor("label_type", "string", ("K",), "attributes or categorical")
V1_SIZE_OUTS = (  # named after the `V1Config` fields they report
    Tensor("image_size", "int32", ("K",), "S"),
    Tensor("c_dim", "int32", ("K",), "C"),
)
V1_METADATA_OUT = (ATTRIBUTE_INDEX_OUT, ATTRIBUTE_NAMES_OUT, *V1_SIZE_OUTS, LABEL_TYPE_OUT, MAX_IMAGE_PIXELS_OUT)

V1_SIGNATURES: tuple[Signature, ...] = (
    Signature("translate", (IMAGE, TARGET_LABELS), (IMAGE_OUT,), True, "G(image, target_labels)"),
    Signature("translate_bytes", (IMAGE_BYTES, TARGET_LABELS), (IMAGE_BYTES_OUT,), False,
              "translate on encoded images (REST clients send files)"),
    Signature("metadata", (ATTRIBUTE,), V1_METADATA_OUT, False,
              "the model's label names, sizes and pixel limit; resolves attribute names to columns"),
)


@dataclass(frozen=True)
class Table:
    """One model family's contract: its signatures, the one published as `serving_default`, and which config
    field of the family's `model` section gives each dimension name (`N` and `K` are the request's)."""

    name: str
    title: str
    signatures: tuple[Signature, ...]
    default: str
    sizes: tuple[tuple[str, str], ...]
    usage: str  # how the client's command line translates with such a model
    names_asset: str  # the export's asset file of the names `metadata` answers (domains or label columns)
    onnx_names: tuple[str, ...]  # the signatures an ONNX export has, one file each (`serving.onnx_export`)
    names_dim: str = ""  # the dimension name that counts the names (v2's domains D, v1's label columns C)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.signatures)

    @property
    def tflite_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.signatures if s.tflite)

    def signature(self, name: str) -> Signature:
        """The entry for a signature name (`serving_default` is the default signature)."""
        name = self.default if name == SERVING_DEFAULT else name
        return next(s for s in self.signatures if s.name == name)

    def dimensions(self, model, batch=1, count=1) -> dict:
        """The value of every dimension name for the family's `model` config section: `N` = batch, `K` = count."""
        return {"N": batch, "K": count, **{dim: getattr(model, field) for dim, field in self.sizes}}


_SQUARE = ("H", "W", "S")
TABLES = {
    "v2": Table("v2", "StarGAN v2", SIGNATURES, DEFAULT_SIGNATURE,
                tuple((dim, "img_size") for dim in _SQUARE) + (("D", "num_domains"), ("latent_dim", "latent_dim"),
                                                               ("style_dim", "style_dim")),
                "use `latent` or `reference`", "domain_names.txt", ("latent_guided", "reference_guided"), "D"),
    "v1": Table("v1", "StarGAN v1", V1_SIGNATURES, "translate",
                tuple((dim, "image_size") for dim in _SQUARE) + (("C", "c_dim"),), "use `translate` with --attrs",
                "attribute_names.txt", ("translate",), "C"),
}


def table_of(signature_names) -> Table:
    """The table whose signatures an export has (v2's when it has neither table's all)."""
    present = set(signature_names)
    return next((t for t in TABLES.values() if set(t.names) <= present), TABLES["v2"])


def signature(name: str) -> Signature:
    """The v2 table's entry for a signature name (`serving_default` is the default signature)."""
    return BY_NAME[DEFAULT_SIGNATURE if name == SERVING_DEFAULT else name]


def dimensions(model, batch=1, count=1) -> dict:
    """The v2 table's dimension values for a v2 `model` config section."""
    return TABLES["v2"].dimensions(model, batch, count)


def markdown_table(family: str = "v2") -> str:
    """A family's contract as the Markdown table the serving docs show (a test keeps the docs equal to it)."""
    def tensors(items):
        return ", ".join(f"`{t.name}` {t.dtype} {t.shape_text()}" for t in items)

    table = TABLES[family]
    lines = ["| signature | inputs | outputs | TFLite | what it computes |", "|---|---|---|---|---|"]
    for s in table.signatures:
        name = f"`{s.name}`" + (f" (= `{SERVING_DEFAULT}`)" if s.name == table.default else "")
        lines.append(f"| {name} | {tensors(s.inputs)} | {tensors(s.outputs)} | {'yes' if s.tflite else 'no'} "
                     f"| {s.doc} |")
    return "\n".join(lines)
