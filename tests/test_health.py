"""Training-health figures (detection_opr.health), the head-at-chance check (train.health and
tools/check_health.py), and the network's part, gradient-multiplier and loss-name
declarations."""
import importlib.util
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from easydict import EasyDict

from lighthead.compat import tf
from lighthead.config import make_config
from lighthead.detection_opr import health
from lighthead.network import HEALTH_NAMES, PARTS, LightHeadNetwork
from lighthead.train.health import HeadHealthCheck, head_health_verdict

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..'))


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


NAN = float('nan')
# A constant predictor that flips class between steps: fg-predicting steps score (1, 0); the
# bg-predicting steps score (0, 1), or (NaN, 1) when the step had no fg RoI.
FLIP_WITH_EMPTY_STEPS = [(1.0, 0.0), (NAN, 1.0), (1.0, 0.0), (0.0, 1.0)] * 13


def _rows(pairs, spread=0.2):
    return [{'acc_fg': fg, 'acc_bg': bg, 'score_std': spread} for fg, bg in pairs]


def _column_mean_balanced(rows):
    """The rule this replaced: ``(nanmean acc_fg + nanmean acc_bg) / 2``, each column's NaN
    skipped on its own, so the two means can come from different steps."""
    fg, bg = (np.array([r[k] for r in rows], np.float64) for k in ('acc_fg', 'acc_bg'))
    return 0.5 * (np.nanmean(fg) + np.nanmean(bg))


def test_verdict_balances_per_step_not_per_column():
    # A constant predictor flipping class, its bg steps half without fg: the column means say
    # (1 + 0.5) / 2 = 0.75 and would pass the 0.6 floor; every step is 0.5 balanced.
    half_empty = _rows([(1.0, 0.0), (NAN, 1.0)] * 25)
    assert _column_mean_balanced(half_empty) == pytest.approx(0.75)
    verdict = head_health_verdict(half_empty, 50, 0.6, 0.05)
    assert verdict.balanced_acc == pytest.approx(0.5) and verdict.balanced_steps == 25
    assert verdict.failures == ('balanced_acc',)
    # Fewer no-fg steps, the last 50 of 52 rows: acc_fg 1 on 25 of its 38 finite steps, acc_bg
    # 1 on 25 of 50: column means (25/38 + 1/2) / 2 = 0.579 would pass a 0.55 floor.
    rows = _rows(FLIP_WITH_EMPTY_STEPS)
    assert _column_mean_balanced(rows[-50:]) == pytest.approx((25.0 / 38 + 0.5) / 2)
    verdict = head_health_verdict(rows, 50, min_balanced_acc=0.55, min_score_std=0.05)
    assert verdict.balanced_acc == pytest.approx(0.5)
    assert verdict.steps == 50 and verdict.balanced_steps == 50 - 12  # NaN rows skipped
    assert verdict.failures == ('balanced_acc',)


def test_verdict_window_floors_and_loss_ceiling():
    rows = _rows([(0.0, 1.0)] * 30 + [(0.8, 0.9)] * 20, spread=0.3)
    assert head_health_verdict(rows, 20, 0.6, 0.05).failures == ()
    assert head_health_verdict(rows, 20, 0.6, 0.05).balanced_acc == pytest.approx(0.85)
    whole = head_health_verdict(rows, 50, 0.7, 0.05)   # (30 * 0.5 + 20 * 0.85) / 50
    assert whole.balanced_acc == pytest.approx(0.64) and whole.failures == ('balanced_acc',)
    assert head_health_verdict(rows, 20, 0.7, 0.05).failures == ()
    assert head_health_verdict(rows, None, 0.7, 0.05) == whole
    assert head_health_verdict(rows, 20, 0.6, 0.31).failures == ('score_std',)
    for row in rows:
        row['loss_cls'] = '0.25'                   # CSV strings are fine
    assert head_health_verdict(rows, 20, 0.6, 0.05, max_loss_cls=0.3).loss_cls == 0.25
    assert head_health_verdict(rows, 20, 0.6, 0.05, max_loss_cls=0.2).failures == ('loss_cls',)
    empty = head_health_verdict(_rows([(NAN, 1.0)] * 5), 5, 0.6, 0.05)
    assert math.isnan(empty.balanced_acc) and empty.failures == ('balanced_acc',)


def test_head_check_uses_the_per_step_rule():
    check = HeadHealthCheck(_cfg(52))
    messages = [check.update(i, r, last_step=i == 51)
                for i, r in enumerate(_rows(FLIP_WITH_EMPTY_STEPS))]
    assert [m for m in messages if m] == [messages[51]]
    assert 'balanced accuracy 0.500' in messages[51]


# ---- tools/check_health.py ----

def _tool():
    spec = importlib.util.spec_from_file_location(
        'tool_check_health', os.path.join(REPO, 'tools', 'check_health.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_csv(path, pairs, spread=0.2, loss_cls=0.3, columns=None):
    """A losses.csv like the trainer's, one row per ``(acc_fg, acc_bg)``."""
    columns = columns or ['step', 'epoch', 'lr', 'loss_cls', 'rois_fg', 'rois_bg', 'acc_fg',
                          'acc_bg', 'score_std', 'rpn_recall']
    values = {'epoch': 0, 'lr': 1e-3, 'loss_cls': loss_cls, 'rois_fg': 30, 'rois_bg': 226,
              'score_std': spread, 'rpn_recall': 0.8}
    with open(str(path), 'w') as f:
        f.write(','.join(columns) + '\n')
        for step, (fg, bg) in enumerate(pairs):
            values.update(step=step, acc_fg=fg, acc_bg=bg)
            f.write(','.join('%.6g' % values[c] for c in columns) + '\n')
    return str(path)


def _check(capsys, *args):
    code = _tool().main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_check_health_tool_passes_a_learning_head_through_a_subprocess(tmp_path):
    (tmp_path / 'log').mkdir()
    pairs = [(0.0, 1.0)] * 100 + [(0.7 + 0.01 * (i % 5), 0.9) for i in range(60)]
    _write_csv(tmp_path / 'log' / 'losses.csv', pairs)
    proc = subprocess.run([sys.executable, os.path.join('tools', 'check_health.py'),
                           str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert '160 steps read; window: the last 50 (steps 110 to 159)' in proc.stdout
    assert 'balanced accuracy' in proc.stdout and '0.8100' in proc.stdout  # 0.72 and 0.9
    assert proc.stdout.rstrip().endswith('healthy') and 'FAIL' not in proc.stdout


def test_check_health_tool_fails_a_flipping_constant_predictor(tmp_path, capsys):
    flipping = _write_csv(tmp_path / 'flip.csv', [(1.0, 0.0), (0.0, 1.0)] * 40, spread=0.2)
    code, out, _ = _check(capsys, flipping)
    assert code == 1 and 'UNHEALTHY' in out and '(balanced_acc)' in out
    # Column means over the window would say 0.75 here; the tool says 0.5.
    hidden = _write_csv(tmp_path / 'hidden.csv', [(1.0, 0.0), (NAN, 1.0)] * 40, spread=0.2)
    code, out, _ = _check(capsys, hidden, '--window', 60)
    assert code == 1 and '0.5000' in out and '(per step, 30 of 60 steps)' in out
    # A head with no spread fails even when its accuracy looks fine.
    flat = _write_csv(tmp_path / 'flat.csv', [(0.8, 0.9)] * 60, spread=0.01)
    code, out, _ = _check(capsys, flat)
    assert code == 1 and '(score_std)' in out


def test_check_health_tool_floors_default_to_the_config_and_can_be_set(tmp_path, capsys):
    path = _write_csv(tmp_path / 'losses.csv', [(0.3, 0.86)] * 50, loss_cls=0.4)  # 0.58
    assert _check(capsys, path)[0] == 1                                  # default floor 0.6
    assert _check(capsys, path, '--min-balanced-acc', 0.55)[0] == 0
    assert _check(capsys, path, '--min-balanced-acc', 0.55, '--min-score-std', 0.3)[0] == 1
    code, out, _ = _check(capsys, path, '--min-balanced-acc', 0.55, '--max-loss-cls', 0.35)
    assert code == 1 and '(loss_cls)' in out and 'mean loss_cls' in out
    assert _check(capsys, path, '--min-balanced-acc', 0.55, '--max-loss-cls', 0.5)[0] == 0


def test_check_health_tool_bad_input_exits_2_naming_the_problem(tmp_path, capsys):
    missing = _write_csv(tmp_path / 'old.csv', [(0.8, 0.9)] * 60,
                         columns=['step', 'loss_cls', 'acc_fg', 'acc_bg'])
    code, out, err = _check(capsys, missing)
    assert code == 2 and out == '' and "no column 'score_std'" in err and 'old.csv' in err
    no_loss = _write_csv(tmp_path / 'no_loss.csv', [(0.8, 0.9)] * 60,
                         columns=['step', 'acc_fg', 'acc_bg', 'score_std'])
    assert _check(capsys, no_loss)[0] == 0
    code, _, err = _check(capsys, no_loss, '--max-loss-cls', 1)
    assert code == 2 and "no column 'loss_cls'" in err
    short = _write_csv(tmp_path / 'short.csv', [(0.8, 0.9)] * 20)
    code, _, err = _check(capsys, short)
    assert code == 2 and '20 steps, fewer than the window of 50' in err
    assert _check(capsys, short, '--window', 20)[0] == 0
    code, _, err = _check(capsys, tmp_path / 'nowhere.csv')
    assert code == 2 and 'nowhere.csv: no such file' in err
    code, _, err = _check(capsys, tmp_path)   # a folder without log/losses.csv
    assert code == 2 and 'no log/losses.csv' in err
    with open(short, 'a') as f:
        f.write('20,0,0.001,0.3,30,226,0.8,oops,0.2,0.8\n')
    code, _, err = _check(capsys, short, '--window', 5)
    assert code == 2 and "line 22: column 'acc_bg' is 'oops'" in err


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
        # What the trainer scales: the large separable conv's variables, by the config's factor.
        multipliers = network.gradient_multipliers()
        assert set(multipliers) == set(parts['thin']) and len(multipliers) >= 4
        assert set(multipliers.values()) == {3.0}
        unscaled = make_config(class_names=['background', 'a'], large_sep_conv_grad_mult=1.0)
        assert LightHeadNetwork(unscaled).gradient_multipliers() == {}
        assert tuple(network.get_health_collection()) == HEALTH_NAMES
        # The losses the trainer logs: the train collection's, in its order, then the total.
        assert network.loss_names == ('rpn_loss_cls', 'rpn_loss_box', 'loss_cls', 'loss_box')
        assert tuple(network.get_train_collection()) == network.loss_names + ('tot_losses',)
