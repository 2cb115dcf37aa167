"""Model variables with slim's collections, slim's default initializers, and an L2 regularizer."""
from lighthead.compat import tf


def xavier_initializer():
    """slim's ``xavier_initializer()``: uniform Glorot (fan average)."""
    return tf.glorot_uniform_initializer()


def variance_scaling_initializer():
    """slim's ``variance_scaling_initializer()`` default: He init, fan-in, truncated normal."""
    return tf.variance_scaling_initializer(scale=2.0, mode='fan_in',
                                           distribution='truncated_normal')


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
