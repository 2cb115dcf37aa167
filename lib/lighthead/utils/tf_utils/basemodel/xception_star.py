"""Xception*, the backbone of the fast Light-Head R-CNN (setting S, SPEC 4.1, paper Table 7).

Layout (Table 7): conv1 3x3/2 24 ch (BN, ReLU; symmetric explicit padding as slim's
``conv2d_same``), max-pool 3x3/2 'SAME', stage2 144 ch (1 unit stride 2 + 3), stage3 288 ch
(1 + 7), stage4 576 ch (1 + 3); output strides 2, 4, 8, 16, 32.

Unit (Table 7 does not give it; this ShuffleNet-v1-g1 reading costs 143M multiply-adds at
224x224 against the paper's 145M, reference xception-star.md section 6.1), bottleneck width
``mid = out / 4``:

    conv1      1x1 conv in -> mid, BN, ReLU
    depthwise  3x3 depthwise conv (stride s), BN
    conv3      1x1 conv mid -> out (stride 1) or mid -> out - in (stride 2), BN
    merge      stride 1: x + residual; stride 2: concat([avg_pool3x3/2(x), residual]); ReLU

In a stride-2 unit the depthwise conv and the average pool both use TF 'SAME' padding, so
they see the same 3x3 windows and both give ``ceil(H / 2) x ceil(W / 2)`` for any input size
(odd sizes such as 333x517 included). Every end point has spatial size
``ceil(H / stride) x ceil(W / stride)``.

Variable names (stable; what checkpoints of this backbone contain), scope ``xception_star``:

    xception_star/conv1/{weights, BatchNorm/{gamma, beta, moving_mean, moving_variance}}
    xception_star/stageS/unit_K/conv1/{weights, BatchNorm/...}        S = 2..4, K = 1..n
    xception_star/stageS/unit_K/depthwise/{depthwise_weights, BatchNorm/...}
    xception_star/stageS/unit_K/conv3/{weights, BatchNorm/...}
    xception_star/logits/{weights, biases}                             (num_classes only)

End points (``OrderedDict``), each under its full name ``<scope>/<name>`` and the short
alias ``<name>``: ``conv1`` (stride 2), ``pool1`` (4), ``stage2`` (8), ``stage3`` (16),
``stage4`` (32); with ``num_classes`` also ``global_pool``, ``logits`` and ``predictions``.
The detector puts the RPN on ``stage3`` and the light head on ``stage4``.
"""
import functools

from lighthead.compat import tf
from lighthead.layers import avg_pool2d, conv2d, separable_conv2d

from .common import BN_DECAY, Stage, build_stages

SCOPE = 'xception_star'
RPN_FEATURE = 'stage3'
HEAD_FEATURE = 'stage4'
FEATURE_STRIDES = {'conv1': 2, 'pool1': 4, 'stage2': 8, 'stage3': 16, 'stage4': 32}

STEM_DEPTH = 24
STEM_KERNEL = 3


def _unit(net, stride, scope, depth):
    in_depth = net.get_shape().as_list()[-1]
    with tf.variable_scope(scope):
        residual = conv2d(net, depth // 4, 1, scope='conv1')
        residual = separable_conv2d(residual, None, 3, stride=stride, activation_fn=None,
                                    scope='depthwise')
        if stride == 1:
            residual = conv2d(residual, depth, 1, activation_fn=None, scope='conv3')
            return tf.nn.relu(net + residual)
        residual = conv2d(residual, depth - in_depth, 1, activation_fn=None, scope='conv3')
        shortcut = avg_pool2d(net, 3, stride=stride, padding='SAME', scope='shortcut')
        return tf.nn.relu(tf.concat([shortcut, residual], axis=3))


# Output channels and units of each stage; the first unit of every stage has stride 2.
STAGES = (Stage('stage2', units=4, stride=2, unit=functools.partial(_unit, depth=144)),
          Stage('stage3', units=8, stride=2, unit=functools.partial(_unit, depth=288)),
          Stage('stage4', units=4, stride=2, unit=functools.partial(_unit, depth=576)))


def xception_star(images, is_training=False, bn_training=False, freeze_at=2,
                  weight_decay=1e-4, bn_decay=BN_DECAY, num_classes=None, scope=SCOPE,
                  reuse=None):
    """Build Xception* (setting S).

    Args:
      images: float32 ``[N, H, W, 3]``, RGB minus the pixel means (SPEC 2.1).
      is_training: training graph (BN uses batch statistics if also ``bn_training``).
      bn_training: BN ``gamma`` / ``beta`` trainable and, when training, batch statistics.
      freeze_at: 0 nothing frozen, 1 conv1 frozen, 2 conv1 + stage2 frozen (default), 3, 4.
      weight_decay: L2 scale on the conv weights of non-frozen stages (0: none).
      bn_decay: decay of the BN moving mean and variance.
      num_classes: None for the feature extractor; an int adds the ImageNet classifier.
      scope, reuse: variable scope of the whole backbone and its reuse flag.

    Returns:
      ``(net, end_points)``: ``net`` is the stage4 output ``[N, ceil(H/32), ceil(W/32), 576]``,
      or the logits ``[N, num_classes]`` with ``num_classes``; ``end_points`` as in the module
      docstring.
    """
    return build_stages(images, STEM_DEPTH, STEM_KERNEL, STAGES, is_training=is_training,
                        bn_training=bn_training, freeze_at=freeze_at, weight_decay=weight_decay,
                        bn_decay=bn_decay, num_classes=num_classes, scope=scope, reuse=reuse)


build = xception_star
