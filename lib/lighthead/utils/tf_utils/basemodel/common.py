"""What the backbones share: the skeleton (stem, freeze-scoped stages, end points, optional
classifier: :func:`build_stages`), per-stage layer defaults (freezing, BN mode, weight decay),
end-point bookkeeping and the ImageNet classification head. A backbone states only its stem
(depth and kernel of ``conv1``), its unit and its table of :class:`Stage`.

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
import collections
import contextlib
import functools

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


Stage = collections.namedtuple('Stage', ['name', 'units', 'stride', 'unit'])
Stage.__doc__ = """One stage of a backbone: variable scope and end point ``name``, ``units``
residual units, the ``stride`` of its first unit (the others have stride 1), and ``unit``, a
function ``unit(net, stride, scope) -> net`` that builds one unit under ``scope``
(``unit_1`` .. ``unit_<units>``); bind a stage's widths with ``functools.partial``."""


def build_stages(images, stem_depth, stem_kernel, stages, is_training=False, bn_training=False,
                 freeze_at=2, weight_decay=1e-4, bn_decay=BN_DECAY, num_classes=None,
                 scope=None, reuse=None):
    """The skeleton every backbone shares; returns ``(net, end_points)``.

    Under ``tf.variable_scope(scope, reuse=reuse)``: the :func:`stem` (stage 0, end points
    ``conv1`` and ``pool1``), then every :class:`Stage` of ``stages`` under its own scope, its
    units ``unit_1`` .. ``unit_<units>``, its output the end point ``<name>``; stage ``i``
    (0 = stem) is built in :func:`stage_scope` with ``frozen = freeze_at > i``. With
    ``num_classes`` the :func:`classifier` follows and ``net`` is its logits, else ``net`` is
    the last stage's output. ``end_points`` is an ``OrderedDict``, each end point under its
    full name ``<scope>/<name>`` and its short alias ``<name>``.
    """
    check_freeze_at(freeze_at, 1 + len(stages))
    end_points = collections.OrderedDict()
    with tf.variable_scope(scope, reuse=reuse) as sc:
        scoped = functools.partial(stage_scope, is_training=is_training, bn_training=bn_training,
                                   weight_decay=weight_decay, bn_decay=bn_decay)
        with scoped(freeze_at > 0):
            net = stem(images, stem_depth, stem_kernel, end_points, sc.name)
        for index, stage in enumerate(stages, 1):
            with scoped(freeze_at > index), tf.variable_scope(stage.name):
                for unit in range(stage.units):
                    net = stage.unit(net, stage.stride if unit == 0 else 1,
                                     'unit_%d' % (unit + 1))
            add_end_point(end_points, sc.name, stage.name, net)
        if num_classes:
            net = classifier(net, num_classes, weight_decay, end_points, sc.name)
    return net, end_points
