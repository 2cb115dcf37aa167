"""Model variables with slim's collections, slim's default initializers, and an L2 regularizer."""
from lighthead.compat import tf


def xavier_initializer():
    """slim's ``xavier_initializer()``: uniform Glorot (fan average)."""
    return tf.glorot_uniform_initializer()


def variance_scaling_initializer():
    """slim's ``variance_scaling_initializer()`` default: He init, fan-in, truncated normal."""
    return tf.variance_scaling_initializer(scale=2.0, mode='fan_in',
                                           distribution='truncated_normal')


def depthwise_initializer(initializer, channels, depth_multiplier):
    """``initializer`` with the fans of a depthwise kernel ``[kh, kw, C, M]``.

    Each input channel is convolved on its own, so a unit sees ``kh * kw`` inputs, not the
    ``kh * kw * C`` that variance scaling reads from the shape; taken as is, the weights start
    ``sqrt(C)`` too small (and, followed by BN, train with a ``C`` times larger effective
    step). A variance-scaling initializer (He, Glorot) gets its scale corrected; any other is
    returned unchanged.
    """
    if not isinstance(initializer, tf.variance_scaling_initializer):
        return initializer
    # Shape-read fan over true fan: fan_in 9C / 9, fan_avg (9C + 9M) / (9 + 9M); fan_out is right.
    correction = {'fan_in': float(channels), 'fan_out': 1.0,
                  'fan_avg': (channels + depth_multiplier) / (1.0 + depth_multiplier)}
    return tf.variance_scaling_initializer(
        scale=initializer.scale * correction[initializer.mode], mode=initializer.mode,
        distribution=initializer.distribution, seed=initializer.seed)


def l2_regularizer(scale):
    """``scale * tf.nn.l2_loss(w)`` = ``scale * 0.5 * ||w||^2``, as slim's ``l2_regularizer``.

    ``scale`` 0 (or None) returns None: no regularizer at all.
    """
    if not scale:
        return None

    def regularizer(weights):
        with tf.name_scope('l2_regularizer'):
            return tf.multiply(float(scale), tf.nn.l2_loss(weights), name='value')

    return regularizer


def model_variable(name, shape, initializer, regularizer=None, trainable=True,
                   extra_collections=(), dtype=tf.float32):
    """``tf.get_variable`` in GLOBAL_VARIABLES and MODEL_VARIABLES (plus ``extra_collections``).

    The regularizer's loss goes to REGULARIZATION_LOSSES only when the variable is created,
    so a reused variable (second tower) does not count twice.
    """
    collections = [tf.GraphKeys.GLOBAL_VARIABLES, tf.GraphKeys.MODEL_VARIABLES]
    collections.extend(extra_collections)
    return tf.get_variable(name, shape=shape, dtype=dtype, initializer=initializer,
                           regularizer=regularizer, trainable=trainable,
                           collections=collections)
