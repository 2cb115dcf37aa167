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
import functools

from lighthead.compat import tf
from lighthead.layers import conv2d, conv2d_same

from .common import BN_DECAY, Stage, build_stages, projection_shortcut

SCOPE = 'resnet_v1_101'
RPN_FEATURE = 'block3'
HEAD_FEATURE = 'block4'
FEATURE_STRIDES = {'conv1': 2, 'pool1': 4, 'block1': 4, 'block2': 8, 'block3': 16,
                   'block4': 16}

ROOT_DEPTH = 64
ROOT_KERNEL = 7


def _bottleneck(net, stride, scope, depth, mid, rate):
    with tf.variable_scope(scope), tf.variable_scope('bottleneck_v1'):
        shortcut = projection_shortcut(net, depth, stride)
        residual = conv2d(net, mid, 1, scope='conv1')
        residual = conv2d_same(residual, mid, 3, stride, rate=rate, scope='conv2')
        residual = conv2d(residual, depth, 1, activation_fn=None, scope='conv3')
        return tf.nn.relu(shortcut + residual)


def _block(name, depth, mid, units, stride, rate):
    """Stage ``name``: ``units`` bottlenecks of output ``depth`` and bottleneck ``mid``
    channels, the first with ``stride``, every 3x3 conv with dilation ``rate``."""
    return Stage(name, units, stride,
                 functools.partial(_bottleneck, depth=depth, mid=mid, rate=rate))


BLOCKS_101 = (_block('block1', 256, 64, units=3, stride=1, rate=1),
              _block('block2', 512, 128, units=4, stride=2, rate=1),
              _block('block3', 1024, 256, units=23, stride=2, rate=1),
              _block('block4', 2048, 512, units=3, stride=1, rate=2))


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
    return build_stages(images, ROOT_DEPTH, ROOT_KERNEL, BLOCKS_101, is_training=is_training,
                        bn_training=bn_training, freeze_at=freeze_at, weight_decay=weight_decay,
                        bn_decay=bn_decay, num_classes=num_classes, scope=scope, reuse=reuse)


build = resnet_v1_101
