"""calibrate_batch_norm: inference-mode batch norms normalise the calibration input."""
import numpy as np

from lighthead.compat import tf
from lighthead.layers import batch_norm, conv2d
from lighthead.utils.tf_utils.bn_calibration import calibrate_batch_norm


def test_each_batch_norm_normalises_its_input_after_calibration():
    rng = np.random.RandomState(0)
    data = (rng.randn(2, 12, 12, 3) * 50.0 + 20.0).astype(np.float32)
    with tf.Graph().as_default():
        tf.set_random_seed(0)
        x = tf.placeholder(tf.float32, [None, None, None, 3])
        net, normalised = x, []
        for i in range(3):
            net = conv2d(net, 8, 3, activation_fn=None, scope='conv%d' % i)
            net = batch_norm(net, is_training=False, scope='conv%d/BatchNorm' % i)
            normalised.append(net)
            net = tf.nn.relu(net) * 4.0  # grows without calibration
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            before = sess.run(normalised, {x: data})
            assert calibrate_batch_norm(sess, {x: data}) == 3
            after = sess.run(normalised, {x: data})
    assert max(abs(float(b.std()) - 1.0) for b in before) > 0.5
    for out in after:
        np.testing.assert_allclose(out.mean(axis=(0, 1, 2)), 0.0, atol=1e-3)
        np.testing.assert_allclose(out.var(axis=(0, 1, 2)), 1.0, rtol=1e-2)
