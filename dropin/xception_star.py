"""Xception* (paper Table 7, setting S) for a zengarden/light_head_rcnn checkout (TF 1.x, slim).

Goes to ``lib/utils/tf_utils/basemodel/xception_star.py`` of that checkout. Imports only
TensorFlow and slim (``tf_slim`` if installed, else ``tf.contrib.slim``).

Same architecture and the same variable names as lighthead's
``lighthead/utils/tf_utils/basemodel/xception_star.py``, so checkpoints move both ways:

    conv1      3x3/2 conv, 24 ch, BN, ReLU (symmetric explicit padding, then VALID)
    pool1      3x3/2 max pool, SAME
    stage2     144 ch: 1 unit of stride 2 + 3 units         (output stride 8)
    stage3     288 ch: 1 + 7                                (16: the RPN goes here)
    stage4     576 ch: 1 + 3                                (32: the light head goes here)

Unit, bottleneck ``mid = out / 4``: ``conv1`` 1x1 conv + BN + ReLU -> ``depthwise`` 3x3
depthwise conv (stride s, SAME) + BN -> ``conv3`` 1x1 conv + BN (``out`` channels for stride 1,
``out - in`` for stride 2); stride 1 adds the input, stride 2 concatenates a 3x3/2 SAME average
pool of the input in front; ReLU. Every end point is ``ceil(H / stride) x ceil(W / stride)``.

Variables, scope ``xception_star``:

    xception_star/conv1/{weights, BatchNorm/{gamma, beta, moving_mean, moving_variance}}
    xception_star/stageS/unit_K/conv1/{weights, BatchNorm/...}         S = 2..4
    xception_star/stageS/unit_K/depthwise/{depthwise_weights, BatchNorm/...}
    xception_star/stageS/unit_K/conv3/{weights, BatchNorm/...}

BN always normalises with the moving statistics, as the original ResNet-101 experiment (its
train.py never runs the moving-average updates); ``bn_trainable`` only makes ``gamma`` /
``beta`` trainable. Stages before ``freeze_at`` (0 = stem, 1 = stage2, ...) are frozen: no
trainable variable, no weight decay.
"""
import collections

import tensorflow as tf

try:
    import tf_slim as slim
except ImportError:
    import tensorflow.contrib.slim as slim

SCOPE = 'xception_star'
STEM_DEPTH = 24
# (scope, output channels, units); the first unit of every stage has stride 2.
STAGES = (('stage2', 144, 4), ('stage3', 288, 8), ('stage4', 576, 4))
FEATURE_STRIDES = collections.OrderedDict(
    [('conv1', 2), ('pool1', 4), ('stage2', 8), ('stage3', 16), ('stage4', 32)])
BN_DECAY = 0.997
BN_EPSILON = 1e-5


def stage_arg_scope(trainable, bn_trainable, weight_decay):
    """slim arg_scope for the convs of one stage: He init, BN (moving statistics), L2 decay
    ``weight_decay * 0.5 * ||w||^2`` on trainable weights only."""
    bn_params = {'is_training': False, 'decay': BN_DECAY, 'epsilon': BN_EPSILON, 'scale': True,
                 'trainable': bool(trainable and bn_trainable)}
    return slim.arg_scope(
        [slim.conv2d, slim.separable_conv2d],
        weights_initializer=slim.variance_scaling_initializer(),
        weights_regularizer=slim.l2_regularizer(weight_decay) if trainable else None,
        trainable=trainable, activation_fn=tf.nn.relu, normalizer_fn=slim.batch_norm,
        normalizer_params=bn_params)


def _conv2d_same(net, depth, kernel, stride, scope):
    """Strided conv whose output pixel i is centred on input pixel ``stride * i``."""
    pad_begin = (kernel - 1) // 2
    pad_end = kernel - 1 - pad_begin
    net = tf.pad(net, [[0, 0], [pad_begin, pad_end], [pad_begin, pad_end], [0, 0]])
    return slim.conv2d(net, depth, kernel, stride=stride, padding='VALID', scope=scope)


def _unit(net, depth, stride, scope):
    in_depth = net.get_shape().as_list()[-1]
    with tf.variable_scope(scope):
        residual = slim.conv2d(net, depth // 4, 1, scope='conv1')
        residual = slim.separable_conv2d(residual, None, 3, depth_multiplier=1, stride=stride,
                                         activation_fn=None, scope='depthwise')
        if stride == 1:
            residual = slim.conv2d(residual, depth, 1, activation_fn=None, scope='conv3')
            return tf.nn.relu(net + residual)
        residual = slim.conv2d(residual, depth - in_depth, 1, activation_fn=None, scope='conv3')
        shortcut = slim.avg_pool2d(net, 3, stride=stride, padding='SAME', scope='shortcut')
        return tf.nn.relu(tf.concat([shortcut, residual], axis=3))


def xception_star(images, is_training=False, bn_trainable=False, freeze_at=2,
                  weight_decay=1e-4, scope=SCOPE, reuse=None):
    """Build the Xception* feature extractor.

    Args:
      images: float32 ``[N, H, W, 3]``, RGB minus the pixel means (the checkout's input).
      is_training: False makes every variable non-trainable (the test graph).
      bn_trainable: BN ``gamma`` / ``beta`` of the non-frozen stages are trainable.
      freeze_at: stages ``0 .. freeze_at - 1`` are frozen (0 stem, 1 stage2, 2 stage3, 3
        stage4); the default 2 freezes the stem and stage2, as the original freezes its root
        and block1.
      weight_decay: L2 scale on the weights of the non-frozen stages.
      scope, reuse: variable scope of the backbone and its reuse flag (None inherits, so
        towers built under a reusing scope share the variables).

    Returns:
      ``(net, end_points)``: ``net`` is stage4 ``[N, ceil(H/32), ceil(W/32), 576]``;
      ``end_points`` an OrderedDict ``conv1, pool1, stage2, stage3, stage4`` (strides in
      ``FEATURE_STRIDES``).
    """
    if not 0 <= freeze_at <= 1 + len(STAGES):
        raise ValueError('freeze_at must be in [0, %d], got %r' % (1 + len(STAGES), freeze_at))
    end_points = collections.OrderedDict()
    with tf.variable_scope(scope, reuse=reuse):
        with stage_arg_scope(is_training and freeze_at < 1, bn_trainable, weight_decay):
            net = _conv2d_same(images, STEM_DEPTH, 3, 2, scope='conv1')
        end_points['conv1'] = net
        net = slim.max_pool2d(net, 3, stride=2, padding='SAME', scope='pool1')
        end_points['pool1'] = net
        for index, (name, depth, units) in enumerate(STAGES, 1):
            with stage_arg_scope(is_training and freeze_at <= index, bn_trainable,
                                 weight_decay), tf.variable_scope(name):
                for unit in range(units):
                    net = _unit(net, depth, 2 if unit == 0 else 1, 'unit_%d' % (unit + 1))
            end_points[name] = net
    return net, end_points
