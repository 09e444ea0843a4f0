"""Load with hostile requests (issue 15, "Done when" 2): 4 concurrent gRPC clients against the in-test TF Serving
(tests.harness.serving, loopback only) running in a process of its own, each sending ROUNDS rounds of a mix of
good requests and every kind of bad one (each round: every request once, in a random order): decompression bombs
in each image format, non-finite codes, empty batches, wrong shapes, bad domains, non-image bytes, a missing
input. A fixed count rather than a duration: every hostile request reaches the server CLIENTS x ROUNDS times
whatever the machine's speed, enough for a leak per request to show in the memory check.

Every good response equals the reference response of its request (computed once, before the load, and checked
against the Translator with the serving contract's rule), every bad request is an INVALID_ARGUMENT naming its
input, the server still answers `metadata` afterwards, and its peak resident memory during the load stays under
MEMORY_FACTOR times its steady-state value (its resident memory once it has served each good request). The test
prints the request rate and the memory figures.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import collections
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from stargan_keras.core.imaging import from_uint8
from stargan_keras.serving.client import ServingError, StarGANClient
from tests.harness.serving import bmp_declaring, encoded, gif_frame_bomb, jpeg_declaring, png_bomb
from tests.harness.checks import assert_quantized, assert_style_codes

pytestmark = pytest.mark.slow  # a server process and thousands of requests

REPO = Path(__file__).resolve().parents[2]
CLIENTS, ROUNDS, SECONDS = 4, 25, 600.0  # SECONDS: the clients' time limit (a hang), not the load's length
MEMORY_FACTOR = 1.5
LIMIT = "images over the limit of 67108864 pixels"


@pytest.fixture(scope="module")
def served(tmp_path_factory, v2_export):
    """(Translator, server address, server process): the shared export served by `python -m tests.harness.serving`."""
    root = tmp_path_factory.mktemp("load")
    translator, path = v2_export
    log = open(root / "server.log", "w")
    process = subprocess.Popen([sys.executable, "-m", "tests.harness.serving", str(path)], cwd=REPO,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        line = process.stdout.readline()
        assert line.startswith("port "), f"the server did not start: {(root / 'server.log').read_text()[-3000:]}"
        yield translator, f"127.0.0.1:{line.split()[1]}", process
    finally:
        process.stdin.close()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def good_requests(translator):
    """[(signature, inputs, check of a response against the Translator)], one per signature."""
    rng = np.random.default_rng(11)
    x, ref = (rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8) for _ in range(2))
    y, z = np.array([1, 2], np.int32), rng.standard_normal((2, 16)).astype(np.float32)
    psi, style = np.array([0.5, 1.0], np.float32), rng.standard_normal((2, 64)).astype(np.float32)
    files = [encoded(x[0], "PNG"), encoded(x[1], "JPEG")]
    decoded = np.stack([tf.io.decode_image(f, channels=3).numpy() for f in files])  # as the server decodes them
    png_files = np.array([encoded(image, "PNG") for image in x], dtype=object)
    ref_files = np.array([encoded(image, "PNG") for image in ref], dtype=object)

    def images(key, expected):
        return lambda out: assert_quantized(out[key], expected())

    def pngs(expected):
        return lambda out: assert_quantized(np.stack([tf.io.decode_png(b).numpy() for b in out["image_bytes"]]),
                                            expected())

    def metadata(out):
        cfg = translator.config.model
        assert out["domain_names"].tolist() == [[n.encode() for n in cfg.resolved_domain_names]]
        assert out["img_size"].tolist() == [cfg.img_size] and out["domain_index"].tolist() == [2]

    return [
        ("latent_guided", {"image": x, "target_domain": y, "z": z, "psi": psi},
         images("image", lambda: translator.latent_guided(from_uint8(x), y, z, psi))),
        ("reference_guided", {"image": x, "reference": ref, "reference_domain": y},
         images("image", lambda: translator.reference_guided(from_uint8(x), from_uint8(ref), y))),
        ("style_from_latent", {"target_domain": y, "z": z, "psi": np.float32(0.7)},
         lambda out: assert_style_codes(out["style"], translator.style_from_latent(z, y, 0.7))),
        ("style_from_reference", {"reference": ref, "reference_domain": y},
         lambda out: assert_style_codes(out["style"], translator.style_from_reference(from_uint8(ref), y))),
        ("synthesize", {"image": x, "style": style},
         images("image", lambda: translator.synthesize(from_uint8(x), style))),
        ("latent_guided_bytes", {"image_bytes": np.array(files, dtype=object), "target_domain": y, "z": z,
                                 "psi": psi},
         pngs(lambda: translator.latent_guided(from_uint8(decoded), y, z, psi))),
        ("reference_guided_bytes", {"image_bytes": png_files, "reference_bytes": ref_files, "reference_domain": y},
         pngs(lambda: translator.reference_guided(from_uint8(x), from_uint8(ref), y))),
        ("metadata", {"domain": np.array([b"wild"], dtype=object)}, metadata),
    ]


def bad_requests():
    """[(signature, inputs, a fragment of the INVALID_ARGUMENT message)]: every kind of bad request of issue 15."""
    image = np.full((1, 32, 32, 3), 128, np.uint8)
    y, z, psi = np.array([0], np.int32), np.zeros((1, 16), np.float32), np.ones((1,), np.float32)
    latent = {"image": image, "target_domain": y, "z": z, "psi": psi}
    good_file = np.array([encoded(image[0], "PNG")], dtype=object)
    latent_bytes = {**{k: v for k, v in latent.items() if k != "image"}, "image_bytes": good_file}
    reference_bytes = {"image_bytes": good_file, "reference_domain": y}
    nan_z, inf_psi = np.full((1, 16), np.nan, np.float32), np.array([np.inf], np.float32)
    nan_style = np.full((1, 64), -np.inf, np.float32)
    empty = {"image": image[:0], "target_domain": y[:0], "z": z[:0], "psi": psi[:0]}
    bombs = [png_bomb(20000, 20000), jpeg_declaring(60000, 60000), gif_frame_bomb(9000), bmp_declaring(20000, 20000)]
    return [
        *(("latent_guided_bytes", {**latent_bytes, "image_bytes": np.array([bomb], dtype=object)},
           f"image_bytes: {LIMIT}") for bomb in bombs),
        ("reference_guided_bytes", {**reference_bytes, "reference_bytes": np.array([bombs[0]], dtype=object)},
         f"reference_bytes: {LIMIT}"),
        ("latent_guided", {**latent, "z": nan_z}, "z must be finite"),
        ("latent_guided_bytes", {**latent_bytes, "psi": inf_psi}, "psi must be finite"),
        ("style_from_latent", {"target_domain": y, "z": nan_z, "psi": psi}, "z must be finite"),
        ("synthesize", {"image": image, "style": nan_style}, "style must be finite"),
        ("latent_guided", empty, "image must be uint8 [N, H, W, 3] RGB images with N, H, W >= 1"),
        ("latent_guided_bytes", {**latent_bytes, "image_bytes": good_file[:0], "target_domain": y[:0], "z": z[:0]},
         "image_bytes must be a string [N] of encoded JPEG/PNG images with N >= 1"),
        ("style_from_latent", {"target_domain": y[:0], "z": z[:0], "psi": psi[:0]}, "with N >= 1"),
        ("latent_guided", {**latent, "z": np.zeros((1, 15), np.float32)}, "z must be float32 [N, 16]"),
        ("latent_guided", {**latent, "image": np.zeros((1, 32, 32, 4), np.uint8)}, "image must be uint8 [N, H, W, 3]"),
        ("latent_guided", {**latent, "image": image[0]}, "image must be uint8 [N, H, W, 3]"),
        ("latent_guided", {**latent, "psi": np.ones((2,), np.float32)}, "psi must be a float32 scalar or [N]"),
        ("synthesize", {"image": image, "style": np.zeros((1, 8), np.float32)}, "style must be float32 [N, 64]"),
        ("latent_guided", {**latent, "target_domain": np.array([3], np.int32)}, "target_domain must hold domain"),
        ("latent_guided_bytes", {**latent_bytes, "image_bytes": np.array([b"garbage"], dtype=object)},
         "not JPEG, PNG, GIF or BMP data"),
        ("latent_guided", {k: v for k, v in latent.items() if k != "z"}, "missing input(s) z"),
    ]


def same(out: dict, reference: dict) -> bool:
    return sorted(out) == sorted(reference) and all(np.array_equal(out[k], reference[k]) for k in reference)


class Memory:
    """Resident memory of a process from /proc/PID/status (kB): now, and the peak since `reset`."""

    def __init__(self, pid: int):
        self.pid, self.sampled = pid, 0

    def read(self, key: str) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        raise KeyError(key)

    def reset(self) -> None:
        """Restart the high-water mark (VmHWM) from now (Linux >= 4.0); sampling covers kernels without it."""
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
        except OSError:
            pass
        self.sampled = self.read("VmRSS")

    def sample(self) -> None:
        self.sampled = max(self.sampled, self.read("VmRSS"))

    def peak(self) -> int:
        return max(self.sampled, self.read("VmHWM"))


def test_four_clients_send_every_hostile_request_a_hundred_times(served, capsys):
    translator, address, process = served
    goods, bads = good_requests(translator), bad_requests()
    references = {}
    with StarGANClient(address, timeout=120, retries=0) as client:
        for name, inputs, check in goods:  # the reference response of each good request, checked once
            references[name] = client.predict(name, inputs)
            check(references[name])
        for name, inputs, _ in goods:  # a second pass: every path warm before the steady state is read
            assert same(client.predict(name, inputs), references[name]), name
    time.sleep(1.0)
    memory = Memory(process.pid)
    steady = memory.read("VmRSS")
    memory.reset()

    schedule = [("good", i) for i in range(len(goods))] * 2 + [("bad", i) for i in range(len(bads))]
    lock, failures = threading.Lock(), []
    sent = collections.Counter()
    deadline = time.monotonic() + SECONDS

    def client_loop(seed):
        rng = np.random.default_rng(seed)
        with StarGANClient(address, timeout=120, retries=0) as client:
            for _ in range(ROUNDS):
                for kind, index in (schedule[i] for i in rng.permutation(len(schedule))):
                    if time.monotonic() >= deadline:
                        return
                    failure = one_request(client, kind, index)
                    with lock:
                        sent[kind, index] += 1
                        if failure:
                            failures.append(failure)

    def one_request(client, kind, index):
        name, inputs, expected = (goods if kind == "good" else bads)[index]
        try:
            out = client.predict(name, inputs)
        except ServingError as err:
            if kind == "bad" and err.code == "INVALID_ARGUMENT" and expected in str(err):
                return None
            return f"{kind} {name} #{index}: {err.code} {str(err)[:300]}"
        if kind == "bad":
            return f"bad {name} #{index} ({expected}) was answered"
        return None if same(out, references[name]) else f"good {name}: the response differs from its reference"

    threads = [threading.Thread(target=client_loop, args=(seed,), daemon=True) for seed in range(CLIENTS)]
    start = time.monotonic()
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads) and time.monotonic() < deadline + 120:
        memory.sample()
        time.sleep(0.05)
    for thread in threads:
        thread.join(timeout=1)
    elapsed = time.monotonic() - start
    peak = memory.peak()
    good, bad = (sum(n for (k, _), n in sent.items() if k == kind) for kind in ("good", "bad"))
    with capsys.disabled():
        print(f"\nload: {CLIENTS} clients, {elapsed:.1f} s, {good + bad} requests ({good} good, {bad} bad), "
              f"{(good + bad) / elapsed:.1f} requests/s; server resident memory: steady {steady / 1024:.0f} MiB, "
              f"peak {peak / 1024:.0f} MiB ({peak / steady:.3f}x)")

    assert not any(thread.is_alive() for thread in threads), "a client hung"
    assert not failures, f"{len(failures)} wrong answers, e.g. {failures[:5]}"
    assert sent == collections.Counter({request: CLIENTS * ROUNDS * schedule.count(request) for request in schedule}), \
        "every good and bad request was sent CLIENTS x ROUNDS times (within the time limit)"
    assert process.poll() is None, "the server process died"
    with StarGANClient(address, timeout=60, retries=0) as client:
        assert client.metadata()["domain_names"] == list(translator.config.model.resolved_domain_names)
    assert peak < MEMORY_FACTOR * steady, (steady, peak)
