"""The exported SavedModel, run through TensorFlow's session-based loader (what TF Serving executes),
computes what the Keras EMA networks compute, rejects bad inputs by name, and carries its warmup file."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from stargan_keras.core.imaging import MAX_IMAGE_PIXELS, from_uint8
from stargan_keras.serving.export import existing_versions, resolve_version
from stargan_keras.serving.signatures import NAMES
from stargan_keras.serving.warmup import WARMUP_FILE
from tests.harness.checks import assert_quantized, assert_style_codes
from tests.harness.serving import (SHARED_MEAN_SAMPLES as MEAN_SAMPLES, bmp_declaring, encoded, gif_frame_bomb,
                                   jpeg_declaring, png_bomb)

DOMAINS = ["cat", "dog", "wild"]


pytestmark = pytest.mark.slow  # builds, traces and writes a whole SavedModel (or reads the shared one)

def run(session, signature, **inputs):
    return session.run(signature, inputs)


def smooth_images(n, size, seed=0):
    """Gradients with random tilts: natural-ish images whose translations vary across the frame."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    images = []
    for _ in range(n):
        a = rng.uniform(-1, 1, (3, 3))
        channels = [np.clip(0.5 + 0.5 * (a[c, 0] * xx + a[c, 1] * yy + a[c, 2] * xx * yy), 0, 1) for c in range(3)]
        images.append(np.round(np.stack(channels, -1) * 255).astype(np.uint8))
    return np.stack(images)


def keras_translate(model, images, styles):
    """The Keras generator's [-1, 1] floats, which the served uint8 images quantize (`assert_quantized`)."""
    return model.generator(from_uint8(images), styles).numpy()


def keras_mean_styles(model, n=MEAN_SAMPLES):
    """Each domain's mean of F over n fixed z (stateless seed [0, 0]), as the export computes them."""
    cfg = model.config.model
    z = tf.random.stateless_normal((n, cfg.latent_dim), seed=[0, 0])
    return np.stack([model.mapping_network(z, np.full((n,), d, np.int32)).numpy().mean(axis=0, dtype=np.float64)
                     for d in range(cfg.num_domains)])


def keras_latent_styles(model, y, z, psi):
    styles = model.mapping_network(z, y).numpy()
    if psi == 1.0:
        return styles
    s_avg = keras_mean_styles(model)[y]
    return s_avg + psi * (styles - s_avg)


@pytest.mark.parametrize("psi", [1.0, 0.5])
def test_latent_guided_matches_keras(v2_served, psi):
    model, _, loaded = v2_served
    images = smooth_images(3, 32)
    y = np.array([0, 2, 1], np.int32)
    z = np.random.default_rng(1).standard_normal((3, 16)).astype(np.float32)
    expected = keras_translate(model, images, keras_latent_styles(model, y, z, psi))
    for signature in ("latent_guided", "serving_default"):
        out = run(loaded, signature, image=images, target_domain=y, z=z, psi=np.float32(psi))
        assert_quantized(out["image"], expected)
    style = run(loaded, "style_from_latent", target_domain=y, z=z, psi=np.float32(psi))["style"]
    assert_style_codes(style, keras_latent_styles(model, y, z, psi))
    per_image = np.array([psi, 1.0, psi], np.float32)  # psi may also be given per image (batchable)
    style = run(loaded, "style_from_latent", target_domain=y, z=z, psi=per_image)["style"]
    assert_style_codes(style[[0, 2]], keras_latent_styles(model, y, z, psi)[[0, 2]])
    assert_style_codes(style[1], keras_latent_styles(model, y, z, 1.0)[1])


def test_reference_guided_matches_keras(v2_served):
    model, _, loaded = v2_served
    images, references = smooth_images(2, 32, seed=1), smooth_images(2, 32, seed=2)
    y = np.array([1, 2], np.int32)
    styles = model.style_encoder(from_uint8(references), y).numpy()
    out = run(loaded, "reference_guided", image=images, reference=references, reference_domain=y)
    assert_quantized(out["image"], keras_translate(model, images, styles))
    style = run(loaded, "style_from_reference", reference=references, reference_domain=y)["style"]
    assert_style_codes(style, styles)
    synthesized = run(loaded, "synthesize", image=images, style=styles)["image"]
    assert_quantized(synthesized, keras_translate(model, images, styles))


def test_inputs_of_any_size_are_resized_with_antialiasing(v2_served):
    model, _, loaded = v2_served
    images = smooth_images(1, 80, seed=3)[:, :, 8:72]  # 80 x 64, not square
    y, z = np.array([1], np.int32), np.random.default_rng(2).standard_normal((1, 16)).astype(np.float32)
    resized = tf.image.resize(images.astype(np.float32), [32, 32], antialias=True).numpy()
    expected = model.generator(resized / 127.5 - 1.0, model.mapping_network(z, y)).numpy()
    out = run(loaded, "latent_guided", image=images, target_domain=y, z=z, psi=np.float32(1.0))["image"]
    assert_quantized(out, expected)


def png(image):
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def test_bytes_signatures_decode_translate_and_encode_png(v2_served):
    model, _, loaded = v2_served
    images, references = smooth_images(2, 32, seed=4), smooth_images(2, 32, seed=5)
    y = np.array([2, 0], np.int32)
    z = np.random.default_rng(3).standard_normal((2, 16)).astype(np.float32)
    encoded = np.array([png(im) for im in images], dtype=object)
    out = run(loaded, "latent_guided_bytes", image_bytes=encoded, target_domain=y, z=z, psi=np.float32(1.0))
    decoded = np.stack([np.asarray(Image.open(io.BytesIO(b))) for b in out["image_bytes"]])
    assert_quantized(decoded, keras_translate(model, images, model.mapping_network(z, y)))
    out = run(loaded, "reference_guided_bytes", image_bytes=encoded,
              reference_bytes=np.array([png(im) for im in references], dtype=object), reference_domain=y)
    decoded = np.stack([np.asarray(Image.open(io.BytesIO(b))) for b in out["image_bytes"]])
    styles = model.style_encoder(from_uint8(references), y)
    assert_quantized(decoded, keras_translate(model, images, styles))


def test_metadata_names_domains_and_sizes(v2_served, tmp_path):
    _, path, loaded = v2_served
    out = run(loaded, "metadata", domain=np.array([b"wild", b"", b"cat"], dtype=object))
    assert out["domain_names"].shape == (3, 3) and [n.decode() for n in out["domain_names"][1]] == DOMAINS
    assert out["domain_index"].tolist() == [2, -1, 0]
    for key, value in {"img_size": 32, "num_domains": 3, "latent_dim": 16, "style_dim": 64}.items():
        assert out[key].tolist() == [value] * 3  # one row per entry: TF Serving's batching splits outputs by row
    assert (path / "assets" / "domain_names.txt").read_text().split() == DOMAINS


def error_message(loaded, signature, **inputs):
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        run(loaded, signature, **inputs)
    return info.value.message


def test_bad_inputs_fail_with_messages_naming_them(v2_served):
    _, _, loaded = v2_served
    image = smooth_images(1, 32)
    ok = {"image": image, "target_domain": np.array([0], np.int32),
          "z": np.zeros((1, 16), np.float32), "psi": np.float32(1.0)}
    cases = [
        ("latent_guided", {"target_domain": np.array([3], np.int32)},
         "target_domain must hold domain indices in [0, 3) (0=cat, 1=dog, 2=wild)"),
        ("latent_guided", {"target_domain": np.array([-1], np.int32)}, "target_domain must hold domain indices"),
        ("latent_guided", {"target_domain": np.array([0, 1], np.int32)}, "target_domain must be int32 [N]"),
        ("latent_guided", {"image": np.zeros((1, 32, 32, 4), np.uint8)}, "image must be uint8 [N, H, W, 3]"),
        ("latent_guided", {"image": np.zeros((32, 32, 3), np.uint8)}, "image must be uint8 [N, H, W, 3]"),
        ("latent_guided", {"image": np.zeros((1, 0, 32, 3), np.uint8)}, "image must be uint8 [N, H, W, 3]"),
        ("latent_guided", {"z": np.zeros((1, 15), np.float32)}, "z must be float32 [N, 16]"),
        ("latent_guided", {"psi": np.ones((2,), np.float32)}, "psi must be a float32 scalar or [N]"),
        ("latent_guided", {"psi": np.ones((1, 1), np.float32)}, "psi must be a float32 scalar or [N]"),
    ]
    for signature, change, expected in cases:
        assert expected in error_message(loaded, signature, **{**ok, **change})
    message = error_message(loaded, "reference_guided", image=image, reference=np.zeros((2, 32, 32, 3), np.uint8),
                            reference_domain=np.array([0], np.int32))
    assert "reference must be uint8 [N, H, W, 3]" in message
    message = error_message(loaded, "synthesize", image=image, style=np.zeros((1, 8), np.float32))
    assert "style must be float32 [N, 64]" in message
    message = error_message(loaded, "latent_guided_bytes", image_bytes=np.array([b"not an image"], dtype=object),
                            target_domain=np.array([0], np.int32), z=np.zeros((1, 16), np.float32),
                            psi=np.float32(1.0))
    assert "image_bytes" in message and "not JPEG, PNG" in message
    assert "horse" in error_message(loaded, "metadata", domain=np.array([b"horse"], dtype=object))
    out = run(loaded, "latent_guided", **ok)  # the session still works after the errors
    assert out["image"].shape == (1, 32, 32, 3)


def test_warmup_file_holds_one_predict_request_per_signature(v2_served):
    from tensorflow_serving.apis import prediction_log_pb2

    _, path, loaded = v2_served
    logs = []
    for record in tf.data.TFRecordDataset(str(path / WARMUP_FILE)):
        log = prediction_log_pb2.PredictionLog()
        log.ParseFromString(record.numpy())
        logs.append(log)
    names = [log.predict_log.request.model_spec.signature_name for log in logs]
    assert sorted(names) == sorted(NAMES + ("serving_default",))
    for log in logs:  # each replays without error, as TF Serving does when it loads the model
        request = log.predict_log.request
        run(loaded, request.model_spec.signature_name,
            **{k: tf.make_ndarray(v) for k, v in request.inputs.items()})


def test_versions_count_up_and_the_export_is_staged_atomically(v2_served, tmp_path):
    _, path, _ = v2_served
    assert path.name == "1" and [p.name for p in path.parent.iterdir()] == ["1"]  # no staging directory left
    base = tmp_path / "stargan"
    assert resolve_version(base, None) == 1
    (base / "7").mkdir(parents=True)
    (base / "notes").mkdir()
    (base / ".9.tmp-abc").mkdir()
    assert existing_versions(base) == [7] and resolve_version(base, None) == 8
    assert resolve_version(base, 3) == 3
    with pytest.raises(ValueError, match="already exists"):
        resolve_version(base, 7)


def test_non_finite_codes_and_empty_batches_fail_naming_the_input(v2_served):
    """In every signature that takes them, tensor and bytes variants: NaN or inf in z, psi or a style code is
    an error naming the input and the rows, not an arbitrary image; a batch of 0 is an error naming the input,
    not a shape error inside the generator."""
    _, _, loaded = v2_served
    image = smooth_images(2, 32)
    z, psi, y = np.zeros((2, 16), np.float32), np.ones((2,), np.float32), np.array([0, 1], np.int32)
    nan_z, inf_psi = z.copy(), psi.copy()
    nan_z[1, 3], inf_psi[0] = np.nan, -np.inf
    bytes_ = np.array([png(im) for im in image], dtype=object)
    latent = {"image": image, "target_domain": y, "z": z, "psi": psi}
    latent_bytes = {"image_bytes": bytes_, "target_domain": y, "z": z, "psi": psi}
    codes = {"target_domain": y, "z": z, "psi": psi}
    style = np.zeros((2, 64), np.float32)
    style[0, 0] = np.inf
    cases = [
        ("latent_guided", {**latent, "z": nan_z}, "z must be finite (no NaN or inf); latent codes that are not, "
                                                  "by index:] [1]"),
        ("latent_guided", {**latent, "psi": inf_psi}, "psi must be finite"),
        ("latent_guided", {**latent, "psi": np.float32(np.nan)}, "psi must be finite"),
        ("serving_default", {**latent, "z": nan_z}, "z must be finite"),
        ("latent_guided_bytes", {**latent_bytes, "z": nan_z}, "z must be finite"),
        ("latent_guided_bytes", {**latent_bytes, "psi": inf_psi}, "psi must be finite"),
        ("style_from_latent", {**codes, "z": nan_z}, "z must be finite"),
        ("style_from_latent", {**codes, "psi": inf_psi}, "psi must be finite"),
        ("synthesize", {"image": image, "style": style}, "style must be finite (no NaN or inf); style codes that "
                                                         "are not, by index:] [0]"),
    ]
    empty_image, empty_y = np.zeros((0, 32, 32, 3), np.uint8), np.zeros((0,), np.int32)
    empty_z, empty_bytes = np.zeros((0, 16), np.float32), np.array([], dtype=object)
    cases += [
        ("latent_guided", {"image": empty_image, "target_domain": empty_y, "z": empty_z, "psi": np.float32(1)},
         "image must be uint8 [N, H, W, 3] RGB images with N, H, W >= 1"),
        ("reference_guided", {"image": empty_image, "reference": empty_image, "reference_domain": empty_y},
         "image must be uint8 [N, H, W, 3] RGB images with N, H, W >= 1"),
        ("style_from_reference", {"reference": empty_image, "reference_domain": empty_y},
         "reference must be uint8 [N, H, W, 3] RGB images with N, H, W >= 1"),
        ("synthesize", {"image": empty_image, "style": np.zeros((0, 64), np.float32)}, "with N, H, W >= 1"),
        ("style_from_latent", {"target_domain": empty_y, "z": empty_z, "psi": np.float32(1)},
         "target_domain must be int32 [N] with N >= 1"),
        ("latent_guided_bytes", {"image_bytes": empty_bytes, "target_domain": empty_y, "z": empty_z,
                                 "psi": np.float32(1)}, "image_bytes must be a string [N] of encoded JPEG/PNG "
                                                        "images with N >= 1"),
        ("reference_guided_bytes", {"image_bytes": empty_bytes, "reference_bytes": empty_bytes,
                                    "reference_domain": empty_y}, "image_bytes must be a string [N]"),
    ]
    for signature, inputs, expected in cases:
        assert expected in error_message(loaded, signature, **inputs), (signature, expected)
    assert run(loaded, "latent_guided", **latent)["image"].shape == (2, 32, 32, 3)  # still answering


def test_encoded_images_over_the_pixel_limit_fail_before_decoding(v2_served):
    """Decompression bombs in every format the bytes signatures take: refused from their headers (a PNG
    declaring 20000 x 20000 would take 1.2 GB to decode), naming the input, the index and the limit."""
    _, _, loaded = v2_served
    good = png(smooth_images(1, 32)[0])
    y, z = np.array([0, 1], np.int32), np.zeros((2, 16), np.float32)
    limit = f"images over the limit of {MAX_IMAGE_PIXELS} pixels (width x height; export --max-image-pixels)"
    for bomb, pixels in [(png_bomb(20000, 20000), 400_000_000), (jpeg_declaring(60000, 60000), 3_600_000_000),
                         (gif_frame_bomb(9000), 81_000_000), (bmp_declaring(20000, 20000), 400_000_000)]:
        message = error_message(loaded, "latent_guided_bytes", image_bytes=np.array([good, bomb], dtype=object),
                                target_domain=y, z=z, psi=np.float32(1))
        assert f"image_bytes: {limit}, by index:] [1] [pixels their headers declare:] [{pixels}]" in message
        message = error_message(loaded, "reference_guided_bytes", image_bytes=np.array([good, good], dtype=object),
                                reference_bytes=np.array([bomb, good], dtype=object), reference_domain=y)
        assert f"reference_bytes: {limit}, by index:] [0]" in message
    huge_gif = np.array([good, b"GIF89a" + bytes(MAX_IMAGE_PIXELS // 4)], dtype=object)  # its walk would cost GBs
    message = error_message(loaded, "latent_guided_bytes", image_bytes=huge_gif, target_domain=y, z=z,
                            psi=np.float32(1))
    assert f"image_bytes: GIF files over {MAX_IMAGE_PIXELS // 4} bytes (a quarter of the pixel limit" in message
    formats = [encoded(smooth_images(1, 40)[0], fmt) for fmt in ("PNG", "JPEG", "GIF", "BMP")]  # decoded
    out = run(loaded, "latent_guided_bytes", image_bytes=np.array(formats, dtype=object),
              target_domain=np.zeros((4,), np.int32), z=np.zeros((4, 16), np.float32), psi=np.float32(1))
    assert out["image_bytes"].shape == (4,)


def test_the_version_directory_is_readable_by_other_users(v2_served):
    """TF Serving may run as another user: directories 0755 and files 0644, not mkdtemp's 0700."""
    _, path, _ = v2_served
    modes = {p: p.stat().st_mode & 0o777 for p in [path, *path.rglob("*")]}
    assert {oct(m) for p, m in modes.items() if p.is_dir()} == {"0o755"}
    assert {oct(m) for p, m in modes.items() if not p.is_dir()} == {"0o644"}


def test_an_output_that_is_not_a_serving_base_directory_is_refused(tmp_path):
    from stargan_keras.serving.export import ExportError, check_output

    base = tmp_path / "models"
    (base / "3").mkdir(parents=True)
    (base / ".4.tmp-x1y2").mkdir()  # what an interrupted export leaves
    assert check_output(base) == 4 and check_output(tmp_path / "new") == 1
    (base / "thesis.txt").write_text("years of work")
    (base / "sub").mkdir()
    with pytest.raises(ExportError, match=r"--output .*models is not a TF Serving model base directory: it holds "
                                          r"sub/, thesis.txt.*--overwrite"):
        check_output(base)
    assert check_output(base, overwrite=True) == 4
    assert check_output(base, 3, overwrite=True) == 3  # replaced, atomically
    with pytest.raises(ExportError, match=r"--output .*thesis.txt is a file"):
        check_output(base / "thesis.txt", overwrite=True)
    assert (base / "thesis.txt").read_text() == "years of work"
