"""The divergence check of the checkpoints (lighthead.train.hooks.DivergenceGuard): no
checkpoint of exploded or non-finite weights, and a diverged run names one that passed."""
import collections
import logging
import math
import os
import re
import subprocess
import sys
import types

import numpy as np
import pytest
from easydict import EasyDict

from lighthead import checkpoint as ckpt
from lighthead.compat import tf
from lighthead.config import REPO_ROOT
from lighthead.train import hooks
from lighthead.train.schedule import Schedule

LOSS_KEYS = ('loss_cls', 'tot_losses')


def step_results(loss, grad_norm=1.0):
    return hooks.StepResults(
        epoch=0, lr=0.01, losses=collections.OrderedDict((k, loss) for k in LOSS_KEYS),
        grad_norm=grad_norm, health=collections.OrderedDict(), data_s=0.0, step_s=0.1,
        images_per_s=10.0)


class FakeRun(object):
    """A graph with one trainable variable ``w`` [4], a global step, and the trainer
    attributes the NaN stop and checkpoint hooks use (``weight_norm`` included)."""

    def __init__(self, model_dir, snapshot_iters=1, keep_iter=None):
        self.graph = tf.Graph()
        with self.graph.as_default():
            step_var = tf.train.get_or_create_global_step()
            epoch = tf.get_variable('epoch', [], tf.int64, tf.zeros_initializer(),
                                    trainable=False)
            w = tf.get_variable('w', [4], tf.float32, tf.ones_initializer())
            self.w_ph = tf.placeholder(tf.float32, [])
            self.set_w = tf.assign(w, tf.fill([4], self.w_ph))
            self.increment = tf.assign_add(step_var, 1)
            epoch_ph = tf.placeholder(tf.int64, [])
            self.sess = tf.Session(graph=self.graph)
            self.trainer = types.SimpleNamespace(
                cfg=EasyDict(model_dump_dir=model_dir), logger=logging.getLogger('test_div'),
                schedule=Schedule(EasyDict(max_epoch=1, warm_iter=0, lr_steps=[[1, 1.0]],
                                           basic_lr=0.01), num_towers=1, iters_per_epoch=50),
                sess=self.sess, saver=tf.train.Saver(max_to_keep=None), epoch_ph=epoch_ph,
                set_epoch=tf.assign(epoch, epoch_ph),
                weight_norm=tf.global_norm(tf.trainable_variables()))
            self.sess.run(tf.global_variables_initializer())
        self.hooks = [hooks.NaNStopHook(), hooks.CheckpointHook(model_dir, snapshot_iters,
                                                                keep_iter)]

    def run(self, figures):
        """Steps 0.. with ``figures[s] = (loss, weight after step s)``."""
        def run_step(step):
            loss, weight = figures[step]
            self.sess.run([self.increment, self.set_w], {self.w_ph: weight})
            return step_results(loss)
        return hooks.run_loop(self.trainer, self.hooks, 0, len(figures), run_step)


def weights_of(prefix):
    return tf.train.load_checkpoint(prefix).get_tensor('w')


def test_an_exploded_loss_blocks_saves_and_condemns_the_weights_that_gave_it(tmp_path, capsys):
    model_dir = str(tmp_path / 'model_dump')
    run = FakeRun(model_dir)
    # The probe's run: fine, fine, a loss 3.6e10 (the weights after step 1 produced it; those
    # after step 2 reach 6.8e12), then NaN.
    with pytest.raises(hooks.TrainingDiverged) as info:
        run.run([(2.9, 1.0), (1.1, 2.0), (3.6e10, 6.8e12), (float('nan'), float('inf'))])
    message = str(info.value)
    good = os.path.join(model_dir, 'iter_1.ckpt')
    assert message.startswith('loss or gradient became non-finite at step 3 (epoch 1)')
    assert message.endswith('the newest checkpoint that passed the divergence check is %s'
                            % good)
    # iter_2 (the weights that gave 3.6e10 at step 2) left the index; iter_3 was never saved.
    assert ckpt.list_checkpoints(model_dir) == ['iter_1.ckpt']
    assert ckpt.latest_checkpoint(model_dir) == good
    assert not os.path.exists(os.path.join(model_dir, 'iter_3.ckpt.index'))
    assert np.all(np.isfinite(weights_of(good))) and weights_of(good)[0] == 1.0
    out = capsys.readouterr().out
    assert 'step 2: total loss 3.6e+10 is over 1000 x the median 2 of the 2 before' in out
    assert 'iter_2.ckpt, saved from the weights that gave this loss, was taken out' in out
    assert 'not saving iter_3.ckpt after step 2' in out


def test_non_finite_weights_are_not_saved(tmp_path):
    model_dir = str(tmp_path / 'model_dump')
    run = FakeRun(model_dir)
    with pytest.raises(hooks.TrainingDiverged) as info:
        run.run([(1.0, 1.0), (1.0, float('inf')), (float('nan'), 1.0)])
    # iter_2 had an infinite weight: skipped; step 2's NaN then condemns nothing saved.
    assert ckpt.list_checkpoints(model_dir) == ['iter_1.ckpt']
    assert str(info.value).endswith('is %s' % os.path.join(model_dir, 'iter_1.ckpt'))


def test_no_checkpoint_passed(tmp_path):
    model_dir = str(tmp_path / 'model_dump')
    run = FakeRun(model_dir)
    with pytest.raises(hooks.TrainingDiverged) as info:
        run.run([(2.9, 1e6), (float('inf'), 1e12)])
    assert str(info.value).endswith('no checkpoint passed the divergence check; start again '
                                    'with a lower basic_lr (or set clip_gradient_norm)')
    assert ckpt.latest_checkpoint(model_dir) is None
    assert os.path.exists(os.path.join(model_dir, 'iter_1.ckpt.index'))  # files stay


def test_a_loss_that_recovers_is_saved_again_and_noise_is_not_divergence(tmp_path):
    model_dir = str(tmp_path / 'model_dump')
    run = FakeRun(model_dir, snapshot_iters=2)
    # 900 x the median is within reason; 5000 x is not (and not added to the median).
    assert run.run([(1.0, 1.0), (900.0, 1.0), (0.5, 1.0), (5000.0, 1.0), (1.0, 1.0),
                    (1.0, 1.0)]) == 6
    assert ckpt.list_checkpoints(model_dir) == ['iter_2.ckpt', 'iter_6.ckpt']


# ------------------------------------------------------------------------ a real training run

TRAIN_PY = os.path.join('experiments', 'quickstart', 'train.py')


def run_script(args, output_dir, log_path):
    """Run ``python args...`` from the repo root; returns (returncode, stdout + stderr)."""
    env = dict(os.environ, OUTPUT_DIR=output_dir, TF_CPP_MIN_LOG_LEVEL='2')
    with open(log_path, 'w') as log:
        proc = subprocess.run([sys.executable] + args, cwd=REPO_ROOT, env=env, stdout=log,
                              stderr=subprocess.STDOUT, timeout=300)
    with open(log_path) as f:
        return proc.returncode, f.read()


def test_a_diverging_run_names_a_checkpoint_with_finite_weights(tiny_shapes, output_dir,
                                                                tmp_path):
    # Epoch 1 at the quickstart lr, then 1e6 x: the loss explodes, then becomes non-finite.
    rc, text = run_script(
        [TRAIN_PY, '-d', '0', '--iters-per-epoch', '3'] + tiny_shapes['overrides'] +
        ['max_epoch=3', 'warm_iter=0', 'lr_steps=[[1, 1.0], [3, 1e6]]', 'snapshot_iters=1',
         'nr_dataflow=0'], output_dir, str(tmp_path / 'diverge.log'))
    assert rc == 2, text[-3000:]
    match = re.search(r'lighthead: loss or gradient became non-finite at step \d+ [^\n\r]*'
                      r'the newest checkpoint that passed the divergence check is (\S+)', text)
    assert match, text[-3000:]
    named = match.group(1)
    model_dump = os.path.join(output_dir, 'model_dump')
    assert named == ckpt.latest_checkpoint(model_dump)  # what -c resumes from
    reader = tf.train.load_checkpoint(named)
    for name in reader.get_variable_to_shape_map():
        value = reader.get_tensor(name)
        if np.issubdtype(np.asarray(value).dtype, np.floating):
            assert np.all(np.isfinite(value)), name
    # The weights are those of a sane step (about 5e3 here; the diverged ones reach 1e12).
    trainable = [n for n in reader.get_variable_to_shape_map()
                 if 'Momentum' not in n and np.asarray(reader.get_tensor(n)).dtype == np.float32]
    norm = math.sqrt(sum(float(np.sum(np.square(reader.get_tensor(n)))) for n in trainable))
    assert norm < 1e5, norm
