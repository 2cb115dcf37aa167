"""Light-Head R-CNN assembled from a backbone, the RPN, the thin feature map and the R-CNN head.

:class:`LightHeadNetwork` follows the original ``network_desp.Network`` contract (SPEC 4.5):
``get_inputs``, ``inference('TRAIN'|'TEST', inputs)``, ``get_train_collection`` and
``get_test_collection``. Each experiment's ``network_desp.py`` binds it to its config.

Tensors (one tower):
  data     float32 [B, H, W, 3]  RGB minus the BGR means reordered to RGB
  im_info  float32 [B, 6]        (resized_h, resized_w, scale, orig_h, orig_w, num_gt)
  boxes    float32 [B, M, 5]     (x1, y1, x2, y2, cls) in network-input pixels, inclusive
                                 corners; rows [0, num_gt) are valid; cls -1 marks an ignore region
RoIs are [R, 5] rows (batch_index, x1, y1, x2, y2) in network-input pixels.
"""
import collections

from lighthead.compat import tf
from lighthead import layers
from lighthead.detection_opr import anchors as anchor_ops
from lighthead.detection_opr import boxes as box_ops
from lighthead.detection_opr import health as health_ops
from lighthead.detection_opr.anchor_target import anchor_targets
from lighthead.detection_opr.losses import ohem_rcnn_losses, rpn_losses
from lighthead.detection_opr.postprocess import detect
from lighthead.detection_opr.proposal import generate_proposals
from lighthead.detection_opr.proposal_target import proposal_targets
from lighthead.ops import psalign_pool
from lighthead.utils.tf_utils.basemodel import get_backbone

TRAIN_LOSS_NAMES = ('rpn_loss_cls', 'rpn_loss_box', 'loss_cls', 'loss_box')
# Per-step training-health figures (lighthead.detection_opr.health), each a mean over towers.
HEALTH_NAMES = ('rois_fg', 'rois_bg', 'ohem_fg', 'ohem_bg', 'acc_fg', 'acc_bg', 'score_std',
                'rpn_recall', 'thin_zero', 'fc_zero')
TEST_OUTPUT_NAMES = ('cls_score', 'cls_prob', 'bbox_pred', 'rois')
DETECTION_NAMES = ('detections/boxes', 'detections/scores', 'detections/classes', 'detections/num')
# Parts of the detector, for per-part gradient norms and gradient multipliers, and the layer
# scopes (directly under the backbone scope) of each part that is not the backbone.
PARTS = ('backbone', 'rpn', 'thin', 'head')
_PART_LAYERS = (('rpn', ('rpn_',)), ('thin', ('conv_new',)),
                ('head', ('ps_fc_1', 'cls_fc', 'bbox_fc')))


def _normal(std):
    return tf.random_normal_initializer(stddev=std)


HEAD_INITS = ('normal', 'fan_in')


def _feature_initializer(head_init, gain):
    """Initializer of the layers that carry features into the classifier (the large
    separable conv and ``ps_fc_1``).

    ``'normal'``: N(0, 0.01), the original's; it assumes the large activations of an ImageNet
    backbone. ``'fan_in'``: variance scaling with ``gain`` (1 for a linear layer, 2 before a
    ReLU), which keeps unit-scale features at unit scale; from scratch, where BN keeps the
    backbone's features near unit scale, N(0, 0.01) shrinks them about 10x per layer and the
    classifier starts blind (see README "Training health").
    """
    if head_init == 'normal':
        return _normal(0.01)
    if head_init == 'fan_in':
        return tf.variance_scaling_initializer(scale=gain, mode='fan_in',
                                               distribution='truncated_normal')
    raise ValueError('head_init must be one of %s, got %r' % (HEAD_INITS, head_init))


class LightHeadNetwork(object):
    """Light-Head R-CNN for one config (see ``lighthead.config.base_config``)."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.backbone = get_backbone(cfg.backbone)
        self.base_anchors = anchor_ops.generate_base_anchors(
            cfg.anchor_base_size, cfg.anchor_ratios, cfg.anchor_scales)
        self.num_anchors = len(self.base_anchors)
        self.rpn_stride = self.backbone.FEATURE_STRIDES[self.backbone.RPN_FEATURE]
        self.head_feature = cfg.head_feature or self.backbone.HEAD_FEATURE
        if self.head_feature not in self.backbone.FEATURE_STRIDES:
            raise ValueError('head_feature %r is not an end point of %s; choose one of %s' % (
                self.head_feature, cfg.backbone, ', '.join(self.backbone.FEATURE_STRIDES)))
        self.head_stride = self.backbone.FEATURE_STRIDES[self.head_feature]

    # ------------------------------------------------------------------ contract
    def get_inputs(self, mode=0):
        """mode 0: the three placeholders; mode 1: their names (feed keys)."""
        if mode == 1:
            return ['data', 'im_info', 'boxes']
        data = tf.placeholder(tf.float32, [None, None, None, 3], name='data')
        im_info = tf.placeholder(tf.float32, [None, 6], name='im_info')
        boxes = tf.placeholder(tf.float32, [None, None, 5], name='boxes')
        return [data, im_info, boxes]

    def inference(self, mode, inputs):
        """Build the graph. TRAIN returns the total loss; TEST returns the detections dict."""
        if mode not in ('TRAIN', 'TEST'):
            raise ValueError("mode must be 'TRAIN' or 'TEST', got %r" % (mode,))
        is_training = mode == 'TRAIN'
        data, im_info, boxes = inputs
        cfg = self.cfg
        batch = cfg.train_batch_per_gpu if is_training else cfg.test_batch_per_gpu

        _, end_points = self.backbone.build(
            data, is_training=is_training, bn_training=cfg.bn_training, freeze_at=cfg.freeze_at,
            weight_decay=cfg.weight_decay, bn_decay=cfg.bn_decay)
        scope = self.backbone.SCOPE
        with tf.variable_scope(scope, reuse=tf.AUTO_REUSE), self._head_arg_scope():
            rpn_feat = end_points[self.backbone.RPN_FEATURE]
            rpn_cls_score, rpn_bbox_pred = self._rpn_head(rpn_feat)
            anchors = anchor_ops.shifted_anchors_tf(
                self.base_anchors, tf.shape(rpn_feat)[1], tf.shape(rpn_feat)[2], self.rpn_stride)
            rpn_logits = tf.reshape(rpn_cls_score, [batch, -1, 2])
            rpn_prob = tf.nn.softmax(rpn_logits, name='rpn_cls_prob')
            rpn_deltas = tf.reshape(rpn_bbox_pred, [batch, -1, 4])
            rois = self._proposals(mode, batch, rpn_prob, rpn_deltas, anchors, im_info)

            thin = self._large_separable_conv(end_points[self.head_feature])
            if is_training:
                rpn_cls_loss, rpn_box_loss = self._rpn_loss(
                    batch, rpn_logits, rpn_deltas, anchors, im_info, boxes)
                rois, labels, bbox_targets, rpn_recall = self._sample_rois(
                    batch, rois, im_info, boxes)
            cls_score, bbox_pred = self._rcnn_head(thin, rois)

        if is_training:
            loss_cls, loss_box, selected = ohem_rcnn_losses(
                cls_score, bbox_pred, labels, bbox_targets,
                num_ohem=cfg.TRAIN.OHEM_PER_IMAGE * batch, sigma=cfg.rcnn_sigma,
                return_selected=True)
            loss_box = loss_box * cfg.rcnn_box_loss_weight
            values = dict(rpn_loss_cls=rpn_cls_loss, rpn_loss_box=rpn_box_loss,
                          loss_cls=loss_cls, loss_box=loss_box)
            for name in TRAIN_LOSS_NAMES:
                tf.add_to_collection(name, values[name])
            with tf.name_scope('health'):
                health = health_ops.rcnn_head_health(cls_score, labels, selected)
                health['rpn_recall'] = rpn_recall
                health['thin_zero'] = health_ops.zero_fraction(thin)
                health['fc_zero'] = health_ops.zero_fraction(self.head_fc)
            for name in HEALTH_NAMES:
                tf.add_to_collection('health/' + name, tf.stop_gradient(health[name]))
            total = tf.add_n([values[n] for n in TRAIN_LOSS_NAMES], name='total_loss')
            tf.add_to_collection('losses', total)
            return total

        cls_prob = tf.nn.softmax(cls_score, name='cls_prob')
        stds = tf.tile(tf.constant(cfg.TRAIN.BBOX_NORMALIZE_STDS, tf.float32), [cfg.num_classes])
        bbox_pred_denorm = bbox_pred * stds
        for name, value in zip(TEST_OUTPUT_NAMES, (cls_score, cls_prob, bbox_pred_denorm, rois)):
            tf.add_to_collection(name, value)
        return self._detections(rois, cls_prob, bbox_pred, im_info)

    def get_train_collection(self):
        """OrderedDict of the four losses and their total (summed over towers)."""
        out = collections.OrderedDict()
        for name in TRAIN_LOSS_NAMES:
            out[name] = tf.add_n(tf.get_collection(name))
        out['tot_losses'] = tf.add_n(tf.get_collection('losses'))
        return out

    def get_health_collection(self):
        """OrderedDict of the training-health figures (:data:`HEALTH_NAMES`), each the mean
        over towers (counts are per tower)."""
        out = collections.OrderedDict()
        for name in HEALTH_NAMES:
            values = tf.stack(tf.get_collection('health/' + name))
            finite = tf.math.is_finite(values)
            count = tf.reduce_sum(tf.cast(finite, tf.float32))
            total = tf.reduce_sum(tf.where(finite, values, tf.zeros_like(values)))
            out[name] = tf.where(count > 0, total / tf.maximum(count, 1.0), float('nan'))
        return out

    # ------------------------------------------------------------------ parameters
    def part_of(self, variable):
        """The part a trainable variable belongs to: one of :data:`PARTS`."""
        name = variable.op.name
        prefix = self.backbone.SCOPE + '/'
        layer = name[len(prefix):].split('/')[0] if name.startswith(prefix) else name
        for part, layer_prefixes in _PART_LAYERS:
            if layer.startswith(layer_prefixes):
                return part
        return 'backbone'

    def gradient_multiplier(self, variable):
        """Factor applied to the gradient of ``variable``: ``cfg.large_sep_conv_grad_mult``
        for the large separable conv (the thin feature map), 1 elsewhere (the original's x3)."""
        return self.cfg.large_sep_conv_grad_mult if self.part_of(variable) == 'thin' else 1.0

    def get_test_collection(self):
        """OrderedDict of the raw head outputs and the final ``detections/*`` tensors."""
        out = collections.OrderedDict()
        for name in TEST_OUTPUT_NAMES:
            out[name] = tf.get_collection(name)[0]
        graph = tf.get_default_graph()
        for name in DETECTION_NAMES:
            out[name] = graph.get_tensor_by_name(name + ':0')
        return out

    # ------------------------------------------------------------------ parts
    def _head_arg_scope(self):
        """RPN and head layers: N(0, 0.01) weights, zero biases, L2 weight decay on weights."""
        return layers.arg_scope(
            [layers.conv2d, layers.fully_connected],
            weights_initializer=_normal(0.01),
            weights_regularizer=layers.l2_regularizer(self.cfg.weight_decay),
            biases_initializer=tf.zeros_initializer())

    def _rpn_head(self, feat):
        a = self.num_anchors
        net = layers.conv2d(feat, self.cfg.rpn_channels, 3, scope='rpn_conv/3x3')
        cls_score = layers.conv2d(net, 2 * a, 1, padding='VALID', activation_fn=None,
                                  scope='rpn_cls_score')
        bbox_pred = layers.conv2d(net, 4 * a, 1, padding='VALID', activation_fn=None,
                                  scope='rpn_bbox_pred')
        return cls_score, bbox_pred

    def _proposals(self, mode, batch, rpn_prob, rpn_deltas, anchors, im_info):
        """Per image: decode, clip, top-N, NMS. Returns [R, 5] RoIs (no gradient)."""
        settings = self.cfg.TRAIN if mode == 'TRAIN' else self.cfg.TEST
        rois, scores = [], []
        with tf.name_scope('proposals'):
            for b in range(batch):
                boxes, objectness = generate_proposals(
                    rpn_prob[b, :, 1], rpn_deltas[b], anchors, im_info[b, 0], im_info[b, 1],
                    pre_nms_top_n=settings.RPN_PRE_NMS_TOP_N,
                    post_nms_top_n=settings.RPN_POST_NMS_TOP_N,
                    nms_thresh=settings.RPN_NMS_THRESH, min_size=settings.RPN_MIN_SIZE)
                rois.append(_with_batch_index(boxes, b))
                scores.append(objectness)
            # The objectness of each RoI, for evaluating the RPN alone (_detections).
            self.proposal_scores = tf.stop_gradient(tf.concat(scores, axis=0))
            return tf.stop_gradient(tf.concat(rois, axis=0))

    def _rpn_loss(self, batch, rpn_logits, rpn_deltas, anchors, im_info, boxes):
        t = self.cfg.TRAIN
        labels, targets = [], []
        with tf.name_scope('anchor_targets'):
            for b in range(batch):
                gt = boxes[b, :tf.cast(im_info[b, 5], tf.int32)]
                lab, tgt = anchor_targets(
                    anchors, gt, im_info[b, 0], im_info[b, 1],
                    positive_overlap=t.RPN_POSITIVE_OVERLAP, negative_overlap=t.RPN_NEGATIVE_OVERLAP,
                    batch_size=t.RPN_BATCHSIZE, fg_fraction=t.RPN_FG_FRACTION,
                    allowed_border=t.RPN_ALLOWED_BORDER, ignore_ioa_thresh=t.IGNORE_IOA_THRESH)
                labels.append(lab)
                targets.append(tgt)
        return rpn_losses(tf.reshape(rpn_logits, [-1, 2]), tf.reshape(rpn_deltas, [-1, 4]),
                          tf.concat(labels, 0), tf.concat(targets, 0), sigma=self.cfg.rpn_sigma)

    def _sample_rois(self, batch, rois, im_info, boxes):
        """Proposal targets per image (gt appended, all RoIs kept). Returns rois, labels,
        targets and the RPN recall: the fraction of real gt boxes with a proposal at IoU >= 0.5
        (NaN without gt)."""
        t = self.cfg.TRAIN
        out_rois, out_labels, out_targets = [], [], []
        covered, total = [], []
        with tf.name_scope('proposal_targets'):
            for b in range(batch):
                mine = tf.equal(tf.cast(rois[:, 0], tf.int32), b)
                image_rois = tf.boolean_mask(rois[:, 1:], mine)
                gt = boxes[b, :tf.cast(im_info[b, 5], tf.int32)]
                real = tf.boolean_mask(gt[:, :4], gt[:, 4] >= 1.0)
                hits, count = health_ops.proposals_covering_gt(image_rois, real)
                covered.append(hits)
                total.append(count)
                r, lab, tgt = proposal_targets(
                    image_rois, gt, self.cfg.num_classes, fg_thresh=t.FG_THRESH,
                    bg_thresh_hi=t.BG_THRESH_HI, bg_thresh_lo=t.BG_THRESH_LO,
                    bbox_stds=t.BBOX_NORMALIZE_STDS, ignore_ioa_thresh=t.IGNORE_IOA_THRESH,
                    batch_size=t.BATCH_SIZE, fg_fraction=t.FG_FRACTION)
                out_rois.append(_with_batch_index(r, b))
                out_labels.append(lab)
                out_targets.append(tgt)
        return (tf.stop_gradient(tf.concat(out_rois, 0)), tf.concat(out_labels, 0),
                tf.concat(out_targets, 0), health_ops.recall(covered, total))

    def _large_separable_conv(self, feat):
        """k x 1 -> 1 x k and 1 x k -> k x 1 branches (no BN, no activation), summed, ReLU."""
        cfg = self.cfg
        k, mid, out = cfg.head_kernel, cfg.head_mid_channels, cfg.head_out_channels
        # Each branch is linear; the sum of the two doubles the variance, the ReLU halves it.
        with layers.arg_scope([layers.conv2d], activation_fn=None,
                              weights_initializer=_feature_initializer(cfg.head_init, 1.0)):
            col = layers.conv2d(feat, mid, [k, 1], scope='conv_new_1_conv15_w_pre')
            col = layers.conv2d(col, out, [1, k], scope='conv_new_1_conv15_w')
            row = layers.conv2d(feat, mid, [1, k], scope='conv_new_1_conv15_h_pre')
            row = layers.conv2d(row, out, [k, 1], scope='conv_new_1_conv15_h')
        thin = col + row
        if cfg.head_norm == 'group':
            # One group per position-sensitive map set: channels k*G*G .. (k+1)*G*G - 1.
            thin = layers.group_norm(thin, groups=out // cfg.psalign_group ** 2,
                                     scope='conv_new_1_GroupNorm')
        return tf.nn.relu(thin, name='thin_feature')

    def _rcnn_head(self, thin, rois):
        cfg = self.cfg
        pooled = psalign_pool(
            thin, rois, group_size=cfg.psalign_group, sample_height=cfg.psalign_samples,
            sample_width=cfg.psalign_samples, spatial_scale=1.0 / self.head_stride,
            pool=cfg.psalign_pool, impl=cfg.psalign_impl)
        flat = tf.reshape(pooled, [-1, cfg.psalign_group * cfg.psalign_group *
                                   (cfg.head_out_channels // cfg.psalign_group ** 2)])
        norm = {}
        if cfg.head_norm == 'group':
            norm = dict(normalizer_fn=layers.group_norm, normalizer_params={'groups': 32})
        fc = layers.fully_connected(flat, cfg.fc_channels, scope='ps_fc_1',
                                    weights_initializer=_feature_initializer(cfg.head_init, 2.0),
                                    **norm)
        self.head_fc = fc  # the ps_fc_1 output of the newest build, for the health figures
        cls_score = layers.fully_connected(fc, cfg.num_classes, activation_fn=None, scope='cls_fc')
        bbox_pred = layers.fully_connected(fc, 4 * cfg.num_classes, activation_fn=None,
                                           weights_initializer=_normal(0.001), scope='bbox_fc')
        return cls_score, bbox_pred

    def _detections(self, rois, cls_prob, bbox_pred, im_info):
        """Final detections of image 0 in original-image pixels, under fixed tensor names."""
        t = self.cfg.TEST
        boxes, scores, classes = detect(
            rois[:, 1:], cls_prob, bbox_pred, im_info[0, 2], im_info[0, 3], im_info[0, 4],
            bbox_stds=self.cfg.TRAIN.BBOX_NORMALIZE_STDS, nms_thresh=t.NMS,
            score_thresh=t.SCORE_THRESH, max_per_image=t.MAX_PER_IMAGE)
        with tf.name_scope('detections/'):
            out = collections.OrderedDict()
            out['boxes'] = tf.identity(boxes, name='boxes')
            out['scores'] = tf.identity(scores, name='scores')
            out['classes'] = tf.identity(classes, name='classes')
            out['num'] = tf.identity(tf.shape(scores)[0], name='num')
        # The RPN alone, so the head's contribution can be measured against it: the proposals
        # by objectness through the detections' NMS (TEST.NMS) and cap (MAX_PER_IMAGE), in
        # original-image pixels.
        with tf.name_scope('proposals/'):
            boxes = box_ops.clip(rois[:, 1:] / im_info[0, 2], im_info[0, 3], im_info[0, 4])
            keep = tf.image.non_max_suppression(box_ops.to_tf_nms(boxes), self.proposal_scores,
                                                t.MAX_PER_IMAGE, iou_threshold=t.NMS)
            out['proposal_boxes'] = tf.gather(boxes, keep, name='boxes')
            out['proposal_scores'] = tf.gather(self.proposal_scores, keep, name='scores')
        return out


def _with_batch_index(boxes, b):
    """[N, 4] boxes -> [N, 5] rows (b, x1, y1, x2, y2)."""
    index = tf.fill([tf.shape(boxes)[0], 1], tf.cast(b, tf.float32))
    return tf.concat([index, boxes], axis=1)
