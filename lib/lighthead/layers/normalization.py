"""Batch normalisation with slim's variable names and update semantics."""
from lighthead.compat import tf

from .arg_scope import add_arg_scope
from .variables import model_variable


@add_arg_scope
def batch_norm(inputs, decay=0.999, center=True, scale=False, epsilon=0.001,
               activation_fn=None, param_initializers=None, is_training=True, reuse=None,
               trainable=True, scope=None):
    """Batch normalisation over the last axis, as ``slim.batch_norm``.

    Args:
      inputs: float32 tensor ``[N, ..., C]`` (NHWC for images); C must be static.
      decay: moving-average decay of ``moving_mean`` / ``moving_variance``.
      center, scale: create ``beta`` / ``gamma``.
      epsilon: added to the variance.
      activation_fn: applied to the output, or None.
      param_initializers: optional dict with keys ``beta``, ``gamma``, ``moving_mean``,
        ``moving_variance``.
      is_training: Python bool. True: normalise with the batch statistics and add the
        moving-average updates to ``tf.GraphKeys.UPDATE_OPS`` (run them with the train op).
        False: normalise with the moving statistics.
      trainable: whether ``beta`` / ``gamma`` are trainable (moving statistics never are).
      scope: variable scope, default ``BatchNorm``.

    Variables: ``<scope>/beta``, ``gamma``, ``moving_mean``, ``moving_variance``, shape ``[C]``.
    Returns a tensor with the shape of ``inputs``.
    """
    if not isinstance(is_training, bool):
        raise TypeError('batch_norm: is_training must be a Python bool, got %r' % (is_training,))
    inits = dict(param_initializers or {})
    with tf.variable_scope(scope, 'BatchNorm', [inputs], reuse=reuse):
        inputs = tf.convert_to_tensor(inputs)
        channels = inputs.get_shape().as_list()[-1]
        if channels is None:
            raise ValueError('batch_norm: the last dimension of %s must be static' % inputs.name)
        shape = [int(channels)]
        beta = model_variable('beta', shape, inits.get('beta', tf.zeros_initializer()),
                              trainable=trainable) if center else None
        gamma = model_variable('gamma', shape, inits.get('gamma', tf.ones_initializer()),
                               trainable=trainable) if scale else None
        moving_mean = model_variable(
            'moving_mean', shape, inits.get('moving_mean', tf.zeros_initializer()),
            trainable=False, extra_collections=[tf.GraphKeys.MOVING_AVERAGE_VARIABLES])
        moving_variance = model_variable(
            'moving_variance', shape, inits.get('moving_variance', tf.ones_initializer()),
            trainable=False, extra_collections=[tf.GraphKeys.MOVING_AVERAGE_VARIABLES])

        rank = inputs.get_shape().ndims
        if rank == 4:
            offset = beta if beta is not None else tf.zeros(shape)
            multiplier = gamma if gamma is not None else tf.ones(shape)
            if is_training:
                outputs, mean, variance = tf.nn.fused_batch_norm(
                    inputs, multiplier, offset, epsilon=epsilon, is_training=True)
            else:
                outputs, _, _ = tf.nn.fused_batch_norm(
                    inputs, multiplier, offset, mean=moving_mean, variance=moving_variance,
                    epsilon=epsilon, is_training=False)
        else:
            if is_training:
                mean, variance = tf.nn.moments(inputs, list(range(rank - 1)))
            else:
                mean, variance = moving_mean, moving_variance
            outputs = tf.nn.batch_normalization(inputs, mean, variance, beta, gamma, epsilon)

        if is_training:
            with tf.name_scope('AssignMovingAvg'):
                tf.add_to_collection(tf.GraphKeys.UPDATE_OPS, tf.assign_sub(
                    moving_mean, (moving_mean - mean) * (1.0 - decay)))
                tf.add_to_collection(tf.GraphKeys.UPDATE_OPS, tf.assign_sub(
                    moving_variance, (moving_variance - variance) * (1.0 - decay)))
        if activation_fn is not None:
            outputs = activation_fn(outputs)
        return outputs


@add_arg_scope
def group_norm(inputs, groups=32, epsilon=1e-5, activation_fn=None, trainable=True,
               reuse=None, scope=None):
    """Group normalisation (Wu and He, 2018) over the last axis, as ``slim.group_norm``.

    The ``C`` channels of each sample are split into ``groups`` contiguous groups; each group is
    normalised by its own mean and variance over its channels and all the other non-batch axes,
    then scaled by ``gamma`` and shifted by ``beta`` (per channel). No batch statistics, so the
    same in training and inference and independent of the batch size.

    Args:
      inputs: float32 ``[N, ..., C]`` (NHWC images, or ``[N, C]``); C static and divisible by
        ``groups``.
    Variables: ``<scope>/gamma`` (ones) and ``<scope>/beta`` (zeros), shape ``[C]``; default
    scope ``GroupNorm``. Returns a tensor with the shape of ``inputs``.
    """
    with tf.variable_scope(scope, 'GroupNorm', [inputs], reuse=reuse):
        inputs = tf.convert_to_tensor(inputs)
        channels = inputs.get_shape().as_list()[-1]
        if channels is None or channels % groups:
            raise ValueError('group_norm: %d groups do not divide the %s channels of %s'
                             % (groups, channels, inputs.name))
        gamma = model_variable('gamma', [channels], tf.ones_initializer(), trainable=trainable)
        beta = model_variable('beta', [channels], tf.zeros_initializer(), trainable=trainable)
        shape = tf.shape(inputs)
        rank = inputs.get_shape().ndims
        grouped = tf.reshape(inputs, tf.concat([shape[:-1], [groups, channels // groups]], 0))
        axes = list(range(1, rank - 1)) + [rank]
        mean, variance = tf.nn.moments(grouped, axes, keepdims=True)
        grouped = (grouped - mean) * tf.math.rsqrt(variance + epsilon)
        outputs = tf.reshape(grouped, shape) * gamma + beta
        outputs.set_shape(inputs.get_shape())
        if activation_fn is not None:
            outputs = activation_fn(outputs)
        return outputs
