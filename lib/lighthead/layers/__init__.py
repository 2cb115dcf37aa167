"""Slim-compatible layer functions on ``tf.nn`` and ``tf.get_variable`` (graph mode, NHWC).

Same signatures (minus ``data_format``, ``variables_collections``, ``outputs_collections``)
and the same variable names as tf_slim, so code written for slim reads the same and slim
checkpoints load by name: ``weights``, ``biases``, ``depthwise_weights``,
``pointwise_weights``, ``BatchNorm/{beta,gamma,moving_mean,moving_variance}``. tf_slim's own
layers do not run on TF 2.21 (SPEC 7), hence this module. Without ``data_format`` in the
list, ``rate`` directly follows ``padding``: pass arguments after ``padding`` by keyword.
``batch_norm``'s ``is_training`` must be a Python bool.

Variables go to GLOBAL_VARIABLES and MODEL_VARIABLES (trainable ones also to
TRAINABLE_VARIABLES; BN moving statistics to MOVING_AVERAGE_VARIABLES). A regularizer adds
its loss to REGULARIZATION_LOSSES only when the variable is created, so towers sharing
variables through ``reuse`` count weight decay once.
"""
from .arg_scope import add_arg_scope, arg_scope
from .conv import conv2d, conv2d_same, separable_conv2d
from .core import avg_pool2d, flatten, fully_connected, max_pool2d
from .normalization import batch_norm, group_norm
from .variables import (depthwise_initializer, l2_regularizer, model_variable,
                        variance_scaling_initializer, xavier_initializer)

__all__ = ['add_arg_scope', 'arg_scope', 'avg_pool2d', 'batch_norm', 'conv2d', 'conv2d_same',
           'depthwise_initializer',
           'flatten', 'fully_connected', 'group_norm', 'l2_regularizer', 'max_pool2d',
           'model_variable',
           'separable_conv2d', 'variance_scaling_initializer', 'xavier_initializer']
