import numpy as np

from lighthead.compat import tf
from lighthead.detection_opr.postprocess import detect
from lighthead.detection_opr.proposal import generate_proposals

STDS = (0.1, 0.1, 0.2, 0.2)


def _f32(rows, cols):
    return np.array(rows, np.float32).reshape(-1, cols)


def _run_fed(build, feeds):
    """Build with placeholders of unknown first dim fed by ``feeds`` (arrays), run once."""
    with tf.Graph().as_default():
        holders = [tf.placeholder(tf.float32, [None] + list(a.shape[1:])) for a in feeds]
        out = build(*holders)
        with tf.Session() as sess:
            return sess.run(out, dict(zip(holders, feeds)))


# --------------------------------------------------------------------------- proposals

def _proposals(scores, anchors, deltas=None, height=100, width=100, pre=100, post=100,
               nms=0.7, min_size=0):
    anchors = _f32(anchors, 4)
    deltas = np.zeros_like(anchors) if deltas is None else _f32(deltas, 4)
    return _run_fed(lambda s, d, a: generate_proposals(s, d, a, height, width, pre, post, nms,
                                                       min_size=min_size),
                    [np.array(scores, np.float32), deltas, anchors])


def test_proposals_decode_clip_sort():
    anchors = [[10, 10, 25, 25], [-20, 50, 40, 120], [60, 0, 75, 15]]
    deltas = [[0.5, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    rois, scores = _proposals([0.2, 0.9, 0.5], anchors, deltas)
    np.testing.assert_allclose(scores, [0.9, 0.5, 0.2])
    np.testing.assert_allclose(rois, [[0, 50, 40, 99], [60, 0, 75, 15], [18, 10, 33, 25]])


def test_proposals_nms_uses_plus_one_iou_and_caps():
    anchors = [[0, 0, 9, 9], [5, 5, 14, 14], [50, 50, 59, 59], [70, 70, 79, 79]]
    scores = [0.9, 0.8, 0.7, 0.6]
    rois, _ = _proposals(scores, anchors, nms=0.14)    # +1 IoU of the first two is 0.143
    np.testing.assert_array_equal(rois, _f32([anchors[0], anchors[2], anchors[3]], 4))
    rois, _ = _proposals(scores, anchors, nms=0.15)
    assert len(rois) == 4
    rois, _ = _proposals(scores, anchors, pre=2, nms=0.15)
    np.testing.assert_array_equal(rois, _f32(anchors[:2], 4))
    rois, s = _proposals(scores, anchors, post=3, nms=0.15)
    np.testing.assert_allclose(s, scores[:3])


def test_proposals_min_size_and_small_inputs():
    anchors = [[0, 0, 9, 9], [20, 20, 24, 40], [50, 50, 79, 79]]   # widths 10, 5, 30
    rois, scores = _proposals([0.9, 0.8, 0.7], anchors, min_size=6)
    np.testing.assert_allclose(scores, [0.9, 0.7])
    rois, scores = _proposals([0.9, 0.8, 0.7], anchors, min_size=5)
    assert len(rois) == 3
    rois, scores = _proposals([], [], pre=6000, post=1000)
    assert rois.shape == (0, 4) and scores.shape == (0,)


# --------------------------------------------------------------------------- detections

def _detect(rois, prob, deltas=None, scale=1.0, orig_h=200, orig_w=200, **kw):
    rois = _f32(rois, 4)
    prob = np.array(prob, np.float32)
    c = prob.shape[1]
    deltas = np.zeros((len(rois), 4 * c), np.float32) if deltas is None else _f32(deltas, 4 * c)
    # cls_prob needs a static class count
    return _run_fed(lambda r, p, d: detect(r, tf.reshape(p, [-1, c]), d, scale, orig_h, orig_w,
                                           bbox_stds=STDS, **kw), [rois, prob, deltas])


def test_overlapping_same_class_suppressed_other_class_kept():
    rois = [[10, 10, 59, 59], [12, 12, 61, 61], [100, 100, 149, 149]]
    prob = [[0.1, 0.9, 0.0], [0.2, 0.8, 0.0], [0.3, 0.0, 0.7]]
    boxes, scores, classes = _detect(rois, prob)
    np.testing.assert_allclose(scores, [0.9, 0.7])
    np.testing.assert_array_equal(classes, [1, 2])
    np.testing.assert_allclose(boxes, _f32([rois[0], rois[2]], 4), atol=1e-4)
    assert classes.dtype == np.int32
    # same boxes, different classes: both kept
    prob = [[0.1, 0.9, 0.0], [0.2, 0.0, 0.8], [1.0, 0.0, 0.0]]
    boxes, scores, classes = _detect(rois, prob)
    np.testing.assert_allclose(scores, [0.9, 0.8])
    np.testing.assert_array_equal(classes, [1, 2])


def test_scale_denormalisation_and_clip():
    rois = [[20, 20, 59, 39], [300, 300, 419, 399]]
    prob = [[0.0, 1.0], [0.0, 1.0]]
    deltas = [[0, 0, 0, 0, 1.0, 0.5, 0, 0], [0, 0, 0, 0, 0, 0, 0, 0]]
    boxes, scores, classes = _detect(rois, prob, deltas, scale=2.0, orig_h=180, orig_w=200)
    # RoI 0 in original pixels is [10, 10, 29.5, 19.5] (w 20.5, h 10.5); its class-1 deltas
    # de-normalise to (0.1, 0.05, 0, 0): a shift of (2.05, 0.525)
    np.testing.assert_allclose(boxes[0], [12.05, 10.525, 31.55, 20.025], atol=1e-4)
    np.testing.assert_allclose(boxes[1], [150, 150, 199, 179], atol=1e-4)   # clipped
    np.testing.assert_array_equal(classes, [1, 1])


def test_score_threshold_and_top_k():
    n = 30
    rois = [[40 * i, 0, 40 * i + 9, 9] for i in range(n)]   # disjoint boxes
    prob = np.zeros((n, 3), np.float32)
    prob[:, 1] = np.linspace(0.05, 0.9, n)
    prob[:, 2] = np.linspace(0.9, 0.05, n) * 0.5
    prob[:, 0] = 1 - prob[:, 1] - prob[:, 2]
    boxes, scores, classes = _detect(rois, prob, orig_w=2000, max_per_image=10)
    assert len(scores) == 10 and (np.diff(scores) <= 0).all()
    all_scores = np.sort(prob[:, 1:].ravel())[::-1]
    np.testing.assert_allclose(scores, all_scores[:10], rtol=1e-6)
    boxes, scores, classes = _detect(rois, prob, orig_w=2000, score_thresh=0.3)
    assert (scores > 0.3).all() and len(scores) == (prob[:, 1:] > 0.3).sum()


def test_empty_input():
    boxes, scores, classes = _detect([], np.zeros((0, 81)))
    assert boxes.shape == (0, 4) and scores.shape == (0,) and classes.shape == (0,)
