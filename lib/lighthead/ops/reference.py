"""Slow numpy reference of PSAlignPool (forward and gradient), written as plain loops.

No TensorFlow here: the tests and the standalone CUDA harness (tools/cuda_check, a machine with
numpy but no TF, which loads this file by path) both use it.

Shapes: ``features`` [B, H, W, K*G*G] NHWC, ``rois`` [R, 5] rows (batch_index, x1, y1, x2, y2) in
network-input pixels, output [R, G, G, K] where (n, ph, pw, k) reads channel (k*G + ph)*G + pw.
Semantics are SPEC 3 (see ``lighthead.ops``). All arithmetic is done in ``dtype``: float32
reproduces the kernels' rounding, float64 serves finite-difference gradient checks.
"""
import numpy as np


def _check_batch_index(rois, batch):
    for n, b in enumerate(rois[:, 0]):
        if not (0 <= b < batch):
            raise ValueError('rois[%d, 0] = %r is not a batch index in [0, %d)' % (n, b, batch))


def _bin_geometry(roi, spatial_scale, group_size, dt):
    """(y_start, x_start, bin_h, bin_w) of one RoI: no rounding, no +1."""
    s = dt(spatial_scale)
    x_start, y_start = s * dt(roi[1]), s * dt(roi[2])
    x_end, y_end = s * dt(roi[3]), s * dt(roi[4])
    bin_w = max(x_end - x_start, dt(0)) / dt(group_size)
    bin_h = max(y_end - y_start, dt(0)) / dt(group_size)
    return y_start, x_start, bin_h, bin_w


def _sample_coord(start, bin_size, p, i, samples, dt):
    return start + bin_size * (dt(p) + (dt(i) + dt(0.5)) / dt(samples))


def bilinear_corners(y, x, height, width, dt=np.float32):
    """[(h, w, weight)] in the order (y0,x0), (y0+1,x0), (y0,x0+1), (y0+1,x0+1), dropping corners
    outside the map (no clamping) and the weight-0 neighbour of an exact-integer coordinate."""
    if not (-1 < y < height and -1 < x < width):
        return []
    y0, x0 = int(np.floor(y)), int(np.floor(x))
    ly, lx = y - dt(y0), x - dt(x0)
    hy, hx = dt(1) - ly, dt(1) - lx
    rows = [(y0, hy, y0 >= 0), (y0 + 1, ly, ly > 0 and y0 + 1 < height)]
    cols = [(x0, hx, x0 >= 0), (x0 + 1, lx, lx > 0 and x0 + 1 < width)]
    corners = []
    for w, wx, col_ok in cols:
        for h, wy, row_ok in rows:
            if row_ok and col_ok:
                corners.append((h, w, wy * wx))
    return corners


def _bin_samples(roi, ph, pw, shape, group_size, sample_height, sample_width, spatial_scale, dt):
    """Corner lists of the samples of bin (ph, pw), sample s = i*sample_width + j."""
    _, height, width, _ = shape
    y_start, x_start, bin_h, bin_w = _bin_geometry(roi, spatial_scale, group_size, dt)
    samples = []
    for i in range(sample_height):
        y = _sample_coord(y_start, bin_h, ph, i, sample_height, dt)
        for j in range(sample_width):
            x = _sample_coord(x_start, bin_w, pw, j, sample_width, dt)
            samples.append(bilinear_corners(y, x, height, width, dt))
    return samples


def _bins(features_shape, rois, group_size, sample_height, sample_width, spatial_scale, dt):
    """Every bin of every RoI, RoIs in order: ``(n, batch index, ph, pw, channels, samples)``,
    ``channels`` the K input channels ``(k*G + ph)*G + pw`` of the bin, ``samples`` its
    sample corners (:func:`_bin_samples`, sample s = i*Sw + j). Checks the batch indices."""
    batch, _, _, channels = features_shape
    g = group_size
    ks = np.arange(channels // (g * g))
    _check_batch_index(rois, batch)
    for n, roi in enumerate(rois):
        for ph in range(g):
            for pw in range(g):
                samples = _bin_samples(roi, ph, pw, features_shape, g, sample_height,
                                       sample_width, spatial_scale, dt)
                yield n, int(roi[0]), ph, pw, (ks * g + ph) * g + pw, samples


def sample_values(features, rois, group_size=7, sample_height=2, sample_width=2,
                  spatial_scale=1.0 / 16, dtype=np.float32):
    """Interpolated value of every sample: [R, G, G, Sh*Sw, K], sample s = i*Sw + j."""
    dt = np.dtype(dtype).type
    features = np.asarray(features, dtype=dt)
    rois = np.asarray(rois, dtype=dt).reshape(-1, 5)
    g = group_size
    k_out = features.shape[3] // (g * g)
    values = np.zeros((len(rois), g, g, sample_height * sample_width, k_out), dt)
    for n, b, ph, pw, chans, samples in _bins(features.shape, rois, g, sample_height,
                                              sample_width, spatial_scale, dt):
        for s, corners in enumerate(samples):
            value = np.zeros(k_out, dt)
            for h, w, weight in corners:
                value = value + features[b, h, w, chans] * weight
            values[n, ph, pw, s] = value
    return values


def psalign_pool_reference(features, rois, group_size=7, sample_height=2, sample_width=2,
                           spatial_scale=1.0 / 16, pool='max', dtype=np.float32):
    """Returns (pooled [R, G, G, K] dtype, argmax [R, G, G, K] int32: the winning sample index,
    first in row-major order among ties, for max; -1 for avg)."""
    values = sample_values(features, rois, group_size, sample_height, sample_width,
                           spatial_scale, dtype)
    if pool == 'max':
        argmax = np.argmax(values, axis=3).astype(np.int32)  # first occurrence wins
        pooled = np.take_along_axis(values, argmax[:, :, :, None], axis=3)[:, :, :, 0]
        return pooled, argmax
    total = values[:, :, :, 0]
    for s in range(1, values.shape[3]):  # summed in sample order, like the kernels
        total = total + values[:, :, :, s]
    pooled = total / np.dtype(dtype).type(values.shape[3])
    return pooled, np.full(pooled.shape, -1, np.int32)


def psalign_pool_grad_reference(features_shape, rois, argmax, grad, group_size=7,
                                sample_height=2, sample_width=2, spatial_scale=1.0 / 16,
                                pool='max', dtype=np.float32):
    """Gradient w.r.t. features [B, H, W, C] of sum(pooled * grad); ``argmax`` as returned by
    psalign_pool_reference (unused for avg). Scatters in RoI order, so it is deterministic."""
    dt = np.dtype(dtype).type
    rois = np.asarray(rois, dtype=dt).reshape(-1, 5)
    grad = np.asarray(grad, dtype=dt)
    diff = np.zeros(features_shape, dt)
    for n, b, ph, pw, chans, samples in _bins(features_shape, rois, group_size, sample_height,
                                              sample_width, spatial_scale, dt):
        for s, corners in enumerate(samples):
            if pool == 'max':
                upstream = np.where(argmax[n, ph, pw] == s, grad[n, ph, pw], dt(0))
            else:
                upstream = grad[n, ph, pw] / dt(len(samples))
            for h, w, weight in corners:
                diff[b, h, w, chans] += upstream * weight
    return diff


def random_rois(rng, num_rois, image_height, image_width, batch=1):
    """Proposal-like RoIs [num_rois, 5] float32 (for benchmarks and the CUDA harness): log-uniform
    sides 16 px .. the image size, aspect ratio (h/w) 0.5 .. 2, uniform centres, clipped to
    [0, W-1] x [0, H-1] like proposals, batch indices uniform in [0, batch)."""
    side = np.exp(rng.uniform(np.log(16), np.log(min(image_height, image_width)), num_rois))
    ratio = np.exp(rng.uniform(np.log(0.5), np.log(2.0), num_rois))
    w, h = side / np.sqrt(ratio), side * np.sqrt(ratio)
    cx, cy = rng.uniform(0, image_width, num_rois), rng.uniform(0, image_height, num_rois)
    x1 = np.clip(cx - 0.5 * w, 0, image_width - 1)
    y1 = np.clip(cy - 0.5 * h, 0, image_height - 1)
    x2 = np.clip(cx + 0.5 * w - 1, 0, image_width - 1)
    y2 = np.clip(cy + 0.5 * h - 1, 0, image_height - 1)
    b = rng.randint(0, batch, num_rois)
    return np.stack([b, x1, y1, x2, y2], axis=1).astype(np.float32)
