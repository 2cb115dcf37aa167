"""R-CNN targets for the proposals of one image, in the graph (SPEC 4.4, reference 5.2).

Boxes are ``[x1, y1, x2, y2]`` float32 in network-input pixels, inclusive corners; IoU uses the
+1 convention.
"""
from lighthead.compat import tf
from lighthead.detection_opr import boxes as box_ops
from lighthead.detection_opr.matching import (argmax_or_dummy, max_with_zero, split_gt,
                                              subsample_labels)


def proposal_targets(rois, gt_boxes, num_classes, *, fg_thresh=0.5, bg_thresh_hi=0.5,
                     bg_thresh_lo=0.0, bbox_stds=(0.1, 0.1, 0.2, 0.2), ignore_ioa_thresh=0.5,
                     batch_size=-1, fg_fraction=0.25):
    """Append the real gt boxes to the RoIs and label them.

    With ``batch_size = -1`` (the original's setting) every RoI keeps its label and OHEM does
    the selection. With ``batch_size > 0`` at most ``round(fg_fraction * batch_size)`` fg RoIs
    and ``batch_size`` in all are drawn at random, as Faster R-CNN samples; the others get -1.

    Args:
      rois: [R, 4] float32 proposals of one image.
      gt_boxes: [G, 5] float32 ``(x1, y1, x2, y2, cls)``; ``cls >= 1`` objects, ``cls == -1``
        ignore/crowd regions, other rows (padding) unused.
      num_classes: C, including background (class 0).

    Returns:
      rois_out: [R + Gr, 4] float32, ``rois`` followed by the Gr real gt boxes.
      labels: [R + Gr] int32: the class of the best-IoU gt where max IoU >= ``fg_thresh``; 0 where
        ``bg_thresh_lo <= max IoU < bg_thresh_hi``; -1 otherwise, and for background RoIs with
        IoA > ``ignore_ioa_thresh`` against an ignore region, or not drawn. Max IoU is 0 without
        real gt.
      bbox_targets: [R + Gr, 4 * C] float32, deltas to the best gt divided by ``bbox_stds`` in
        columns ``4c .. 4c+3`` of the fg class ``c``, zeros elsewhere.
    """
    real, ignore = split_gt(gt_boxes)
    rois_out = tf.concat([tf.convert_to_tensor(rois, tf.float32), real[:, :4]], axis=0)
    overlaps = box_ops.iou(rois_out, real[:, :4])
    max_overlaps = max_with_zero(overlaps)
    # The dummy gt row is only picked when there is no real gt, i.e. for no fg RoI.
    gt_pad = tf.concat([real, tf.constant([[0.0, 0.0, 15.0, 15.0, 0.0]])], axis=0)
    assigned = tf.gather(gt_pad, argmax_or_dummy(overlaps))

    fg = max_overlaps >= fg_thresh
    bg = (max_overlaps < bg_thresh_hi) & (max_overlaps >= bg_thresh_lo) & ~fg
    in_ignore = max_with_zero(box_ops.ioa(rois_out, ignore)) > ignore_ioa_thresh
    minus_ones = -tf.ones_like(max_overlaps, tf.int32)
    labels = tf.where(fg, tf.cast(assigned[:, 4], tf.int32), minus_ones)
    labels = tf.where(bg & ~in_ignore, tf.zeros_like(labels), labels)
    if batch_size > 0:
        # The original rounds the fg quota (the RPN's is truncated).
        labels = subsample_labels(labels, batch_size, int(round(fg_fraction * batch_size)))

    deltas = box_ops.encode(rois_out, assigned[:, :4]) / tf.constant(bbox_stds, tf.float32)
    # Select, do not multiply by 0: a RoI of zero width (exp(dw) underflowed) has non-finite
    # deltas, and 0 * inf = NaN would reach the loss.
    deltas = tf.where(fg, deltas, tf.zeros_like(deltas))
    class_mask = tf.one_hot(labels, num_classes) * tf.cast(fg, tf.float32)[:, None]
    bbox_targets = tf.reshape(class_mask[:, :, None] * deltas[:, None, :], [-1, 4 * num_classes])
    return rois_out, labels, bbox_targets

