"""Xception* (paper Table 7, setting S) Light-Head R-CNN on COCO: the paper's fast detector.

RPN (256 ch) on stage 3 (stride 16); large separable conv (k 15, Cmid 64, Cout 490) on stage 4
(stride 32); PSAlign 7x7, 2x2 samples at 1/32; input 700 x 1100; 1000 test proposals.
"""
import os

from lighthead.config import REPO_ROOT, make_config
from lighthead.config.classes import coco2017

config = make_config(
    exp_name='user',
    backbone='xception_star',
    image_short_size=700,
    image_max_size=1100,
    rpn_channels=256,
    head_mid_channels=64,
    basic_lr=5e-4 * 2 * 0.7,
    nr_dataflow=8,
    weight=os.path.join(REPO_ROOT, 'data', 'imagenet_weights', 'xception_star.ckpt'),
    weight_name_map={'xception_star': 'xception_star'},
    **coco2017(os.path.join(REPO_ROOT, 'data', 'MSCOCO'))
)
cfg = config
