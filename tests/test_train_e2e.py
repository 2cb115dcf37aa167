"""End to end through the experiment scripts, on the tiny synthetic dataset with two virtual CPU
devices: train, crash (SIGKILL), resume, evaluate; a diverging run; the -d parser."""
import csv
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from lighthead.compat import tf
from lighthead.config import REPO_ROOT
from lighthead.checkpoint import latest_checkpoint, list_checkpoints
from lighthead.train.schedule import Schedule
from lighthead.utils.devices import parse_devices

TRAIN_PY = os.path.join('experiments', 'quickstart', 'train.py')
TEST_PY = os.path.join('experiments', 'quickstart', 'test.py')
ITERS_PER_EPOCH = 3
# 2 warm-up + 3 epochs x 3 iterations = 11 steps; a different lr in every epoch.
SCHEDULE = ['max_epoch=3', 'warm_iter=2', 'lr_steps=[[1, 1.0], [2, 0.1], [3, 0.01]]',
            'snapshot_iters=2', 'TRAIN.RPN_PRE_NMS_TOP_N=300', 'TRAIN.RPN_POST_NMS_TOP_N=64',
            'TEST.RPN_PRE_NMS_TOP_N=300', 'TEST.RPN_POST_NMS_TOP_N=64']
TIMEOUT_S = 300


def script_env(output_dir):
    return dict(os.environ, OUTPUT_DIR=output_dir, TF_CPP_MIN_LOG_LEVEL='2')


def run_script(args, output_dir, log_path):
    """Run ``python args...`` from the repo root; returns (returncode, stdout + stderr)."""
    with open(log_path, 'w') as log:
        proc = subprocess.run([sys.executable] + args, cwd=REPO_ROOT, env=script_env(output_dir),
                              stdout=log, stderr=subprocess.STDOUT, timeout=TIMEOUT_S)
    with open(log_path) as f:
        return proc.returncode, f.read()


def checkpoint_state(prefix):
    reader = tf.train.load_checkpoint(prefix)
    return (int(reader.get_tensor('global_step')), int(reader.get_tensor('epoch')),
            float(reader.get_tensor('learning_rate')))


def epochs_completed(sched, steps_done):
    return max(e for e in range(int(sched.cfg.max_epoch) + 1) if sched.epoch_start(e) <= steps_done)


@pytest.fixture(scope='module')
def crashed_and_resumed(tiny_shapes, tmp_path_factory):
    """Train until the first iteration snapshot, SIGKILL, resume with -c to the end.

    Returns a dict: ``output_dir``, ``killed_at`` (newest checkpoint prefix after the kill),
    ``resume_log`` (output of the resumed run), ``resume_rc``.
    """
    root = tmp_path_factory.mktemp('e2e')
    output_dir = str(root / 'output')
    model_dump = os.path.join(output_dir, 'model_dump')
    args = [TRAIN_PY, '-d', '0-1', '--iters-per-epoch', str(ITERS_PER_EPOCH)]
    args += tiny_shapes['overrides'] + SCHEDULE
    with open(str(root / 'first.log'), 'w') as log:
        proc = subprocess.Popen([sys.executable] + args, cwd=REPO_ROOT,
                                env=script_env(output_dir), stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.time() + TIMEOUT_S
            while latest_checkpoint(model_dump) is None:
                assert proc.poll() is None, 'training ended before its first snapshot'
                assert time.time() < deadline, 'no snapshot within %d s' % TIMEOUT_S
                time.sleep(0.05)
            proc.send_signal(signal.SIGKILL)
            assert proc.wait(TIMEOUT_S) == -signal.SIGKILL
        finally:
            if proc.poll() is None:
                proc.kill()
            try:  # the data worker, if it outlived its parent
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                pass
    killed_at = latest_checkpoint(model_dump)
    assert not os.path.exists(os.path.join(model_dump, 'epoch_3.ckpt.index'))
    killed_state = checkpoint_state(killed_at)  # the resumed run may prune it (keep 3)
    rc, text = run_script(args + ['-c'], output_dir, str(root / 'resume.log'))
    return dict(output_dir=output_dir, killed_at=killed_at, killed_state=killed_state,
                resume_log=text, resume_rc=rc)


def test_killed_run_resumes_and_finishes(crashed_and_resumed, tiny_shapes, load_config):
    run = crashed_and_resumed
    assert run['resume_rc'] == 0, run['resume_log'][-3000:]
    cfg = load_config('quickstart', tiny_shapes['overrides'] + SCHEDULE)
    sched = Schedule(cfg, num_towers=2, iters_per_epoch=ITERS_PER_EPOCH)
    assert sched.total_steps == 11

    # The snapshot that survived the kill: its step, epoch and lr are the schedule's.
    step, epoch, lr = run['killed_state']
    assert 0 < step < sched.total_steps
    assert os.path.basename(run['killed_at']) in ('iter_%d.ckpt' % step,
                                                  'epoch_%d.ckpt' % epoch)
    assert epoch == epochs_completed(sched, step)
    assert lr == pytest.approx(sched.lr(step - 1), rel=1e-6)
    assert 'resumed from %s (step %d, epoch %d)' % (run['killed_at'], step, epoch) \
        in run['resume_log']

    model_dump = os.path.join(run['output_dir'], 'model_dump')
    for n in range(1, 4):
        state = checkpoint_state(os.path.join(model_dump, 'epoch_%d.ckpt' % n))
        end = sched.epoch_start(n)
        assert state[:2] == (end, n)
        assert state[2] == pytest.approx(sched.lr(end - 1), rel=1e-6)
    iters = [n for n in list_checkpoints(model_dump) if n.startswith('iter_')]
    for name in iters:
        assert checkpoint_state(os.path.join(model_dump, name))[0] == int(name[5:-5])
    # keep_iter_checkpoints=3: the older iteration checkpoints are gone, files included.
    assert len(iters) == 3
    assert sorted(n for n in os.listdir(model_dump) if n.endswith('.index')) == sorted(
        n + '.index' for n in list_checkpoints(model_dump))
    assert latest_checkpoint(model_dump) == os.path.join(model_dump, 'epoch_3.ckpt')

    # Every step after the resume logged the schedule's epoch and lr, and none was skipped.
    with open(os.path.join(run['output_dir'], 'log', 'losses.csv')) as f:
        rows = list(csv.DictReader(f))
    steps = [int(r['step']) for r in rows]
    resumed = steps[len(steps) - (sched.total_steps - step):]
    assert resumed == list(range(step, sched.total_steps))
    assert set(steps) == set(range(sched.total_steps))
    for r in rows:
        s = int(r['step'])
        assert int(r['epoch']) == sched.epoch_of(s)
        assert float(r['lr']) == pytest.approx(sched.lr(s), rel=1e-5)


def test_evaluation_writes_coco_results(crashed_and_resumed, tiny_shapes):
    output_dir = crashed_and_resumed['output_dir']
    rc, text = run_script([TEST_PY, '-d', '0-1', '-se', '3'] + tiny_shapes['overrides'] + SCHEDULE,
                          output_dir, os.path.join(output_dir, 'test.log'))
    assert rc == 0, text[-3000:]
    assert 'Average Precision' in text
    eval_dir = os.path.join(output_dir, 'eval_dump')
    with open(os.path.join(eval_dir, 'results.txt')) as f:
        results = f.read()
    assert 'evaluation epoch 3, fp32 (6 images' in results and 'Average Precision' in results
    with open(os.path.join(eval_dir, 'epoch_3.json')) as f:
        detections = json.load(f)
    assert isinstance(detections, list)
    with open(tiny_shapes['val_json']) as f:
        gt = json.load(f)
    image_ids = {img['id'] for img in gt['images']}
    category_ids = {c['id'] for c in gt['categories']}
    assert {d['image_id'] for d in detections} == image_ids  # both shards' images
    for d in detections:
        assert d['image_id'] in image_ids and d['category_id'] in category_ids
        x, y, w, h = d['bbox']
        assert x >= 0 and y >= 0 and w >= 0 and h >= 0
        assert x + w <= 160.01 and y + h <= 128.01  # x + w = x2 + 1, rounded to 0.01


def test_diverging_run_stops_and_keeps_the_last_checkpoint(tiny_shapes, output_dir, tmp_path):
    rc, text = run_script(
        [TRAIN_PY, '-d', '0', '--iters-per-epoch', '5'] + tiny_shapes['overrides'] +
        ['max_epoch=1', 'warm_iter=0', 'basic_lr=1e10', 'snapshot_iters=1', 'nr_dataflow=0'],
        output_dir, str(tmp_path / 'nan.log'))
    assert rc > 0, text[-3000:]
    match = re.search(r'non-finite at step (\d+)', text)
    assert match, text[-3000:]
    failed = int(match.group(1))
    assert failed >= 1, 'the first step, with the initial weights, must be finite'
    model_dump = os.path.join(output_dir, 'model_dump')
    names = list_checkpoints(model_dump)
    # iter_<failed> holds the weights that gave the non-finite loss: out of the index (the
    # divergence check, tests/test_divergence.py); nothing saved after the failure.
    assert 'iter_%d.ckpt' % failed not in names
    assert not [n for n in os.listdir(model_dump) if 'iter_%d.' % (failed + 1) in n]
    latest = latest_checkpoint(model_dump)
    if latest is None:
        assert 'no checkpoint passed the divergence check' in text, text[-3000:]
    else:
        assert 'the newest checkpoint that passed the divergence check is %s' % latest in text
        assert checkpoint_state(latest)[0] < failed


@pytest.mark.parametrize('text, devices', [
    ('0', [0]), ('0-7', list(range(8))), ('0,2,5', [0, 2, 5]), ('0-1,4', [0, 1, 4]),
    (' 3 , 1 ', [3, 1]), ('2-2', [2])])
def test_parse_devices(text, devices):
    assert parse_devices(text) == devices


@pytest.mark.parametrize('text', ['', 'a', '0-', '-1', '3-1', '0,0', '0-2,1', '1.5', '0;1',
                                  '0,,1'])
def test_parse_devices_rejects_bad_lists(text):
    with pytest.raises(ValueError, match='bad device list'):
        parse_devices(text)
