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
