"""RPN and R-CNN (OHEM) losses (SPEC 4.4, reference 5.3 and 6.7). Labels of -1 are excluded."""
from lighthead.compat import tf


def smooth_l1(x, sigma):
    """Element-wise smooth L1 of ``x = pred - target`` (float32, any shape; same shape out).

    ``0.5 (sigma x)^2`` where ``|x| < 1/sigma^2``, else ``|x| - 0.5/sigma^2``.
    """
    sigma2 = float(sigma) ** 2
    ax = tf.abs(x)
    return tf.where(ax < 1.0 / sigma2, 0.5 * sigma2 * tf.square(x), ax - 0.5 / sigma2)


def _cross_entropy(logits, labels):
    """Softmax CE per row; rows with label -1 get a finite value the caller must mask."""
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.maximum(labels, 0),
                                                          logits=logits)


def rpn_losses(cls_logits, bbox_pred, labels, targets, sigma=3.0):
    """RPN loss over the sampled anchors.

    Args:
      cls_logits: [N, 2] float32 (bg, fg) logits.
      bbox_pred: [N, 4] float32 deltas; targets: [N, 4] float32 unnormalised deltas.
      labels: [N] int32 in {-1, 0, 1}.

    Returns:
      loss_cls: mean softmax CE over anchors with label != -1.
      loss_box: sum over fg anchors of the 4 smooth-L1 terms, divided by
        ``max(1, #anchors with label != -1)``.
    """
    labels = tf.convert_to_tensor(labels, tf.int32)
    valid = tf.cast(tf.not_equal(labels, -1), tf.float32)
    fg = tf.cast(tf.equal(labels, 1), tf.float32)
    count = tf.maximum(tf.reduce_sum(valid), 1.0)
    loss_cls = tf.reduce_sum(_cross_entropy(cls_logits, labels) * valid) / count
    box = tf.reduce_sum(smooth_l1(bbox_pred - targets, sigma), axis=1)
    loss_box = tf.reduce_sum(box * fg) / count
    return loss_cls, loss_box


def ohem_rcnn_losses(cls_score, bbox_pred, labels, bbox_targets, num_ohem, sigma=1.0,
                     return_selected=False):
    """R-CNN loss on the hardest RoIs (online hard example mining).

    Args:
      cls_score: [R, C] float32 logits.
      bbox_pred: [R, 4C] float32 class-specific deltas; bbox_targets: [R, 4C] float32.
      labels: [R] int32, class in 0..C-1, -1 for RoIs to exclude.
      num_ohem: number of RoIs kept.

    Per valid RoI, ``ce`` is the softmax CE and ``box`` the sum of the 4 smooth-L1 terms in the
    columns of its label's class (0 for background). The ``k = min(num_ohem, #valid)`` RoIs with
    the largest ``ce + box`` are selected (the selection carries no gradient).

    Returns:
      loss_cls, loss_box: sums of ``ce`` and ``box`` over the selected RoIs, divided by ``k``
        (0 when no RoI is valid). The caller applies the x2 box weight.
      With ``return_selected``, also ``selected``: int32 [k], the indices into ``R`` of the
        selected RoIs.
    """
    labels = tf.convert_to_tensor(labels, tf.int32)
    num_classes = tf.shape(cls_score)[1]
    ce = _cross_entropy(cls_score, labels)
    class_mask = tf.one_hot(labels, num_classes) * tf.cast(labels > 0, tf.float32)[:, None]
    diff = tf.reshape(bbox_pred - bbox_targets, [-1, num_classes, 4])
    box = tf.reduce_sum(smooth_l1(diff, sigma) * class_mask[:, :, None], axis=[1, 2])

    valid = tf.not_equal(labels, -1)
    valid_index = tf.cast(tf.where(valid)[:, 0], tf.int32)
    ce = tf.boolean_mask(ce, valid)
    box = tf.boolean_mask(box, valid)
    k = tf.minimum(num_ohem, tf.size(ce))
    _, index = tf.math.top_k(tf.stop_gradient(ce + box), k, sorted=True, name='ohem_loss_index')
    denom = tf.cast(tf.maximum(k, 1), tf.float32)
    loss_cls = tf.divide(tf.reduce_sum(tf.gather(ce, index)), denom, name='ohem_cls_loss')
    loss_box = tf.divide(tf.reduce_sum(tf.gather(box, index)), denom, name='ohem_box_loss')
    if return_selected:
        return loss_cls, loss_box, tf.gather(valid_index, index)
    return loss_cls, loss_box
