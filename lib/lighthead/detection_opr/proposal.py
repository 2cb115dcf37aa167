"""RPN proposals for one image, in the graph (SPEC 4.4, reference 5.1).

Boxes are ``[x1, y1, x2, y2]`` float32 in network-input pixels, inclusive corners.
"""
from lighthead.compat import tf
from lighthead.detection_opr import boxes as box_ops


def generate_proposals(cls_prob_fg, bbox_deltas, anchors, im_height, im_width, pre_nms_top_n,
                       post_nms_top_n, nms_thresh, min_size=0):
    """Decode, clip, filter, take the top scores and suppress overlaps.

    Args:
      cls_prob_fg: [N] float32 foreground probability of each anchor.
      bbox_deltas: [N, 4] float32 unnormalised RPN deltas.
      anchors: [N, 4] float32.
      im_height, im_width: scalars, the network-input image size (boxes are clipped to it).
      pre_nms_top_n: at most this many highest-scoring boxes enter NMS (fewer if N is smaller).
      post_nms_top_n: at most this many boxes are returned.
      nms_thresh: IoU (+1 convention) above which a lower-scoring box is suppressed.
      min_size: boxes with ``w < min_size`` or ``h < min_size`` (network-input pixels) are
        dropped before the top-N; 0 keeps all, as the original.

    Returns:
      rois: [P, 4] float32, P <= post_nms_top_n, by descending score.
      scores: [P] float32.
    """
    scores = tf.convert_to_tensor(cls_prob_fg, tf.float32)
    proposals = box_ops.clip(box_ops.decode(anchors, bbox_deltas), im_height, im_width)
    if min_size > 0:
        w = proposals[:, 2] - proposals[:, 0] + 1.0
        h = proposals[:, 3] - proposals[:, 1] + 1.0
        keep = (w >= min_size) & (h >= min_size)
        proposals = tf.boolean_mask(proposals, keep)
        scores = tf.boolean_mask(scores, keep)
    scores, order = tf.math.top_k(scores, tf.minimum(pre_nms_top_n, tf.size(scores)), sorted=True)
    proposals = tf.gather(proposals, order)
    keep = tf.image.non_max_suppression(box_ops.to_tf_nms(proposals), scores, post_nms_top_n,
                                        iou_threshold=nms_thresh)
    return tf.gather(proposals, keep), tf.gather(scores, keep)
