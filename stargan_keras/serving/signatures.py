"""The serving contract: every signature of an exported model, its inputs and outputs, in one table.

The export, the TFLite converter, the warmup records, the client and the docs read this
table; nothing else lists signature or tensor names. Shapes are tuples of dimension
names and numbers: `N` the batch, `H`/`W` any image size, `S` the model's image size,
`K` the number of domain names asked about, `D` the model's number of domains, and
`latent_dim` / `style_dim` from its config. A `scalar_ok` input may also be a scalar.

Every input and output has the batch first (psi may also be a scalar), so TF Serving's
`--enable_batching` can merge concurrent requests of one signature.
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


def signature(name: str) -> Signature:
    """The table's entry for a signature name (`serving_default` is the default signature)."""
    return BY_NAME[DEFAULT_SIGNATURE if name == SERVING_DEFAULT else name]


def dimensions(model, batch=1, count=1) -> dict:
    """The value of every dimension name for a model config (anything with img_size, num_domains,
    latent_dim and style_dim): `N` = batch, `K` = count, images S x S."""
    size = model.img_size
    return {"N": batch, "K": count, "H": size, "W": size, "S": size, "D": model.num_domains,
            "latent_dim": model.latent_dim, "style_dim": model.style_dim}


def markdown_table() -> str:
    """The contract as the Markdown table the serving docs show (a test keeps the docs equal to it)."""
    def tensors(items):
        return ", ".join(f"`{t.name}` {t.dtype} {t.shape_text()}" for t in items)

    lines = ["| signature | inputs | outputs | TFLite | what it computes |", "|---|---|---|---|---|"]
    for s in SIGNATURES:
        name = f"`{s.name}`" + (f" (= `{SERVING_DEFAULT}`)" if s.name == DEFAULT_SIGNATURE else "")
        lines.append(f"| {name} | {tensors(s.inputs)} | {tensors(s.outputs)} | {'yes' if s.tflite else 'no'} "
                     f"| {s.doc} |")
    return "\n".join(lines)
