"""Training-health figures (detection_opr.health), the head-at-chance check (train.health), and
the network's part and gradient-multiplier declarations."""
import math

import numpy as np
import pytest
from easydict import EasyDict

from lighthead.compat import tf
from lighthead.config import make_config
from lighthead.detection_opr import health
from lighthead.network import HEALTH_NAMES, PARTS, LightHeadNetwork
from lighthead.train.health import HeadHealthCheck


def _run(build):
    with tf.Graph().as_default():
        out = build()
        with tf.Session() as sess:
            return sess.run(out)


def _logits(fg_prob):
    """Two-class logits whose softmax gives foreground probability ``fg_prob``."""
    p = np.asarray(fg_prob, np.float64)
    return np.stack([np.zeros_like(p), np.log(p / (1 - p))], axis=1).astype(np.float32)


def test_rcnn_head_health_counts_accuracy_and_spread():
    fg_prob = [0.9, 0.4, 0.2, 0.7, 0.1, 0.5]
    labels = np.array([1, 1, 0, 0, 0, -1], np.int32)   # the last RoI is excluded
    selected = np.array([0, 1, 3], np.int32)
    out = _run(lambda: health.rcnn_head_health(_logits(fg_prob), labels, selected))
    assert out['rois_fg'] == 2 and out['rois_bg'] == 3
    assert out['ohem_fg'] == 2 and out['ohem_bg'] == 1
    assert out['acc_fg'] == pytest.approx(0.5)          # 0.9 right, 0.4 wrong
    assert out['acc_bg'] == pytest.approx(2.0 / 3.0)    # 0.2 and 0.1 right, 0.7 wrong
    assert out['score_std'] == pytest.approx(np.std([0.9, 0.4, 0.2, 0.7, 0.1]), rel=1e-5)


def test_rcnn_head_health_without_fg_is_nan_not_zero():
    out = _run(lambda: health.rcnn_head_health(
        _logits([0.3, 0.3]), np.array([0, 0], np.int32), np.array([0, 1], np.int32)))
    assert out['rois_fg'] == 0 and math.isnan(out['acc_fg'])
    assert out['acc_bg'] == 1.0
    assert out['score_std'] == pytest.approx(0.0, abs=1e-6)   # a constant head has no spread


def test_proposals_covering_gt_uses_iou_half():
    gt = np.array([[0, 0, 9, 9], [50, 50, 69, 69], [100, 100, 109, 109]], np.float32)
    proposals = np.array([[0, 0, 9, 9],           # IoU 1 with gt 0
                          [50, 50, 69, 59],       # IoU 0.5 with gt 1 (+1 areas: 200 / 400)
                          [100, 100, 103, 109]],  # IoU 0.4 with gt 2: not covered
                         np.float32)
    covered, total = _run(lambda: health.proposals_covering_gt(proposals, gt))
    assert (covered, total) == (2, 3)
    covered, total = _run(lambda: health.proposals_covering_gt(np.zeros((0, 4), np.float32), gt))
    assert (covered, total) == (0, 3)
    rate = _run(lambda: health.recall([tf.constant(0.0)], [tf.constant(0.0)]))
    assert math.isnan(rate)


def _cfg(after=10):
    return EasyDict(health_check_after=after, health_min_balanced_acc=0.6,
                    health_min_score_std=0.05)


def _feed(check, steps, acc_fg, acc_bg, spread):
    messages = []
    for step in range(steps):
        messages.append(check.update(step, {'acc_fg': acc_fg, 'acc_bg': acc_bg,
                                            'score_std': spread}, last_step=step == steps - 1))
    return [m for m in messages if m]


def test_head_check_warns_on_a_head_at_chance_at_the_check_step_and_the_end():
    messages = _feed(HeadHealthCheck(_cfg(10)), 30, acc_fg=0.0, acc_bg=1.0, spread=0.004)
    assert len(messages) == 2
    assert 'after 10 steps' in messages[0] and 'after 30 steps' in messages[1]
    assert 'balanced accuracy 0.500' in messages[0]


def test_head_check_is_quiet_for_a_learning_head_and_when_off():
    assert _feed(HeadHealthCheck(_cfg(10)), 30, acc_fg=0.8, acc_bg=0.9, spread=0.3) == []
    assert _feed(HeadHealthCheck(_cfg(0)), 30, acc_fg=0.0, acc_bg=1.0, spread=0.0) == []
    # Accurate on one class only, with spread: still at chance by balanced accuracy.
    assert len(_feed(HeadHealthCheck(_cfg(10)), 12, acc_fg=0.1, acc_bg=0.95, spread=0.2)) == 2


def test_head_check_skips_steps_without_foreground():
    check = HeadHealthCheck(_cfg(3))
    rows = [{'acc_fg': float('nan'), 'acc_bg': 0.9, 'score_std': 0.2},
            {'acc_fg': 0.8, 'acc_bg': 0.9, 'score_std': 0.2},
            {'acc_fg': float('nan'), 'acc_bg': 0.9, 'score_std': 0.2}]
    assert [check.update(i, r) for i, r in enumerate(rows)] == [None, None, None]
    assert check.summary()[0] == pytest.approx(0.85)


def test_network_declares_parts_and_gradient_multipliers():
    cfg = make_config(class_names=['background', 'a'], large_sep_conv_grad_mult=3.0)
    network = LightHeadNetwork(cfg)
    with tf.Graph().as_default():
        network.inference('TRAIN', network.get_inputs())
        parts = {}
        for v in tf.trainable_variables():
            parts.setdefault(network.part_of(v), []).append(v)
        assert set(parts) == set(PARTS)
        names = {p: sorted(v.op.name.split('/')[1] for v in vs) for p, vs in parts.items()}
        assert set(names['rpn']) == {'rpn_conv', 'rpn_cls_score', 'rpn_bbox_pred'}
        assert set(names['head']) == {'ps_fc_1', 'cls_fc', 'bbox_fc'}
        assert all(n.startswith('conv_new_1_conv15') for n in names['thin'])
        assert all(n.startswith(('conv1', 'stage')) for n in names['backbone'])
        for part, variables in parts.items():
            expected = 3.0 if part == 'thin' else 1.0
            assert {network.gradient_multiplier(v) for v in variables} == {expected}
        assert tuple(network.get_health_collection()) == HEALTH_NAMES
