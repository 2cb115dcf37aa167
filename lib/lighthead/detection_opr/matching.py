"""Helpers shared by the anchor and proposal target layers (TF graph ops)."""
from lighthead.compat import tf


def split_gt(gt_boxes):
    """Split gt rows [G, 5] ``(x1, y1, x2, y2, cls)`` into real objects and ignore regions.

    Returns ``(real [Gr, 5], ignore [Gi, 4])`` float32: ``cls >= 1`` rows are objects,
    ``cls == -1`` rows are ignore/crowd regions; any other row (e.g. zero padding) is dropped.
    """
    gt_boxes = tf.convert_to_tensor(gt_boxes, tf.float32)
    cls = gt_boxes[:, 4]
    real = tf.boolean_mask(gt_boxes, cls >= 1.0)
    ignore = tf.boolean_mask(gt_boxes[:, :4], tf.equal(cls, -1.0))
    return real, ignore


def _with_column(values, fill):
    """``values`` [N, M] float32 with an extra last column of ``fill`` -> [N, M + 1]."""
    column = tf.fill(tf.stack([tf.shape(values)[0], 1]), fill)
    return tf.concat([values, column], axis=1)


def max_with_zero(values):
    """Row-wise max of ``values`` [N, M] float32 with 0 as an extra column -> [N] (0 if M == 0)."""
    return tf.reduce_max(_with_column(values, 0.0), axis=1)


def argmax_or_dummy(overlaps):
    """Row-wise argmax of ``overlaps`` [N, M] (values >= 0) -> int32 [N]; ``M`` when M == 0.

    Index ``M`` points at a dummy row the caller appends to its gt; it is returned only when
    there is no gt at all.
    """
    return tf.argmax(_with_column(overlaps, -1.0), axis=1, output_type=tf.int32)


def _disable_beyond(labels, mask, keep, seed):
    """Set all but a random ``keep`` of the entries of ``labels`` where ``mask`` to -1."""
    idx = tf.cast(tf.where(mask)[:, 0], tf.int32)
    idx = tf.random.shuffle(idx, seed=seed)
    drop = tf.scatter_nd(idx[keep:, None], tf.ones_like(idx[keep:], tf.int32), tf.shape(labels))
    return tf.where(drop > 0, -tf.ones_like(labels), labels)


def subsample_labels(labels, batch_size, max_fg, seed=None):
    """Keep a random draw of fg (label > 0) and bg (label 0) entries, set the rest to -1.

    Args:
      labels: [N] int32, -1 for entries already excluded.
      batch_size: int, the most entries kept in all.
      max_fg: int, the most fg entries kept; bg fill up to ``batch_size``.
      seed: op seed of the two shuffles (``seed`` and ``seed + 1``); None for unseeded.
    """
    labels = _disable_beyond(labels, labels > 0, max_fg, seed)
    num_fg = tf.reduce_sum(tf.cast(labels > 0, tf.int32))
    return _disable_beyond(labels, tf.equal(labels, 0), batch_size - num_fg,
                           None if seed is None else seed + 1)
