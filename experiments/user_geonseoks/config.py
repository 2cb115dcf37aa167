"""Xception* in geonseoks' geometry (loads his published ImageNet checkpoint by name).

Units with mid widths 24/144/288 and a biased ReLU separable conv ``dws_conv2``; stage 4 at
stride 1, so RPN (256 ch, on stage 3) and the head (Cmid 64, on stage 4) both work at 1/16.
"""
import os

from lighthead.config import REPO_ROOT, make_config
from lighthead.config.classes import coco2017

config = make_config(
    exp_name='user_geonseoks',
    backbone='xception_geonseoks',
    image_short_size=700,
    image_max_size=1100,
    rpn_channels=256,
    head_mid_channels=64,
    basic_lr=5e-4 * 2 * 0.7,
    nr_dataflow=8,
    weight=os.path.join(REPO_ROOT, 'data', 'imagenet_weights', 'model.ckpt-3081378'),
    weight_name_map={'resnet_v1_xception': 'resnet_v1_xception'},
    **coco2017(os.path.join(REPO_ROOT, 'data', 'MSCOCO'))
)
cfg = config
