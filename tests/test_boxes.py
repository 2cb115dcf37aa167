import math

import numpy as np
import pytest

from lighthead.compat import tf
from lighthead.detection_opr import boxes as B


def _run(build):
    with tf.Graph().as_default():
        out = build()
        with tf.Session() as sess:
            return sess.run(out)


def _random_boxes(rng, n, size=200.0):
    xy = rng.uniform(0, size, (n, 2))
    wh = rng.uniform(8, size / 2, (n, 2))   # size ratios stay below the decode clamp
    return np.hstack([xy, xy + wh - 1]).astype(np.float32)


def test_iou_hand_values():
    a = np.array([[0, 0, 9, 9]], np.float32)
    b = np.array([[5, 5, 14, 14], [0, 0, 9, 9], [10, 0, 19, 9], [9, 9, 20, 20]], np.float32)
    expected = [[25.0 / 175.0, 1.0, 0.0, 1.0 / (100 + 144 - 1)]]
    np.testing.assert_allclose(B.iou_np(a, b), expected, rtol=1e-6)
    np.testing.assert_allclose(_run(lambda: B.iou(a, b)), expected, rtol=1e-6)


def test_ioa_is_relative_to_first_argument():
    small = np.array([[0, 0, 9, 9]], np.float32)
    big = np.array([[5, 0, 104, 99]], np.float32)   # overlaps the right half of ``small``
    np.testing.assert_allclose(B.ioa_np(small, big), [[0.5]])
    np.testing.assert_allclose(B.ioa_np(big, small), [[50.0 / 10000.0]])
    np.testing.assert_allclose(_run(lambda: B.ioa(small, big)), [[0.5]])


def test_encode_hand_values():
    anchor = np.array([[0, 0, 15, 15]], np.float32)       # w = h = 16, centre (8, 8)
    gt = np.array([[8, 0, 39, 7]], np.float32)             # w = 32, h = 8, centre (24, 4)
    expected = [[1.0, -0.25, math.log(2.0), math.log(0.5)]]
    np.testing.assert_allclose(B.encode_np(anchor, gt), expected, rtol=1e-6)
    np.testing.assert_allclose(_run(lambda: B.encode(anchor, gt)), expected, rtol=1e-6)


def test_decode_zero_deltas_is_identity():
    boxes = np.array([[0, 0, 15, 15], [3.5, 2, 10, 40]], np.float32)
    np.testing.assert_allclose(B.decode_np(boxes, np.zeros((2, 4))), boxes, atol=1e-6)
    np.testing.assert_allclose(_run(lambda: B.decode(boxes, np.zeros((2, 4)))), boxes, atol=1e-6)


def test_encode_decode_round_trip_and_tf_agreement():
    rng = np.random.RandomState(0)
    boxes = _random_boxes(rng, 300)
    gt = _random_boxes(rng, 300)
    deltas = B.encode_np(boxes, gt)
    np.testing.assert_allclose(B.decode_np(boxes, deltas), gt, atol=1e-4)
    d_tf, gt_tf = _run(lambda: (B.encode(boxes, gt), B.decode(boxes, B.encode(boxes, gt))))
    np.testing.assert_allclose(d_tf, deltas, atol=1e-5)
    np.testing.assert_allclose(gt_tf, gt, atol=1e-4)
    # relative to the box size the round trip is exact to 1e-5
    np.testing.assert_allclose((gt_tf - gt) / 200.0, 0.0, atol=1e-5)


def test_decode_class_specific_layout():
    boxes = np.array([[0, 0, 15, 15], [10, 10, 29, 49]], np.float32)
    rng = np.random.RandomState(1)
    deltas = rng.uniform(-1, 1, (2, 12)).astype(np.float32)
    out = B.decode_np(boxes, deltas)
    assert out.shape == (2, 12)
    for k in range(3):
        np.testing.assert_allclose(out[:, 4 * k:4 * k + 4],
                                   B.decode_np(boxes, deltas[:, 4 * k:4 * k + 4]), rtol=1e-6)
    np.testing.assert_allclose(_run(lambda: B.decode(boxes, deltas)), out, rtol=1e-5, atol=1e-4)


def test_decode_clamps_dw_dh():
    box = np.array([[0, 0, 15, 15]], np.float32)
    deltas = np.array([[0, 0, 10.0, 100.0]], np.float32)
    for out in (B.decode_np(box, deltas), _run(lambda: B.decode(box, deltas))):
        w = out[0, 2] - out[0, 0] + 1
        h = out[0, 3] - out[0, 1] + 1
        np.testing.assert_allclose([w, h], [1000.0, 1000.0], rtol=1e-5)
        assert np.isfinite(out).all()


def test_clip_class_specific():
    boxes = np.array([[-5, -3, 120, 50, 10, 20, 30, 200]], np.float32)
    expected = [[0, 0, 99, 50, 10, 20, 30, 79]]
    np.testing.assert_array_equal(B.clip_np(boxes, 80, 100), expected)
    np.testing.assert_array_equal(_run(lambda: B.clip(boxes, tf.constant(80), 100.0)), expected)


def test_to_tf_nms_matches_plus_one_iou():
    # IoU(+1) of these is 25/175 ~ 0.143; with a 0.14 threshold TF NMS must suppress the second,
    # with 0.15 keep it. Without the offset TF's IoU would be 16/146 ~ 0.110 and keep it at 0.14.
    boxes = np.array([[0, 0, 9, 9], [5, 5, 14, 14]], np.float32)
    scores = np.array([0.9, 0.8], np.float32)

    def nms(thresh):
        return tf.image.non_max_suppression(B.to_tf_nms(boxes), scores, 10, iou_threshold=thresh)
    assert list(_run(lambda: nms(0.14))) == [0]
    assert list(_run(lambda: nms(0.15))) == [0, 1]


@pytest.mark.parametrize('n', [0, 3])
def test_empty_inputs(n):
    rng = np.random.RandomState(2)
    a = _random_boxes(rng, n)
    empty = np.zeros((0, 4), np.float32)
    assert B.iou_np(a, empty).shape == (n, 0)
    assert B.iou_np(empty, a).shape == (0, n)
    assert B.decode_np(empty, np.zeros((0, 8))).shape == (0, 8)
    assert B.clip_np(empty, 10, 10).shape == (0, 4)
    shapes = _run(lambda: [tf.shape(B.iou(a, empty)), tf.shape(B.ioa(empty, a)),
                           tf.shape(B.decode(empty, np.zeros((0, 8), np.float32))),
                           tf.shape(B.clip(np.zeros((0, 8), np.float32), 10, 10)),
                           tf.shape(B.encode(empty, empty))])
    assert [list(s) for s in shapes] == [[n, 0], [0, n], [0, 8], [0, 8], [0, 4]]
