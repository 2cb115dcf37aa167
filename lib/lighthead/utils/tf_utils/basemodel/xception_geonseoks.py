"""Xception* in geonseoks' geometry (SPEC 4.2, reference xception-star.md section 3).

Reproduces the graph of geonseoks/Light_head_R_CNN_xception so that its published ImageNet
checkpoint loads by name: scope ``resnet_v1_xception``, 228 backbone variables (230 with the
1000-way ``logits``), names and shapes as listed in the appendix of xception-star.md.

Layout: conv1 3x3/2 24 ch (BN, ReLU, ``conv2d_same``), pool1 max 3x3/2 'SAME', then

    block1  4 units, out 144, mid 24,  unit 1 stride 2    (stride 8)
    block2  8 units, out 288, mid 144, unit 1 stride 2    (stride 16)
    block3  4 units, out 576, mid 288, unit 1 stride 1    (stride 16, no dilation)

Unit ``blockN/unit_K/bottleneck_v1``:

    shortcut   1x1 conv in -> out with the unit stride, BN (unit 1 only; identity after)
    conv1      1x1 conv in -> mid, BN, ReLU
    dws_conv2  3x3 depthwise (unit stride, 'SAME') + 1x1 pointwise mid -> mid, biases, ReLU,
               no BN (slim ``separable_conv2d`` defaults, as in the original)
    conv3      1x1 conv mid -> out, BN
    merge      ReLU(shortcut + residual)

Kept from the original on purpose (the checkpoint was trained this way): the stride is on
the 'SAME' depthwise conv, which on even inputs samples odd pixel centres while the strided
1x1 shortcut samples even ones.

Differs from the original: ``freeze_at`` freezes the whole stage, so with the default
``freeze_at=2`` block1's ``dws_conv2`` variables are frozen too (geonseoks leaves them
trainable by accident because only ``conv2d`` received ``trainable``): 62 trainable
variables instead of his 74. Frozen variables carry no weight decay.

End points (``OrderedDict``; full name ``<scope>/<name>`` and short alias ``<name>``):
``conv1`` (stride 2), ``pool1`` (4), ``block1`` (8), ``block2`` (16), ``block3`` (16); with
``num_classes`` also ``global_pool``, ``logits``, ``predictions``. The RPN uses ``block2``,
the light head ``block3``.
"""
import functools

from lighthead.compat import tf
from lighthead.layers import conv2d, separable_conv2d, xavier_initializer

from .common import BN_DECAY, Stage, build_stages, projection_shortcut

SCOPE = 'resnet_v1_xception'
RPN_FEATURE = 'block2'
HEAD_FEATURE = 'block3'
FEATURE_STRIDES = {'conv1': 2, 'pool1': 4, 'block1': 8, 'block2': 16, 'block3': 16}

STEM_DEPTH = 24
STEM_KERNEL = 3


def _bottleneck(net, stride, scope, depth, mid):
    with tf.variable_scope(scope), tf.variable_scope('bottleneck_v1'):
        shortcut = projection_shortcut(net, depth, stride)
        residual = conv2d(net, mid, 1, scope='conv1')
        residual = separable_conv2d(residual, mid, 3, stride=stride, normalizer_fn=None,
                                    weights_initializer=xavier_initializer(),
                                    scope='dws_conv2')
        residual = conv2d(residual, depth, 1, activation_fn=None, scope='conv3')
        return tf.nn.relu(shortcut + residual)


def _block(name, depth, mid, stride, units):
    """Stage ``name``: ``units`` bottlenecks of output ``depth`` and bottleneck ``mid``
    channels, the first with ``stride``."""
    return Stage(name, units, stride, functools.partial(_bottleneck, depth=depth, mid=mid))


BLOCKS = (_block('block1', 144, 24, stride=2, units=4),
          _block('block2', 288, 144, stride=2, units=8),
          _block('block3', 576, 288, stride=1, units=4))


def xception_geonseoks(images, is_training=False, bn_training=False, freeze_at=2,
                       weight_decay=1e-4, bn_decay=BN_DECAY, num_classes=None, scope=SCOPE,
                       reuse=None):
    """Build geonseoks' Xception*.

    Args:
      images: float32 ``[N, H, W, 3]``, RGB minus the pixel means (SPEC 2.1).
      is_training, bn_training, freeze_at (0..4: stem, block1, block2, block3), weight_decay,
      bn_decay, num_classes, scope, reuse: as ``xception_star``.

    Returns:
      ``(net, end_points)``: ``net`` is the block3 output ``[N, ceil(H/16), ceil(W/16), 576]``,
      or the logits ``[N, num_classes]`` with ``num_classes``.
    """
    return build_stages(images, STEM_DEPTH, STEM_KERNEL, BLOCKS, is_training=is_training,
                        bn_training=bn_training, freeze_at=freeze_at, weight_decay=weight_decay,
                        bn_decay=bn_decay, num_classes=num_classes, scope=scope, reuse=reuse)


build = xception_geonseoks
