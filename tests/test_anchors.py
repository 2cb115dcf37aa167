import numpy as np

from lighthead.compat import tf
from lighthead.detection_opr.anchors import (generate_base_anchors, shifted_anchors,
                                             shifted_anchors_tf)

# SPEC 2.2, ratio-major (0.5, 1, 2) x scales (2, 4, 8, 16, 32)
SPEC_TABLE = [
    [-15, -4, 30, 19], [-38, -16, 53, 31], [-84, -40, 99, 55], [-176, -88, 191, 103],
    [-360, -184, 375, 199],
    [-8, -8, 23, 23], [-24, -24, 39, 39], [-56, -56, 71, 71], [-120, -120, 135, 135],
    [-248, -248, 263, 263],
    [-3, -14, 18, 29], [-14, -36, 29, 51], [-36, -80, 51, 95], [-80, -168, 95, 183],
    [-168, -344, 183, 359],
]


def test_base_table_exact():
    base = generate_base_anchors()
    assert base.dtype == np.float32 and base.shape == (15, 4)
    np.testing.assert_array_equal(base, np.array(SPEC_TABLE, np.float32))


def test_base_anchors_other_settings():
    base = generate_base_anchors(base_size=8, ratios=(1,), scales=(1, 2))
    np.testing.assert_array_equal(base, [[0, 0, 7, 7], [-4, -4, 11, 11]])


def test_shift_order_y_x_a():
    base = generate_base_anchors()
    a = shifted_anchors(base, 3, 4, 16)
    assert a.shape == (3 * 4 * 15, 4) and a.dtype == np.float32
    for y, x, k in [(0, 0, 0), (0, 1, 0), (1, 0, 3), (2, 3, 14)]:
        row = (y * 4 + x) * 15 + k
        np.testing.assert_array_equal(a[row], base[k] + 16 * np.array([x, y, x, y]))


def test_tf_matches_numpy_with_dynamic_size():
    base = generate_base_anchors(ratios=(0.5, 2), scales=(4, 8))
    with tf.Graph().as_default():
        h = tf.placeholder(tf.int32, [])
        w = tf.placeholder(tf.int32, [])
        out = shifted_anchors_tf(base, h, w, 32)
        with tf.Session() as sess:
            for fh, fw in [(5, 7), (1, 1), (0, 3)]:
                got = sess.run(out, {h: fh, w: fw})
                np.testing.assert_array_equal(got, shifted_anchors(base, fh, fw, 32))
