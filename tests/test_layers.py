"""lighthead.layers: slim names/shapes, numerics against a NumPy reference, arg_scope, BN."""
import math

import numpy as np
import pytest

from lighthead import layers as L
from lighthead.compat import tf


def np_conv(x, w, stride=1, padding='SAME', rate=1, depthwise=False):
    """Reference NHWC convolution; ``w`` [kh, kw, C, out] (depthwise: [kh, kw, C, 1])."""
    n, h, wd, _ = x.shape
    kh, kw = w.shape[:2]
    ekh, ekw = (kh - 1) * rate + 1, (kw - 1) * rate + 1
    if padding == 'SAME':
        oh, ow = math.ceil(h / stride), math.ceil(wd / stride)
        ph = max((oh - 1) * stride + ekh - h, 0)
        pw = max((ow - 1) * stride + ekw - wd, 0)
    else:
        oh, ow = (h - ekh) // stride + 1, (wd - ekw) // stride + 1
        ph = pw = 0
    xp = np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
    out = np.zeros((n, oh, ow, x.shape[3] if depthwise else w.shape[3]))
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, i * rate:i * rate + (oh - 1) * stride + 1:stride,
                       j * rate:j * rate + (ow - 1) * stride + 1:stride, :]
            out += patch * w[i, j, :, 0] if depthwise else patch @ w[i, j]
    return out


def run(outputs, feed=None):
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        return sess.run(outputs, feed)


def var_shapes():
    return {v.op.name: v.get_shape().as_list() for v in tf.global_variables()}


@pytest.fixture(autouse=True)
def graph():
    with tf.Graph().as_default() as g:
        tf.set_random_seed(0)
        yield g


def test_conv2d_names_shapes_and_default_scopes():
    x = tf.zeros([1, 8, 8, 3])
    L.conv2d(x, 16, 3)
    L.conv2d(x, 4, [1, 5], biases_initializer=None)
    L.conv2d(x, 8, 3, normalizer_fn=L.batch_norm, scope='bn_conv')
    assert var_shapes() == {
        'Conv/weights': [3, 3, 3, 16], 'Conv/biases': [16],
        'Conv_1/weights': [1, 5, 3, 4],
        'bn_conv/weights': [3, 3, 3, 8], 'bn_conv/BatchNorm/beta': [8],
        'bn_conv/BatchNorm/moving_mean': [8], 'bn_conv/BatchNorm/moving_variance': [8]}
    assert {v.op.name for v in tf.trainable_variables()} == {
        'Conv/weights', 'Conv/biases', 'Conv_1/weights', 'bn_conv/weights',
        'bn_conv/BatchNorm/beta'}
    assert len(tf.get_collection(tf.GraphKeys.MODEL_VARIABLES)) == 7


@pytest.mark.parametrize('stride,padding,rate,size', [
    (1, 'SAME', 1, (7, 9)), (2, 'VALID', 1, (9, 8)), (2, 'SAME', 1, (8, 7)),
    (1, 'SAME', 2, (9, 10)), (1, 'VALID', 3, (11, 12))])
def test_conv2d_matches_numpy(stride, padding, rate, size):
    rng = np.random.RandomState(1)
    x = rng.randn(2, size[0], size[1], 3).astype(np.float32)
    inp = tf.placeholder(tf.float32, [None, None, None, 3])
    y = L.conv2d(inp, 5, 3, stride=stride, padding=padding, rate=rate,
                 biases_initializer=tf.random_normal_initializer(), scope='c')
    with tf.variable_scope('c', reuse=True):
        w_var, b_var = tf.get_variable('weights'), tf.get_variable('biases')
    out, w, b = run([y, w_var, b_var], {inp: x})
    expected = np.maximum(np_conv(x, w, stride, padding, rate) + b, 0)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


def test_stride_and_rate_cannot_combine():
    with pytest.raises(ValueError, match='stride'):
        L.conv2d(tf.zeros([1, 8, 8, 3]), 4, 3, stride=2, rate=2)


@pytest.mark.parametrize('size,stride,rate', [((9, 10), 2, 1), ((8, 7), 2, 1), ((9, 9), 1, 2)])
def test_conv2d_same_symmetric_padding(size, stride, rate):
    rng = np.random.RandomState(2)
    x = rng.randn(1, size[0], size[1], 2).astype(np.float32)
    y = L.conv2d_same(tf.constant(x), 3, 3, stride, rate=rate, activation_fn=None,
                      biases_initializer=None, scope='cs')
    with tf.variable_scope('cs', reuse=True):
        w_var = tf.get_variable('weights')
    out, w = run([y, w_var])
    eff = 2 * rate + 1
    pad = (eff - 1) // 2
    xp = np.pad(x, ((0, 0), (pad, eff - 1 - pad), (pad, eff - 1 - pad), (0, 0)))
    expected = np_conv(xp, w, stride, 'VALID', rate)
    assert out.shape[1:3] == (math.ceil(size[0] / stride), math.ceil(size[1] / stride))
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


def test_separable_conv2d_names_and_numerics():
    rng = np.random.RandomState(3)
    x = rng.randn(2, 9, 8, 4).astype(np.float32)
    y = L.separable_conv2d(tf.constant(x), 6, 3, depth_multiplier=2, stride=2,
                           biases_initializer=tf.random_normal_initializer(), scope='sep')
    z = L.separable_conv2d(tf.constant(x), None, 3, rate=2, activation_fn=None, scope='dw')
    assert var_shapes() == {
        'sep/depthwise_weights': [3, 3, 4, 2], 'sep/pointwise_weights': [1, 1, 8, 6],
        'sep/biases': [6], 'dw/depthwise_weights': [3, 3, 4, 1], 'dw/biases': [4]}
    names = ['sep/depthwise_weights', 'sep/pointwise_weights', 'sep/biases',
             'dw/depthwise_weights', 'dw/biases']
    variables = {v.op.name: v for v in tf.global_variables()}
    out_y, out_z, dw, pw, b, dw2, b2 = run([y, z] + [variables[n] for n in names])
    # depth multiplier 2: output channel c * 2 + m uses input channel c
    mid = np.concatenate([np_conv(x[..., c:c + 1], dw[:, :, c:c + 1, m:m + 1], 2,
                                  depthwise=True)
                          for c in range(4) for m in range(2)], axis=3)
    np.testing.assert_allclose(out_y, np.maximum(mid @ pw[0, 0] + b, 0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out_z, np_conv(x, dw2, 1, 'SAME', 2, depthwise=True) + b2,
                               rtol=1e-4, atol=1e-4)


def test_fully_connected_flatten_and_pools():
    rng = np.random.RandomState(4)
    x = rng.randn(2, 5, 7, 3).astype(np.float32)
    flat = L.flatten(tf.placeholder_with_default(x, [None, 5, 7, 3]))
    assert flat.get_shape().as_list() == [None, 105]
    fc = L.fully_connected(flat, 4, activation_fn=None, scope='fc')
    fc3 = L.fully_connected(tf.constant(x), 2, scope='fc3')
    assert fc3.get_shape().as_list() == [2, 5, 7, 2]
    mp = L.max_pool2d(tf.constant(x), 3, stride=2, padding='SAME')
    ap = L.avg_pool2d(tf.constant(x), 3, stride=2, padding='SAME')
    ap_valid = L.avg_pool2d(tf.constant(x), 2)
    variables = {v.op.name: v for v in tf.global_variables()}
    out, out3, w, b, w3, b3, mp_v, ap_v, apv = run(
        [fc, fc3, variables['fc/weights'], variables['fc/biases'], variables['fc3/weights'],
         variables['fc3/biases'], mp, ap, ap_valid])
    np.testing.assert_allclose(out, x.reshape(2, -1) @ w + b, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out3, np.maximum(x @ w3 + b3, 0), rtol=1e-4, atol=1e-4)
    assert mp_v.shape == ap_v.shape == (2, 3, 4, 3)
    # H = 5: SAME pads one row on each side; W = 7: one column on each side.
    np.testing.assert_allclose(mp_v[:, 0, 0], x[:, :2, :2].max(axis=(1, 2)), rtol=1e-6)
    # padded positions do not count in the average
    np.testing.assert_allclose(ap_v[:, 0, 0], x[:, :2, :2].mean(axis=(1, 2)), rtol=1e-5)
    assert apv.shape == (2, 2, 3, 3)


def test_arg_scope_merge_override_and_reenter():
    x = tf.zeros([1, 4, 4, 2])
    with L.arg_scope([L.conv2d, L.separable_conv2d], activation_fn=None, trainable=False):
        with L.arg_scope([L.conv2d], biases_initializer=None) as inner:
            L.conv2d(x, 3, 1, scope='a')                   # both scopes apply
            L.conv2d(x, 3, 1, trainable=True, scope='b')   # explicit overrides
            L.separable_conv2d(x, 3, 1, scope='s')         # only the outer scope
        a = L.conv2d(x, 3, 1, scope='c')                   # inner scope left
    with L.arg_scope(inner):                               # re-entered as it was
        L.conv2d(x, 3, 1, scope='d')
    names = set(var_shapes())
    trainable = {v.op.name for v in tf.trainable_variables()}
    assert 'a/biases' not in names and 'd/biases' not in names
    assert 'c/biases' in names and 's/biases' in names
    assert trainable == {'b/weights'}
    assert a.op.type == 'BiasAdd'  # activation_fn=None from the outer scope
    with pytest.raises(ValueError, match='add_arg_scope'):
        with L.arg_scope([tf.nn.relu], name='x'):
            pass


def test_batch_norm_train_and_inference():
    rng = np.random.RandomState(5)
    x = (rng.randn(4, 3, 5, 2) * 3 + 7).astype(np.float32)
    train = L.batch_norm(tf.constant(x), decay=0.9, scale=True, is_training=True, scope='bn')
    updates = tf.get_collection(tf.GraphKeys.UPDATE_OPS)
    assert len(updates) == 2
    infer = L.batch_norm(tf.constant(x), scale=True, is_training=False, reuse=True, scope='bn')
    assert len(tf.get_collection(tf.GraphKeys.UPDATE_OPS)) == 2
    frozen = L.batch_norm(tf.constant(x), is_training=False, trainable=False, scope='frozen')
    assert {v.op.name for v in tf.trainable_variables()} == {'bn/beta', 'bn/gamma'}
    assert {v.op.name for v in tf.get_collection(tf.GraphKeys.MOVING_AVERAGE_VARIABLES)} == {
        'bn/moving_mean', 'bn/moving_variance', 'frozen/moving_mean',
        'frozen/moving_variance'}
    mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        out_infer_before, out_frozen = sess.run([infer, frozen])
        out_train, _ = sess.run([train, updates])
        mm, mv = sess.run(['bn/moving_mean:0', 'bn/moving_variance:0'])
        out_infer_after = sess.run(infer)
    np.testing.assert_allclose(out_train, (x - mean) / np.sqrt(var + 1e-3), rtol=1e-3,
                               atol=1e-3)
    np.testing.assert_allclose(out_infer_before, x / np.sqrt(1 + 1e-3), rtol=1e-5)
    np.testing.assert_allclose(out_frozen, x / np.sqrt(1 + 1e-3), rtol=1e-5)
    np.testing.assert_allclose(mm, 0.1 * mean, rtol=1e-4)
    unbiased = var * x[..., 0].size / (x[..., 0].size - 1)
    np.testing.assert_allclose(mv, 0.9 + 0.1 * unbiased, rtol=1e-4)
    np.testing.assert_allclose(out_infer_after, (x - mm) / np.sqrt(mv + 1e-3), rtol=1e-4,
                               atol=1e-4)


def test_batch_norm_rank2_and_bool_only():
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    out = L.batch_norm(tf.constant(x), is_training=True, epsilon=0.0)
    result = run(out)
    np.testing.assert_allclose(result, (x - x.mean(0)) / x.std(0), rtol=1e-5)
    with pytest.raises(TypeError):
        L.batch_norm(tf.constant(x), is_training=tf.constant(True))


def test_regularizer_counted_once_with_reuse():
    reg = L.l2_regularizer(0.5)
    x = tf.ones([1, 4, 4, 2])
    for tower in range(2):
        with tf.variable_scope('net', reuse=tower > 0):
            L.conv2d(x, 3, 3, weights_regularizer=reg, biases_regularizer=reg, scope='c')
            L.separable_conv2d(x, 3, 3, weights_regularizer=reg, scope='s')
    losses = tf.get_collection(tf.GraphKeys.REGULARIZATION_LOSSES)
    assert len(losses) == 4  # conv weights + biases, depthwise + pointwise
    assert len(tf.global_variables()) == 5
    values, weights = run([losses[0], 'net/c/weights:0'])
    np.testing.assert_allclose(values, 0.5 * 0.5 * np.sum(weights ** 2), rtol=1e-5)
    assert L.l2_regularizer(0.0) is None


def test_group_norm_matches_numpy_and_names_its_variables():
    from lighthead.layers import group_norm
    rng = np.random.RandomState(0)
    x = rng.normal(3.0, 2.0, size=(2, 5, 4, 6)).astype(np.float32)
    with tf.Graph().as_default():
        out = group_norm(tf.constant(x), groups=3, scope='gn')
        names = sorted(v.op.name for v in tf.global_variables())
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            got = sess.run(out)
    grouped = x.reshape(2, 5, 4, 3, 2)
    mean = grouped.mean(axis=(1, 2, 4), keepdims=True)
    var = grouped.var(axis=(1, 2, 4), keepdims=True)
    expected = ((grouped - mean) / np.sqrt(var + 1e-5)).reshape(x.shape)
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert names == ['gn/beta', 'gn/gamma']
    with tf.Graph().as_default(), pytest.raises(ValueError, match='do not divide'):
        group_norm(tf.constant(x), groups=4)


@pytest.mark.parametrize('initializer, expected_std', [
    (L.variance_scaling_initializer(), math.sqrt(2.0 / 9)),  # He: fan_in = 3 * 3
    (L.xavier_initializer(), math.sqrt(2.0 / (9 + 9))),  # Glorot: fan_in = fan_out = 3 * 3
])
def test_depthwise_kernel_uses_its_own_fan(initializer, expected_std):
    """A depthwise 3x3 unit sees 9 inputs whatever the channel count: its weights must not
    shrink with C (the shape-read fan 9 * C gives sqrt(C) too small a scale)."""
    stds = []
    for channels in (16, 256):
        x = tf.zeros([1, 8, 8, channels])
        L.separable_conv2d(x, None, 3, weights_initializer=initializer, activation_fn=None,
                           scope='dw%d' % channels)
    values = run({c: tf.global_variables('dw%d/depthwise_weights' % c)[0] for c in (16, 256)})
    for channels, w in values.items():
        assert w.shape == (3, 3, channels, 1)
        stds.append(w.std())
        # He's truncated normal keeps its std; Glorot uniform has it by construction.
        assert abs(w.std() - expected_std) < 0.12 * expected_std, (channels, w.std())
    assert abs(stds[0] / stds[1] - 1.0) < 0.15


def test_depthwise_initializer_leaves_other_initializers_alone():
    normal = tf.random_normal_initializer(0.0, 0.01)
    assert L.depthwise_initializer(normal, 64, 1) is normal
