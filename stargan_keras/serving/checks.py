"""In-graph input checks of the serving signatures: a bad request fails with INVALID_ARGUMENT naming the input.

The signatures declare their inputs with unknown shapes (see `serving.module`), so these
asserts are the only errors a bad input can produce, in TF Serving as in any other runtime.
Each check returns its input made to wait for the assert, with the static shape it promises.

What a request costs is bounded before anything runs: batches are not empty, codes are
finite, and images have at most `max_pixels` pixels, encoded ones by what their headers
declare (`header_pixels`), before a decoder allocates them.
"""

from __future__ import annotations

import tensorflow as tf

JPEG, PNG, GIF, BMP = b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"BM"
IMAGE_MAGIC = (JPEG, PNG, GIF, BMP)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HEADER_BYTES = 32  # enough for the PNG and BMP sizes; GIFs are walked (`gif_pixels`), JPEGs read by TensorFlow
LIMIT_FLAG = "export --max-image-pixels"
# Walking a GIF's blocks (`gif_pixels`) takes memory in proportion to its bytes (some 60 per byte): GIFs up to a
# quarter of the pixel limit in bytes are walked, which costs about what decoding an image at the limit does.
GIF_BYTES_PER_PIXEL = 0.25
NONEMPTY = (tf.greater, 0)


def after(checks, tensor, shape=None):
    """The tensor, made to wait for the checks so that no op sees an input the checks reject.

    The static shape is declared with `set_shape`, never `tf.ensure_shape`: EnsureShape
    fails ahead of the control dependencies (even in an untaken tf.cond branch) and its
    message names an internal tensor instead of the input.
    """
    with tf.control_dependencies(checks):
        out = tf.identity(tensor)
    if shape is not None:
        out.set_shape(shape)
    return out


def check_shape(tensor, dims, message):
    """One assert that `tensor` has len(dims) dimensions matching dims (None: any; a pair (op, value): a test).

    Shapes are read padded, so no op here can fail on a tensor of another rank:
    the assert is the one error a bad input can produce, and it names the input.
    """
    shape, padded = tf.shape(tensor), padded_shape(tensor, len(dims))
    ok = [tf.equal(tf.rank(tensor), len(dims))]
    for i, dim in enumerate(dims):
        if isinstance(dim, tuple):
            ok.append(dim[0](padded[i], dim[1]))
        elif dim is not None:
            ok.append(tf.equal(padded[i], dim))
    return tf.debugging.Assert(tf.reduce_all(tf.stack(ok)), [message, "got shape", shape], summarize=8)


def padded_shape(tensor, rank):
    """tf.shape(tensor) followed by `rank` entries -1: indexing it below `rank` never fails."""
    return tf.concat([tf.shape(tensor), tf.fill([rank], -1)], 0)


def images(tensor, name, max_pixels, batch=None, batch_of=None):
    """uint8 [N, H, W, 3] with N, H, W >= 1 (N == batch when given) and H x W <= max_pixels."""
    message = f"{name} must be uint8 [N, H, W, 3] RGB images with N, H, W >= 1"
    if batch is not None:
        message += f" and N equal to the number of {batch_of}"
    shape = check_shape(tensor, [NONEMPTY if batch is None else batch, NONEMPTY, NONEMPTY, 3], message)
    with tf.control_dependencies([shape]):
        pixels = tf.reduce_prod(tf.cast(padded_shape(tensor, 4)[1:3], tf.int64))
        size = tf.debugging.Assert(
            pixels <= max_pixels,
            [f"{name}: H x W is over the limit of {max_pixels} pixels per image ({LIMIT_FLAG}); got shape",
             tf.shape(tensor)], summarize=8)
    return after([size], tensor, [None, None, None, 3])


def finite(values, name, what):
    """An assert that the checked float [N] or [N, D] `values` hold no NaN or inf, naming the rows that do."""
    bad = ~tf.math.is_finite(values)
    if values.shape.rank == 2:
        bad = tf.reduce_any(bad, axis=1)
    return tf.debugging.Assert(
        ~tf.reduce_any(bad),
        [f"{name} must be finite (no NaN or inf); {what} that are not, by index:", tf.where(bad)[:, 0]], summarize=16)


def domains(tensor, name, batch, batch_of, domain_names):
    """int32 [N] domain indices in [0, len(domain_names))."""
    count = len(domain_names)
    names = ", ".join(f"{i}={n}" for i, n in enumerate(domain_names))
    shape = check_shape(tensor, [batch], f"{name} must be int32 [N], one domain index per {batch_of}")
    with tf.control_dependencies([shape]):
        valid = tf.reduce_all((tensor >= 0) & (tensor < count))
    in_range = tf.debugging.Assert(
        valid, [f"{name} must hold domain indices in [0, {count}) ({names}); got", tensor], summarize=16)
    return after([in_range], tensor, [None])


def batch_of_codes(target_domain):
    """style_from_latent's batch: the number of target domains, which must be a vector."""
    check = check_shape(target_domain, [NONEMPTY],
                        "target_domain must be int32 [N] with N >= 1, one domain index per code")
    return tf.shape(after([check], target_domain, [None]))[0]


def latents(z, latent_dim, batch, batch_of):
    """float32 [N, latent_dim], finite."""
    check = check_shape(z, [batch, latent_dim], f"z must be float32 [N, {latent_dim}], one latent code per {batch_of}")
    z = after([check], z, [None, latent_dim])
    return after([finite(z, "z", "latent codes")], z)


def psi(tensor, batch, batch_of):
    """float32 [] or [N], finite, returned as [N]."""
    ok = tf.equal(tf.rank(tensor), 0) | (tf.equal(tf.rank(tensor), 1) & tf.equal(tf.size(tensor), batch))
    check = tf.debugging.Assert(
        ok, [f"psi must be a float32 scalar or [N], one per {batch_of} (1.0 = no truncation); got shape",
             tf.shape(tensor)], summarize=8)
    out = tf.broadcast_to(tf.reshape(after([check], tensor), [-1]), [batch])
    out.set_shape([None])
    return after([finite(out, "psi", "entries")], out)


def styles(style, style_dim, batch):
    """float32 [N, style_dim], one per image, finite."""
    check = check_shape(style, [batch, style_dim], f"style must be float32 [N, {style_dim}], one style code per image")
    style = after([check], style, [None, style_dim])
    return after([finite(style, "style", "style codes")], style)


def labels(tensor, c_dim, batch, batch_of, unit_interval):
    """StarGAN v1's target_labels: float32 [N, c_dim], finite, and with `unit_interval` (attributes) in [0, 1]."""
    check = check_shape(tensor, [batch, c_dim],
                        f"target_labels must be float32 [N, {c_dim}], one label vector per {batch_of}")
    tensor = after([check], tensor, [None, c_dim])
    tensor = after([finite(tensor, "target_labels", "label vectors")], tensor)
    if not unit_interval:
        return tensor
    outside = tf.reduce_any((tensor < 0) | (tensor > 1), axis=1)
    in_range = tf.debugging.Assert(
        ~tf.reduce_any(outside),
        ["target_labels: attribute values must be in [0, 1] (0 off, 1 on); label vectors that are not, by index:",
         tf.where(outside)[:, 0]], summarize=16)
    return after([in_range], tensor)


def encoded_images(encoded, name, max_pixels, batch=None, batch_of=None):
    """string [N] of JPEG/PNG/GIF/BMP data (recognized by their first bytes), N >= 1, each declaring at most
    max_pixels pixels in its header."""
    message = f"{name} must be a string [N] of encoded JPEG/PNG images with N >= 1"
    if batch is not None:
        message += f" equal to the number of {batch_of}"
    shape = check_shape(encoded, [NONEMPTY if batch is None else batch], message)
    with tf.control_dependencies([shape]):
        head = tf.strings.substr(encoded, 0, 4)
        known = tf.reduce_any(tf.stack([tf.strings.substr(head, 0, len(m)) == m for m in IMAGE_MAGIC]), axis=0)
        bad = tf.debugging.Assert(
            tf.reduce_all(known),
            [f"{name}: entries that are not JPEG, PNG, GIF or BMP data, by index:", tf.where(~known)[:, 0]])
    max_gif_bytes = int(max_pixels * GIF_BYTES_PER_PIXEL)
    with tf.control_dependencies([bad]):
        big_gif = (tf.strings.substr(encoded, 0, 4) == GIF) & (tf.strings.length(encoded) > max_gif_bytes)
        gif_size = tf.debugging.Assert(
            ~tf.reduce_any(big_gif),
            [f"{name}: GIF files over {max_gif_bytes} bytes (a quarter of the pixel limit; {LIMIT_FLAG}) are not "
             "taken, send PNG or JPEG; by index:", tf.where(big_gif)[:, 0]])
    encoded = after([gif_size], encoded, [None])
    pixels = tf.map_fn(header_pixels, encoded, fn_output_signature=tf.int64, parallel_iterations=1)
    over = pixels > max_pixels
    limit = tf.debugging.Assert(
        ~tf.reduce_any(over),
        [f"{name}: images over the limit of {max_pixels} pixels (width x height; {LIMIT_FLAG}), by index:",
         tf.where(over)[:, 0], "pixels their headers declare:", tf.boolean_mask(pixels, over)], summarize=16)
    return after([limit], encoded, [None])


def header_pixels(data):
    """int64: the pixels the decoder of one JPEG/PNG/GIF/BMP file will allocate, from its header alone.

    width x height from the PNG IHDR chunk, the BMP info header (where TensorFlow's decoder
    reads them) and the JPEG frame header (`tf.image.extract_jpeg_shape`); for a GIF the
    larger of its logical screen and the sum of its frames (`gif_pixels`). 0 for a header too
    malformed to say, which the decoder then rejects on its own.
    """
    head = tf.strings.substr(tf.strings.join([tf.strings.substr(data, 0, HEADER_BYTES), b"\0" * HEADER_BYTES]),
                             0, HEADER_BYTES)
    raw = tf.cast(tf.io.decode_raw(head, tf.uint8), tf.int64)

    def number(start, count, big_endian=False):
        weights = [256**i for i in range(count)]
        return tf.reduce_sum(raw[start:start + count] * tf.constant(weights[::-1] if big_endian else weights, tf.int64))

    def area(width, height):  # each side capped at 2^31, so the product cannot overflow and stays over any limit
        return tf.minimum(tf.abs(width), 2**31) * tf.minimum(tf.abs(height), 2**31)

    def signed32(value):
        return tf.where(value >= 2**31, value - 2**32, value)

    png = (tf.strings.substr(head, 0, 8) == PNG_SIGNATURE) & (tf.strings.substr(head, 12, 4) == b"IHDR")
    png_pixels = area(number(16, 4, big_endian=True), number(20, 4, big_endian=True))
    bmp_pixels = area(signed32(number(18, 4)), signed32(number(22, 4)))
    start = tf.strings.substr(head, 0, 4)
    is_jpeg, is_gif = tf.strings.substr(start, 0, 3) == JPEG, start == GIF
    other = tf.where(png, png_pixels, tf.where(tf.strings.substr(start, 0, 2) == BMP, bmp_pixels, 0))

    def jpeg_pixels():
        height_width = tf.cast(tf.image.extract_jpeg_shape(data)[:2], tf.int64)
        return area(height_width[1], height_width[0])

    return tf.cond(is_jpeg, jpeg_pixels, lambda: tf.cond(is_gif, lambda: gif_pixels(data), lambda: other))


def gif_pixels(data):
    """int64: the larger of a GIF's logical screen and the sum of its frames' areas.

    GIF decoders (giflib's DGifSlurp, which TensorFlow's uses) hold every frame at its own
    size, which a frame descriptor may declare far larger than the logical screen. The
    frames are found by walking the file's blocks (GIF89a specification: image descriptors,
    extensions, each followed by a chain of length-prefixed data sub-blocks). Every byte is
    treated as a possible chain link at once, and chains are followed by pointer doubling:
    a number of vector steps logarithmic in the length of the file, never one step per block.
    """
    raw = tf.io.decode_raw(data, tf.uint8)
    n = tf.size(raw)  # position n stands for "past the end"
    padded = tf.cast(tf.concat([raw, tf.zeros([16], tf.uint8)], 0), tf.int32)
    position = tf.range(n + 1)

    def byte(offset):  # the byte `offset` after every position 0..n (0 past the end)
        return padded[offset:offset + n + 1]

    def clip(target):
        return tf.minimum(target, n)

    def color_table(flags):  # the size of the colour table a packed-fields byte announces
        return tf.where(flags >= 128, 3 * tf.bitwise.left_shift(2, flags & 7), 0)

    # A sub-block chain ends at its 0 size byte: follow size bytes to it, from every position.
    chain_end, _ = _follow(tf.where(tf.equal(byte(0), 0), position, clip(position + byte(0) + 1)))

    def past_chain(start):
        return clip(tf.gather(chain_end, clip(start)) + 1)

    descriptor, extension = tf.equal(byte(0), 0x2C), tf.equal(byte(0), 0x21)
    following = tf.where(descriptor, past_chain(position + 11 + color_table(byte(9))),
                         tf.where(extension, past_chain(position + 2), n))  # anything else ends the walk
    le16 = lambda offset: tf.cast(byte(offset) + 256 * byte(offset + 1), tf.int64)  # noqa: E731
    frame_area = tf.where(descriptor, le16(5) * le16(7), 0)
    _, frames = _follow(following, frame_area)
    first_block = clip(13 + color_table(padded[10]))
    return tf.maximum(tf.gather(frames, first_block), le16(6)[0] * le16(8)[0])


def _follow(jumps, values=None):
    """Pointer doubling over `jumps` (every position's successor; chain ends point to themselves): each
    position's chain end, and with `values` (0 at chain ends) the sum of values from it to there."""
    def step(jumps, sums, _):
        further = tf.gather(jumps, jumps)
        sums = sums if values is None else sums + tf.gather(sums, jumps)
        return further, sums, tf.reduce_any(tf.not_equal(further, jumps))

    sums = tf.zeros([0], tf.int64) if values is None else values
    jumps, sums, _ = tf.while_loop(lambda *state: state[2], step, (jumps, sums, tf.constant(True)))
    return jumps, sums


def domain_indices(domain, domain_names, name="domain"):
    """string [K] of names (or "") -> int32 [K] indices (-1 for ""); unknown names fail. `name`: the input (v2's
    `domain`, v1's `attribute`), which also names what the names are."""
    check = check_shape(domain, [None], f'{name} must be a string [K] of {name} names (or "")')
    domain = after([check], domain, [None])
    names = tf.constant(domain_names)
    matches = tf.equal(domain[:, None], names[None, :])
    blank = tf.equal(domain, "")
    found = tf.reduce_any(matches, axis=1) | blank
    unknown = tf.debugging.Assert(
        tf.reduce_all(found),
        [f"{name}: unknown {name} name(s); the model's {name}s are {', '.join(domain_names)}. Unknown:",
         tf.boolean_mask(domain, ~found)])
    with tf.control_dependencies([unknown]):
        return tf.where(blank, -1, tf.cast(tf.argmax(tf.cast(matches, tf.int32), axis=1), tf.int32))
