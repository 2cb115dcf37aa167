"""RPN anchor targets, built in the graph (no py_func), for one image (SPEC 4.4, reference 4.4).

Boxes are ``[x1, y1, x2, y2]`` float32 with inclusive corners; IoU uses the +1 convention.
"""
from lighthead.compat import tf
from lighthead.detection_opr import boxes as box_ops
from lighthead.detection_opr.matching import (argmax_or_dummy, max_with_zero, split_gt,
                                              subsample_labels)


def anchor_targets(anchors, gt_boxes, im_height, im_width, *, positive_overlap=0.7,
                   negative_overlap=0.3, batch_size=256, fg_fraction=0.5, allowed_border=0,
                   ignore_ioa_thresh=0.5, seed=None):
    """Label the anchors of one image and compute their regression targets.

    Args:
      anchors: [N, 4] float32, network-input pixels.
      gt_boxes: [G, 5] float32 ``(x1, y1, x2, y2, cls)``; ``cls >= 1`` objects, ``cls == -1``
        ignore/crowd regions, other rows (padding) unused.
      im_height, im_width: scalars (tensors or numbers), the network-input image size.
      seed: op seed of the two ``tf.random.shuffle`` used for subsampling (``seed`` and
        ``seed + 1``); None for unseeded.

    Returns:
      labels: [N] int32, 1 fg, 0 bg, -1 ignored. Only anchors inside the image (each corner
        within ``allowed_border`` of it) get 0/1. bg: max IoU < ``negative_overlap``. fg: max IoU
        >= ``positive_overlap``, or the anchor has the best IoU of some real gt (ties included;
        a gt whose best IoU is 0 gives none). Non-fg anchors with IoA > ``ignore_ioa_thresh``
        against an ignore region are -1. Then at most ``int(fg_fraction * batch_size)`` fg and
        ``batch_size - #fg`` bg are kept at random, the rest set to -1.
      targets: [N, 4] float32 unnormalised deltas to the anchor's best gt for fg anchors, zeros
        elsewhere.
    """
    anchors = tf.convert_to_tensor(anchors, tf.float32)
    real, ignore = split_gt(gt_boxes)
    height = tf.cast(im_height, tf.float32)
    width = tf.cast(im_width, tf.float32)
    border = float(allowed_border)
    inside = ((anchors[:, 0] >= -border) & (anchors[:, 1] >= -border) &
              (anchors[:, 2] < width + border) & (anchors[:, 3] < height + border))

    overlaps = box_ops.iou(anchors, real[:, :4])                     # [N, Gr]
    overlaps = overlaps * tf.cast(inside, tf.float32)[:, None]     # outside anchors never match
    max_overlaps = max_with_zero(overlaps)
    gt_max = max_with_zero(tf.transpose(overlaps))
    is_best = tf.reduce_any(tf.equal(overlaps, gt_max[None, :]) & (gt_max[None, :] > 0.0), axis=1)

    labels = -tf.ones_like(max_overlaps, tf.int32)
    zeros = tf.zeros_like(labels)
    ones = tf.ones_like(labels)
    labels = tf.where(inside & (max_overlaps < negative_overlap), zeros, labels)
    fg = inside & (is_best | (max_overlaps >= positive_overlap))
    labels = tf.where(fg, ones, labels)

    in_ignore = max_with_zero(box_ops.ioa(anchors, ignore)) > ignore_ioa_thresh
    labels = tf.where(in_ignore & tf.not_equal(labels, 1), -ones, labels)

    labels = subsample_labels(labels, batch_size, int(fg_fraction * batch_size), seed)

    # The dummy gt row is only picked when there is no real gt, i.e. for no fg anchor.
    gt_pad = tf.concat([real[:, :4], tf.constant([[0.0, 0.0, 15.0, 15.0]])], axis=0)
    targets = box_ops.encode(anchors, tf.gather(gt_pad, argmax_or_dummy(overlaps)))
    targets = tf.where(tf.equal(labels, 1), targets, tf.zeros_like(targets))
    return labels, targets
