"""Box arithmetic: encode, decode, clip, IoU, IoA, and the NMS offset.

Naming: ``*_np`` functions take and return numpy arrays; the plain names build TF graph ops
(``tf.compat.v1``) and take tensors or arrays. Both groups compute the same thing.

Box convention (SPEC 2.1): rows ``[x1, y1, x2, y2]`` in pixels with inclusive corners, so
``w = x2 - x1 + 1``, ``h = y2 - y1 + 1`` and the centre is ``(x1 + 0.5 w, y1 + 0.5 h)``.
Deltas are rows ``(dx, dy, dw, dh)``; class-specific deltas ``[N, 4k]`` hold class ``j`` in
columns ``4j .. 4j+3``.
"""
import math

import numpy as np

from lighthead.compat import tf

# dw, dh are clamped to this before exp, so a decoded box is at most 1000/16 times its source.
DELTA_CLAMP = math.log(1000.0 / 16.0)


def _wh_ctr(boxes):
    """Width, height, centre x, centre y of boxes [N, 4] (numpy array or tensor)."""
    w = boxes[:, 2] - boxes[:, 0] + 1.0
    h = boxes[:, 3] - boxes[:, 1] + 1.0
    return w, h, boxes[:, 0] + 0.5 * w, boxes[:, 1] + 0.5 * h


def _area(boxes):
    """+1-convention area of boxes [N, 4] (numpy array or tensor)."""
    return (boxes[:, 2] - boxes[:, 0] + 1.0) * (boxes[:, 3] - boxes[:, 1] + 1.0)


# ----------------------------------------------------------------------------- numpy

def encode_np(boxes, gt):
    """Deltas taking ``boxes`` [N, 4] to ``gt`` [N, 4] -> float32 [N, 4] ``(dx, dy, dw, dh)``."""
    boxes = np.asarray(boxes, np.float32)
    gt = np.asarray(gt, np.float32)
    w, h, cx, cy = _wh_ctr(boxes)
    gw, gh, gcx, gcy = _wh_ctr(gt)
    deltas = np.stack([(gcx - cx) / w, (gcy - cy) / h, np.log(gw / w), np.log(gh / h)], axis=1)
    return deltas.astype(np.float32)


def decode_np(boxes, deltas):
    """Apply ``deltas`` [N, 4k] to ``boxes`` [N, 4] -> float32 [N, 4k]; exact inverse of encode.

    ``dw, dh`` are clamped to ``DELTA_CLAMP`` before ``exp``; ``x2 = cx + 0.5 w - 1``.
    """
    boxes = np.asarray(boxes, np.float32)
    deltas = np.asarray(deltas, np.float32)
    w, h, cx, cy = (v[:, None] for v in _wh_ctr(boxes))
    pcx = deltas[:, 0::4] * w + cx
    pcy = deltas[:, 1::4] * h + cy
    pw = np.exp(np.minimum(deltas[:, 2::4], DELTA_CLAMP)) * w
    ph = np.exp(np.minimum(deltas[:, 3::4], DELTA_CLAMP)) * h
    out = np.stack([pcx - 0.5 * pw, pcy - 0.5 * ph, pcx + 0.5 * pw - 1.0, pcy + 0.5 * ph - 1.0],
                   axis=2)
    return out.reshape(deltas.shape).astype(np.float32)


def clip_np(boxes, height, width):
    """Clip boxes [N, 4k] to ``[0, width-1] x [0, height-1]`` -> float32 [N, 4k]."""
    boxes = np.asarray(boxes, np.float32)
    k = boxes.shape[1] // 4
    upper = np.tile(np.array([width - 1, height - 1, width - 1, height - 1], np.float32), k)
    return np.minimum(np.maximum(boxes, 0.0), upper)


def _intersection_np(a, b):
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]) + 1.0
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]) + 1.0
    return np.maximum(iw, 0.0) * np.maximum(ih, 0.0)


def iou_np(a, b):
    """IoU (+1 convention) of ``a`` [N, 4] against ``b`` [M, 4] -> float32 [N, M]."""
    a = np.asarray(a, np.float32)
    b = np.asarray(b, np.float32)
    inter = _intersection_np(a, b)
    return inter / (_area(a)[:, None] + _area(b)[None, :] - inter)


def ioa_np(a, b):
    """Intersection over the area of ``a``: ``a`` [N, 4] against ``b`` [M, 4] -> float32 [N, M].

    Used for ignore regions: ``ioa_np(anchors, ignore)[i, j] > 0.5`` means anchor ``i`` lies
    mostly inside ignore box ``j``.
    """
    a = np.asarray(a, np.float32)
    b = np.asarray(b, np.float32)
    return _intersection_np(a, b) / _area(a)[:, None]


# ----------------------------------------------------------------------------- TensorFlow

def _f32(x):
    return tf.convert_to_tensor(x, tf.float32)


def encode(boxes, gt):
    """TF version of ``encode_np``: ``boxes``, ``gt`` [N, 4] float32 -> [N, 4]."""
    boxes, gt = _f32(boxes), _f32(gt)
    w, h, cx, cy = _wh_ctr(boxes)
    gw, gh, gcx, gcy = _wh_ctr(gt)
    return tf.stack([(gcx - cx) / w, (gcy - cy) / h, tf.math.log(gw / w), tf.math.log(gh / h)],
                    axis=1)


def decode(boxes, deltas):
    """TF version of ``decode_np``: ``boxes`` [N, 4], ``deltas`` [N, 4k] float32 -> [N, 4k]."""
    boxes, deltas = _f32(boxes), _f32(deltas)
    w, h, cx, cy = (v[:, None] for v in _wh_ctr(boxes))
    pcx = deltas[:, 0::4] * w + cx
    pcy = deltas[:, 1::4] * h + cy
    pw = tf.exp(tf.minimum(deltas[:, 2::4], DELTA_CLAMP)) * w
    ph = tf.exp(tf.minimum(deltas[:, 3::4], DELTA_CLAMP)) * h
    out = tf.stack([pcx - 0.5 * pw, pcy - 0.5 * ph, pcx + 0.5 * pw - 1.0, pcy + 0.5 * ph - 1.0],
                   axis=2)
    return tf.reshape(out, tf.shape(deltas))


def clip(boxes, height, width):
    """TF version of ``clip_np``: boxes [N, 4k] float32; ``height``, ``width`` scalars."""
    boxes = _f32(boxes)
    height = tf.cast(height, tf.float32)
    width = tf.cast(width, tf.float32)
    upper = tf.tile(tf.stack([width - 1.0, height - 1.0, width - 1.0, height - 1.0]),
                    [tf.shape(boxes)[1] // 4])
    return tf.minimum(tf.maximum(boxes, 0.0), upper[None, :])


def _intersection(a, b):
    iw = tf.minimum(a[:, None, 2], b[None, :, 2]) - tf.maximum(a[:, None, 0], b[None, :, 0]) + 1.0
    ih = tf.minimum(a[:, None, 3], b[None, :, 3]) - tf.maximum(a[:, None, 1], b[None, :, 1]) + 1.0
    return tf.maximum(iw, 0.0) * tf.maximum(ih, 0.0)


def iou(a, b):
    """TF version of ``iou_np``: ``a`` [N, 4], ``b`` [M, 4] float32 -> [N, M]."""
    a, b = _f32(a), _f32(b)
    inter = _intersection(a, b)
    return inter / (_area(a)[:, None] + _area(b)[None, :] - inter)


def ioa(a, b):
    """TF version of ``ioa_np``: ``a`` [N, 4], ``b`` [M, 4] float32 -> [N, M]."""
    a, b = _f32(a), _f32(b)
    return _intersection(a, b) / _area(a)[:, None]


def to_tf_nms(boxes):
    """Add 1 to x2, y2 of ``boxes`` [N, 4] so ``tf.image.non_max_suppression`` sees the +1 IoU.

    TF reads rows as ``[y1, x1, y2, x2]``; IoU is symmetric in the axes, so passing
    ``[x1, y1, x2 + 1, y2 + 1]`` gives exactly the +1-convention IoU.
    """
    return _f32(boxes) + tf.constant([0.0, 0.0, 1.0, 1.0])
