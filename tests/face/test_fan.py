"""The face-landmark network and the face masks equal an independent PyTorch reference, and so does G with them."""

import numpy as np
import pytest
import tensorflow as tf

from tests.harness.components import require

torch = require("torch")
torch.set_num_threads(1)  # beside TensorFlow's thread pool, torch's own makes these networks slower

from stargan_keras.core.errors import UserError  # noqa: E402
from stargan_keras.face.fan import (INPUT_SIZE, WING_URL, FanCheckpointError, build_fan, fan_from_file,  # noqa: E402
                                    fan_variables, load_fan, load_fan_checkpoint, save_fan)
from stargan_keras.face.masks import HEATMAP_CUT, face_masks, heatmaps, masks_from_heatmaps  # noqa: E402
from stargan_keras.core.layers import torch_named_variables  # noqa: E402
from stargan_keras.v2.networks import Generator  # noqa: E402
from stargan_keras.core.torch_io import assign_state_dict  # noqa: E402
from tests.harness.checks import assert_converted  # noqa: E402
from tests.references import torch_fan as ref  # noqa: E402
from tests.references.torch_stargan_v2 import Generator as TorchGenerator  # noqa: E402
from tests.references.torch_stargan_v2 import he_init, perturb  # noqa: E402

BATCH = 2
HEATMAP_RTOL = 1.5e-5  # of the largest heatmap value; measured 1.5e-6
MASK_ATOL = 1e-4  # measured 1.3e-5 (away from the cut)
NEAR_CUT = 1e-5  # heatmap values this close to the 0.1 cut may fall on either side of it
MAX_FLIPPED = 1e-4  # share of mask pixels allowed to differ because of them (0.01%)
# The compiled translator and the eager G round differently; other masks change the output by more than 1e-3.
TRANSLATOR_ATOL = 5e-5  # measured 1.9e-6, and 1.2e-5 once under load (the threads split the sums otherwise)


def _nchw(x):
    return torch.from_numpy(np.ascontiguousarray(np.asarray(x).transpose(0, 3, 1, 2)))


def _nhwc(t):
    return t.detach().numpy().transpose(0, 2, 3, 1)


@pytest.fixture(scope="module")
def fans(tmp_path_factory):
    """(PyTorch reference FAN with random weights and running statistics, its wing.ckpt, the converted Keras FAN)."""
    torch_fan = ref.randomize(ref.TorchFAN(), seed=0)
    path = ref.save_wing_checkpoint(torch_fan, tmp_path_factory.mktemp("fan") / "wing.ckpt")
    return torch_fan, path, load_fan_checkpoint(path)


@pytest.fixture(scope="module")
def outputs(fans):
    """Heatmaps and masks of both FANs for one batch of 256 px images, and the gradient of the masks."""
    torch_fan, _, fan = fans
    x = tf.constant(np.random.default_rng(1).uniform(-1, 1, (BATCH, INPUT_SIZE, INPUT_SIZE, 3)), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        heat = heatmaps(fan, x)
        masks = masks_from_heatmaps(heat)
    torch_heat = ref.get_heatmap(torch_fan, _nchw(x.numpy()), masks=False)
    return dict(heat=heat.numpy(), masks=[m.numpy() for m in masks], grad=tape.gradient(masks, x),
                torch_heat=torch_heat, torch_masks=[_nhwc(m) for m in ref.masks_from_heatmaps(torch_heat)])


def near_cut_pixels(torch_heat):
    """The mask pixels fed by a heatmap value within NEAR_CUT of the cut: the reference's own shifts and sums
    applied to the indicator of those values (a pair, one map per mask)."""
    near = ((ref.upsample_heatmaps(torch_heat) - HEATMAP_CUT).abs() < NEAR_CUT).float()
    return [_nhwc(m) > 0 for m in ref.arrange(near)]


def compare_masks(got, want, torch_heat, what):
    """Assert masks within MASK_ATOL except on pixels near the cut (at most MAX_FLIPPED of them); return the
    pixels that differ."""
    flipped = []
    for index, (g, w, near) in enumerate(zip(got, want, near_cut_pixels(torch_heat)), start=1):
        assert g.shape == w.shape == (BATCH, INPUT_SIZE, INPUT_SIZE, 1), what
        differ = np.abs(g - w) > MASK_ATOL
        print(f"{what} mask {index}: max |diff| off the cut {np.abs(g - w)[~near].max():.2e}, "
              f"{int(near.sum())} pixels near the cut, {int(differ.sum())} differ")
        assert not (differ & ~near).any(), f"{what} mask {index} differs away from the 0.1 cut"
        assert differ.mean() <= MAX_FLIPPED, what
        flipped.append(differ)
    return flipped


def test_heatmaps_match_pytorch(outputs):
    got, want = outputs["heat"], _nhwc(outputs["torch_heat"])
    assert got.shape == want.shape == (BATCH, 64, 64, 98)
    error = np.abs(got - want).max() / np.abs(want).max()
    print(f"heatmaps: max |diff| / max |value| = {error:.2e}")
    assert error <= HEATMAP_RTOL


def test_masks_match_pytorch_and_are_not_trivial(outputs):
    compare_masks(outputs["masks"], outputs["torch_masks"], outputs["torch_heat"], "keras")
    for mask in outputs["torch_masks"]:
        print(f"mask: {np.mean(mask > 0):.1%} nonzero, {np.mean(mask >= 1):.1%} saturated")
        assert 0.05 < np.mean(mask > 0) < 0.95  # the random FAN's masks cover part of each image
        assert np.mean((mask > 0) & (mask < 1)) > 0.05  # and vary within it
    assert not np.array_equal(outputs["torch_masks"][0], outputs["torch_masks"][1])


def test_no_gradient_flows_through_the_masks(outputs, fans):
    assert outputs["grad"] is None
    fan = fans[2]
    assert not fan.trainable and not fan.trainable_weights


def test_g_with_face_masks_matches_pytorch_g_with_its_masks(fans):
    """A narrow 64 px CelebA-HQ-like G (w_hpf 1): skips at 32 px (mask 1) and 64 px (mask 2)."""
    torch_fan, _, fan = fans
    img_size, style_dim = 64, 16
    torch.manual_seed(3)
    torch_g = TorchGenerator(img_size, style_dim, max_conv_dim=32, w_hpf=1.0, base_dim=8)
    he_init(torch_g)
    perturb(torch_g)
    torch_g.eval()
    g = Generator(img_size, style_dim, max_conv_dim=32, w_hpf=1.0, base_dim=8)
    g(*g.symbolic_inputs())
    assign_state_dict(torch_named_variables(g), {k: v.numpy() for k, v in torch_g.state_dict().items()})

    rng = np.random.default_rng(4)
    x = rng.uniform(-1, 1, (BATCH, img_size, img_size, 3)).astype("float32")
    s = rng.standard_normal((BATCH, style_dim)).astype("float32")
    masks = [m.numpy() for m in face_masks(fan, x)]
    torch_heat = ref.get_heatmap(torch_fan, _nchw(x), masks=False)
    torch_masks = [_nhwc(m) for m in ref.masks_from_heatmaps(torch_heat)]
    flipped = compare_masks(masks, torch_masks, torch_heat, "64 px input")
    # Where a value sat on the cut, the reference G gets the Keras mask value: G's own parity is the question here.
    torch_masks = [np.where(f, m, t) for f, m, t in zip(flipped, masks, torch_masks)]
    with torch.no_grad():
        want = _nhwc(torch_g(_nchw(x), torch.from_numpy(s), masks=[_nchw(m) for m in torch_masks]))
        without = _nhwc(torch_g(_nchw(x), torch.from_numpy(s)))
    got = np.asarray(g(x, s, masks=masks))
    assert np.abs(want - without).max() > 0.1, "the masks must change G's output"
    assert_converted(got, want, "G with masks")


def _save_state(path, state, entry="state_dict"):
    torch.save({entry: state}, path)
    return path


def test_checkpoint_that_does_not_fit_names_keys_and_shapes(fans, tmp_path):
    state = dict(ref.TorchFAN(num_landmarks=68).state_dict())  # the 68-landmark FAN of face-alignment
    del state["m0.b2_plus_1.conv2.weight"]
    state["extra.weight"] = torch.zeros(3)
    with pytest.raises(FanCheckpointError) as info:
        load_fan_checkpoint(_save_state(tmp_path / "other.ckpt", state))
    message = str(info.value)
    assert isinstance(info.value, UserError)
    assert "m0.b2_plus_1.conv2.weight missing (expected shape (64, 128, 3, 3))" in message
    assert "l0.weight expected shape (99, 256, 1, 1), found (69, 256, 1, 1)" in message
    assert "l0.bias expected shape (99,), found (69,)" in message
    assert "extra.weight (3,)" in message and WING_URL in message
    with pytest.raises(FanCheckpointError, match="neither a 'state_dict' nor a 'fan' entry.*generator"):
        load_fan_checkpoint(_save_state(tmp_path / "nets.ckpt", {"x": torch.zeros(1)}, entry="generator"))


def _same_weights(a, b):
    first, second = fan_variables(a), fan_variables(b)
    assert first.keys() == second.keys()
    return all(np.array_equal(np.asarray(first[k]), np.asarray(second[k])) for k in first)


def test_every_checkpoint_tensor_has_a_variable_of_its_name(fans):
    torch_fan, _, fan = fans
    state = torch_fan.state_dict()
    assert set(fan_variables(fan)) == {key for key, value in state.items() if value.is_floating_point()}
    assert {key for key, value in state.items() if not value.is_floating_point()} == {
        key for key in state if key.endswith("num_batches_tracked")}


def test_fan_entry_with_data_parallel_keys_and_extra_keys_loads(fans, tmp_path):
    torch_fan, _, fan = fans
    path = ref.save_wing_checkpoint(torch_fan, tmp_path / "100000_nets_ema.ckpt", entry="fan", prefix="module.")
    contents = torch.load(path, weights_only=True)
    contents["fan"]["module.unused.weight"] = torch.ones(2)  # ignored, as the authors' loader ignores extra keys
    contents["generator"] = {"from_rgb.weight": torch.zeros(1)}
    torch.save(contents, path)
    assert _same_weights(load_fan_checkpoint(path), fan)


def test_converted_fan_saves_and_loads_in_keras_format(fans, tmp_path):
    fan = fans[2]
    path = save_fan(fan, tmp_path / "model" / "fan.weights.h5")
    assert _same_weights(fan_from_file(path), fan)
    with pytest.raises(FanCheckpointError, match="does not exist.*saved by save_fan"):
        fan_from_file(tmp_path / "missing.weights.h5")
    with pytest.raises(FanCheckpointError, match="does not exist.*wing.ckpt"):  # other names: the authors' format
        fan_from_file(tmp_path / "missing.ckpt")
    (tmp_path / "junk.weights.h5").write_bytes(b"not hdf5")
    with pytest.raises(FanCheckpointError, match="not a converted FAN"):
        load_fan(tmp_path / "junk.weights.h5")
    with pytest.raises(FanCheckpointError, match=r"\.weights\.h5"):
        save_fan(fan, tmp_path / "fan.h5")


def test_fan_stays_float32_under_mixed_precision():
    import keras

    keras.config.set_dtype_policy("mixed_float16")
    fan = build_fan()
    assert {w.dtype for w in fan.weights} == {"float32"}
    assert fan.output.dtype == "float32"
    assert all(layer.compute_dtype == "float32" for layer in fan.layers[1:])  # every layer after the input


@pytest.mark.slow
def test_masks_convert_to_tflite_builtins_and_match(fans, outputs, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    _, _, fan = fans
    module = tf.Module()
    module.weights = [variable.value for variable in fan.weights]  # the tf.Variables, as the export tracks them
    module.masks = tf.function(lambda images: dict(zip(("mask_1", "mask_2"), face_masks(fan, images))),
                               input_signature=[tf.TensorSpec([None, 128, 128, 3], tf.float32)])
    tf.saved_model.save(module, str(tmp_path / "saved"), signatures={"serving_default": module.masks})
    converter = tf.lite.TFLiteConverter.from_saved_model(str(tmp_path / "saved"))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    runner = Interpreter(model_content=converter.convert()).get_signature_runner()
    x = np.random.default_rng(5).uniform(-1, 1, (BATCH, 128, 128, 3)).astype("float32")
    got = runner(images=x)
    torch_heat = ref.get_heatmap(fans[0], _nchw(x), masks=False)
    compare_masks([got["mask_1"], got["mask_2"]], [_nhwc(m) for m in ref.masks_from_heatmaps(torch_heat)],
                  torch_heat, "tflite")


@pytest.fixture(scope="module")
def face_translator(fans, tiny_config):
    """A translator of a tiny w_hpf 1 generator at 64 px with the third FAN, shared by the translator tests (each
    traces what it calls once)."""
    from stargan_keras.v2.inference import Translator
    from stargan_keras.v2.networks import build_networks

    config = tiny_config(img_size=64, w_hpf=1.0, num_domains=2)
    networks = build_networks(config.model, with_discriminator=False)
    networks.fan = fans[2]
    return Translator(config, networks)


def _images(seed):
    """BATCH random 64 px images."""
    return np.random.default_rng(seed).uniform(-1, 1, (BATCH, 64, 64, 3)).astype("float32")


@pytest.mark.slow
def test_translator_reuses_masks_it_was_given_and_computes_them_otherwise(fans, face_translator, tiny_config):
    """Grids and evaluation translate one x many times with the masks of one `face_masks(x)` call: the result must be
    G with the masks of x, whether the masks come in or are computed; other masks must change it."""
    from stargan_keras.v2.inference import Translator
    from stargan_keras.v2.networks import build_networks

    translator, x = face_translator, _images(seed=6)
    config, networks = translator.config, translator.networks
    z = np.random.default_rng(9).standard_normal((BATCH, config.model.latent_dim)).astype("float32")
    masks = translator.face_masks(x)
    want = networks.generator(x, translator.style_from_latent(z, [0, 1]), face_masks(fans[2], x))
    given, computed = translator.latent_guided(x, [0, 1], z, masks=masks), translator.latent_guided(x, [0, 1], z)
    print(f"translator vs eager G: max |diff| {np.abs(np.asarray(given) - want).max():.2e} (masks given), "
          f"{np.abs(np.asarray(computed) - want).max():.2e} (computed)")
    np.testing.assert_allclose(given, want, atol=TRANSLATOR_ATOL)
    np.testing.assert_allclose(computed, want, atol=TRANSLATOR_ATOL)
    others = translator.face_masks(x[::-1])
    assert np.abs(np.asarray(translator.latent_guided(x, [0, 1], z, masks=others)) - want).max() > 1e-3
    assert Translator(tiny_config(), build_networks(tiny_config().model, with_discriminator=False)).face_masks(x) is None


@pytest.mark.slow
def test_sample_tables_run_the_fan_once_per_source(face_translator, monkeypatch):
    """`sample`'s grids and videos translate each source with many styles: the FAN must see each source once, and
    the table must be what translating every (style, source) pair on its own gives."""
    from stargan_keras.v2.figures import generate_table
    from stargan_keras.core.imaging import to_uint8

    translator, x = face_translator, _images(seed=7)
    styles = np.random.default_rng(8).standard_normal((3, translator.config.model.style_dim)).astype("float32")
    seen = []
    face_masks_of = translator._face_masks
    monkeypatch.setattr(translator, "_face_masks", lambda images: seen.append(len(images)) or face_masks_of(images))
    table = generate_table(translator, x, styles)
    assert sum(seen) == BATCH
    for k, style in enumerate(styles):
        alone = to_uint8(translator.synthesize(x, np.repeat(style[None], BATCH, axis=0)))
        assert np.abs(table[k].astype(int) - alone.astype(int)).max() <= 1, f"style {k}"
