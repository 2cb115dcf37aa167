"""Xception* Light-Head R-CNN on the bundled synthetic shapes data: trains on a CPU in minutes.

No pretrained weights: BN is trained and nothing is frozen. The 256 x 320 images are upscaled to
384 x 480 (the head works at 1/32: 12 x 15 cells), smaller anchors, fewer proposals and a
shorter schedule than COCO; otherwise the setting-S detector.
Generate the data first: ``python -m lighthead.datasets.synthetic`` (the quickstart script does).
"""
import os

from lighthead.config import REPO_ROOT, make_config
from lighthead.datasets.synthetic import CLASS_NAMES

DATA = os.path.join(REPO_ROOT, 'data', 'generated', 'shapes')

config = make_config(
    exp_name='quickstart',
    backbone='xception_star',
    class_names=CLASS_NAMES,
    dataset_format='coco',
    train_source=os.path.join(DATA, 'annotations', 'train.json'),
    train_root_folder=os.path.join(DATA, 'train'),
    eval_source=os.path.join(DATA, 'annotations', 'val.json'),
    eval_root_folder=os.path.join(DATA, 'val'),
    image_short_size=384,
    image_max_size=480,
    anchor_scales=[1, 2, 4, 8],
    rpn_channels=256,
    head_mid_channels=64,
    large_sep_conv_grad_mult=1.0,
    bn_training=True,
    bn_decay=0.95,
    freeze_at=0,
    weight=None,
    basic_lr=0.005,
    nr_image_per_epoch=1000,
    max_epoch=5,
    lr_steps=[[4, 1.0], [5, 0.1]],
    warm_iter=50,
    nr_dataflow=1,
    TRAIN=dict(RPN_PRE_NMS_TOP_N=2000, RPN_POST_NMS_TOP_N=300, OHEM_PER_IMAGE=128),
    TEST=dict(RPN_PRE_NMS_TOP_N=1000, RPN_POST_NMS_TOP_N=300),
)
cfg = config
