"""Fully connected layer, flatten and 2-D pooling with slim's signatures (NHWC)."""
from lighthead.compat import tf

from .arg_scope import add_arg_scope
from .common import finish, pair
from .variables import model_variable, xavier_initializer


@add_arg_scope
def fully_connected(inputs, num_outputs, activation_fn=tf.nn.relu, normalizer_fn=None,
                    normalizer_params=None, weights_initializer=None,
                    weights_regularizer=None, biases_initializer=tf.zeros_initializer(),
                    biases_regularizer=None, reuse=None, trainable=True, scope=None):
    """Dense layer on the last axis, as ``slim.fully_connected``.

    ``inputs`` is ``[..., K]`` with K static; returns ``[..., num_outputs]``. Variables:
    ``<scope>/weights [K, num_outputs]``, ``<scope>/biases [num_outputs]`` (without a
    normalizer). Default scope ``fully_connected``; other arguments as ``conv2d``.
    """
    with tf.variable_scope(scope, 'fully_connected', [inputs], reuse=reuse):
        inputs = tf.convert_to_tensor(inputs)
        shape = inputs.get_shape()
        depth = shape.as_list()[-1]
        if depth is None:
            raise ValueError('fully_connected: the last dimension of %s must be static'
                             % inputs.name)
        weights = model_variable('weights', [int(depth), num_outputs],
                                 weights_initializer or xavier_initializer(),
                                 regularizer=weights_regularizer, trainable=trainable)
        if shape.ndims == 2:
            outputs = tf.matmul(inputs, weights)
        else:
            flat = tf.reshape(inputs, [-1, int(depth)])
            outputs = tf.reshape(tf.matmul(flat, weights),
                                 tf.concat([tf.shape(inputs)[:-1], [num_outputs]], 0))
            outputs.set_shape(shape[:-1].concatenate([num_outputs]))
        return finish(outputs, num_outputs, activation_fn, normalizer_fn, normalizer_params,
                      biases_initializer, biases_regularizer, trainable)


@add_arg_scope
def flatten(inputs, scope=None):
    """``[N, d1, d2, ...]`` -> ``[N, d1 * d2 * ...]`` (static where the shape is known)."""
    with tf.name_scope(scope, 'Flatten', [inputs]):
        inputs = tf.convert_to_tensor(inputs)
        rest = inputs.get_shape().as_list()[1:]
        if None in rest:
            size = tf.reduce_prod(tf.shape(inputs)[1:])
        else:
            size = 1
            for dim in rest:
                size *= dim
        return tf.reshape(inputs, tf.stack([tf.shape(inputs)[0], size]))


def _pool(pool_fn, default_name, inputs, kernel_size, stride, padding, scope):
    with tf.name_scope(scope, default_name, [inputs]):
        return pool_fn(inputs, [1] + pair(kernel_size) + [1], [1] + pair(stride) + [1],
                       padding)


@add_arg_scope
def max_pool2d(inputs, kernel_size, stride=2, padding='VALID', scope=None):
    """Max pooling over ``[N, H, W, C]`` (slim defaults: stride 2, 'VALID')."""
    return _pool(tf.nn.max_pool, 'MaxPool2D', inputs, kernel_size, stride, padding, scope)


@add_arg_scope
def avg_pool2d(inputs, kernel_size, stride=2, padding='VALID', scope=None):
    """Average pooling over ``[N, H, W, C]`` (slim defaults: stride 2, 'VALID'); with 'SAME'
    the padded positions are not counted in the average (TF semantics)."""
    return _pool(tf.nn.avg_pool, 'AvgPool2D', inputs, kernel_size, stride, padding, scope)
