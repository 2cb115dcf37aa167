"""Training-health figures of the R-CNN head and the RPN, computed in the graph.

They answer "is the detector learning?" step by step, beside the losses: how many foreground
and background RoIs the head sees and OHEM keeps, how well the head classifies them, how much
its scores vary, and how many ground truths the RPN proposals find. All values are float32
scalars; a rate with nothing to count (no fg RoI, no gt) is NaN, so averages over steps can
skip it.

Boxes are ``[x1, y1, x2, y2]`` float32 network-input pixels, inclusive corners (+1 IoU).
"""
import collections

from lighthead.compat import tf
from lighthead.detection_opr import boxes as box_ops

NAN = float('nan')


def _rate(hits, count):
    """``hits / count`` (float32), NaN when ``count`` is 0."""
    hits = tf.cast(hits, tf.float32)
    count = tf.cast(count, tf.float32)
    return tf.where(count > 0, hits / tf.maximum(count, 1.0), NAN)


def _count(mask):
    return tf.reduce_sum(tf.cast(mask, tf.float32))


def rcnn_head_health(cls_score, labels, selected):
    """Figures of the R-CNN head on its training RoIs.

    Args:
      cls_score: [R, C] float32 logits of all RoIs (class 0 is background).
      labels: [R] int32, class 0..C-1, -1 for RoIs excluded from the loss.
      selected: [K] int32 indices into ``R`` of the RoIs OHEM kept.

    Returns an ``OrderedDict`` of float32 scalars:
      ``rois_fg``, ``rois_bg``: labelled foreground / background RoIs;
      ``ohem_fg``, ``ohem_bg``: how many of each OHEM kept;
      ``acc_fg``: fraction of fg RoIs whose argmax is their class; ``acc_bg``: fraction of bg
        RoIs whose argmax is background;
      ``score_std``: standard deviation of the foreground probability ``1 - p(background)``
        over the labelled RoIs (about 0 when the head scores every RoI alike).
    """
    labels = tf.convert_to_tensor(labels, tf.int32)
    fg = labels > 0
    bg = tf.equal(labels, 0)
    predicted = tf.argmax(cls_score, axis=1, output_type=tf.int32)
    correct = tf.equal(predicted, labels)
    kept = tf.gather(labels, selected)
    valid = labels >= 0
    fg_prob = tf.boolean_mask(1.0 - tf.nn.softmax(cls_score)[:, 0], valid)
    mean = tf.reduce_mean(fg_prob)
    spread = tf.sqrt(tf.reduce_mean(tf.square(fg_prob - mean)))
    out = collections.OrderedDict()
    out['rois_fg'] = _count(fg)
    out['rois_bg'] = _count(bg)
    out['ohem_fg'] = _count(kept > 0)
    out['ohem_bg'] = _count(tf.equal(kept, 0))
    out['acc_fg'] = _rate(_count(fg & correct), out['rois_fg'])
    out['acc_bg'] = _rate(_count(bg & correct), out['rois_bg'])
    out['score_std'] = tf.where(tf.size(fg_prob) > 0, spread, NAN)
    return out


def proposals_covering_gt(proposals, gt_boxes, iou_thresh=0.5):
    """How many ground truths have a proposal at IoU >= ``iou_thresh``.

    Args:
      proposals: [P, 4] float32 RPN proposals of one image (before the gt boxes are appended).
      gt_boxes: [G, 4] float32 real (non-ignore) ground truths of that image.

    Returns ``(covered, total)``: float32 scalars.
    """
    gt_boxes = tf.convert_to_tensor(gt_boxes, tf.float32)
    overlaps = box_ops.iou(gt_boxes, proposals)
    best = tf.reduce_max(tf.concat([overlaps, tf.zeros_like(overlaps[:, :1])], axis=1), axis=1)
    return _count(best >= iou_thresh), tf.cast(tf.shape(gt_boxes)[0], tf.float32)


def zero_fraction(tensor):
    """Fraction of exact zeros in ``tensor`` (e.g. a ReLU output), float32 scalar."""
    return tf.math.zero_fraction(tensor)


def recall(covered, total):
    """``sum(covered) / sum(total)`` over images, NaN without any gt."""
    return _rate(tf.add_n(covered), tf.add_n(total))
