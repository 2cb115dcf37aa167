"""What the backbones share: per-stage layer defaults (freezing, BN mode, weight decay),
end-point bookkeeping and the ImageNet classification head.

Policy, the same for every backbone:
- Stage 0 is the stem, stage i >= 1 the i-th residual stage. ``freeze_at`` (detectron2
  convention) freezes stages ``0 .. freeze_at - 1``: their variables are created with
  ``trainable=False``, carry no regularizer, and their BN always uses the moving statistics.
- BN everywhere else: batch statistics only when ``is_training and bn_training``; ``gamma`` /
  ``beta`` trainable only when ``bn_training``; moving-average decay ``bn_decay`` (default
  0.997, the original's ``resnet_arg_scope``; short from-scratch runs want less, e.g. 0.95),
  epsilon 1e-5, scale True.
- Conv weights of non-frozen stages: He (variance scaling) init and ``l2_regularizer(
  weight_decay)`` = ``weight_decay * 0.5 * ||w||^2``; no regularizer on biases or BN.
"""
import contextlib

from lighthead.compat import tf
from lighthead.layers import (arg_scope, batch_norm, conv2d, conv2d_same, l2_regularizer,
                              max_pool2d, separable_conv2d,
                              variance_scaling_initializer)

BN_DECAY = 0.997
BN_EPSILON = 1e-5


def check_freeze_at(freeze_at, num_stages):
    """``freeze_at`` must lie in ``[0, num_stages]`` (stem included in ``num_stages``)."""
    if not 0 <= freeze_at <= num_stages:
        raise ValueError('freeze_at must be in [0, %d], got %r' % (num_stages, freeze_at))


@contextlib.contextmanager
def stage_scope(frozen, is_training, bn_training, weight_decay, bn_decay=BN_DECAY):
    """arg_scope for ``conv2d`` / ``separable_conv2d`` of one stage: conv + BN (+ ReLU)."""
    trainable = not frozen
    bn_params = {'decay': bn_decay, 'epsilon': BN_EPSILON, 'scale': True,
                 'is_training': bool(is_training and bn_training and trainable),
                 'trainable': bool(bn_training and trainable)}
    with arg_scope([conv2d, separable_conv2d],
                   weights_initializer=variance_scaling_initializer(),
                   weights_regularizer=l2_regularizer(weight_decay) if trainable else None,
                   trainable=trainable, normalizer_fn=batch_norm,
                   normalizer_params=bn_params) as scope:
        yield scope


def stem(images, depth, kernel_size, end_points, scope_name):
    """``conv1`` (``kernel_size`` conv, stride 2, BN, ReLU) and ``pool1`` (3x3 max, stride 2,
    SAME): ``[N, H, W, 3]`` -> ``[N, ceil(H/4), ceil(W/4), depth]``; both are end points.
    Call it inside the stem's :func:`stage_scope`."""
    net = conv2d_same(images, depth, kernel_size, 2, scope='conv1')
    add_end_point(end_points, scope_name, 'conv1', net)
    net = max_pool2d(net, 3, stride=2, padding='SAME', scope='pool1')
    add_end_point(end_points, scope_name, 'pool1', net)
    return net


def projection_shortcut(net, depth, stride):
    """The shortcut of a residual unit: ``net`` itself when it already has ``depth`` channels
    and ``stride`` is 1, else a 1x1 conv ``shortcut`` (BN, no ReLU) with that stride."""
    if net.get_shape().as_list()[-1] == depth and stride == 1:
        return net
    return conv2d(net, depth, 1, stride=stride, activation_fn=None, scope='shortcut')


def add_end_point(end_points, scope_name, short_name, tensor):
    """Record ``tensor`` as ``<scope_name>/<short_name>`` and as the alias ``short_name``."""
    end_points[scope_name + '/' + short_name] = tensor
    end_points[short_name] = tensor


def classifier(net, num_classes, weight_decay, end_points, scope_name):
    """Global average pool + 1x1 conv ``logits`` (biases, no BN) + softmax.

    ``net`` ``[N, H, W, C]`` -> logits ``[N, num_classes]``. Variables ``logits/weights
    [1, 1, C, num_classes]`` and ``logits/biases [num_classes]``. End points ``global_pool``,
    ``logits`` (both also with the scope prefix) and ``predictions`` (softmax).
    """
    net = tf.reduce_mean(net, [1, 2], keepdims=True, name='global_pool')
    add_end_point(end_points, scope_name, 'global_pool', net)
    logits = conv2d(net, num_classes, 1, activation_fn=None, normalizer_fn=None,
                    weights_initializer=variance_scaling_initializer(),
                    weights_regularizer=l2_regularizer(weight_decay),
                    biases_initializer=tf.zeros_initializer(), trainable=True, scope='logits')
    logits = tf.squeeze(logits, [1, 2], name='SpatialSqueeze')
    add_end_point(end_points, scope_name, 'logits', logits)
    end_points['predictions'] = tf.nn.softmax(logits, name='predictions')
    return logits
