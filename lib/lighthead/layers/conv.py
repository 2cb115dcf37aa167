"""Convolutions with slim's signatures and variable names (NHWC only)."""
from lighthead.compat import tf

from .arg_scope import add_arg_scope
from .common import check_stride_rate, finish, in_channels, pair
from .variables import depthwise_initializer, model_variable, xavier_initializer


@add_arg_scope
def conv2d(inputs, num_outputs, kernel_size, stride=1, padding='SAME', rate=1,
           activation_fn=tf.nn.relu, normalizer_fn=None, normalizer_params=None,
           weights_initializer=None, weights_regularizer=None,
           biases_initializer=tf.zeros_initializer(), biases_regularizer=None, reuse=None,
           trainable=True, scope=None):
    """2-D convolution, as ``slim.conv2d``.

    Args:
      inputs: float32 ``[N, H, W, C]``, C static.
      num_outputs: output channels.
      kernel_size, stride, rate: int or pair; ``rate`` is the dilation (stride and rate > 1
        cannot be combined).
      padding: 'SAME' or 'VALID' (TF semantics).
      activation_fn: applied last, or None.
      normalizer_fn: e.g. ``batch_norm``, called as ``normalizer_fn(x, **normalizer_params)``
        inside this scope; when given, no biases are created.
      weights_initializer: default slim's xavier (uniform Glorot).
      biases_initializer: None means no biases.
      trainable: trainable flag of the created variables.
      scope: variable scope, default ``Conv``.

    Variables: ``<scope>/weights [kh, kw, C, num_outputs]``, ``<scope>/biases [num_outputs]``.
    Returns ``[N, H', W', num_outputs]``.
    """
    kernel = pair(kernel_size)
    strides = pair(stride)
    rates = pair(rate)
    check_stride_rate(strides, rates)
    with tf.variable_scope(scope, 'Conv', [inputs], reuse=reuse):
        inputs = tf.convert_to_tensor(inputs)
        weights = model_variable(
            'weights', kernel + [in_channels(inputs), num_outputs],
            weights_initializer or xavier_initializer(), regularizer=weights_regularizer,
            trainable=trainable)
        outputs = tf.nn.convolution(inputs, weights, padding, strides=strides,
                                    dilation_rate=rates)
        return finish(outputs, num_outputs, activation_fn, normalizer_fn, normalizer_params,
                      biases_initializer, biases_regularizer, trainable)


def conv2d_same(inputs, num_outputs, kernel_size, stride, rate=1, scope=None, **kwargs):
    """``conv2d`` whose output size is ``ceil(H / stride)`` with symmetric padding.

    Stride 1: plain 'SAME' convolution. Stride > 1: pad ``(k_eff - 1) // 2`` before and the
    rest after (``k_eff = k + (k - 1)(rate - 1)``), then a 'VALID' convolution, so the output
    pixel i is centred on input pixel ``stride * i`` whatever the input parity (slim's
    ``resnet_utils.conv2d_same``). ``kwargs`` go to ``conv2d``.
    """
    if stride == 1:
        return conv2d(inputs, num_outputs, kernel_size, stride=1, rate=rate, padding='SAME',
                      scope=scope, **kwargs)
    effective = kernel_size + (kernel_size - 1) * (rate - 1)
    pad_begin = (effective - 1) // 2
    pad_end = effective - 1 - pad_begin
    inputs = tf.pad(inputs, [[0, 0], [pad_begin, pad_end], [pad_begin, pad_end], [0, 0]])
    return conv2d(inputs, num_outputs, kernel_size, stride=stride, rate=rate, padding='VALID',
                  scope=scope, **kwargs)


@add_arg_scope
def separable_conv2d(inputs, num_outputs, kernel_size, depth_multiplier=1, stride=1,
                     padding='SAME', rate=1, activation_fn=tf.nn.relu, normalizer_fn=None,
                     normalizer_params=None, weights_initializer=None,
                     weights_regularizer=None, biases_initializer=tf.zeros_initializer(),
                     biases_regularizer=None, reuse=None, trainable=True, scope=None):
    """Depthwise (then optionally pointwise) convolution, as ``slim.separable_conv2d``.

    Args:
      inputs: float32 ``[N, H, W, C]``, C static.
      num_outputs: channels of the 1x1 pointwise conv, or None for a depthwise conv only
        (output ``C * depth_multiplier`` channels).
      kernel_size, stride, rate: of the depthwise conv (int or pair).
      Other arguments as ``conv2d``; the regularizer applies to both weight tensors.
      scope: variable scope, default ``SeparableConv2d``.

    Variables: ``<scope>/depthwise_weights [kh, kw, C, depth_multiplier]``,
    ``<scope>/pointwise_weights [1, 1, C * depth_multiplier, num_outputs]`` (if
    ``num_outputs``), ``<scope>/biases`` (without a normalizer).
    """
    kernel = pair(kernel_size)
    strides = [1] + pair(stride) + [1]
    rates = pair(rate)
    check_stride_rate(strides, rates)
    init = weights_initializer or xavier_initializer()
    with tf.variable_scope(scope, 'SeparableConv2d', [inputs], reuse=reuse):
        inputs = tf.convert_to_tensor(inputs)
        channels = in_channels(inputs)
        depthwise = model_variable('depthwise_weights', kernel + [channels, depth_multiplier],
                                   depthwise_initializer(init, channels, depth_multiplier),
                                   regularizer=weights_regularizer, trainable=trainable)
        if num_outputs is None:
            outputs = tf.nn.depthwise_conv2d(inputs, depthwise, strides, padding, rate=rates)
            num_outputs = channels * depth_multiplier
        else:
            pointwise = model_variable(
                'pointwise_weights', [1, 1, channels * depth_multiplier, num_outputs], init,
                regularizer=weights_regularizer, trainable=trainable)
            outputs = tf.nn.separable_conv2d(inputs, depthwise, pointwise, strides, padding,
                                             rate=rates)
        return finish(outputs, num_outputs, activation_fn, normalizer_fn, normalizer_params,
                      biases_initializer, biases_regularizer, trainable)
