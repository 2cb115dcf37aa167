"""ResNet-101 v1 of Light-Head R-CNN setting L (SPEC 4.3, zengarden-behaviour.md 6.2-6.3).

Root: conv1 7x7/2 64 ch (BN, ReLU, ``conv2d_same``: pad 3/3 then 'VALID'), pool1 max
3x3/2 'SAME'. Blocks of ``bottleneck_v1`` units:

    block1   3 units, out 256,  mid 64,  stride 1               (stride 4)
    block2   4 units, out 512,  mid 128, unit 1 stride 2        (stride 8)
    block3  23 units, out 1024, mid 256, unit 1 stride 2        (stride 16)
    block4   3 units, out 2048, mid 512, stride 1, dilation 2   (stride 16)

Unit ``blockN/unit_K/bottleneck_v1``: ``conv1`` 1x1 + BN + ReLU, ``conv2`` 3x3 with the
unit's stride and dilation (``conv2d_same``) + BN + ReLU, ``conv3`` 1x1 + BN, ``shortcut``
1x1 conv (unit stride) + BN when the depth changes, identity otherwise; ReLU after the add.
This is the original's "MSRA" stride placement (stride on the 3x3 conv of the FIRST unit).

Variable names are slim's (``resnet_v1_101/conv1/weights``, ``resnet_v1_101/blockN/unit_K/
bottleneck_v1/{conv1,conv2,conv3,shortcut}/{weights,BatchNorm/...}``, ``resnet_v1_101/
logits/{weights,biases}``), so the slim ``resnet_v1_101`` ImageNet checkpoint loads by name:
520 backbone variables, 522 with logits.

``tf_slim.nets.resnet_v1`` is not used: tf_slim's layers fail on TF 2.21 (SPEC 7), and its
stride placement differs (stride on the LAST unit of blocks 1-3; the shapes and therefore
the checkpoint are the same).

End points (``OrderedDict``; full name ``<scope>/<name>`` and alias ``<name>``): ``conv1``
(stride 2), ``pool1`` (4), ``block1`` (4), ``block2`` (8), ``block3`` (16), ``block4`` (16);
with ``num_classes`` also ``global_pool``, ``logits``, ``predictions``. The RPN uses
``block3``, the light head ``block4``. Spatial size of an end point: ``ceil(H / stride)``.
"""
import collections
import functools

from lighthead.compat import tf
from lighthead.layers import conv2d, conv2d_same

from .common import (BN_DECAY, add_end_point, check_freeze_at, classifier,
                     projection_shortcut, stage_scope, stem)

SCOPE = 'resnet_v1_101'
RPN_FEATURE = 'block3'
HEAD_FEATURE = 'block4'
FEATURE_STRIDES = {'conv1': 2, 'pool1': 4, 'block1': 4, 'block2': 8, 'block3': 16,
                   'block4': 16}

ROOT_DEPTH = 64
# (scope, output channels, bottleneck channels, units, stride of unit 1, dilation)
BLOCKS_101 = (('block1', 256, 64, 3, 1, 1), ('block2', 512, 128, 4, 2, 1),
              ('block3', 1024, 256, 23, 2, 1), ('block4', 2048, 512, 3, 1, 2))


def _bottleneck(net, depth, mid, stride, rate, scope):
    with tf.variable_scope(scope), tf.variable_scope('bottleneck_v1'):
        shortcut = projection_shortcut(net, depth, stride)
        residual = conv2d(net, mid, 1, scope='conv1')
        residual = conv2d_same(residual, mid, 3, stride, rate=rate, scope='conv2')
        residual = conv2d(residual, depth, 1, activation_fn=None, scope='conv3')
        return tf.nn.relu(shortcut + residual)


def resnet_v1_101(images, is_training=False, bn_training=False, freeze_at=2,
                  weight_decay=1e-4, bn_decay=BN_DECAY, num_classes=None, scope=SCOPE,
                  reuse=None):
    """Build ResNet-101 v1 (block4 dilated, output stride 16).

    Args:
      images: float32 ``[N, H, W, 3]``, RGB minus the pixel means (SPEC 2.1).
      is_training, bn_training, weight_decay, bn_decay, num_classes, scope, reuse: as
        ``xception_star``.
      freeze_at: 0..5 (stem, block1, ..., block4); default 2 = conv1 + block1 frozen.

    Returns:
      ``(net, end_points)``: ``net`` is block4 ``[N, ceil(H/16), ceil(W/16), 2048]``, or the
      logits ``[N, num_classes]`` with ``num_classes``.
    """
    check_freeze_at(freeze_at, 1 + len(BLOCKS_101))
    end_points = collections.OrderedDict()
    with tf.variable_scope(scope, reuse=reuse) as sc:
        scoped = functools.partial(stage_scope, is_training=is_training, bn_training=bn_training,
                                   weight_decay=weight_decay, bn_decay=bn_decay)
        with scoped(freeze_at > 0):
            net = stem(images, ROOT_DEPTH, 7, end_points, sc.name)
        for index, (name, depth, mid, units, stride, rate) in enumerate(BLOCKS_101, 1):
            with scoped(freeze_at > index), tf.variable_scope(name):
                for unit in range(units):
                    net = _bottleneck(net, depth, mid, stride if unit == 0 else 1, rate,
                                      'unit_%d' % (unit + 1))
            add_end_point(end_points, sc.name, name, net)
        if num_classes:
            net = classifier(net, num_classes, weight_decay, end_points, sc.name)
    return net, end_points


build = resnet_v1_101
