"""ResNet-101 Light-Head R-CNN (setting L): zengarden's light_head_rcnn.ori_res101.coco.ps_roialign.

Stride 2 on the 3x3 conv of the first unit of blocks 2 and 3, block 4 dilated (rate 2); RPN 512
on block 3, large separable conv (Cmid 256, Cout 490) on block 4, both at 1/16; 800 x 1333.
"""
import os

from lighthead.config import REPO_ROOT, make_config
from lighthead.config.classes import coco2017

config = make_config(
    exp_name='res101_coco',
    backbone='resnet_v1_101',
    image_short_size=800,
    image_max_size=1333,
    rpn_channels=512,
    head_mid_channels=256,
    nr_dataflow=8,
    weight=os.path.join(REPO_ROOT, 'data', 'imagenet_weights', 'res101.ckpt'),
    weight_name_map={'resnet_v1_101': 'resnet_v1_101'},
    **coco2017(os.path.join(REPO_ROOT, 'data', 'MSCOCO'))
)
cfg = config
