"""Light-Head R-CNN, Xception* backbone (setting S), for a zengarden/light_head_rcnn checkout.

Goes to ``experiments/<user>/<experiment>/network_desp.py`` next to that experiment's
``config.py``; needs ``lib/utils/tf_utils/basemodel/xception_star.py`` (the drop-in backbone).
Everything except the backbone is the checkout's own code: anchors, proposals, anchor and
proposal targets, the large separable conv, PSAlign pooling and the OHEM losses.

Differences from the checkout's ResNet-101 ``network_desp.py`` (setting S of the paper):

* backbone Xception* (scope ``xception_star``), RPN on stage3 (stride 16, so ``cfg.stride``
  stays ``[16]``), light head on stage4 (stride 32, PSAlign ``spatial_scale = 1/32``);
* RPN conv 256 channels (not 512); large separable conv ``Cmid = 64`` (not 256), k 15,
  ``Cout = 490``.

Variable names equal those of lighthead's Xception* experiments (``xception_star/...``,
``xception_star/rpn_conv/3x3``, ``xception_star/conv_new_1_conv15_*``, ``xception_star/ps_fc_1``,
``cls_fc``, ``bbox_fc``), so a checkpoint trained by either code restores in the other.

Contract as the original (its tools/train.py and test.py call it unchanged): ``get_inputs``,
``inference('TRAIN' | 'TEST', inputs)``, ``get_train_collection()`` (``rpn_loss_cls,
rpn_loss_box, loss_cls, loss_box, tot_losses``) and ``get_test_collection()`` (``cls_score,
cls_prob, bbox_pred, rois``, in this order: test.py unpacks four values).
"""
from collections import OrderedDict

import numpy as np
import tensorflow as tf

try:
    import tf_slim as slim
except ImportError:
    import tensorflow.contrib.slim as slim

from config import cfg
from detection_opr.rfcn_plus_plus import rfcn_plus_plus_opr
from detection_opr.rpn.snippets import generate_anchors_opr
from detection_opr.rpn_batched.anchor_target_layer_without_boxweight import \
    anchor_target_layer
from detection_opr.rpn_batched.proposal_opr import proposal_opr
from detection_opr.rpn_batched.proposal_target_layer import proposal_target_layer
from detection_opr.utils import loss_opr, loss_opr_without_box_weight
from lib_kernel.lib_psalign_pooling import psalign_pooling_op
from lib_kernel.lib_psalign_pooling import psalign_pooling_op_grad  # noqa: F401 (gradient)
from utils.tf_utils.basemodel import xception_star

RPN_FEATURE = 'stage3'
HEAD_FEATURE = 'stage4'
RPN_CHANNELS = 256
HEAD_KERNEL = 15
HEAD_MID_CHANNELS = 64
GROUP_SIZE = 7
HEAD_OUT_CHANNELS = GROUP_SIZE * GROUP_SIZE * 10
SAMPLES = 2
FC_CHANNELS = 2048


class Network(object):
    def __init__(self):
        rpn_stride = xception_star.FEATURE_STRIDES[RPN_FEATURE]
        if cfg.stride[0] != rpn_stride:
            raise ValueError('config.py: stride must be [%d] (the RPN runs on Xception* %s), '
                             'got %r' % (rpn_stride, RPN_FEATURE, cfg.stride))

    def get_inputs(self, mode=0):
        """mode 0: placeholders data [N, H, W, 3], im_info [N, 6], boxes [N, M, 5];
        mode 1: their feed names."""
        if mode == 1:
            return ['data', 'im_info', 'boxes']
        return [tf.placeholder(tf.float32, shape=[None, None, None, 3], name='data'),
                tf.placeholder(tf.float32, shape=[None, 6], name='im_info'),
                tf.placeholder(tf.float32, shape=[None, None, 5], name='boxes')]

    def inference(self, mode, inputs):
        """TRAIN: returns the total loss and fills the loss collections; TEST: returns None and
        fills ``rpn_cls_score, rpn_cls_prob, rpn_bbox_pred, cls_score, cls_prob, bbox_pred,
        rois`` (``bbox_pred`` de-normalised, ``rois`` ``[R, 5]`` (batch, x1, y1, x2, y2))."""
        is_training = mode == 'TRAIN'
        image, im_info, gt_boxes = inputs
        image.set_shape([None, None, None, 3])
        im_info.set_shape([None, cfg.nr_info_dim])
        if is_training:
            gt_boxes.set_shape([None, None, 5])
        num_anchors = len(cfg.anchor_scales) * len(cfg.anchor_ratios)

        _, end_points = xception_star.xception_star(
            image, is_training=is_training, bn_trainable=cfg.bn_training,
            weight_decay=cfg.weight_decay)

        initializer = tf.random_normal_initializer(mean=0.0, stddev=0.01)
        initializer_bbox = tf.random_normal_initializer(mean=0.0, stddev=0.001)
        # No variable-scope regularizer (the ResNet-101 file has one): train.py's arg_scope
        # already decays each weight; with both, TF 1.15 decays the RPN and head weights twice
        # and their biases too.
        with tf.variable_scope(xception_star.SCOPE):
            rpn = slim.conv2d(
                end_points[RPN_FEATURE], RPN_CHANNELS, [3, 3], trainable=is_training,
                weights_initializer=initializer, activation_fn=tf.nn.relu,
                scope='rpn_conv/3x3')
            rpn_cls_score = slim.conv2d(
                rpn, num_anchors * 2, [1, 1], trainable=is_training,
                weights_initializer=initializer, padding='VALID', activation_fn=None,
                scope='rpn_cls_score')
            rpn_bbox_pred = slim.conv2d(
                rpn, num_anchors * 4, [1, 1], trainable=is_training,
                weights_initializer=initializer, padding='VALID', activation_fn=None,
                scope='rpn_bbox_pred')

            height = tf.cast(tf.shape(rpn)[1], tf.float32)
            width = tf.cast(tf.shape(rpn)[2], tf.float32)
            anchors = generate_anchors_opr(
                height, width, cfg.stride[0], cfg.anchor_scales, cfg.anchor_ratios)
            rpn_cls_prob = tf.nn.softmax(tf.reshape(rpn_cls_score, [-1, 2]),
                                         name='rpn_cls_prob')
            rpn_cls_prob = tf.reshape(rpn_cls_prob, tf.shape(rpn_cls_score))
            rois, _ = proposal_opr(
                rpn_cls_prob, rpn_bbox_pred, im_info, mode, cfg.stride, anchors, num_anchors,
                is_tfchannel=True, is_tfnms=True)

            if is_training:
                with tf.variable_scope('anchor'):
                    rpn_labels, rpn_bbox_targets = tf.py_func(
                        anchor_target_layer,
                        [gt_boxes, im_info, cfg.stride, anchors, num_anchors],
                        [tf.float32, tf.float32])
                    rpn_labels = tf.cast(rpn_labels, tf.int32, name='to_int32')
                with tf.control_dependencies([rpn_labels]), tf.variable_scope('rpn_rois'):
                    rois, labels, bbox_targets = tf.py_func(
                        proposal_target_layer, [rois, gt_boxes, im_info],
                        [tf.float32, tf.float32, tf.float32])
                    labels = tf.cast(labels, tf.int32, name='to_int32')

            ps_fm = rfcn_plus_plus_opr.global_context_module(
                end_points[HEAD_FEATURE], prefix='conv_new_1', ks=HEAD_KERNEL,
                chl_mid=HEAD_MID_CHANNELS, chl_out=HEAD_OUT_CHANNELS)
            ps_fm = tf.nn.relu(ps_fm)
            pooled, _, _ = psalign_pooling_op.psalign_pool(
                ps_fm, rois, group_size=GROUP_SIZE, sample_height=SAMPLES,
                sample_width=SAMPLES,
                spatial_scale=1.0 / xception_star.FEATURE_STRIDES[HEAD_FEATURE])
            pooled = slim.flatten(pooled)
            ps_fc_1 = slim.fully_connected(
                pooled, FC_CHANNELS, weights_initializer=initializer,
                activation_fn=tf.nn.relu, trainable=is_training, scope='ps_fc_1')
            cls_score = slim.fully_connected(
                ps_fc_1, cfg.num_classes, weights_initializer=initializer,
                activation_fn=None, trainable=is_training, scope='cls_fc')
            bbox_pred = slim.fully_connected(
                ps_fc_1, 4 * cfg.num_classes, weights_initializer=initializer_bbox,
                activation_fn=None, trainable=is_training, scope='bbox_fc')
            cls_prob = loss_opr.softmax_layer(cls_score, 'cls_prob')

        if not is_training:
            stds = np.tile(np.array(cfg.TRAIN.BBOX_NORMALIZE_STDS), cfg.num_classes)
            means = np.tile(np.array(cfg.TRAIN.BBOX_NORMALIZE_MEANS), cfg.num_classes)
            bbox_pred = bbox_pred * stds + means
            for name, value in (('rpn_cls_score', rpn_cls_score), ('rpn_cls_prob', rpn_cls_prob),
                                ('rpn_bbox_pred', rpn_bbox_pred), ('cls_score', cls_score),
                                ('cls_prob', cls_prob), ('bbox_pred', bbox_pred),
                                ('rois', rois)):
                tf.add_to_collection(name, value)
            return None

        rpn_loss_box = loss_opr_without_box_weight.smooth_l1_loss_rpn(
            tf.reshape(rpn_bbox_pred, [-1, 4]), tf.reshape(rpn_bbox_targets, [-1, 4]),
            tf.reshape(rpn_labels, [-1]), sigma=cfg.simga_rpn)
        rpn_label = tf.reshape(rpn_labels, [-1])
        rpn_select = tf.where(tf.not_equal(rpn_label, -1))
        rpn_cls_logits = tf.reshape(tf.gather(tf.reshape(rpn_cls_score, [-1, 2]), rpn_select),
                                    [-1, 2])
        rpn_label = tf.reshape(tf.gather(rpn_label, rpn_select), [-1])
        rpn_cross_entropy = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            logits=rpn_cls_logits, labels=rpn_label))

        loss_cls, loss_box = loss_opr_without_box_weight.sum_ohem_loss(
            tf.reshape(cls_score, [-1, cfg.num_classes]), tf.reshape(labels, [-1]), bbox_pred,
            bbox_targets, cfg.TRAIN.nr_ohem_sampling, cfg.num_classes)
        loss_box *= 2

        tf.add_to_collection('loss_cls', loss_cls)
        tf.add_to_collection('loss_box', loss_box)
        tf.add_to_collection('rpn_loss_cls', rpn_cross_entropy)
        tf.add_to_collection('rpn_loss_box', rpn_loss_box)
        loss = loss_cls + loss_box + rpn_cross_entropy + rpn_loss_box
        tf.add_to_collection('losses', loss)
        return loss

    def get_train_collection(self):
        """Losses summed over the towers built so far."""
        ret = OrderedDict()
        for name in ('rpn_loss_cls', 'rpn_loss_box', 'loss_cls', 'loss_box'):
            ret[name] = tf.add_n(tf.get_collection(name))
        ret['tot_losses'] = tf.add_n(tf.get_collection('losses'))
        return ret

    def get_test_collection(self):
        ret = OrderedDict()
        for name in ('cls_score', 'cls_prob', 'bbox_pred', 'rois'):
            ret[name] = tf.get_collection(name)[0]
        return ret
