import numpy as np
import pytest

from lighthead.compat import tf
from lighthead.detection_opr.losses import ohem_rcnn_losses, rpn_losses, smooth_l1


def _run(build):
    with tf.Graph().as_default():
        out = build()
        with tf.Session() as sess:
            return sess.run(out)


def _smooth_l1_np(x, sigma):
    s2 = sigma ** 2
    return np.where(np.abs(x) < 1.0 / s2, 0.5 * s2 * x ** 2, np.abs(x) - 0.5 / s2)


def _ce_np(logits, labels):
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return -logp[np.arange(len(labels)), np.maximum(labels, 0)]


def test_smooth_l1_hand_values():
    x = np.array([0.0, 0.1, -0.1, 1.0 / 9, 0.5, -2.0], np.float32)
    got = _run(lambda: smooth_l1(x, 3.0))
    np.testing.assert_allclose(got, [0.0, 0.045, 0.045, 1.0 / 18, 0.5 - 1.0 / 18, 2.0 - 1.0 / 18],
                               rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(_run(lambda: smooth_l1(x, 1.0)), [0, 0.005, 0.005, 0.5 / 81,
                                                                  0.125, 1.5], rtol=1e-5)


def test_rpn_losses_against_numpy():
    rng = np.random.RandomState(0)
    n = 50
    logits = rng.randn(n, 2).astype(np.float32)
    pred = rng.randn(n, 4).astype(np.float32) * 0.5
    targets = rng.randn(n, 4).astype(np.float32) * 0.5
    labels = rng.choice([-1, 0, 1], n).astype(np.int32)
    loss_cls, loss_box = _run(lambda: rpn_losses(logits, pred, labels, targets, sigma=3.0))
    valid = labels != -1
    expected_cls = _ce_np(logits, labels)[valid].mean()
    expected_box = _smooth_l1_np(pred - targets, 3.0)[labels == 1].sum() / valid.sum()
    assert loss_cls == pytest.approx(expected_cls, rel=1e-5)
    assert loss_box == pytest.approx(expected_box, rel=1e-5)


def test_rpn_losses_all_ignored_is_zero():
    labels = -np.ones(4, np.int32)
    out = _run(lambda: rpn_losses(np.ones((4, 2), np.float32), np.ones((4, 4), np.float32),
                                  labels, np.zeros((4, 4), np.float32)))
    assert out == (0.0, 0.0)


def _ohem_np(cls_score, bbox_pred, labels, bbox_targets, num_ohem, sigma):
    r, c = cls_score.shape
    ce = _ce_np(cls_score, labels)
    sl1 = _smooth_l1_np(bbox_pred - bbox_targets, sigma).reshape(r, c, 4)
    box = np.array([sl1[i, labels[i]].sum() if labels[i] > 0 else 0.0 for i in range(r)])
    valid = np.where(labels != -1)[0]
    k = min(num_ohem, len(valid))
    top = valid[np.argsort(-(ce + box)[valid], kind='stable')[:k]]
    return ce[top].sum() / k, box[top].sum() / k, top


@pytest.mark.parametrize('num_ohem', [8, 1000])
def test_ohem_losses_fixed_seed_regression(num_ohem):
    rng = np.random.RandomState(42)
    r, c = 40, 5
    cls_score = rng.randn(r, c).astype(np.float32) * 2
    bbox_pred = rng.randn(r, 4 * c).astype(np.float32)
    labels = rng.randint(-1, c, r).astype(np.int32)
    bbox_targets = np.zeros((r, 4 * c), np.float32)
    for i in np.where(labels > 0)[0]:
        bbox_targets[i, 4 * labels[i]:4 * labels[i] + 4] = rng.randn(4)
    expected_cls, expected_box, _ = _ohem_np(cls_score, bbox_pred, labels, bbox_targets,
                                             num_ohem, 1.0)
    loss_cls, loss_box = _run(lambda: ohem_rcnn_losses(cls_score, bbox_pred, labels,
                                                       bbox_targets, num_ohem, sigma=1.0))
    assert loss_cls == pytest.approx(expected_cls, rel=1e-5)
    assert loss_box == pytest.approx(expected_box, rel=1e-5)


def test_ohem_gradient_only_through_selected_rois():
    rng = np.random.RandomState(3)
    r, c, k = 12, 3, 4
    score_np = rng.randn(r, c).astype(np.float32)
    pred_np = rng.randn(r, 4 * c).astype(np.float32)
    labels = np.array([1, 2, 0, -1] * 3, np.int32)
    targets = np.zeros((r, 4 * c), np.float32)
    _, _, top = _ohem_np(score_np, pred_np, labels, targets, k, 1.0)

    def build():
        score = tf.constant(score_np)
        pred = tf.constant(pred_np)
        loss_cls, loss_box = ohem_rcnn_losses(score, pred, labels, targets, k)
        return tf.gradients(loss_cls + loss_box, [score, pred])
    g_score, g_pred = _run(build)
    rows_with_grad = np.where(np.abs(g_score).sum(axis=1) > 0)[0]
    np.testing.assert_array_equal(rows_with_grad, np.sort(top))
    # box gradient only in the label's 4 columns of selected fg RoIs
    for i in range(r):
        cols = np.where(g_pred[i] != 0)[0]
        if i in top and labels[i] > 0:
            assert set(cols) <= set(range(4 * labels[i], 4 * labels[i] + 4)) and len(cols) > 0
        else:
            assert len(cols) == 0


def test_ohem_no_valid_roi_is_zero():
    out = _run(lambda: ohem_rcnn_losses(np.ones((3, 2), np.float32), np.ones((3, 8), np.float32),
                                        -np.ones(3, np.int32), np.zeros((3, 8), np.float32), 4))
    assert out == (0.0, 0.0)
