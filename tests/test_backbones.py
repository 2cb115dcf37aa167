"""Backbones: MACs, end points at even and odd sizes, variable names, freezing, BN, weight
decay, reuse, registry."""
import math

import numpy as np
import pytest

from lighthead.compat import tf
from lighthead.utils.flops import count_macs, profiler_flops
from lighthead.utils.tf_utils.basemodel import BACKBONES, get_backbone

# Appendix of reference/xception-star.md: geonseoks' graph, every variable with its shape;
# '*' marks the 74 variables his detector trains (logits: classifier graph only).
GEONSEOKS_VARIABLES = """
resnet_v1_xception/conv1/weights [3,3,3,24]
resnet_v1_xception/conv1/BatchNorm/gamma [24]
resnet_v1_xception/conv1/BatchNorm/beta [24]
resnet_v1_xception/conv1/BatchNorm/moving_mean [24]
resnet_v1_xception/conv1/BatchNorm/moving_variance [24]
resnet_v1_xception/block1/unit_1/bottleneck_v1/shortcut/weights [1,1,24,144]
resnet_v1_xception/block1/unit_1/bottleneck_v1/shortcut/BatchNorm/gamma [144]
resnet_v1_xception/block1/unit_1/bottleneck_v1/shortcut/BatchNorm/beta [144]
resnet_v1_xception/block1/unit_1/bottleneck_v1/shortcut/BatchNorm/moving_mean [144]
resnet_v1_xception/block1/unit_1/bottleneck_v1/shortcut/BatchNorm/moving_variance [144]
resnet_v1_xception/block1/unit_1/bottleneck_v1/conv1/weights [1,1,24,24]
resnet_v1_xception/block1/unit_1/bottleneck_v1/conv1/BatchNorm/gamma [24]
resnet_v1_xception/block1/unit_1/bottleneck_v1/conv1/BatchNorm/beta [24]
resnet_v1_xception/block1/unit_1/bottleneck_v1/conv1/BatchNorm/moving_mean [24]
resnet_v1_xception/block1/unit_1/bottleneck_v1/conv1/BatchNorm/moving_variance [24]
resnet_v1_xception/block1/unit_1/bottleneck_v1/dws_conv2/depthwise_weights [3,3,24,1] *
resnet_v1_xception/block1/unit_1/bottleneck_v1/dws_conv2/pointwise_weights [1,1,24,24] *
resnet_v1_xception/block1/unit_1/bottleneck_v1/dws_conv2/biases [24] *
resnet_v1_xception/block1/unit_1/bottleneck_v1/conv3/weights [1,1,24,144]
resnet_v1_xception/block1/unit_1/bottleneck_v1/conv3/BatchNorm/gamma [144]
resnet_v1_xception/block1/unit_1/bottleneck_v1/conv3/BatchNorm/beta [144]
resnet_v1_xception/block1/unit_1/bottleneck_v1/conv3/BatchNorm/moving_mean [144]
resnet_v1_xception/block1/unit_1/bottleneck_v1/conv3/BatchNorm/moving_variance [144]
resnet_v1_xception/block1/unit_2/bottleneck_v1/conv1/weights [1,1,144,24]
resnet_v1_xception/block1/unit_2/bottleneck_v1/conv1/BatchNorm/gamma [24]
resnet_v1_xception/block1/unit_2/bottleneck_v1/conv1/BatchNorm/beta [24]
resnet_v1_xception/block1/unit_2/bottleneck_v1/conv1/BatchNorm/moving_mean [24]
resnet_v1_xception/block1/unit_2/bottleneck_v1/conv1/BatchNorm/moving_variance [24]
resnet_v1_xception/block1/unit_2/bottleneck_v1/dws_conv2/depthwise_weights [3,3,24,1] *
resnet_v1_xception/block1/unit_2/bottleneck_v1/dws_conv2/pointwise_weights [1,1,24,24] *
resnet_v1_xception/block1/unit_2/bottleneck_v1/dws_conv2/biases [24] *
resnet_v1_xception/block1/unit_2/bottleneck_v1/conv3/weights [1,1,24,144]
resnet_v1_xception/block1/unit_2/bottleneck_v1/conv3/BatchNorm/gamma [144]
resnet_v1_xception/block1/unit_2/bottleneck_v1/conv3/BatchNorm/beta [144]
resnet_v1_xception/block1/unit_2/bottleneck_v1/conv3/BatchNorm/moving_mean [144]
resnet_v1_xception/block1/unit_2/bottleneck_v1/conv3/BatchNorm/moving_variance [144]
resnet_v1_xception/block1/unit_3/bottleneck_v1/conv1/weights [1,1,144,24]
resnet_v1_xception/block1/unit_3/bottleneck_v1/conv1/BatchNorm/gamma [24]
resnet_v1_xception/block1/unit_3/bottleneck_v1/conv1/BatchNorm/beta [24]
resnet_v1_xception/block1/unit_3/bottleneck_v1/conv1/BatchNorm/moving_mean [24]
resnet_v1_xception/block1/unit_3/bottleneck_v1/conv1/BatchNorm/moving_variance [24]
resnet_v1_xception/block1/unit_3/bottleneck_v1/dws_conv2/depthwise_weights [3,3,24,1] *
resnet_v1_xception/block1/unit_3/bottleneck_v1/dws_conv2/pointwise_weights [1,1,24,24] *
resnet_v1_xception/block1/unit_3/bottleneck_v1/dws_conv2/biases [24] *
resnet_v1_xception/block1/unit_3/bottleneck_v1/conv3/weights [1,1,24,144]
resnet_v1_xception/block1/unit_3/bottleneck_v1/conv3/BatchNorm/gamma [144]
resnet_v1_xception/block1/unit_3/bottleneck_v1/conv3/BatchNorm/beta [144]
resnet_v1_xception/block1/unit_3/bottleneck_v1/conv3/BatchNorm/moving_mean [144]
resnet_v1_xception/block1/unit_3/bottleneck_v1/conv3/BatchNorm/moving_variance [144]
resnet_v1_xception/block1/unit_4/bottleneck_v1/conv1/weights [1,1,144,24]
resnet_v1_xception/block1/unit_4/bottleneck_v1/conv1/BatchNorm/gamma [24]
resnet_v1_xception/block1/unit_4/bottleneck_v1/conv1/BatchNorm/beta [24]
resnet_v1_xception/block1/unit_4/bottleneck_v1/conv1/BatchNorm/moving_mean [24]
resnet_v1_xception/block1/unit_4/bottleneck_v1/conv1/BatchNorm/moving_variance [24]
resnet_v1_xception/block1/unit_4/bottleneck_v1/dws_conv2/depthwise_weights [3,3,24,1] *
resnet_v1_xception/block1/unit_4/bottleneck_v1/dws_conv2/pointwise_weights [1,1,24,24] *
resnet_v1_xception/block1/unit_4/bottleneck_v1/dws_conv2/biases [24] *
resnet_v1_xception/block1/unit_4/bottleneck_v1/conv3/weights [1,1,24,144]
resnet_v1_xception/block1/unit_4/bottleneck_v1/conv3/BatchNorm/gamma [144]
resnet_v1_xception/block1/unit_4/bottleneck_v1/conv3/BatchNorm/beta [144]
resnet_v1_xception/block1/unit_4/bottleneck_v1/conv3/BatchNorm/moving_mean [144]
resnet_v1_xception/block1/unit_4/bottleneck_v1/conv3/BatchNorm/moving_variance [144]
resnet_v1_xception/block2/unit_1/bottleneck_v1/shortcut/weights [1,1,144,288] *
resnet_v1_xception/block2/unit_1/bottleneck_v1/shortcut/BatchNorm/gamma [288]
resnet_v1_xception/block2/unit_1/bottleneck_v1/shortcut/BatchNorm/beta [288]
resnet_v1_xception/block2/unit_1/bottleneck_v1/shortcut/BatchNorm/moving_mean [288]
resnet_v1_xception/block2/unit_1/bottleneck_v1/shortcut/BatchNorm/moving_variance [288]
resnet_v1_xception/block2/unit_1/bottleneck_v1/conv1/weights [1,1,144,144] *
resnet_v1_xception/block2/unit_1/bottleneck_v1/conv1/BatchNorm/gamma [144]
resnet_v1_xception/block2/unit_1/bottleneck_v1/conv1/BatchNorm/beta [144]
resnet_v1_xception/block2/unit_1/bottleneck_v1/conv1/BatchNorm/moving_mean [144]
resnet_v1_xception/block2/unit_1/bottleneck_v1/conv1/BatchNorm/moving_variance [144]
resnet_v1_xception/block2/unit_1/bottleneck_v1/dws_conv2/depthwise_weights [3,3,144,1] *
resnet_v1_xception/block2/unit_1/bottleneck_v1/dws_conv2/pointwise_weights [1,1,144,144] *
resnet_v1_xception/block2/unit_1/bottleneck_v1/dws_conv2/biases [144] *
resnet_v1_xception/block2/unit_1/bottleneck_v1/conv3/weights [1,1,144,288] *
resnet_v1_xception/block2/unit_1/bottleneck_v1/conv3/BatchNorm/gamma [288]
resnet_v1_xception/block2/unit_1/bottleneck_v1/conv3/BatchNorm/beta [288]
resnet_v1_xception/block2/unit_1/bottleneck_v1/conv3/BatchNorm/moving_mean [288]
resnet_v1_xception/block2/unit_1/bottleneck_v1/conv3/BatchNorm/moving_variance [288]
resnet_v1_xception/block2/unit_2/bottleneck_v1/conv1/weights [1,1,288,144] *
resnet_v1_xception/block2/unit_2/bottleneck_v1/conv1/BatchNorm/gamma [144]
resnet_v1_xception/block2/unit_2/bottleneck_v1/conv1/BatchNorm/beta [144]
resnet_v1_xception/block2/unit_2/bottleneck_v1/conv1/BatchNorm/moving_mean [144]
resnet_v1_xception/block2/unit_2/bottleneck_v1/conv1/BatchNorm/moving_variance [144]
resnet_v1_xception/block2/unit_2/bottleneck_v1/dws_conv2/depthwise_weights [3,3,144,1] *
resnet_v1_xception/block2/unit_2/bottleneck_v1/dws_conv2/pointwise_weights [1,1,144,144] *
resnet_v1_xception/block2/unit_2/bottleneck_v1/dws_conv2/biases [144] *
resnet_v1_xception/block2/unit_2/bottleneck_v1/conv3/weights [1,1,144,288] *
resnet_v1_xception/block2/unit_2/bottleneck_v1/conv3/BatchNorm/gamma [288]
resnet_v1_xception/block2/unit_2/bottleneck_v1/conv3/BatchNorm/beta [288]
resnet_v1_xception/block2/unit_2/bottleneck_v1/conv3/BatchNorm/moving_mean [288]
resnet_v1_xception/block2/unit_2/bottleneck_v1/conv3/BatchNorm/moving_variance [288]
resnet_v1_xception/block2/unit_3/bottleneck_v1/conv1/weights [1,1,288,144] *
resnet_v1_xception/block2/unit_3/bottleneck_v1/conv1/BatchNorm/gamma [144]
resnet_v1_xception/block2/unit_3/bottleneck_v1/conv1/BatchNorm/beta [144]
resnet_v1_xception/block2/unit_3/bottleneck_v1/conv1/BatchNorm/moving_mean [144]
resnet_v1_xception/block2/unit_3/bottleneck_v1/conv1/BatchNorm/moving_variance [144]
resnet_v1_xception/block2/unit_3/bottleneck_v1/dws_conv2/depthwise_weights [3,3,144,1] *
resnet_v1_xception/block2/unit_3/bottleneck_v1/dws_conv2/pointwise_weights [1,1,144,144] *
resnet_v1_xception/block2/unit_3/bottleneck_v1/dws_conv2/biases [144] *
resnet_v1_xception/block2/unit_3/bottleneck_v1/conv3/weights [1,1,144,288] *
resnet_v1_xception/block2/unit_3/bottleneck_v1/conv3/BatchNorm/gamma [288]
resnet_v1_xception/block2/unit_3/bottleneck_v1/conv3/BatchNorm/beta [288]
resnet_v1_xception/block2/unit_3/bottleneck_v1/conv3/BatchNorm/moving_mean [288]
resnet_v1_xception/block2/unit_3/bottleneck_v1/conv3/BatchNorm/moving_variance [288]
resnet_v1_xception/block2/unit_4/bottleneck_v1/conv1/weights [1,1,288,144] *
resnet_v1_xception/block2/unit_4/bottleneck_v1/conv1/BatchNorm/gamma [144]
resnet_v1_xception/block2/unit_4/bottleneck_v1/conv1/BatchNorm/beta [144]
resnet_v1_xception/block2/unit_4/bottleneck_v1/conv1/BatchNorm/moving_mean [144]
resnet_v1_xception/block2/unit_4/bottleneck_v1/conv1/BatchNorm/moving_variance [144]
resnet_v1_xception/block2/unit_4/bottleneck_v1/dws_conv2/depthwise_weights [3,3,144,1] *
resnet_v1_xception/block2/unit_4/bottleneck_v1/dws_conv2/pointwise_weights [1,1,144,144] *
resnet_v1_xception/block2/unit_4/bottleneck_v1/dws_conv2/biases [144] *
resnet_v1_xception/block2/unit_4/bottleneck_v1/conv3/weights [1,1,144,288] *
resnet_v1_xception/block2/unit_4/bottleneck_v1/conv3/BatchNorm/gamma [288]
resnet_v1_xception/block2/unit_4/bottleneck_v1/conv3/BatchNorm/beta [288]
resnet_v1_xception/block2/unit_4/bottleneck_v1/conv3/BatchNorm/moving_mean [288]
resnet_v1_xception/block2/unit_4/bottleneck_v1/conv3/BatchNorm/moving_variance [288]
resnet_v1_xception/block2/unit_5/bottleneck_v1/conv1/weights [1,1,288,144] *
resnet_v1_xception/block2/unit_5/bottleneck_v1/conv1/BatchNorm/gamma [144]
resnet_v1_xception/block2/unit_5/bottleneck_v1/conv1/BatchNorm/beta [144]
resnet_v1_xception/block2/unit_5/bottleneck_v1/conv1/BatchNorm/moving_mean [144]
resnet_v1_xception/block2/unit_5/bottleneck_v1/conv1/BatchNorm/moving_variance [144]
resnet_v1_xception/block2/unit_5/bottleneck_v1/dws_conv2/depthwise_weights [3,3,144,1] *
resnet_v1_xception/block2/unit_5/bottleneck_v1/dws_conv2/pointwise_weights [1,1,144,144] *
resnet_v1_xception/block2/unit_5/bottleneck_v1/dws_conv2/biases [144] *
resnet_v1_xception/block2/unit_5/bottleneck_v1/conv3/weights [1,1,144,288] *
resnet_v1_xception/block2/unit_5/bottleneck_v1/conv3/BatchNorm/gamma [288]
resnet_v1_xception/block2/unit_5/bottleneck_v1/conv3/BatchNorm/beta [288]
resnet_v1_xception/block2/unit_5/bottleneck_v1/conv3/BatchNorm/moving_mean [288]
resnet_v1_xception/block2/unit_5/bottleneck_v1/conv3/BatchNorm/moving_variance [288]
resnet_v1_xception/block2/unit_6/bottleneck_v1/conv1/weights [1,1,288,144] *
resnet_v1_xception/block2/unit_6/bottleneck_v1/conv1/BatchNorm/gamma [144]
resnet_v1_xception/block2/unit_6/bottleneck_v1/conv1/BatchNorm/beta [144]
resnet_v1_xception/block2/unit_6/bottleneck_v1/conv1/BatchNorm/moving_mean [144]
resnet_v1_xception/block2/unit_6/bottleneck_v1/conv1/BatchNorm/moving_variance [144]
resnet_v1_xception/block2/unit_6/bottleneck_v1/dws_conv2/depthwise_weights [3,3,144,1] *
resnet_v1_xception/block2/unit_6/bottleneck_v1/dws_conv2/pointwise_weights [1,1,144,144] *
resnet_v1_xception/block2/unit_6/bottleneck_v1/dws_conv2/biases [144] *
resnet_v1_xception/block2/unit_6/bottleneck_v1/conv3/weights [1,1,144,288] *
resnet_v1_xception/block2/unit_6/bottleneck_v1/conv3/BatchNorm/gamma [288]
resnet_v1_xception/block2/unit_6/bottleneck_v1/conv3/BatchNorm/beta [288]
resnet_v1_xception/block2/unit_6/bottleneck_v1/conv3/BatchNorm/moving_mean [288]
resnet_v1_xception/block2/unit_6/bottleneck_v1/conv3/BatchNorm/moving_variance [288]
resnet_v1_xception/block2/unit_7/bottleneck_v1/conv1/weights [1,1,288,144] *
resnet_v1_xception/block2/unit_7/bottleneck_v1/conv1/BatchNorm/gamma [144]
resnet_v1_xception/block2/unit_7/bottleneck_v1/conv1/BatchNorm/beta [144]
resnet_v1_xception/block2/unit_7/bottleneck_v1/conv1/BatchNorm/moving_mean [144]
resnet_v1_xception/block2/unit_7/bottleneck_v1/conv1/BatchNorm/moving_variance [144]
resnet_v1_xception/block2/unit_7/bottleneck_v1/dws_conv2/depthwise_weights [3,3,144,1] *
resnet_v1_xception/block2/unit_7/bottleneck_v1/dws_conv2/pointwise_weights [1,1,144,144] *
resnet_v1_xception/block2/unit_7/bottleneck_v1/dws_conv2/biases [144] *
resnet_v1_xception/block2/unit_7/bottleneck_v1/conv3/weights [1,1,144,288] *
resnet_v1_xception/block2/unit_7/bottleneck_v1/conv3/BatchNorm/gamma [288]
resnet_v1_xception/block2/unit_7/bottleneck_v1/conv3/BatchNorm/beta [288]
resnet_v1_xception/block2/unit_7/bottleneck_v1/conv3/BatchNorm/moving_mean [288]
resnet_v1_xception/block2/unit_7/bottleneck_v1/conv3/BatchNorm/moving_variance [288]
resnet_v1_xception/block2/unit_8/bottleneck_v1/conv1/weights [1,1,288,144] *
resnet_v1_xception/block2/unit_8/bottleneck_v1/conv1/BatchNorm/gamma [144]
resnet_v1_xception/block2/unit_8/bottleneck_v1/conv1/BatchNorm/beta [144]
resnet_v1_xception/block2/unit_8/bottleneck_v1/conv1/BatchNorm/moving_mean [144]
resnet_v1_xception/block2/unit_8/bottleneck_v1/conv1/BatchNorm/moving_variance [144]
resnet_v1_xception/block2/unit_8/bottleneck_v1/dws_conv2/depthwise_weights [3,3,144,1] *
resnet_v1_xception/block2/unit_8/bottleneck_v1/dws_conv2/pointwise_weights [1,1,144,144] *
resnet_v1_xception/block2/unit_8/bottleneck_v1/dws_conv2/biases [144] *
resnet_v1_xception/block2/unit_8/bottleneck_v1/conv3/weights [1,1,144,288] *
resnet_v1_xception/block2/unit_8/bottleneck_v1/conv3/BatchNorm/gamma [288]
resnet_v1_xception/block2/unit_8/bottleneck_v1/conv3/BatchNorm/beta [288]
resnet_v1_xception/block2/unit_8/bottleneck_v1/conv3/BatchNorm/moving_mean [288]
resnet_v1_xception/block2/unit_8/bottleneck_v1/conv3/BatchNorm/moving_variance [288]
resnet_v1_xception/block3/unit_1/bottleneck_v1/shortcut/weights [1,1,288,576] *
resnet_v1_xception/block3/unit_1/bottleneck_v1/shortcut/BatchNorm/gamma [576]
resnet_v1_xception/block3/unit_1/bottleneck_v1/shortcut/BatchNorm/beta [576]
resnet_v1_xception/block3/unit_1/bottleneck_v1/shortcut/BatchNorm/moving_mean [576]
resnet_v1_xception/block3/unit_1/bottleneck_v1/shortcut/BatchNorm/moving_variance [576]
resnet_v1_xception/block3/unit_1/bottleneck_v1/conv1/weights [1,1,288,288] *
resnet_v1_xception/block3/unit_1/bottleneck_v1/conv1/BatchNorm/gamma [288]
resnet_v1_xception/block3/unit_1/bottleneck_v1/conv1/BatchNorm/beta [288]
resnet_v1_xception/block3/unit_1/bottleneck_v1/conv1/BatchNorm/moving_mean [288]
resnet_v1_xception/block3/unit_1/bottleneck_v1/conv1/BatchNorm/moving_variance [288]
resnet_v1_xception/block3/unit_1/bottleneck_v1/dws_conv2/depthwise_weights [3,3,288,1] *
resnet_v1_xception/block3/unit_1/bottleneck_v1/dws_conv2/pointwise_weights [1,1,288,288] *
resnet_v1_xception/block3/unit_1/bottleneck_v1/dws_conv2/biases [288] *
resnet_v1_xception/block3/unit_1/bottleneck_v1/conv3/weights [1,1,288,576] *
resnet_v1_xception/block3/unit_1/bottleneck_v1/conv3/BatchNorm/gamma [576]
resnet_v1_xception/block3/unit_1/bottleneck_v1/conv3/BatchNorm/beta [576]
resnet_v1_xception/block3/unit_1/bottleneck_v1/conv3/BatchNorm/moving_mean [576]
resnet_v1_xception/block3/unit_1/bottleneck_v1/conv3/BatchNorm/moving_variance [576]
resnet_v1_xception/block3/unit_2/bottleneck_v1/conv1/weights [1,1,576,288] *
resnet_v1_xception/block3/unit_2/bottleneck_v1/conv1/BatchNorm/gamma [288]
resnet_v1_xception/block3/unit_2/bottleneck_v1/conv1/BatchNorm/beta [288]
resnet_v1_xception/block3/unit_2/bottleneck_v1/conv1/BatchNorm/moving_mean [288]
resnet_v1_xception/block3/unit_2/bottleneck_v1/conv1/BatchNorm/moving_variance [288]
resnet_v1_xception/block3/unit_2/bottleneck_v1/dws_conv2/depthwise_weights [3,3,288,1] *
resnet_v1_xception/block3/unit_2/bottleneck_v1/dws_conv2/pointwise_weights [1,1,288,288] *
resnet_v1_xception/block3/unit_2/bottleneck_v1/dws_conv2/biases [288] *
resnet_v1_xception/block3/unit_2/bottleneck_v1/conv3/weights [1,1,288,576] *
resnet_v1_xception/block3/unit_2/bottleneck_v1/conv3/BatchNorm/gamma [576]
resnet_v1_xception/block3/unit_2/bottleneck_v1/conv3/BatchNorm/beta [576]
resnet_v1_xception/block3/unit_2/bottleneck_v1/conv3/BatchNorm/moving_mean [576]
resnet_v1_xception/block3/unit_2/bottleneck_v1/conv3/BatchNorm/moving_variance [576]
resnet_v1_xception/block3/unit_3/bottleneck_v1/conv1/weights [1,1,576,288] *
resnet_v1_xception/block3/unit_3/bottleneck_v1/conv1/BatchNorm/gamma [288]
resnet_v1_xception/block3/unit_3/bottleneck_v1/conv1/BatchNorm/beta [288]
resnet_v1_xception/block3/unit_3/bottleneck_v1/conv1/BatchNorm/moving_mean [288]
resnet_v1_xception/block3/unit_3/bottleneck_v1/conv1/BatchNorm/moving_variance [288]
resnet_v1_xception/block3/unit_3/bottleneck_v1/dws_conv2/depthwise_weights [3,3,288,1] *
resnet_v1_xception/block3/unit_3/bottleneck_v1/dws_conv2/pointwise_weights [1,1,288,288] *
resnet_v1_xception/block3/unit_3/bottleneck_v1/dws_conv2/biases [288] *
resnet_v1_xception/block3/unit_3/bottleneck_v1/conv3/weights [1,1,288,576] *
resnet_v1_xception/block3/unit_3/bottleneck_v1/conv3/BatchNorm/gamma [576]
resnet_v1_xception/block3/unit_3/bottleneck_v1/conv3/BatchNorm/beta [576]
resnet_v1_xception/block3/unit_3/bottleneck_v1/conv3/BatchNorm/moving_mean [576]
resnet_v1_xception/block3/unit_3/bottleneck_v1/conv3/BatchNorm/moving_variance [576]
resnet_v1_xception/block3/unit_4/bottleneck_v1/conv1/weights [1,1,576,288] *
resnet_v1_xception/block3/unit_4/bottleneck_v1/conv1/BatchNorm/gamma [288]
resnet_v1_xception/block3/unit_4/bottleneck_v1/conv1/BatchNorm/beta [288]
resnet_v1_xception/block3/unit_4/bottleneck_v1/conv1/BatchNorm/moving_mean [288]
resnet_v1_xception/block3/unit_4/bottleneck_v1/conv1/BatchNorm/moving_variance [288]
resnet_v1_xception/block3/unit_4/bottleneck_v1/dws_conv2/depthwise_weights [3,3,288,1] *
resnet_v1_xception/block3/unit_4/bottleneck_v1/dws_conv2/pointwise_weights [1,1,288,288] *
resnet_v1_xception/block3/unit_4/bottleneck_v1/dws_conv2/biases [288] *
resnet_v1_xception/block3/unit_4/bottleneck_v1/conv3/weights [1,1,288,576] *
resnet_v1_xception/block3/unit_4/bottleneck_v1/conv3/BatchNorm/gamma [576]
resnet_v1_xception/block3/unit_4/bottleneck_v1/conv3/BatchNorm/beta [576]
resnet_v1_xception/block3/unit_4/bottleneck_v1/conv3/BatchNorm/moving_mean [576]
resnet_v1_xception/block3/unit_4/bottleneck_v1/conv3/BatchNorm/moving_variance [576]
resnet_v1_xception/logits/weights [1,1,576,1000]
resnet_v1_xception/logits/biases [1000]
"""


def parse_geonseoks():
    shapes, trained = {}, set()
    for line in GEONSEOKS_VARIABLES.strip().splitlines():
        parts = line.split()
        shapes[parts[0]] = [int(d) for d in parts[1].strip('[]').split(',')]
        if parts[-1] == '*':
            trained.add(parts[0])
    return shapes, trained


CHANNELS = {
    'xception_star': {'conv1': 24, 'pool1': 24, 'stage2': 144, 'stage3': 288, 'stage4': 576},
    'xception_geonseoks': {'conv1': 24, 'pool1': 24, 'block1': 144, 'block2': 288,
                           'block3': 576},
    'resnet_v1_101': {'conv1': 64, 'pool1': 64, 'block1': 256, 'block2': 512, 'block3': 1024,
                      'block4': 2048},
}
DEFAULT_SCOPES = {'xception_star': 'xception_star', 'xception_geonseoks': 'resnet_v1_xception',
                  'resnet_v1_101': 'resnet_v1_101'}


def build(name, shape=(1, 224, 224, 3), **kwargs):
    images = tf.placeholder(tf.float32, shape, name='images')
    net, end_points = get_backbone(name).build(images, **kwargs)
    return images, net, end_points


def var_shapes(variables):
    return {v.op.name: v.get_shape().as_list() for v in variables}


def weight_params(variables):
    return sum(int(np.prod(v.get_shape().as_list())) for v in variables
               if 'moving_' not in v.op.name)


@pytest.fixture(autouse=True)
def graph():
    with tf.Graph().as_default() as g:
        tf.set_random_seed(0)
        yield g


def test_registry():
    assert set(BACKBONES) == set(CHANNELS)
    for name in BACKBONES:
        module = get_backbone(name)
        assert module.build is getattr(module, name)
        assert module.SCOPE == DEFAULT_SCOPES[name]
        assert module.RPN_FEATURE in module.FEATURE_STRIDES
        assert module.HEAD_FEATURE in module.FEATURE_STRIDES
        assert set(module.FEATURE_STRIDES) == set(CHANNELS[name])
    with pytest.raises(ValueError, match='unknown backbone'):
        get_backbone('vgg16')


def test_xception_star_macs_at_224(graph):
    _, logits, end_points = build('xception_star', num_classes=1000)
    assert logits.get_shape().as_list() == [1, 1000]
    assert end_points['predictions'].get_shape().as_list() == [1, 1000]
    macs = count_macs(graph)
    assert abs(macs - 145e6) <= 0.1 * 145e6
    assert macs == 143078976  # reference xception-star.md 6.1: 143.08 M
    assert profiler_flops(graph) == 2 * macs
    # The ShuffleNet-v1 g=1 network the unit reading corresponds to has 1,531,936 params.
    assert weight_params(tf.global_variables()) == 1531936


def test_count_macs_breakdown_and_fixed_shapes(graph):
    images = tf.placeholder(tf.float32, [None, None, None, 3], name='data')
    get_backbone('xception_star').build(images)
    with pytest.raises(ValueError, match='input_shapes'):
        count_macs(graph)
    total, per_op = count_macs(graph, input_shapes={'data': [1, 224, 224, 3]}, breakdown=True)
    assert total == sum(per_op.values())
    assert per_op['xception_star/conv1/convolution'] == 112 * 112 * 27 * 24
    assert total == 143078976 - 576 * 1000  # no logits
    # unknown_dim stands in for dimensions left dynamic
    assert count_macs(graph, unknown_dim=224) > count_macs(graph, unknown_dim=112)


@pytest.mark.parametrize('name', sorted(CHANNELS))
@pytest.mark.parametrize('size', [(224, 224), (333, 517)])
def test_end_point_shapes(name, size):
    module = get_backbone(name)
    _, net, end_points = build(name, (2,) + size + (3,))
    scope = DEFAULT_SCOPES[name]
    for alias, stride in module.FEATURE_STRIDES.items():
        expected = [2, math.ceil(size[0] / stride), math.ceil(size[1] / stride),
                    CHANNELS[name][alias]]
        assert end_points[alias].get_shape().as_list() == expected, alias
        assert end_points[scope + '/' + alias] is end_points[alias]
    assert net is end_points[module.HEAD_FEATURE]
    assert list(end_points)[-1] == module.HEAD_FEATURE


@pytest.mark.parametrize('name,size', [('xception_star', (333, 517)),
                                       ('xception_geonseoks', (333, 517)),
                                       ('resnet_v1_101', (67, 101))])
def test_forward_at_odd_size(name, size):
    module = get_backbone(name)
    images, _, end_points = build(name, (None, None, None, 3))
    keys = [module.RPN_FEATURE, module.HEAD_FEATURE]
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        outs = sess.run([end_points[k] for k in keys],
                        {images: np.random.RandomState(0).randn(1, size[0], size[1], 3)})
    for key, out in zip(keys, outs):
        stride = module.FEATURE_STRIDES[key]
        assert out.shape == (1, math.ceil(size[0] / stride), math.ceil(size[1] / stride),
                             CHANNELS[name][key])
        assert np.isfinite(out).all() and (out >= 0).all()


def test_geonseoks_variables_match_reference():
    shapes, trained = parse_geonseoks()
    assert len(shapes) == 230 and len(trained) == 74
    build('xception_geonseoks', num_classes=1000)
    assert var_shapes(tf.global_variables()) == shapes
    assert weight_params(tf.global_variables()) == 3241408


def test_geonseoks_detector_trainables():
    shapes, trained = parse_geonseoks()
    build('xception_geonseoks', is_training=True)
    variables = tf.global_variables()
    assert var_shapes(variables) == {k: v for k, v in shapes.items() if '/logits/' not in k}
    assert weight_params(variables) == 2664408
    # The original leaves block1's dws_conv2 trainable by accident; freeze_at=2 freezes it.
    accident = {n for n in trained if '/block1/' in n}
    assert len(accident) == 12 and all('/dws_conv2/' in n for n in accident)
    assert {v.op.name for v in tf.trainable_variables()} == trained - accident


def test_resnet_v1_101_slim_names():
    build('resnet_v1_101', num_classes=1000)
    shapes = var_shapes(tf.global_variables())
    assert len(shapes) == 522
    unit = 'resnet_v1_101/block%d/unit_%d/bottleneck_v1/'
    sample = {
        'resnet_v1_101/conv1/weights': [7, 7, 3, 64],
        'resnet_v1_101/conv1/BatchNorm/moving_variance': [64],
        unit % (1, 1) + 'shortcut/weights': [1, 1, 64, 256],
        unit % (1, 3) + 'conv2/weights': [3, 3, 64, 64],
        unit % (2, 1) + 'shortcut/BatchNorm/gamma': [512],
        unit % (2, 1) + 'conv1/weights': [1, 1, 256, 128],
        unit % (3, 23) + 'conv3/BatchNorm/beta': [1024],
        unit % (4, 1) + 'shortcut/weights': [1, 1, 1024, 2048],
        unit % (4, 3) + 'conv2/weights': [3, 3, 512, 512],
        'resnet_v1_101/logits/weights': [1, 1, 2048, 1000],
        'resnet_v1_101/logits/biases': [1000],
    }
    assert {k: shapes[k] for k in sample} == sample
    assert sum('shortcut/weights' in k for k in shapes) == 4
    assert weight_params(tf.global_variables()) == 44549160


def test_resnet_strides_on_first_unit_and_dilation(graph):
    build('resnet_v1_101')
    ops = {op.name: op for op in graph.get_operations()}
    conv = 'resnet_v1_101/block%d/unit_%d/bottleneck_v1/conv2/convolution'
    assert ops[conv % (2, 1)].get_attr('strides') == [1, 2, 2, 1]
    assert ops[conv % (2, 2)].get_attr('strides') == [1, 1, 1, 1]
    assert ops[conv % (3, 1)].get_attr('padding') in (b'VALID', 'VALID')
    # dilation 2 in block4: tf.nn.convolution wraps the conv in space_to_batch
    assert any(n.startswith('resnet_v1_101/block4/unit_3/bottleneck_v1/conv2/')
               and op.type == 'SpaceToBatchND' for n, op in ops.items())


@pytest.mark.parametrize('freeze_at,first_trainable', [
    (0, 'conv1'), (1, 'stage2'), (2, 'stage3'), (3, 'stage4'), (4, None)])
def test_freeze_at(freeze_at, first_trainable):
    order = ['conv1', 'stage2', 'stage3', 'stage4']
    build('xception_star', freeze_at=freeze_at, is_training=True)
    trainable = {v.op.name.split('/')[1] for v in tf.trainable_variables()}
    expected = set(order[order.index(first_trainable):]) if first_trainable else set()
    assert trainable == expected
    regularized = tf.get_collection(tf.GraphKeys.REGULARIZATION_LOSSES)
    assert {t.name.split('/')[1] for t in regularized} == expected


def test_freeze_at_out_of_range():
    with pytest.raises(ValueError, match='freeze_at'):
        build('resnet_v1_101', freeze_at=6)


@pytest.mark.parametrize('bn_training', [False, True])
def test_bn_training_switch(graph, bn_training):
    build('xception_star', is_training=True, bn_training=bn_training)
    bn_ops = [op for op in graph.get_operations() if op.type.startswith('FusedBatchNorm')]
    assert len(bn_ops) == 1 + 3 * 16
    batch_stats = {op.name.split('/')[1] for op in bn_ops if op.get_attr('is_training')}
    gammas = {v.op.name.split('/')[1] for v in tf.trainable_variables()
              if v.op.name.endswith('BatchNorm/gamma')}
    updates = tf.get_collection(tf.GraphKeys.UPDATE_OPS)
    if bn_training:
        # frozen stem and stage2 keep moving statistics; stage3 + stage4 have 12 units
        assert batch_stats == gammas == {'stage3', 'stage4'}
        assert len(updates) == 2 * 3 * 12
    else:
        assert batch_stats == gammas == set() and updates == []
    # is_training False: moving statistics even with bn_training
    with tf.Graph().as_default() as g2:
        build('xception_star', is_training=False, bn_training=True)
        assert not any(op.get_attr('is_training') for op in g2.get_operations()
                       if op.type.startswith('FusedBatchNorm'))
        assert tf.get_collection(tf.GraphKeys.UPDATE_OPS) == []


@pytest.mark.parametrize('name', sorted(BACKBONES))
def test_bn_decay_sets_the_moving_average_update(graph, name):
    images, _, _ = build(name, shape=(2, 64, 64, 3), is_training=True, bn_training=True,
                         freeze_at=0, bn_decay=0.25)
    mean = [v for v in tf.global_variables() if v.op.name.endswith('moving_mean')][0]
    batch_mean = graph.get_tensor_by_name(
        mean.op.name.rsplit('/', 1)[0] + '/FusedBatchNormV3:1')
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        feed = {images: np.random.RandomState(0).normal(0, 1, (2, 64, 64, 3))}
        batch = sess.run(batch_mean, feed)
        sess.run(tf.get_collection(tf.GraphKeys.UPDATE_OPS), feed)
        # moving = decay * moving + (1 - decay) * batch, from moving = 0
        np.testing.assert_allclose(sess.run(mean), 0.75 * batch, rtol=1e-4, atol=1e-6)
    assert np.abs(batch).max() > 1e-3


def test_weight_decay_collection():
    build('xception_geonseoks', weight_decay=3e-4, num_classes=10)
    losses = tf.get_collection(tf.GraphKeys.REGULARIZATION_LOSSES)
    # block2: 8 x (conv1, depthwise, pointwise, conv3) + shortcut; block3: 4 x 4 + 1; logits
    assert len(losses) == 33 + 17 + 1
    weights = [v for v in tf.trainable_variables()
               if v.op.name.endswith(('weights', 'depthwise_weights', 'pointwise_weights'))]
    assert len(weights) == len(losses)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        total, values = sess.run([tf.add_n(losses), weights])
    np.testing.assert_allclose(total, 3e-4 * 0.5 * sum(np.sum(w ** 2) for w in values),
                               rtol=1e-5)
    with tf.Graph().as_default():
        build('resnet_v1_101', weight_decay=0.0)
        assert tf.get_collection(tf.GraphKeys.REGULARIZATION_LOSSES) == []


@pytest.mark.parametrize('name', sorted(CHANNELS))
def test_reuse_creates_nothing(name):
    images, _, first = build(name, (1, 64, 96, 3), is_training=True)
    count = len(tf.global_variables())
    losses = len(tf.get_collection(tf.GraphKeys.REGULARIZATION_LOSSES))
    module = get_backbone(name)
    _, second = module.build(images, is_training=True, reuse=True)
    assert len(tf.global_variables()) == count
    assert len(tf.get_collection(tf.GraphKeys.REGULARIZATION_LOSSES)) == losses
    key = module.HEAD_FEATURE
    assert first[key] is not second[key]
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        a, b = sess.run([first[key], second[key]],
                        {images: np.random.RandomState(1).randn(1, 64, 96, 3)})
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
