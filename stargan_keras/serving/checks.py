"""In-graph input checks of the serving signatures: a bad request fails with INVALID_ARGUMENT naming the input.

The signatures declare their inputs with unknown shapes (see `serving.module`), so these
asserts are the only errors a bad input can produce, in TF Serving as in any other runtime.
Each check returns its input made to wait for the assert, with the static shape it promises.
"""

from __future__ import annotations

import tensorflow as tf

IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"BM")  # JPEG, PNG, GIF, BMP


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
    shape = tf.shape(tensor)
    padded = tf.concat([shape, tf.fill([len(dims)], -1)], 0)
    ok = [tf.equal(tf.rank(tensor), len(dims))]
    for i, dim in enumerate(dims):
        if isinstance(dim, tuple):
            ok.append(dim[0](padded[i], dim[1]))
        elif dim is not None:
            ok.append(tf.equal(padded[i], dim))
    return tf.debugging.Assert(tf.reduce_all(tf.stack(ok)), [message, "got shape", shape], summarize=8)


def images(tensor, name, batch=None, batch_of=None):
    """uint8 [N, H, W, 3] with H, W >= 1 (and N == batch when given)."""
    message = f"{name} must be uint8 [N, H, W, 3] RGB images with H, W >= 1"
    if batch is not None:
        message += f" and N equal to the number of {batch_of}"
    check = check_shape(tensor, [batch, (tf.greater, 0), (tf.greater, 0), 3], message)
    return after([check], tensor, [None, None, None, 3])


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
    check = check_shape(target_domain, [None], "target_domain must be int32 [N], one domain index per code")
    return tf.shape(after([check], target_domain, [None]))[0]


def latents(z, latent_dim, batch, batch_of):
    """float32 [N, latent_dim]."""
    check = check_shape(z, [batch, latent_dim], f"z must be float32 [N, {latent_dim}], one latent code per {batch_of}")
    return after([check], z, [None, latent_dim])


def psi(tensor, batch, batch_of):
    """float32 [] or [N], returned as [N]."""
    ok = tf.equal(tf.rank(tensor), 0) | (tf.equal(tf.rank(tensor), 1) & tf.equal(tf.size(tensor), batch))
    check = tf.debugging.Assert(
        ok, [f"psi must be a float32 scalar or [N], one per {batch_of} (1.0 = no truncation); got shape",
             tf.shape(tensor)], summarize=8)
    out = tf.broadcast_to(tf.reshape(after([check], tensor), [-1]), [batch])
    out.set_shape([None])
    return out


def styles(style, style_dim, batch):
    """float32 [N, style_dim], one per image."""
    check = check_shape(style, [batch, style_dim], f"style must be float32 [N, {style_dim}], one style code per image")
    return after([check], style, [None, style_dim])


def encoded_images(encoded, name, batch=None, batch_of=None):
    """string [N] of JPEG/PNG/GIF/BMP data (recognized by their first bytes)."""
    message = f"{name} must be a string [N] of encoded JPEG/PNG images"
    if batch is not None:
        message += f" with N equal to the number of {batch_of}"
    shape = check_shape(encoded, [batch], message)
    with tf.control_dependencies([shape]):
        head = tf.strings.substr(encoded, 0, 4)
        known = tf.reduce_any(tf.stack([tf.strings.substr(head, 0, len(m)) == m for m in IMAGE_MAGIC]), axis=0)
        bad = tf.debugging.Assert(
            tf.reduce_all(known),
            [f"{name}: entries that are not JPEG, PNG, GIF or BMP data, by index:", tf.where(~known)[:, 0]])
    return after([bad], encoded, [None])


def domain_indices(domain, domain_names):
    """string [K] of domain names (or "") -> int32 [K] indices (-1 for ""); unknown names fail."""
    check = check_shape(domain, [None], 'domain must be a string [K] of domain names (or "")')
    domain = after([check], domain, [None])
    names = tf.constant(domain_names)
    matches = tf.equal(domain[:, None], names[None, :])
    blank = tf.equal(domain, "")
    found = tf.reduce_any(matches, axis=1) | blank
    unknown = tf.debugging.Assert(
        tf.reduce_all(found),
        [f"domain: unknown domain name(s); the model's domains are {', '.join(domain_names)}. Unknown:",
         tf.boolean_mask(domain, ~found)])
    with tf.control_dependencies([unknown]):
        return tf.where(blank, -1, tf.cast(tf.argmax(tf.cast(matches, tf.int32), axis=1), tf.int32))
