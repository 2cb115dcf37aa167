"""Shared pieces of the layer functions: argument normalisation and the bias/normaliser/
activation tail."""
from lighthead.compat import tf

from .variables import model_variable


def pair(value):
    """int or 2-sequence -> [a, b] of ints."""
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ValueError('expected an int or a pair, got %r' % (value,))
        return [int(value[0]), int(value[1])]
    return [int(value), int(value)]


def in_channels(inputs):
    """Static last dimension of ``inputs`` (ValueError when unknown)."""
    channels = inputs.get_shape().as_list()[-1]
    if channels is None:
        raise ValueError('the channel dimension of %s must be static' % inputs.name)
    return int(channels)


def check_stride_rate(stride, rate):
    """TF cannot combine a stride > 1 with a dilation rate > 1."""
    if max(stride) > 1 and max(rate) > 1:
        raise ValueError('stride > 1 and rate > 1 cannot be combined (stride %r, rate %r)'
                         % (stride, rate))


def finish(outputs, num_outputs, activation_fn, normalizer_fn, normalizer_params,
           biases_initializer, biases_regularizer, trainable):
    """Bias (only without a normalizer, as slim), normalizer, activation."""
    if normalizer_fn is not None:
        outputs = normalizer_fn(outputs, **(normalizer_params or {}))
    elif biases_initializer is not None:
        biases = model_variable('biases', [num_outputs], biases_initializer,
                                regularizer=biases_regularizer, trainable=trainable)
        outputs = tf.nn.bias_add(outputs, biases)
    if activation_fn is not None:
        outputs = activation_fn(outputs)
    return outputs
