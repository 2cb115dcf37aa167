import numpy as np
import pytest

from lighthead.compat import tf
from lighthead.detection_opr.anchor_target import anchor_targets
from lighthead.detection_opr.anchors import generate_base_anchors, shifted_anchors
from lighthead.detection_opr.boxes import encode_np, ioa_np, iou_np
from lighthead.detection_opr.proposal_target import proposal_targets

NO_SUBSAMPLE = 10 ** 6


def _run(build):
    with tf.Graph().as_default():
        out = build()
        with tf.Session() as sess:
            return sess.run(out)


def _f32(rows, cols):
    return np.array(rows, np.float32).reshape(-1, cols)


def _labels(anchors, gt, height=100, width=100, **kw):
    kw.setdefault('batch_size', NO_SUBSAMPLE)
    return _run(lambda: anchor_targets(_f32(anchors, 4), _f32(gt, 5), height, width, **kw))


def anchor_targets_np(anchors, gt, height, width, pos=0.7, neg=0.3, border=0, ioa_thresh=0.5):
    """Slow reference of the labelling rules, without subsampling."""
    real = gt[gt[:, 4] >= 1]
    ignore = gt[gt[:, 4] == -1, :4]
    labels = -np.ones(len(anchors), np.int32)
    targets = np.zeros((len(anchors), 4), np.float32)
    inside = np.where((anchors[:, 0] >= -border) & (anchors[:, 1] >= -border) &
                      (anchors[:, 2] < width + border) & (anchors[:, 3] < height + border))[0]
    a = anchors[inside]
    lab = -np.ones(len(a), np.int32)
    if len(real):
        ov = iou_np(a, real[:, :4])
        max_ov = ov.max(axis=1)
        gt_max = ov.max(axis=0)
        best = np.where((ov == gt_max[None, :]) & (gt_max[None, :] > 0))[0]
    else:
        max_ov = np.zeros(len(a), np.float32)
        best = []
    lab[max_ov < neg] = 0
    lab[best] = 1
    lab[max_ov >= pos] = 1
    if len(ignore):
        lab[(ioa_np(a, ignore).max(axis=1) > ioa_thresh) & (lab != 1)] = -1
    labels[inside] = lab
    fg = inside[lab == 1]
    if len(fg):
        targets[fg] = encode_np(anchors[fg], real[iou_np(anchors[fg], real[:, :4]).argmax(1), :4])
    return labels, targets


# --------------------------------------------------------------------------- anchor targets

def test_hand_case_fg_bg_middle_border():
    anchors = [[0, 0, 15, 15],      # = gt 0: fg
               [0, 0, 15, 31],      # IoU 0.5 with gt 0: neither
               [50, 50, 65, 65],    # no overlap: bg
               [-1, 0, 14, 15],     # crosses the left border: ignored
               [90, 0, 105, 15]]    # crosses the right border: ignored
    gt = [[0, 0, 15, 15, 1],
          [80, 80, 89, 89, 2]]      # best IoU 0: gives no anchor
    labels, targets = _labels(anchors, gt)
    np.testing.assert_array_equal(labels, [1, -1, 0, -1, -1])
    np.testing.assert_allclose(targets, 0.0, atol=1e-6)   # anchor 0 matches exactly
    assert labels.dtype == np.int32 and targets.dtype == np.float32


def test_best_anchor_ties_are_all_fg():
    # gt [10,0,25,15] overlaps both anchors by 6 columns: IoU 96/416 = 0.23 < 0.3 for both
    anchors = [[0, 0, 15, 15], [20, 0, 35, 15], [40, 0, 55, 15]]
    labels, targets = _labels(anchors, [[10, 0, 25, 15, 1]])
    np.testing.assert_array_equal(labels, [1, 1, 0])
    np.testing.assert_allclose(targets[:2, 0], [10.0 / 16, -10.0 / 16])
    np.testing.assert_allclose(targets[2], 0.0)


def test_allowed_border():
    gt = [[0, 0, 11, 15, 1]]
    anchors = [[-4, 0, 11, 15],     # IoU 0.75 but crosses the border
               [0, 0, 19, 15]]      # IoU 0.6, best inside anchor
    labels, _ = _labels(anchors, gt)
    np.testing.assert_array_equal(labels, [-1, 1])
    labels, _ = _labels(anchors, gt, allowed_border=4)
    np.testing.assert_array_equal(labels, [1, -1])


def test_ignore_regions():
    anchors = [[60, 60, 75, 75],    # inside the ignore box: ignored instead of bg
               [40, 40, 55, 55],    # IoA 36/256: stays bg
               [42, 50, 57, 65],    # IoA exactly 0.5: not > 0.5, stays bg
               [20, 20, 35, 35]]    # = the real gt, which lies inside another ignore box: fg
    gt = [[50, 50, 99, 99, -1], [20, 20, 35, 35, 1], [10, 10, 60, 40, -1],
          [0, 0, 0, 0, 0]]          # padding row: unused
    labels, _ = _labels(anchors, gt)
    np.testing.assert_array_equal(labels, [-1, 0, 0, 1])


def test_no_real_gt_all_inside_bg_then_subsampled():
    anchors = shifted_anchors(generate_base_anchors(scales=(1,)), 8, 8, 16)
    inside = ((anchors[:, 0] >= 0) & (anchors[:, 1] >= 0) &
              (anchors[:, 2] < 128) & (anchors[:, 3] < 128))
    for gt in ([], [[0, 0, 63, 63, -1]]):
        labels, targets = _labels(anchors, gt, 128, 128)
        expected, _ = anchor_targets_np(anchors, _f32(gt, 5), 128, 128)
        np.testing.assert_array_equal(labels, expected)
        assert not (labels == 1).any() and (labels[~inside] == -1).all()
        assert (targets == 0).all()
    assert (labels == 0).sum() < inside.sum()   # the ignore box removed some bg
    labels, _ = _labels(anchors, [], 128, 128, batch_size=20, seed=3)
    assert (labels == 0).sum() == 20 and (labels == 1).sum() == 0


@pytest.mark.parametrize('num_fg', [300, 10])
def test_subsample_caps(num_fg):
    fg_anchors = np.tile([[0, 0, 15, 15]], (num_fg, 1))
    bg_anchors = np.tile([[40, 40, 55, 55]], (500, 1))
    anchors = np.vstack([fg_anchors, bg_anchors])
    labels, targets = _labels(anchors, [[0, 0, 15, 15, 1]], batch_size=256, fg_fraction=0.5,
                              seed=7)
    n_fg = min(num_fg, 128)
    assert (labels == 1).sum() == n_fg
    assert (labels == 0).sum() == 256 - n_fg
    assert (labels[:num_fg] != 0).all() and (labels[num_fg:] != 1).all()
    assert (targets[labels != 1] == 0).all()
    again, _ = _labels(anchors, [[0, 0, 15, 15, 1]], batch_size=256, fg_fraction=0.5, seed=7)
    np.testing.assert_array_equal(labels, again)


def test_matches_numpy_reference_on_random_scene():
    rng = np.random.RandomState(0)
    anchors = shifted_anchors(generate_base_anchors(scales=(2, 4, 8)), 12, 16, 16)
    xy = rng.uniform(0, 180, (12, 2))
    wh = rng.uniform(10, 120, (12, 2))
    gt = np.hstack([xy, np.minimum(xy + wh, [255, 191]),
                    rng.randint(1, 5, (12, 1))]).astype(np.float32)
    gt[10:, 4] = -1
    labels, targets = _labels(anchors, gt, 192, 256)
    expected_labels, expected_targets = anchor_targets_np(anchors, gt, 192, 256)
    np.testing.assert_array_equal(labels, expected_labels)
    np.testing.assert_allclose(targets, expected_targets, atol=1e-5)
    assert (labels == 1).sum() > 10 and (labels == 0).sum() > 100 and (labels == -1).sum() > 100


# --------------------------------------------------------------------------- proposal targets

STDS = np.array([0.1, 0.1, 0.2, 0.2], np.float32)


def _proposal_targets(rois, gt, num_classes=4, **kw):
    return _run(lambda: proposal_targets(_f32(rois, 4), _f32(gt, 5), num_classes, **kw))


def test_proposal_labels_and_appended_gt():
    rois = [[0, 0, 9, 9],           # = gt A: fg class 3
            [0, 0, 9, 19],          # IoU 0.5 with A: fg (>=)
            [0, 0, 9, 32],          # IoU 100/330 with A: bg
            [200, 200, 220, 220],   # IoU 0: bg
            [50, 50, 59, 64]]       # IoU 2/3 with gt B: fg class 1
    gt = [[0, 0, 9, 9, 3], [50, 50, 59, 59, 1], [300, 300, 400, 400, -1]]
    rois_out, labels, targets = _proposal_targets(rois, gt)
    np.testing.assert_array_equal(rois_out, _f32(rois + [gt[0][:4], gt[1][:4]], 4))
    np.testing.assert_array_equal(labels, [3, 3, 0, 0, 1, 3, 1])
    assert targets.shape == (7, 16) and labels.dtype == np.int32


def test_proposal_class_specific_normalised_targets():
    rois = [[0, 0, 9, 19], [0, 0, 9, 32]]
    gt = [[0, 0, 9, 9, 2]]
    _, labels, targets = _proposal_targets(rois, gt)
    np.testing.assert_array_equal(labels, [2, 0, 2])
    expected = encode_np(_f32(rois[0], 4), _f32(gt[0][:4], 4))[0] / STDS
    np.testing.assert_allclose(targets[0, 8:12], expected, rtol=1e-6)
    assert (np.delete(targets[0], range(8, 12)) == 0).all()
    assert (targets[1] == 0).all() and (targets[2] == 0).all()


def test_proposal_thresholds_and_ignore():
    rois = [[0, 0, 9, 32],          # IoU 0.30 with the gt
            [200, 200, 220, 220],   # IoU 0, outside the ignore box
            [310, 310, 330, 330]]   # IoU 0, inside the ignore box: excluded
    gt = [[0, 0, 9, 9, 1], [300, 300, 400, 400, -1]]
    _, labels, _ = _proposal_targets(rois, gt)
    np.testing.assert_array_equal(labels, [0, 0, -1, 1])
    _, labels, _ = _proposal_targets(rois, gt, bg_thresh_lo=0.1)
    np.testing.assert_array_equal(labels, [0, -1, -1, 1])
    _, labels, _ = _proposal_targets(rois, gt, ignore_ioa_thresh=1.0)
    np.testing.assert_array_equal(labels, [0, 0, 0, 1])


def test_proposal_without_real_gt():
    rois = [[0, 0, 9, 9], [310, 310, 330, 330]]
    for gt, expected in (([], [0, 0]), ([[300, 300, 400, 400, -1]], [0, -1])):
        rois_out, labels, targets = _proposal_targets(rois, gt, num_classes=3)
        np.testing.assert_array_equal(rois_out, _f32(rois, 4))
        np.testing.assert_array_equal(labels, expected)
        assert targets.shape == (2, 12) and (targets == 0).all()
    rois_out, labels, targets = _proposal_targets([], [], num_classes=3)
    assert rois_out.shape == (0, 4) and labels.shape == (0,) and targets.shape == (0, 12)


def test_dynamic_shapes():
    anchors = _f32([[0, 0, 15, 15], [40, 40, 55, 55], [0, 0, 15, 31]], 4)
    gt = _f32([[0, 0, 15, 15, 2], [30, 30, 70, 70, -1]], 5)
    with tf.Graph().as_default():
        a = tf.placeholder(tf.float32, [None, 4])
        g = tf.placeholder(tf.float32, [None, 5])
        size = tf.placeholder(tf.int32, [2])
        rpn = anchor_targets(a, g, size[0], size[1], seed=0)
        rcnn = proposal_targets(a, g, 3)
        with tf.Session() as sess:
            (labels, _), (_, roi_labels, _) = sess.run([rpn, rcnn], {a: anchors, g: gt,
                                                                      size: [64, 64]})
    np.testing.assert_array_equal(labels, [1, -1, -1])
    np.testing.assert_array_equal(roi_labels, [2, -1, 2, 2])


def test_proposal_sampling_draws_fg_fraction_of_batch():
    """batch_size > 0: at most round(fg_fraction * batch) fg, batch in all, the rest -1; the
    labels that are kept are the unsampled labels."""
    rois = [[0, 0, 9, 9]] * 10 + [[200, 200, 220, 220]] * 100  # 10 fg (+1 gt appended), 100 bg
    gt = [[0, 0, 9, 9, 2]]
    _, full, _ = _proposal_targets(rois, gt)
    for batch, fg_fraction, want_fg, want_bg in ((8, 0.25, 2, 6), (40, 0.5, 11, 29),
                                                 (1000, 0.25, 11, 100)):
        _, labels, _ = _proposal_targets(rois, gt, batch_size=batch, fg_fraction=fg_fraction)
        assert (labels == 2).sum() == want_fg and (labels == 0).sum() == want_bg
        kept = labels >= 0
        np.testing.assert_array_equal(labels[kept], full[kept])
        assert ((labels == -1) | kept).all()
