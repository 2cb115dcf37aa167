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

The detector's parts are public methods, each a step of :meth:`LightHeadNetwork.inference`
(which composes them) and each the one method to override to change that part in an
experiment's ``network_desp.Network``:

  backbone_features(data, is_training)      the backbone's end points (the RPN and head features)
  rpn(rpn_feature, batch)                   RPN convs -> :class:`RpnOutputs` (logits, prob,
                                            deltas, anchors)
  proposals(mode, rpn_outputs, im_info)     decode, clip, top-N, NMS -> RoIs and objectness
  thin_feature_map(head_feature)            the large separable conv -> the thin feature map
  rcnn_head(thin, rois)                     pool_rois (PSAlignPool) + FCs -> cls_score, bbox_pred
  detections(rois, proposal_scores, cls_prob, bbox_pred, im_info)
                                            TEST post-processing -> the ``detections/*`` tensors

The RPN and head parts build their layers under :meth:`LightHeadNetwork.head_scope` (the
backbone's variable scope, reused, and the head initialisers), so a part called on its own
creates the same variables as in ``inference``. The named intermediate tensors of the newest
build (one tower: the last one built) are in ``network.end_points`` (see
:data:`END_POINT_NAMES`), as tf-slim's end points.
"""
import collections
import contextlib

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
# What ``LightHeadNetwork.end_points`` holds after a build (every mode unless marked):
#   rpn_feature, head_feature  backbone outputs under the RPN and the head, float32 [B, h, w, C]
#   rpn_cls_score, rpn_bbox_pred, rpn_logits, rpn_cls_prob, rpn_deltas, anchors  (RpnOutputs)
#   proposals [P, 5] RoIs of the RPN, proposal_scores [P] their objectness
#   thin      the thin feature map, float32 [B, h, w, head_out_channels]
#   rois      [R, 5] the RoIs the head pools: TEST the proposals, TRAIN the sampled RoIs
#   labels [R] int32, bbox_targets [R, 4C] (TRAIN only: the sampled RoIs' targets)
#   pooled    PSAlignPool output, float32 [R, G, G, head_out_channels / G^2]
#   head_fc   ps_fc_1 output, float32 [R, fc_channels]
#   cls_score [R, C] logits, bbox_pred [R, 4C] normalised class-specific deltas
#   cls_prob  [R, C] (TEST only)
END_POINT_NAMES = ('rpn_feature', 'head_feature', 'rpn_cls_score', 'rpn_bbox_pred',
                   'rpn_logits', 'rpn_cls_prob', 'rpn_deltas', 'anchors', 'proposals',
                   'proposal_scores', 'thin', 'rois', 'labels', 'bbox_targets', 'pooled',
                   'head_fc', 'cls_score', 'bbox_pred', 'cls_prob')

RpnOutputs = collections.namedtuple('RpnOutputs', ['logits', 'prob', 'deltas', 'anchors'])
RpnOutputs.__doc__ = """What :meth:`LightHeadNetwork.rpn` returns, for B images and N = h * w * A
anchors (h x w the RPN feature, A anchors per position; anchor n is position n // A in row-major
order, anchor n % A of ``base_anchors``):

  logits   float32 [B, N, 2] (background, object) logits
  prob     float32 [B, N, 2] their softmax (tensor ``rpn_cls_prob``)
  deltas   float32 [B, N, 4] (dx, dy, dw, dh) box deltas of the anchors, unnormalised
  anchors  float32 [N, 4] (x1, y1, x2, y2) inclusive corners in network-input pixels
"""


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

    # The losses of a TRAIN build, in the order of get_train_collection (before its total).
    loss_names = TRAIN_LOSS_NAMES

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
        # The named tensors of the newest build (END_POINT_NAMES); reset by inference().
        self.end_points = collections.OrderedDict()
        self._in_head_scope = False

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
        """Build the graph of one tower from the parts. TRAIN returns the total loss; TEST
        returns the detections dict (:meth:`detections`). ``self.end_points`` is reset and
        holds this build's named tensors afterwards."""
        if mode not in ('TRAIN', 'TEST'):
            raise ValueError("mode must be 'TRAIN' or 'TEST', got %r" % (mode,))
        is_training = mode == 'TRAIN'
        data, im_info, boxes = inputs
        cfg = self.cfg
        batch = cfg.train_batch_per_gpu if is_training else cfg.test_batch_per_gpu
        self.end_points = end_points = collections.OrderedDict()

        self.backbone_features(data, is_training=is_training)
        with self.head_scope():
            rpn = self.rpn(end_points['rpn_feature'], batch)
            rois, proposal_scores = self.proposals(mode, rpn, im_info)
            thin = self.thin_feature_map(end_points['head_feature'])
            if is_training:
                rpn_cls_loss, rpn_box_loss = self._rpn_loss(
                    batch, rpn.logits, rpn.deltas, rpn.anchors, im_info, boxes)
                rois, labels, bbox_targets, rpn_recall = self._sample_rois(
                    batch, rois, im_info, boxes)
                end_points['labels'], end_points['bbox_targets'] = labels, bbox_targets
            end_points['rois'] = rois
            cls_score, bbox_pred = self.rcnn_head(thin, rois)

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
                # NaN (not reported) when an overridden head records no 'head_fc'.
                head_fc = end_points.get('head_fc')
                health['fc_zero'] = (health_ops.zero_fraction(head_fc) if head_fc is not None
                                     else tf.constant(float('nan')))
            for name in HEALTH_NAMES:
                tf.add_to_collection('health/' + name, tf.stop_gradient(health[name]))
            total = tf.add_n([values[n] for n in TRAIN_LOSS_NAMES], name='total_loss')
            tf.add_to_collection('losses', total)
            return total

        cls_prob = tf.nn.softmax(cls_score, name='cls_prob')
        end_points['cls_prob'] = cls_prob
        stds = tf.tile(tf.constant(cfg.TRAIN.BBOX_NORMALIZE_STDS, tf.float32), [cfg.num_classes])
        bbox_pred_denorm = bbox_pred * stds
        for name, value in zip(TEST_OUTPUT_NAMES, (cls_score, cls_prob, bbox_pred_denorm, rois)):
            tf.add_to_collection(name, value)
        return self.detections(rois, proposal_scores, cls_prob, bbox_pred, im_info)

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

    def gradient_multipliers(self):
        """``{variable: factor}`` for the trainable variables of the current TRAIN build (the
        default graph) whose gradient is scaled (:meth:`gradient_multiplier` not 1): the large
        separable conv's with ``cfg.large_sep_conv_grad_mult``; empty when that is 1."""
        out = collections.OrderedDict()
        for variable in tf.trainable_variables():
            factor = float(self.gradient_multiplier(variable))
            if factor != 1.0:
                out[variable] = factor
        return out

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
    def backbone_features(self, data, is_training=False):
        """The backbone on ``data`` float32 [B, H, W, 3] (network input, see the module
        docstring), under its own variable scope (``self.backbone.SCOPE``).

        Returns the backbone's ``OrderedDict`` of end points (each float32 [B, H/s, W/s, C] at
        its stride s, ``self.backbone.FEATURE_STRIDES``). Records ``end_points['rpn_feature']``
        (``self.backbone.RPN_FEATURE``, stride ``self.rpn_stride``) and
        ``end_points['head_feature']`` (``self.head_feature``, stride ``self.head_stride``).
        ``is_training``: TRAIN mode (frozen stages and BN follow the config either way).
        """
        cfg = self.cfg
        _, features = self.backbone.build(
            data, is_training=is_training, bn_training=cfg.bn_training, freeze_at=cfg.freeze_at,
            weight_decay=cfg.weight_decay, bn_decay=cfg.bn_decay)
        self.end_points['rpn_feature'] = features[self.backbone.RPN_FEATURE]
        self.end_points['head_feature'] = features[self.head_feature]
        return features

    @contextlib.contextmanager
    def head_scope(self):
        """Where the RPN and head layers are built: the backbone's variable scope, reused
        (variables ``<backbone scope>/rpn_conv/3x3/weights``, ...), and their arg scope: N(0,
        0.01) weights, zero biases, L2 weight decay on weights. Each part enters it; inside
        it (as in :meth:`inference`) entering again does nothing, so the parts of one build
        share one name scope."""
        if self._in_head_scope:
            yield
            return
        with tf.variable_scope(self.backbone.SCOPE, reuse=tf.AUTO_REUSE), \
                self._head_arg_scope():
            self._in_head_scope = True
            try:
                yield
            finally:
                self._in_head_scope = False

    def _head_arg_scope(self):
        return layers.arg_scope(
            [layers.conv2d, layers.fully_connected],
            weights_initializer=_normal(0.01),
            weights_regularizer=layers.l2_regularizer(self.cfg.weight_decay),
            biases_initializer=tf.zeros_initializer())

    def rpn(self, feature, batch):
        """The RPN on ``feature`` float32 [B, h, w, C] (stride ``self.rpn_stride``): a 3 x 3
        conv (``cfg.rpn_channels``, ReLU), then 1 x 1 convs to 2A objectness logits
        (``rpn_cls_score`` [B, h, w, 2A]) and 4A deltas (``rpn_bbox_pred`` [B, h, w, 4A]),
        A = ``self.num_anchors``, reshaped per anchor, and the anchors of the h x w positions.

        ``batch``: B as a Python int (the static batch size of the reshaped outputs).
        Returns :class:`RpnOutputs`; records its fields (``rpn_logits``, ``rpn_cls_prob``,
        ``rpn_deltas``, ``anchors``) and the two conv outputs in ``end_points``.
        """
        a = self.num_anchors
        with self.head_scope():
            net = layers.conv2d(feature, self.cfg.rpn_channels, 3, scope='rpn_conv/3x3')
            cls_score = layers.conv2d(net, 2 * a, 1, padding='VALID', activation_fn=None,
                                      scope='rpn_cls_score')
            bbox_pred = layers.conv2d(net, 4 * a, 1, padding='VALID', activation_fn=None,
                                      scope='rpn_bbox_pred')
            anchors = anchor_ops.shifted_anchors_tf(
                self.base_anchors, tf.shape(feature)[1], tf.shape(feature)[2], self.rpn_stride)
            logits = tf.reshape(cls_score, [batch, -1, 2])
            prob = tf.nn.softmax(logits, name='rpn_cls_prob')
            deltas = tf.reshape(bbox_pred, [batch, -1, 4])
        self.end_points.update([
            ('rpn_cls_score', cls_score), ('rpn_bbox_pred', bbox_pred), ('rpn_logits', logits),
            ('rpn_cls_prob', prob), ('rpn_deltas', deltas), ('anchors', anchors)])
        return RpnOutputs(logits, prob, deltas, anchors)

    def proposals(self, mode, rpn, im_info):
        """Per image of ``rpn`` (:class:`RpnOutputs`, static batch B): decode the deltas,
        clip to the image (``im_info[b, :2]``), drop boxes under ``RPN_MIN_SIZE``, keep the top
        ``RPN_PRE_NMS_TOP_N``, NMS at ``RPN_NMS_THRESH`` (+1 IoU), keep ``RPN_POST_NMS_TOP_N``
        (``cfg.TRAIN`` or ``cfg.TEST`` settings by ``mode``).

        Returns ``(rois, scores)``, no gradient: ``rois`` float32 [P, 5] rows
        (batch_index, x1, y1, x2, y2), inclusive corners in network-input pixels, images in
        order and each by descending objectness; ``scores`` float32 [P] the objectness.
        Records ``end_points['proposals']`` and ``end_points['proposal_scores']``.
        """
        settings = self.cfg.TRAIN if mode == 'TRAIN' else self.cfg.TEST
        batch = rpn.prob.shape.as_list()[0]
        if batch is None:
            raise ValueError('proposals needs RpnOutputs with a static batch size')
        rois, scores = [], []
        with self.head_scope(), tf.name_scope('proposals'):
            for b in range(batch):
                boxes, objectness = generate_proposals(
                    rpn.prob[b, :, 1], rpn.deltas[b], rpn.anchors, im_info[b, 0], im_info[b, 1],
                    pre_nms_top_n=settings.RPN_PRE_NMS_TOP_N,
                    post_nms_top_n=settings.RPN_POST_NMS_TOP_N,
                    nms_thresh=settings.RPN_NMS_THRESH, min_size=settings.RPN_MIN_SIZE)
                rois.append(_with_batch_index(boxes, b))
                scores.append(objectness)
            scores = tf.stop_gradient(tf.concat(scores, axis=0))
            rois = tf.stop_gradient(tf.concat(rois, axis=0))
        self.end_points['proposals'], self.end_points['proposal_scores'] = rois, scores
        return rois, scores

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

    def thin_feature_map(self, feature):
        """The large separable conv on ``feature`` float32 [B, h, w, C] (stride
        ``self.head_stride``): k x 1 -> 1 x k and 1 x k -> k x 1 branches (k =
        ``cfg.head_kernel``, ``cfg.head_mid_channels`` between; no BN, no activation), summed,
        optionally group-normalised (``cfg.head_norm``), ReLU.

        Returns the thin feature map float32 [B, h, w, ``cfg.head_out_channels``] (tensor
        ``thin_feature``), recorded as ``end_points['thin']``.
        """
        cfg = self.cfg
        k, mid, out = cfg.head_kernel, cfg.head_mid_channels, cfg.head_out_channels
        # Each branch is linear; the sum of the two doubles the variance, the ReLU halves it.
        with self.head_scope(), layers.arg_scope(
                [layers.conv2d], activation_fn=None,
                weights_initializer=_feature_initializer(cfg.head_init, 1.0)):
            col = layers.conv2d(feature, mid, [k, 1], scope='conv_new_1_conv15_w_pre')
            col = layers.conv2d(col, out, [1, k], scope='conv_new_1_conv15_w')
            row = layers.conv2d(feature, mid, [1, k], scope='conv_new_1_conv15_h_pre')
            row = layers.conv2d(row, out, [k, 1], scope='conv_new_1_conv15_h')
            thin = col + row
            if cfg.head_norm == 'group':
                # One group per position-sensitive map set: channels k*G*G .. (k+1)*G*G - 1.
                thin = layers.group_norm(thin, groups=out // cfg.psalign_group ** 2,
                                         scope='conv_new_1_GroupNorm')
            thin = tf.nn.relu(thin, name='thin_feature')
        self.end_points['thin'] = thin
        return thin

    def pool_rois(self, thin, rois):
        """PSAlignPool (``lighthead.ops.psalign_pool``) of ``rois`` [R, 5] (batch_index, x1, y1,
        x2, y2; network-input pixels) on the thin feature map ``thin`` [B, h, w, K G^2]
        (stride ``self.head_stride``), G = ``cfg.psalign_group``, ``cfg.psalign_samples``^2
        samples per bin. Returns float32 [R, G, G, K], recorded as ``end_points['pooled']``.
        """
        cfg = self.cfg
        pooled = psalign_pool(
            thin, rois, group_size=cfg.psalign_group, sample_height=cfg.psalign_samples,
            sample_width=cfg.psalign_samples, spatial_scale=1.0 / self.head_stride,
            pool=cfg.psalign_pool, impl=cfg.psalign_impl)
        self.end_points['pooled'] = pooled
        return pooled

    def rcnn_head(self, thin, rois):
        """The R-CNN head on the thin feature map ``thin`` [B, h, w, head_out_channels] and
        ``rois`` [R, 5] (as :meth:`pool_rois`): :meth:`pool_rois`, flatten, FC
        ``cfg.fc_channels`` + ReLU (``ps_fc_1``, optionally group-normalised), then the
        classifier and class-specific box regressor.

        Returns ``(cls_score, bbox_pred)``: float32 [R, C] logits (C = ``cfg.num_classes``,
        class 0 background) and float32 [R, 4C] (dx, dy, dw, dh) per class, normalised
        (divided by ``cfg.TRAIN.BBOX_NORMALIZE_STDS``). Records ``head_fc`` (the ``ps_fc_1``
        output, read by the training-health figures), ``cls_score`` and ``bbox_pred`` in
        ``end_points``.
        """
        cfg = self.cfg
        with self.head_scope():
            pooled = self.pool_rois(thin, rois)
            flat = tf.reshape(pooled, [-1, cfg.psalign_group * cfg.psalign_group *
                                       (cfg.head_out_channels // cfg.psalign_group ** 2)])
            norm = {}
            if cfg.head_norm == 'group':
                norm = dict(normalizer_fn=layers.group_norm, normalizer_params={'groups': 32})
            fc = layers.fully_connected(
                flat, cfg.fc_channels, scope='ps_fc_1',
                weights_initializer=_feature_initializer(cfg.head_init, 2.0), **norm)
            cls_score = layers.fully_connected(fc, cfg.num_classes, activation_fn=None,
                                               scope='cls_fc')
            bbox_pred = layers.fully_connected(fc, 4 * cfg.num_classes, activation_fn=None,
                                               weights_initializer=_normal(0.001),
                                               scope='bbox_fc')
        self.end_points.update([('head_fc', fc), ('cls_score', cls_score),
                                ('bbox_pred', bbox_pred)])
        return cls_score, bbox_pred

    def detections(self, rois, proposal_scores, cls_prob, bbox_pred, im_info):
        """TEST post-processing of image 0, in original-image pixels (``im_info[0, 2:5]``:
        scale, original height and width), under fixed tensor names.

        ``rois`` [R, 5] and ``proposal_scores`` [R] (:meth:`proposals`), ``cls_prob`` [R, C]
        (softmax of ``cls_score``), ``bbox_pred`` [R, 4C] normalised deltas
        (:meth:`rcnn_head`). Returns an ``OrderedDict``:

          boxes    float32 [N, 4] ``detections/boxes`` (x1, y1, x2, y2) inclusive corners,
                   clipped to the original image, by descending score
          scores   float32 [N] ``detections/scores``
          classes  int32 [N] ``detections/classes`` in 1 .. C-1
          num      int32 [] ``detections/num``
          proposal_boxes, proposal_scores  the RPN alone (``proposals/boxes|scores``): the
                   proposals by objectness through the same NMS (``TEST.NMS``) and cap
                   (``TEST.MAX_PER_IMAGE``), so the head can be measured against it
        """
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
        with tf.name_scope('proposals/'):
            boxes = box_ops.clip(rois[:, 1:] / im_info[0, 2], im_info[0, 3], im_info[0, 4])
            keep = tf.image.non_max_suppression(box_ops.to_tf_nms(boxes), proposal_scores,
                                                t.MAX_PER_IMAGE, iou_threshold=t.NMS)
            out['proposal_boxes'] = tf.gather(boxes, keep, name='boxes')
            out['proposal_scores'] = tf.gather(proposal_scores, keep, name='scores')
        return out


def _with_batch_index(boxes, b):
    """[N, 4] boxes -> [N, 5] rows (b, x1, y1, x2, y2)."""
    index = tf.fill([tf.shape(boxes)[0], 1], tf.cast(b, tf.float32))
    return tf.concat([index, boxes], axis=1)
