"""Light-Head R-CNN graphs: every experiment at an odd size, a loss regression, frozen stages,
and overfitting two synthetic images."""
import os
import zlib

import numpy as np
import pytest

from lighthead.compat import tf
from lighthead.config import REPO_ROOT
from lighthead.datasets import load_coco
from lighthead.datasets.synthetic import generate
from lighthead.detection_opr.boxes import iou_np
from lighthead.eval.predictor import Predictor
from lighthead import network
from lighthead.network import LightHeadNetwork
from lighthead.train.trainer import Trainer

EXPERIMENTS = sorted(name for name in os.listdir(os.path.join(REPO_ROOT, 'experiments'))
                     if os.path.isfile(os.path.join(REPO_ROOT, 'experiments', name, 'config.py')))
REQUIRED_EXPERIMENTS = ('quickstart', 'res101_coco', 'user', 'user_geonseoks')
# (height, width): odd sizes; ResNet-101 gets a smaller one to stay fast.
ODD_SIZES = {'res101_coco': (161, 245)}
DEFAULT_ODD_SIZE = (333, 517)
FEW_PROPOSALS = ['TRAIN.RPN_PRE_NMS_TOP_N=300', 'TRAIN.RPN_POST_NMS_TOP_N=50',
                 'TEST.RPN_PRE_NMS_TOP_N=300', 'TEST.RPN_POST_NMS_TOP_N=50']


def single_thread_session(graph):
    config = tf.ConfigProto(intra_op_parallelism_threads=1, inter_op_parallelism_threads=1)
    return tf.Session(graph=graph, config=config)


def train_inputs(height, width, num_classes, seed=0):
    """Two images (the second smaller, zero-padded) with gt boxes: feeds for TRAIN mode.

    Returns ``data`` [2, H, W, 3], ``im_info`` [2, 6] (scale 1) and ``boxes`` [2, 4, 5].
    """
    rng = np.random.RandomState(seed)
    sizes = [(height, width), (height - 37, width - 53)]
    data = np.zeros((2, height, width, 3), np.float32)
    boxes = np.zeros((2, 4, 5), np.float32)
    im_info = np.zeros((2, 6), np.float32)
    for b, (h, w) in enumerate(sizes):
        data[b, :h, :w] = rng.uniform(-60, 60, (h, w, 3))
        num_gt = 3 - b
        for g in range(num_gt):
            bw, bh = rng.randint(w // 8, w // 2), rng.randint(h // 8, h // 2)
            x1, y1 = rng.randint(0, w - bw), rng.randint(0, h - bh)
            cls = 1 + g % (num_classes - 1)
            boxes[b, g] = [x1, y1, x1 + bw - 1, y1 + bh - 1, cls]
            data[b, y1:y1 + bh, x1:x1 + bw] += 40.0 * cls
        im_info[b] = [h, w, 1.0, h, w, num_gt]
    return data, im_info, boxes


def test_every_required_experiment_has_a_config():
    assert set(REQUIRED_EXPERIMENTS) <= set(EXPERIMENTS)


@pytest.mark.parametrize('name', EXPERIMENTS)
def test_experiment_builds_and_runs_at_an_odd_size(name, load_network):
    network_cls, cfg = load_network(name, FEW_PROPOSALS + ['train_batch_per_gpu=2'])
    height, width = ODD_SIZES.get(name, DEFAULT_ODD_SIZE)
    data, im_info, boxes = train_inputs(height, width, cfg.num_classes)

    with tf.Graph().as_default() as graph:
        tf.set_random_seed(0)
        net = network_cls()
        inputs = net.get_inputs()
        assert net.get_inputs(mode=1) == ['data', 'im_info', 'boxes']
        total = net.inference('TRAIN', inputs)
        collection = net.get_train_collection()
        assert list(collection) == ['rpn_loss_cls', 'rpn_loss_box', 'loss_cls', 'loss_box',
                                    'tot_losses']
        with tf.Session(graph=graph) as sess:
            sess.run(tf.global_variables_initializer())
            losses, total_value = sess.run(
                [collection, total], dict(zip(inputs, (data, im_info, boxes))))
    values = np.array([float(v) for v in losses.values()])
    assert np.all(np.isfinite(values)), losses
    assert losses['rpn_loss_cls'] > 0 and losses['loss_cls'] > 0
    assert np.isclose(values[:4].sum(), values[4], rtol=1e-5)
    assert np.isclose(total_value, values[4], rtol=1e-5)

    # TEST: one image whose original size is 2/3 of the network input, to check clipping.
    scale = 1.5
    orig_h, orig_w = height / scale, width / scale
    test_info = np.array([[height, width, scale, orig_h, orig_w, 0]], np.float32)
    with tf.Graph().as_default() as graph:
        tf.set_random_seed(0)
        net = network_cls()
        inputs = net.get_inputs()
        detections = net.inference('TEST', inputs)
        collection = net.get_test_collection()
        names = ['detections/boxes', 'detections/scores', 'detections/classes', 'detections/num']
        tensors = [graph.get_tensor_by_name(n + ':0') for n in names]
        assert [t.shape.ndims for t in tensors] == [2, 1, 1, 0]
        assert tensors[2].dtype == tf.int32
        assert [detections[k] for k in ('boxes', 'scores', 'classes', 'num')] == tensors
        with tf.Session(graph=graph) as sess:
            sess.run(tf.global_variables_initializer())
            proposals = [graph.get_tensor_by_name(n) for n in ('proposals/boxes:0',
                                                                 'proposals/scores:0')]
            out, (prop_boxes, prop_scores) = sess.run(
                [collection, proposals], {inputs[0]: data[:1], inputs[1]: test_info})
    det_boxes, scores, classes = (out['detections/boxes'], out['detections/scores'],
                                  out['detections/classes'])
    num = int(out['detections/num'])
    assert 0 < num <= cfg.TEST.MAX_PER_IMAGE
    assert det_boxes.shape == (num, 4) and scores.shape == (num,) and classes.shape == (num,)
    assert np.all(det_boxes[:, 0] >= 0) and np.all(det_boxes[:, 1] >= 0)
    assert np.all(det_boxes[:, 2] <= orig_w - 1) and np.all(det_boxes[:, 3] <= orig_h - 1)
    # +1 convention, w = x2 - x1 + 1: decoding and clipping never give a negative width.
    assert np.all(det_boxes[:, 2:] - det_boxes[:, :2] + 1 >= 0)
    assert np.all(np.diff(scores) <= 0)
    assert np.all((classes >= 1) & (classes < cfg.num_classes))
    rois = out['rois']
    assert rois.ndim == 2 and rois.shape[1] == 5 and 0 < len(rois) <= 50
    assert np.all(rois[:, 0] == 0)
    assert out['cls_prob'].shape == (len(rois), cfg.num_classes)
    assert np.allclose(out['cls_prob'].sum(axis=1), 1.0, atol=1e-5)
    assert out['bbox_pred'].shape == (len(rois), 4 * cfg.num_classes)
    # The RPN alone: proposals through the detections' NMS and cap, by objectness.
    assert 0 < len(prop_boxes) <= min(len(rois), cfg.TEST.MAX_PER_IMAGE)
    assert prop_boxes.shape == (len(prop_scores), 4) and np.all(np.diff(prop_scores) <= 0)
    assert np.all(prop_boxes[:, 2] <= orig_w - 1) and np.all(prop_boxes[:, 3] <= orig_h - 1)
    overlaps = iou_np(prop_boxes, prop_boxes) - np.eye(len(prop_boxes))
    # tf.image NMS measures IoU without the +1: allow for the difference.
    assert overlaps.max() <= cfg.TEST.NMS + 0.05


TEST_END_POINTS = ('rpn_feature', 'head_feature', 'rpn_cls_score', 'rpn_bbox_pred', 'rpn_logits',
                   'rpn_cls_prob', 'rpn_deltas', 'anchors', 'proposals', 'proposal_scores',
                   'thin', 'rois', 'pooled', 'head_fc', 'cls_score', 'bbox_pred', 'cls_prob')


def _variables():
    return sorted((v.op.name, tuple(v.shape.as_list())) for v in tf.global_variables())


def test_public_parts_record_end_points_and_build_the_same_variables(load_network):
    """inference composes the public parts; each records its tensors in ``end_points``; a part
    called on its own creates the variables it creates in inference."""
    network_cls, cfg = load_network('quickstart', FEW_PROPOSALS)
    net = network_cls()
    with tf.Graph().as_default():
        inputs = net.get_inputs()
        net.inference('TEST', inputs)
        points = net.end_points
        assert list(points) == list(TEST_END_POINTS)
        assert set(points) <= set(network.END_POINT_NAMES)
        assert points['rois'] is points['proposals']
        c, g = cfg.num_classes, cfg.psalign_group
        assert points['thin'].shape.as_list()[-1] == cfg.head_out_channels
        assert points['pooled'].shape.as_list()[1:] == [g, g, cfg.head_out_channels // g // g]
        assert points['head_fc'].shape.as_list() == [None, cfg.fc_channels]
        assert points['cls_prob'].shape.as_list() == [None, c]
        assert points['bbox_pred'].shape.as_list() == [None, 4 * c]
        assert points['rpn_cls_prob'].shape.as_list() == [1, None, 2]
        assert points['anchors'].shape.as_list() == [None, 4]
        rpn_channels = points['rpn_feature'].shape.as_list()[-1]
        head_channels = points['head_feature'].shape.as_list()[-1]
        expected = sorted((v.op.name, tuple(v.shape.as_list())) for v in tf.global_variables()
                          if net.part_of(v) != 'backbone')
    scope = net.backbone.SCOPE + '/'
    with tf.Graph().as_default():
        thin = net.thin_feature_map(tf.placeholder(tf.float32, [1, 5, 7, head_channels]))
        net.rcnn_head(thin, tf.placeholder(tf.float32, [None, 5]))
        net.rpn(tf.placeholder(tf.float32, [1, 9, 13, rpn_channels]), 1)
        parts = _variables()
    assert parts == expected
    assert all(name.startswith(scope) for name, _ in parts)
    assert {'rpn_conv', 'conv_new_1_conv15_w', 'ps_fc_1', 'cls_fc', 'bbox_fc'} <= {
        name.split('/')[1] for name, _ in parts}


def test_overriding_one_part_changes_only_that_part(load_network):
    """A ``network_desp.Network`` that overrides one public method (here the thin feature map,
    halved) builds TRAIN and TEST with the same variables; its part's output is the one used."""
    network_cls, _ = load_network('quickstart', FEW_PROPOSALS + ['train_batch_per_gpu=1'])

    class Halved(network_cls):
        def thin_feature_map(self, feature):
            thin = super(Halved, self).thin_feature_map(feature)
            self.end_points['thin'] = halved = tf.multiply(thin, 0.5, name='halved')
            return halved

    variables = {}
    for cls in (network_cls, Halved):
        for mode in ('TRAIN', 'TEST'):
            with tf.Graph().as_default() as graph:
                net = cls()
                net.inference(mode, net.get_inputs())
                variables[cls, mode] = _variables()
                if cls is Halved:
                    halved = net.end_points['thin']
                    assert halved.op.name.endswith('/halved')
                    pool = [op for op in graph.get_operations()
                            if any(t is halved for t in op.inputs)]
                    assert pool, 'the head does not read the overridden thin feature map'
                if mode == 'TRAIN':
                    assert 'head_fc' in net.end_points and 'labels' in net.end_points
    assert variables[network_cls, 'TRAIN'] == variables[Halved, 'TRAIN']
    assert variables[network_cls, 'TEST'] == variables[Halved, 'TEST']


def deterministic_values(variable):
    """A value for ``variable`` that depends only on its name and shape (not on TF's RNG)."""
    name = variable.op.name
    shape = variable.shape.as_list()
    rng = np.random.RandomState(zlib.crc32(name.encode('utf-8')))
    if name.endswith('moving_variance'):
        return np.ones(shape, np.float32)
    if name.endswith('moving_mean'):
        return np.zeros(shape, np.float32)
    if name.endswith('gamma'):
        return (1.0 + 0.1 * rng.standard_normal(shape)).astype(np.float32)
    if name.endswith('beta'):
        # A positive shift keeps the ReLUs alive, so no channel has a near-zero batch
        # variance that would amplify float rounding: the losses then agree to ~1e-5 across
        # thread counts and CPU kernels (oneDNN, Eigen, TF 1.15).
        return (1.0 + 0.01 * rng.standard_normal(shape)).astype(np.float32)
    if name.endswith('biases'):
        return (0.01 * rng.standard_normal(shape)).astype(np.float32)
    fan_in = int(np.prod(shape[:2])) if 'depthwise' in name else int(np.prod(shape[:-1]))
    return (rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32)


# Recorded once from a run of this test (tensorflow-cpu 2.21 with oneDNN, one thread, x86-64;
# tensorflow 1.15.5 and Eigen kernels agree to 2e-5). A change means the losses changed.
EXPECTED_LOSSES = {
    'rpn_loss_cls': 3.476738,
    'rpn_loss_box': 0.2611271,
    'loss_cls': 2.771702,
    'loss_box': 0.380772,
}


def test_fixed_seed_losses_do_not_drift(load_config):
    # Nothing random is left: the weights come from numpy by variable name, and
    # RPN_BATCHSIZE is larger than the anchor count, so no anchor is subsampled at random, and
    # the head is the original's (OHEM over all RoIs, no random RoI sampling, no GroupNorm).
    cfg = load_config('quickstart', FEW_PROPOSALS + [
        'train_batch_per_gpu=2', 'TRAIN.RPN_BATCHSIZE=100000', 'TRAIN.BATCH_SIZE=-1',
        "head_init='normal'", 'head_norm=None'])
    data, im_info, boxes = train_inputs(128, 160, cfg.num_classes, seed=3)
    with tf.Graph().as_default() as graph:
        tf.set_random_seed(0)
        net = LightHeadNetwork(cfg)
        inputs = net.get_inputs()
        net.inference('TRAIN', inputs)
        collection = net.get_train_collection()
        variables = tf.global_variables()
        feeds = [tf.placeholder(v.dtype.base_dtype, v.shape) for v in variables]
        assign = tf.group(*[tf.assign(v, f) for v, f in zip(variables, feeds)])
        with single_thread_session(graph) as sess:
            sess.run(assign, {f: deterministic_values(v) for v, f in zip(variables, feeds)})
            losses = sess.run(collection, dict(zip(inputs, (data, im_info, boxes))))
    got = {k: float(losses[k]) for k in EXPECTED_LOSSES}
    for key, expected in EXPECTED_LOSSES.items():
        assert got[key] == pytest.approx(expected, rel=1e-4), (key, got)


def variable_values(graph, sess):
    variables = graph.get_collection(tf.GraphKeys.GLOBAL_VARIABLES)
    return dict(zip([v.op.name for v in variables], sess.run(variables)))


def test_frozen_stages_and_bn_statistics_do_not_change(load_config, tiny_shapes):
    cfg = load_config('quickstart', tiny_shapes['overrides'] + FEW_PROPOSALS + [
        'freeze_at=2', 'bn_training=False', 'max_epoch=1', 'warm_iter=0', 'lr_steps=[[1, 1.0]]',
        'nr_dataflow=0'])
    trainer = Trainer(cfg, LightHeadNetwork(cfg), [0], iters_per_epoch=1)
    with trainer.graph.as_default(), tf.Session(graph=trainer.graph) as sess:
        sess.run(trainer.init_op)
        before = variable_values(trainer.graph, sess)
        trainable = {v.op.name for v in tf.trainable_variables()}
    assert trainer.train() == 1
    reader = tf.train.load_checkpoint(os.path.join(cfg.model_dump_dir, 'epoch_1.ckpt'))
    after = {name: reader.get_tensor(name) for name in before}

    frozen = [n for n in before if n.startswith(('xception_star/conv1/', 'xception_star/stage2/'))]
    bn_stats = [n for n in before if n.endswith(('moving_mean', 'moving_variance'))]
    assert len(frozen) >= 5 * 4 * 3  # stage2: 4 units x 3 convs x (weights + 4 BN variables)
    assert any(n.startswith('xception_star/stage4/') for n in bn_stats)
    assert not trainable & set(frozen)
    for name in frozen + bn_stats:
        assert np.array_equal(before[name], after[name]), name
    changed = [n for n in trainable if not np.array_equal(before[n], after[n])]
    assert any(n.startswith('xception_star/stage3/') for n in changed)
    assert any('conv_new' in n for n in changed) and any('cls_fc' in n for n in changed)


def test_overfits_two_images(load_config, tmp_path):
    paths = generate(str(tmp_path / 'two'), num_train=2, num_val=1, image_size=(128, 160), seed=0)
    # BN trained as the quickstart trains it: batch statistics, and moving averages (decay 0.95)
    # that follow these two images' statistics well within the 300 steps. Frozen at identity
    # statistics instead, the He-initialised network's activations grow through the units until
    # the first step overflows.
    cfg = load_config('quickstart', FEW_PROPOSALS + [
        'train_source=' + paths['train_json'], 'train_root_folder=' + paths['train_images'],
        'image_short_size=128', 'image_max_size=160', 'train_flip=False',
        'nr_dataflow=0', 'max_epoch=1', 'warm_iter=0', 'lr_steps=[[1, 1.0]]', 'seed=3',
        'log_interval=1000', 'TRAIN.RPN_POST_NMS_TOP_N=64', 'TEST.RPN_POST_NMS_TOP_N=64'])
    steps = 300
    trainer = Trainer(cfg, LightHeadNetwork(cfg), [0], iters_per_epoch=steps)
    assert trainer.train() == steps

    predictor = Predictor(cfg, LightHeadNetwork(cfg),
                          os.path.join(cfg.model_dump_dir, 'epoch_1.ckpt'))
    try:
        for rec in load_coco(paths['train_json'], paths['train_images']).records:
            det, _ = predictor.predict_file(rec['fpath'])
            confident = det['scores'] >= 0.5
            assert confident.any(), (rec['fpath'], det)
            boxes, classes = det['boxes'][confident], det['classes'][confident]
            iou = iou_np(rec['boxes'], boxes)
            same_class = rec['classes'][:, None] == classes[None, :]
            best = np.max(np.where(same_class, iou, 0.0), axis=1)
            assert np.all(best >= 0.7), (rec['fpath'], best, det)
            # and nothing confident besides the objects
            assert np.all(np.max(np.where(same_class, iou, 0.0), axis=0) >= 0.7), det
    finally:
        predictor.close()
