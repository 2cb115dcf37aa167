"""Test-mode post-processing in the graph: final detections of one image (SPEC 4.4, reference 8.3).

Boxes are ``[x1, y1, x2, y2]`` float32 with inclusive corners; NMS uses the +1 IoU.
"""
from lighthead.compat import tf
from lighthead.detection_opr import boxes as box_ops


def detect(rois, cls_prob, bbox_deltas, scale, orig_h, orig_w, *, bbox_stds, nms_thresh=0.5,
           score_thresh=0.0, max_per_image=100):
    """Decode class-specific boxes, run per-class NMS and keep the best detections.

    Args:
      rois: [R, 4] float32 RoIs of one image in network-input pixels.
      cls_prob: [R, C] float32 class probabilities, class 0 background; C must be static.
      bbox_deltas: [R, 4C] float32 class-specific deltas, normalised (divided by ``bbox_stds``).
      scale: scalar, network-input size / original size.
      orig_h, orig_w: scalars, the original image size.
      bbox_stds: 4 floats the deltas were normalised by.
      nms_thresh: per-class NMS suppresses a box whose IoU with a kept one is > this.
      score_thresh: only scores > this are kept.
      max_per_image: at most this many detections, over all classes.

    Returns:
      boxes: [N, 4] float32 in original-image pixels, clipped to it, by descending score.
      scores: [N] float32.
      classes: [N] int32 in 1..C-1.
    """
    cls_prob = tf.convert_to_tensor(cls_prob, tf.float32)
    num_classes = cls_prob.shape.as_list()[1]
    if num_classes is None:
        raise ValueError('detect needs cls_prob with a static class count, got %s' % cls_prob.shape)
    stds = tf.tile(tf.constant(bbox_stds, tf.float32), [num_classes])
    deltas = tf.convert_to_tensor(bbox_deltas, tf.float32) * stds
    rois = tf.convert_to_tensor(rois, tf.float32) / tf.cast(scale, tf.float32)
    boxes = box_ops.clip(box_ops.decode(rois, deltas), orig_h, orig_w)
    boxes = tf.reshape(boxes, [-1, num_classes, 4])[:, 1:]

    # One batched op for all classes: on CPU (R=1000, C=81) it measured faster than a Python loop
    # of tf.image.non_max_suppression per class, and much faster than tf.map_fn over classes.
    nms_boxes, scores, classes, num = tf.image.combined_non_max_suppression(
        box_ops.to_tf_nms(boxes)[None], cls_prob[None, :, 1:], max_per_image, max_per_image,
        iou_threshold=nms_thresh, score_threshold=score_thresh, clip_boxes=False)
    num = num[0]
    boxes = nms_boxes[0, :num] - tf.constant([0.0, 0.0, 1.0, 1.0])
    return boxes, scores[0, :num], tf.cast(classes[0, :num], tf.int32) + 1
