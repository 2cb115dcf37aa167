"""Anchors: the base set at one grid cell and its copies shifted over a feature map.

Boxes are ``[x1, y1, x2, y2]`` float32 with inclusive corners (SPEC 2.1). Ratio is ``h / w``.
Shifted anchors are flattened in the order ``(y, x, a)`` with ``a`` fastest: row
``(y * feat_w + x) * A + a`` is base anchor ``a`` moved by ``stride * (x, y)`` (SPEC 2.2).
"""
import numpy as np

from lighthead.compat import tf


def _box_from_ctr(cx, cy, w, h):
    return [cx - 0.5 * (w - 1), cy - 0.5 * (h - 1), cx + 0.5 * (w - 1), cy + 0.5 * (h - 1)]


def generate_base_anchors(base_size=16, ratios=(0.5, 1, 2), scales=(2, 4, 8, 16, 32)):
    """Base anchors centred on the cell ``[0, 0, base_size-1, base_size-1]`` -> float32 [A, 4].

    ``A = len(ratios) * len(scales)``, ratio-major. For each ratio ``r`` the width is
    ``round(sqrt(base_size**2 / r))`` and the height ``round(width * r)`` (numpy rounding, half to
    even), then both are multiplied by each scale about the same centre (reference 4.1).
    """
    ctr = 0.5 * (base_size - 1)
    area = float(base_size * base_size)
    rows = []
    for r in ratios:
        w = np.round(np.sqrt(area / r))
        h = np.round(w * r)
        for s in scales:
            rows.append(_box_from_ctr(ctr, ctr, w * s, h * s))
    return np.array(rows, np.float32)


def shifted_anchors(base, feat_h, feat_w, stride):
    """Copies of ``base`` [A, 4] at each cell of a ``feat_h x feat_w`` map -> float32 [H*W*A, 4]."""
    base = np.asarray(base, np.float32)
    sx = np.arange(feat_w, dtype=np.float32) * stride
    sy = np.arange(feat_h, dtype=np.float32) * stride
    sx, sy = np.meshgrid(sx, sy)
    shifts = np.stack([sx, sy, sx, sy], axis=-1)
    return (shifts[:, :, None, :] + base[None, None, :, :]).reshape(-1, 4)


def shifted_anchors_tf(base, feat_h, feat_w, stride):
    """TF version of ``shifted_anchors``: ``feat_h``, ``feat_w`` may be scalar int32 tensors."""
    base = tf.convert_to_tensor(base, tf.float32)
    sx = tf.cast(tf.range(feat_w), tf.float32) * float(stride)
    sy = tf.cast(tf.range(feat_h), tf.float32) * float(stride)
    sx, sy = tf.meshgrid(sx, sy)
    shifts = tf.stack([sx, sy, sx, sy], axis=-1)
    return tf.reshape(shifts[:, :, None, :] + base[None, None, :, :], [-1, 4])
