"""PSAlignPool in plain TensorFlow ops (no compiled library), differentiated by TF's autodiff.

Vectorised: every sample point of every bin of every RoI is built at once, its four bilinear
corners are gathered only for the channels that bin reads, then the samples are pooled. Same
semantics and float32 arithmetic as the C++ kernel (see ``lighthead.ops``); float64 features are
also accepted (then everything is computed in float64).
"""
import numpy as np

from lighthead.compat import tf


def _sample_offsets(group_size, samples, np_dtype):
    """[G, S] offsets p + (i + 0.5) / S, rounded like the kernel (one rounding per operation)."""
    dt = np_dtype.type
    return np.array([[dt(p) + (dt(i) + dt(0.5)) / dt(samples) for i in range(samples)]
                     for p in range(group_size)], dtype=np_dtype)


def _axis_corners(coord, size):
    """Both bilinear neighbours along one axis: [(index int64, weight, valid bool)] for floor and
    floor + 1. Dropped: outside [0, size-1], and floor + 1 of an exact integer (weight 0)."""
    size_f = tf.cast(size, coord.dtype)
    inside = tf.logical_and(coord > -1, coord < size_f)
    low = tf.floor(coord)
    frac = coord - low
    # Clipping keeps far-away coordinates from overflowing the cast; they are not `inside`.
    index = tf.cast(tf.clip_by_value(low, -1.0, size_f), tf.int64)
    size64 = tf.cast(size, tf.int64)
    valid0 = tf.logical_and(inside, index >= 0)
    valid1 = tf.logical_and(tf.logical_and(inside, frac > 0), index + 1 < size64)
    return [(index, 1 - frac, valid0), (index + 1, frac, valid1)]


def psalign_pool_tf(features, rois, group_size=7, sample_height=2, sample_width=2,
                    spatial_scale=1.0 / 16, pool='max'):
    """PSAlignPool from TF ops. features [B, H, W, K*G*G] float32/float64 NHWC; rois [R, 5]
    (batch_index, x1, y1, x2, y2) in network-input pixels. Returns [R, G, G, K] in the features'
    dtype. Max: the first of equal samples wins and alone gets the gradient. A batch index outside
    [0, B) raises InvalidArgumentError when run."""
    features = tf.convert_to_tensor(features)
    dtype = features.dtype
    np_dtype = np.dtype(dtype.as_numpy_dtype)
    rois = tf.cast(tf.convert_to_tensor(rois), dtype)
    g, sh, sw = group_size, sample_height, sample_width
    num_samples = sh * sw

    shape = tf.shape(features, out_type=tf.int64)
    batch, height, width, channels = shape[0], shape[1], shape[2], shape[3]
    k_out = channels // (g * g)
    batch_index = rois[:, 0]
    index_ok = tf.logical_and(batch_index >= 0, batch_index < tf.cast(batch, dtype))
    checks = [
        tf.Assert(tf.reduce_all(index_ok), ['rois[:, 0] must be batch indices in [0, B); got',
                                            batch_index, 'B =', batch], summarize=20),
        tf.Assert(tf.equal(channels % (g * g), 0),
                  ['features channels must be a multiple of group_size^2:', channels]),
    ]
    with tf.control_dependencies(checks):
        batch_offset = tf.cast(batch_index, tf.int64) * height  # [R]

    scale = tf.constant(spatial_scale, dtype)
    x_start, y_start = scale * rois[:, 1], scale * rois[:, 2]
    x_end, y_end = scale * rois[:, 3], scale * rois[:, 4]
    bin_w = tf.maximum(x_end - x_start, 0) / tf.constant(g, dtype)
    bin_h = tf.maximum(y_end - y_start, 0) / tf.constant(g, dtype)
    # Sample coordinates: y [R, G(ph), 1, Sh, 1], x [R, 1, G(pw), 1, Sw].
    y = y_start[:, None, None] + bin_h[:, None, None] * _sample_offsets(g, sh, np_dtype)
    x = x_start[:, None, None] + bin_w[:, None, None] * _sample_offsets(g, sw, np_dtype)
    y = y[:, :, None, :, None]
    x = x[:, None, :, None, :]

    # Rows of K channels: row (pixel*G*G + ph*G + pw) holds the channels (k*G + ph)*G + pw that
    # bin (ph, pw) reads, so a corner is one contiguous gather of K values. Unused corners read an
    # appended zero row, so they add exactly 0 (even next to inf) without a full-size select.
    table = tf.reshape(features, tf.stack([-1, k_out, g * g]))
    table = tf.reshape(tf.transpose(table, [0, 2, 1]), tf.stack([-1, k_out]))
    zero_row = tf.shape(table, out_type=tf.int64)[0]
    table = tf.concat([table, tf.zeros(tf.stack([1, k_out]), dtype)], axis=0)
    grid = np.arange(g, dtype=np.int64)
    bin_id = (grid[:, None] * g + grid[None, :])[None, :, :, None, None]  # [1, G, G, 1, 1]

    values = None
    # Corner order (y0,x0), (y0+1,x0), (y0,x0+1), (y0+1,x0+1), as the kernel sums them.
    for col, wx, vx in _axis_corners(x, width):
        for row, wy, vy in _axis_corners(y, height):
            pixel = (batch_offset[:, None, None, None, None] + row) * width + col
            index = tf.where_v2(tf.logical_and(vy, vx), pixel * (g * g) + bin_id, zero_row)
            term = tf.gather(table, index) * (wy * wx)[..., None]  # [R, G, G, Sh, Sw, K]
            values = term if values is None else values + term
    # values [R, G, G, Sh, Sw, K] -> [R, G, G, S, K], sample s = i*Sw + j.
    dims = tf.shape(values)
    values = tf.reshape(values, tf.concat([dims[:3], [num_samples], dims[5:]], axis=0))

    if pool == 'avg':
        pooled = tf.reduce_sum(values, axis=3) / tf.constant(num_samples, dtype)
    else:
        best = tf.stop_gradient(tf.reduce_max(values, axis=3, keepdims=True))
        sample_ids = tf.range(num_samples, dtype=tf.int32)[None, None, None, :, None]
        first = tf.reduce_min(tf.where_v2(values >= best, sample_ids, num_samples), axis=3,
                              keepdims=True)
        winner = tf.equal(sample_ids, first)
        pooled = tf.reduce_sum(tf.where_v2(winner, values, tf.zeros_like(values)), axis=3)
    pooled.set_shape([rois.shape[0], g, g, _static_out_channels(features, g)])
    return pooled


def _static_out_channels(features, group_size):
    if features.shape.ndims != 4:
        return None
    channels = features.shape.as_list()[3]
    return None if channels is None else channels // (group_size * group_size)
