"""Contract test of the drop-in files (dropin/) for a zengarden/light_head_rcnn checkout.

A minimal fake "old checkout" is written to a temporary folder: the original's module names
(``lib_kernel.lib_psalign_pooling.psalign_pooling_op``, ``detection_opr.rpn_batched.proposal_opr``,
...), with the original's signatures and outputs, implemented by delegating to lighthead; a
``config.py`` with the original's keys; and the drop-in ``xception_star.py`` and
``network_desp.py`` copied where dropin/README.md says. A harness then drives the network the
way the original ``tools/train.py`` and ``test.py`` do (StagingArea inputs, two towers with
variable reuse, summed gradients, ``get_train_collection()``; ``inference('TEST')``,
``tf.train.Saver().restore``, ``get_test_collection()``), in a subprocess whose PYTHONPATH is the
checkout's ``lib`` and experiment folder, as the original arranges it.

Requires TF 1.x: the drop-ins target the TF 1.x that old checkouts run and use
``tf.contrib.slim`` (tf_slim's layers do not work on TF 2.21, SPEC 7). Under TF 2.x this module is
skipped, which hides nothing: the TF 1.15 CI job (.ci/tf115.sh) runs it.
"""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from lighthead.compat import IS_TF1

pytestmark = pytest.mark.skipif(
    not IS_TF1, reason='drop-in files need TF 1.x (tf.contrib.slim); run by the TF 1.15 CI '
                       'job .ci/tf115.sh')

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DROPIN = os.path.join(REPO_ROOT, 'dropin')
EXPERIMENT = os.path.join('experiments', 'user', 'light_head_rcnn.xception_star.coco')

# Values shared by the old-style config.py and the equivalent lighthead config (small sizes).
NUM_CLASSES = 4
TRAIN_PROPOSALS = (600, 120)  # pre-NMS, post-NMS
TEST_PROPOSALS = (400, 60)
OHEM_PER_IMAGE = 64

CONFIG = '''
from easydict import EasyDict as edict

config = edict()
config.num_classes = %(num_classes)d
config.nr_info_dim = 6
config.stride = [16]
config.anchor_scales = [2, 4, 8, 16, 32]
config.anchor_ratios = [0.5, 1, 2]
config.simga_rpn = 3
config.weight_decay = 1e-4
config.bn_training = False
config.train_batch_per_gpu = 2
config.test_batch_per_gpu = 1
config.TRAIN = edict()
config.TRAIN.nr_ohem_sampling = %(ohem)d
config.TRAIN.BBOX_NORMALIZE_MEANS = [0.0, 0.0, 0.0, 0.0]
config.TRAIN.BBOX_NORMALIZE_STDS = [0.1, 0.1, 0.2, 0.2]
config.TRAIN.RPN_POSITIVE_OVERLAP = 0.7
config.TRAIN.RPN_NEGATIVE_OVERLAP = 0.3
config.TRAIN.RPN_FG_FRACTION = 0.5
config.TRAIN.RPN_BATCHSIZE = 256
config.TRAIN.RPN_NMS_THRESH = 0.7
config.TRAIN.RPN_PRE_NMS_TOP_N = %(train_pre)d
config.TRAIN.RPN_POST_NMS_TOP_N = %(train_post)d
config.TRAIN.FG_THRESH = 0.5
config.TRAIN.BG_THRESH_HI = 0.5
config.TRAIN.BG_THRESH_LO = 0.0
config.TEST = edict()
config.TEST.RPN_NMS_THRESH = 0.7
config.TEST.RPN_PRE_NMS_TOP_N = %(test_pre)d
config.TEST.RPN_POST_NMS_TOP_N = %(test_post)d
cfg = config
''' % dict(num_classes=NUM_CLASSES, ohem=2 * OHEM_PER_IMAGE, train_pre=TRAIN_PROPOSALS[0],
           train_post=TRAIN_PROPOSALS[1], test_pre=TEST_PROPOSALS[0], test_post=TEST_PROPOSALS[1])

# The original's modules, same names and signatures, delegating to lighthead.
STUBS = {
    'lib/detection_opr/rpn/snippets.py': '''
import tensorflow as tf
from lighthead.detection_opr import anchors as anchor_ops


def generate_anchors_opr(height, width, feat_stride, anchor_scales=(8, 16, 32),
                         anchor_ratios=(0.5, 1, 2), base_size=16):
    base = anchor_ops.generate_base_anchors(base_size, anchor_ratios, anchor_scales)
    return anchor_ops.shifted_anchors_tf(base, tf.cast(height, tf.int32),
                                         tf.cast(width, tf.int32), feat_stride)
''',
    'lib/detection_opr/rpn_batched/proposal_opr.py': '''
import tensorflow as tf
from config import cfg
from lighthead.detection_opr.proposal import generate_proposals


def proposal_opr(rpn_cls_prob, rpn_bbox_pred, im_info, cfg_key, _feat_stride, anchors,
                 num_anchors, is_tfchannel=False, is_tfnms=False):
    if not (is_tfchannel and is_tfnms):
        raise NotImplementedError('only the TF-channel, TF-NMS path exists at the HEAD commit')
    train = cfg_key == 'TRAIN'
    settings = cfg.TRAIN if train else cfg.TEST
    batch = cfg.train_batch_per_gpu if train else cfg.test_batch_per_gpu
    scores = tf.reshape(rpn_cls_prob, (batch, -1, 2))[:, :, 1]
    deltas = tf.reshape(rpn_bbox_pred, (batch, -1, 4))
    rois, roi_scores = [], []
    for b in range(batch):
        boxes, s = generate_proposals(
            scores[b], deltas[b], anchors, im_info[b, 0], im_info[b, 1],
            settings.RPN_PRE_NMS_TOP_N, settings.RPN_POST_NMS_TOP_N, settings.RPN_NMS_THRESH)
        rois.append(tf.concat([tf.fill([tf.shape(boxes)[0], 1], float(b)), boxes], axis=1))
        roi_scores.append(s)
    return tf.concat(rois, axis=0), tf.concat(roi_scores, axis=0)
''',
    # The two py_func layers get numpy arrays: they run lighthead's in-graph targets in a
    # private graph and session (own thread pools, so no deadlock inside the outer py_func).
    'lib/detection_opr/rpn_batched/anchor_target_layer_without_boxweight.py': '''
import numpy as np
import tensorflow as tf
from config import cfg
from lighthead.detection_opr.anchor_target import anchor_targets

_RUNNER = {}


def _runner():
    if not _RUNNER:
        graph = tf.Graph()
        with graph.as_default():
            anchors = tf.placeholder(tf.float32, [None, 4])
            gt = tf.placeholder(tf.float32, [None, 5])
            size = tf.placeholder(tf.float32, [2])
            t = cfg.TRAIN
            outputs = anchor_targets(
                anchors, gt, size[0], size[1], positive_overlap=t.RPN_POSITIVE_OVERLAP,
                negative_overlap=t.RPN_NEGATIVE_OVERLAP, batch_size=t.RPN_BATCHSIZE,
                fg_fraction=t.RPN_FG_FRACTION, seed=3)
        sess = tf.Session(graph=graph,
                          config=tf.ConfigProto(use_per_session_threads=True))
        _RUNNER.update(sess=sess, feeds=(anchors, gt, size), outputs=outputs)
    return _RUNNER


def anchor_target_layer(batch_gt_boxes, batch_im_info, _feat_stride, all_anchors, num_anchors,
                        is_restrict_bg=False):
    r = _runner()
    labels, targets = [], []
    for b in range(cfg.train_batch_per_gpu):
        gt = batch_gt_boxes[b][:int(batch_im_info[b][5])]
        lab, tgt = r['sess'].run(r['outputs'], dict(zip(
            r['feeds'], (all_anchors, gt, batch_im_info[b][:2]))))
        labels.append(lab.reshape(-1, 1).astype(np.float32))
        targets.append(tgt.astype(np.float32))
    return np.vstack(labels), np.vstack(targets)
''',
    'lib/detection_opr/rpn_batched/proposal_target_layer.py': '''
import numpy as np
import tensorflow as tf
from config import cfg
from lighthead.detection_opr.proposal_target import proposal_targets

_RUNNER = {}


def _runner():
    if not _RUNNER:
        graph = tf.Graph()
        with graph.as_default():
            rois = tf.placeholder(tf.float32, [None, 4])
            gt = tf.placeholder(tf.float32, [None, 5])
            t = cfg.TRAIN
            outputs = proposal_targets(
                rois, gt, cfg.num_classes, fg_thresh=t.FG_THRESH, bg_thresh_hi=t.BG_THRESH_HI,
                bg_thresh_lo=t.BG_THRESH_LO, bbox_stds=t.BBOX_NORMALIZE_STDS)
        sess = tf.Session(graph=graph,
                          config=tf.ConfigProto(use_per_session_threads=True))
        _RUNNER.update(sess=sess, feeds=(rois, gt), outputs=outputs)
    return _RUNNER


def proposal_target_layer(batch_rpn_rois, batch_gt_boxes, batch_im_info):
    r = _runner()
    out_rois, out_labels, out_targets = [], [], []
    for b in range(cfg.train_batch_per_gpu):
        gt = batch_gt_boxes[b][:int(batch_im_info[b][5])]
        rois = batch_rpn_rois[batch_rpn_rois[:, 0] == b][:, 1:]
        boxes, labels, targets = r['sess'].run(r['outputs'], dict(zip(r['feeds'], (rois, gt))))
        out_rois.append(np.hstack([np.full((len(boxes), 1), b, np.float32), boxes]))
        out_labels.append(labels.reshape(-1, 1).astype(np.float32))
        out_targets.append(targets)
    return (np.vstack(out_rois).astype(np.float32), np.vstack(out_labels),
            np.vstack(out_targets).astype(np.float32))
''',
    'lib/detection_opr/utils/loss_opr.py': '''
import tensorflow as tf


def softmax_layer(bottom, name):
    return tf.nn.softmax(bottom, name=name)
''',
    'lib/detection_opr/utils/loss_opr_without_box_weight.py': '''
import tensorflow as tf
from lighthead.detection_opr.losses import ohem_rcnn_losses, smooth_l1


def smooth_l1_loss_rpn(bbox_pred, bbox_targets, label, sigma=1.0):
    value = tf.reduce_sum(smooth_l1(bbox_pred - bbox_targets, sigma), axis=1)
    fg = tf.cast(tf.greater(label, 0), tf.float32)
    valid = tf.cast(tf.not_equal(label, -1), tf.float32)
    return tf.reduce_sum(value * fg) / tf.maximum(1.0, tf.reduce_sum(valid))


def sum_ohem_loss(cls_score, label, bbox_pred, bbox_targets, nr_ohem_sampling, nr_classes,
                  sigma=1.0):
    return ohem_rcnn_losses(cls_score, bbox_pred, label, bbox_targets, nr_ohem_sampling,
                            sigma=sigma)
''',
    'lib/detection_opr/rfcn_plus_plus/rfcn_plus_plus_opr.py': '''
import tensorflow as tf
from lighthead import layers


def global_context_module(bottom, prefix='', ks=15, chl_mid=256, chl_out=1024):
    init = tf.random_normal_initializer(mean=0.0, stddev=0.01)
    with layers.arg_scope([layers.conv2d], activation_fn=None, weights_initializer=init):
        col = layers.conv2d(bottom, chl_mid, [ks, 1], scope=prefix + '_conv%d_w_pre' % ks)
        col = layers.conv2d(col, chl_out, [1, ks], scope=prefix + '_conv%d_w' % ks)
        row = layers.conv2d(bottom, chl_mid, [1, ks], scope=prefix + '_conv%d_h_pre' % ks)
        row = layers.conv2d(row, chl_out, [ks, 1], scope=prefix + '_conv%d_h' % ks)
    return row + col
''',
    # Outputs as the original op: top_data, mapping_channel, argmax_position.
    'lib/lib_kernel/lib_psalign_pooling/psalign_pooling_op.py': '''
import numpy as np
import tensorflow as tf
from lighthead.ops import _loader


def psalign_pool(bottom_data, bottom_rois, group_size, sample_height, sample_width,
                 spatial_scale):
    top, argmax = _loader.library().lighthead_ps_align_pool(
        bottom_data, bottom_rois, group_size=group_size, sample_height=sample_height,
        sample_width=sample_width, spatial_scale=spatial_scale, pool='max')
    k = bottom_data.get_shape().as_list()[-1] // (group_size * group_size)
    ph, pw, kk = np.meshgrid(np.arange(group_size), np.arange(group_size), np.arange(k),
                             indexing='ij')
    channel = ((kk * group_size + ph) * group_size + pw).astype(np.int32)
    return top, tf.broadcast_to(channel, tf.shape(top)), argmax
''',
    'lib/lib_kernel/lib_psalign_pooling/psalign_pooling_op_grad.py': '''
from lighthead.ops import _loader  # noqa: F401 (registers the gradient of the op)
''',
}

# Drives the network as the original tools/train.py and test.py do, and compares it with
# lighthead's LightHeadNetwork restored from the same checkpoint.
HARNESS = '''
import json
import sys
from collections import OrderedDict

import numpy as np
import tensorflow as tf
try:
    import tf_slim as slim
except ImportError:
    import tensorflow.contrib.slim as slim

import network_desp
from config import cfg
from lighthead.config import make_config
from lighthead.network import LightHeadNetwork

out_dir = sys.argv[1]
ckpt = out_dir + '/lighthead.ckpt'
rng = np.random.RandomState(0)
image = rng.uniform(-80, 80, (1, 160, 192, 3)).astype(np.float32)
im_info = np.array([[160, 192, 1.0, 160, 192, 0]], np.float32)
results = OrderedDict()


def variables_of(graph_vars):
    return sorted([v.op.name, v.get_shape().as_list()] for v in graph_vars)


# 1. lighthead's Xception* network, same settings: initialise, save, run.
lh_cfg = make_config(
    backbone='xception_star',
    class_names=['background'] + ['c%d' % i for i in range(1, cfg.num_classes)],
    rpn_channels=256, head_mid_channels=64,
    TEST=dict(RPN_PRE_NMS_TOP_N=cfg.TEST.RPN_PRE_NMS_TOP_N,
              RPN_POST_NMS_TOP_N=cfg.TEST.RPN_POST_NMS_TOP_N))
with tf.Graph().as_default():
    tf.set_random_seed(5)
    net = LightHeadNetwork(lh_cfg)
    inputs = net.get_inputs()
    net.inference('TEST', inputs)
    col = net.get_test_collection()
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        tf.train.Saver().save(sess, ckpt, write_meta_graph=False)
        lh = sess.run([col[k] for k in ('cls_score', 'cls_prob', 'bbox_pred', 'rois')],
                      {inputs[0]: image, inputs[1]: im_info})
    results['lighthead_variables'] = variables_of(tf.global_variables())

# 2. As the original test.py: plain Saver restore, four test outputs unpacked.
with tf.Graph().as_default():
    net = network_desp.Network()
    inputs = net.get_inputs()
    net.inference('TEST', inputs)
    test_collect = list(net.get_test_collection().values())
    results['test_collection_keys'] = list(net.get_test_collection().keys())
    results['test_variables'] = variables_of(tf.global_variables())
    results['test_trainable'] = sorted(v.op.name for v in tf.trainable_variables())
    with tf.Session() as sess:
        tf.train.Saver().restore(sess, ckpt)
        _, scores, pred_boxes, rois = sess.run(
            test_collect, feed_dict={inputs[0]: image, inputs[1]: im_info})
    np.savez(out_dir + '/test_outputs.npz', dropin_cls_prob=scores, dropin_bbox_pred=pred_boxes,
             dropin_rois=rois, lighthead_cls_prob=lh[1], lighthead_bbox_pred=lh[2],
             lighthead_rois=lh[3])

# 3. As the original tools/train.py: staging areas, towers with reuse, summed gradients.
num_towers = 2
gt = np.zeros((2, 3, 5), np.float32)
gt[0, :2] = [[20, 30, 90, 120, 1], [100, 40, 170, 100, 2]]
gt[1, :1] = [[40, 20, 150, 140, 3]]
batch = {'data': rng.uniform(-80, 80, (2, 160, 192, 3)).astype(np.float32),
         'im_info': np.array([[160, 192, 1.0, 160, 192, 2], [160, 192, 1.0, 160, 192, 1]],
                             np.float32),
         'boxes': gt}
with tf.Graph().as_default(), tf.device('/device:CPU:0'):
    tf.set_random_seed(3)
    net = network_desp.Network()
    opt = tf.train.MomentumOptimizer(1e-3, 0.9)
    inputs_list = [net.get_inputs() for _ in range(num_towers)]
    put_ops, get_ops = [], []
    for i in range(num_towers):
        with tf.device('/GPU:%d' % i):
            area = tf.contrib.staging.StagingArea(dtypes=[tf.float32] * 3)
            put_ops.append(area.put(inputs_list[i]))
            get_ops.append(area.get())
    tower_grads = []
    with tf.variable_scope(tf.get_variable_scope()):
        for i in range(num_towers):
            with tf.device('/gpu:%d' % i), tf.name_scope('tower_%d' % i):
                with slim.arg_scope([slim.model_variable, slim.variable], device='/device:CPU:0'):
                    with slim.arg_scope(
                            [slim.conv2d, slim.separable_conv2d, slim.fully_connected],
                            weights_regularizer=slim.l2_regularizer(cfg.weight_decay),
                            biases_regularizer=tf.no_regularizer,
                            biases_initializer=tf.constant_initializer(0.0)):
                        loss = net.inference('TRAIN', get_ops[i]) / num_towers
                        if i == num_towers - 1:
                            loss += tf.add_n(tf.get_collection(tf.GraphKeys.REGULARIZATION_LOSSES))
                tf.get_variable_scope().reuse_variables()
                tower_grads.append(opt.compute_gradients(loss))
    summed = []
    for pairs in zip(*tower_grads):
        grads = [g for g, _ in pairs if g is not None]
        summed.append((tf.add_n(grads) if grads else None, pairs[0][1]))
    results['no_gradient'] = [v.op.name for g, v in summed if g is None]
    train_op = opt.apply_gradients([(g, v) for g, v in summed if g is not None])
    train_collection = net.get_train_collection()
    results['train_collection_keys'] = list(train_collection.keys())
    results['trainable'] = sorted(v.op.name for v in tf.trainable_variables())
    results['regularized'] = sorted(
        t.op.name.split('/Regularizer/')[0]
        for t in tf.get_collection(tf.GraphKeys.REGULARIZATION_LOSSES))
    model_vars = [v for v in tf.global_variables() if v.op.name in
                  set(name for name, _ in results['lighthead_variables'])]
    results['train_model_variables'] = len(model_vars)
    tfconfig = tf.ConfigProto(allow_soft_placement=True, device_count={'CPU': 1})
    with tf.Session(config=tfconfig) as sess:
        sess.run(tf.global_variables_initializer())
        tf.train.Saver(model_vars).restore(sess, ckpt)
        feed = {}
        for inputs in inputs_list:
            for name, placeholder in zip(net.get_inputs(mode=1), inputs):
                feed[placeholder] = batch[name]
        losses = []
        for _ in range(2):
            sess.run(put_ops, feed)
            values = sess.run([train_op] + list(train_collection.values()))
            losses.append([float(v) for v in values[1:]])
        results['losses'] = losses

with open(out_dir + '/results.json', 'w') as f:
    json.dump(results, f)
'''


@pytest.fixture(scope='module')
def harness(tmp_path_factory):
    """Build the fake checkout and run the harness once; returns (results dict, outputs npz)."""
    root = str(tmp_path_factory.mktemp('old_checkout'))
    files = dict(STUBS)
    files[os.path.join(EXPERIMENT, 'config.py')] = CONFIG
    files['tools/harness.py'] = HARNESS
    for rel, text in files.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'w') as f:
            f.write(text.lstrip())
    for package in ('utils', 'utils/tf_utils', 'utils/tf_utils/basemodel', 'detection_opr',
                    'detection_opr/rpn', 'detection_opr/rpn_batched', 'detection_opr/utils',
                    'detection_opr/rfcn_plus_plus', 'lib_kernel',
                    'lib_kernel/lib_psalign_pooling'):
        os.makedirs(os.path.join(root, 'lib', package), exist_ok=True)
        open(os.path.join(root, 'lib', package, '__init__.py'), 'a').close()
    # Where dropin/README.md puts the two files.
    shutil.copy(os.path.join(DROPIN, 'xception_star.py'),
                os.path.join(root, 'lib', 'utils', 'tf_utils', 'basemodel'))
    shutil.copy(os.path.join(DROPIN, 'network_desp.py'), os.path.join(root, EXPERIMENT))

    out_dir = os.path.join(root, 'out')
    os.makedirs(out_dir)
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join([os.path.join(root, 'lib'), os.path.join(root, EXPERIMENT)])
    env['TF_CPP_MIN_LOG_LEVEL'] = '2'
    proc = subprocess.run([sys.executable, os.path.join(root, 'tools', 'harness.py'), out_dir],
                          cwd=os.path.join(root, EXPERIMENT), env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True, timeout=600)
    assert proc.returncode == 0, 'harness failed:\n' + proc.stdout[-6000:]
    with open(os.path.join(out_dir, 'results.json')) as f:
        results = json.load(f)
    return results, np.load(os.path.join(out_dir, 'test_outputs.npz'))


def test_variables_equal_lighthead_names_and_shapes(harness):
    results, _ = harness
    assert results['test_variables'] == results['lighthead_variables']
    names = [name for name, _ in results['test_variables']]
    assert 'xception_star/stage4/unit_4/depthwise/depthwise_weights' in names
    assert 'xception_star/conv_new_1_conv15_w_pre/weights' in names
    assert 'xception_star/rpn_conv/3x3/weights' in names


def test_test_graph_restores_lighthead_checkpoint_and_matches_it(harness):
    results, out = harness
    assert results['test_collection_keys'] == ['cls_score', 'cls_prob', 'bbox_pred', 'rois']
    # Test graph: only the checkout's global_context_module (trainable=True hard-coded there).
    assert all('/conv_new_1_' in n for n in results['test_trainable']), results['test_trainable']
    rois = out['dropin_rois']
    assert rois.shape[1] == 5 and 0 < len(rois) <= TEST_PROPOSALS[1]
    np.testing.assert_array_equal(rois[:, 0], 0)
    np.testing.assert_allclose(rois, out['lighthead_rois'], rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(out['dropin_cls_prob'], out['lighthead_cls_prob'], rtol=1e-5,
                               atol=1e-7)
    # The drop-in de-normalises with the original's stds and means (0): same as lighthead.
    np.testing.assert_allclose(out['dropin_bbox_pred'], out['lighthead_bbox_pred'], rtol=1e-5,
                               atol=1e-8)
    assert out['dropin_cls_prob'].shape == (len(rois), NUM_CLASSES)
    assert out['dropin_bbox_pred'].shape == (len(rois), 4 * NUM_CLASSES)


def test_train_towers_share_variables_and_train(harness):
    results, _ = harness
    assert results['train_collection_keys'] == [
        'rpn_loss_cls', 'rpn_loss_box', 'loss_cls', 'loss_box', 'tot_losses']
    # Two towers, one set of model variables (reuse), all restored from the lighthead checkpoint.
    assert results['train_model_variables'] == len(results['lighthead_variables'])
    assert results['no_gradient'] == []
    trainable = results['trainable']
    assert trainable, 'nothing trainable'
    frozen = [n for n in trainable if n.startswith(('xception_star/conv1/',
                                                    'xception_star/stage2/'))
              or '/BatchNorm/' in n]
    assert frozen == [], 'stem, stage2 and BN must be frozen: %s' % frozen
    assert 'xception_star/stage3/unit_1/depthwise/depthwise_weights' in trainable
    assert 'xception_star/conv_new_1_conv15_h/biases' in trainable
    # Weight decay once per trainable weight tensor (not per tower, not on biases or BN); the
    # conv_new_1 layers come from the stub of the checkout's global_context_module.
    weights = sorted(n for n in trainable if n.endswith('weights') and '/conv_new_1_' not in n)
    # (Loss names are op names, e.g. tower_0/xception_star/stage3/unit_1/conv1/kernel.)
    regularized = [n for n in results['regularized'] if '/conv_new_1_' not in n]
    assert [n for n in regularized if n.endswith('biases') or 'BatchNorm' in n] == []
    assert len(regularized) == len(weights), (regularized, weights)
    for step in results['losses']:
        assert all(np.isfinite(step)), step
        assert step[4] == pytest.approx(sum(step[:4]), rel=1e-5)
        assert step[0] > 0 and step[2] > 0
