"""The training loop and its hooks (lighthead.train.hooks), without building a detector."""
import collections
import logging
import math
import os
import types

import pytest
from easydict import EasyDict

from lighthead import checkpoint as ckpt
from lighthead.compat import tf
from lighthead.train import hooks
from lighthead.train.schedule import Schedule

LOSS_KEYS = ('rpn_loss_cls', 'rpn_loss_box', 'loss_cls', 'loss_box', 'tot_losses')
HEALTH_KEYS = ('acc_fg', 'acc_bg', 'score_std', 'rpn_recall')


def results(epoch=0, lr=0.01, loss=0.5, grad_norm=1.0, acc_fg=0.5):
    return hooks.StepResults(
        epoch=epoch, lr=lr, losses=collections.OrderedDict((k, loss) for k in LOSS_KEYS),
        grad_norm=grad_norm,
        health=collections.OrderedDict([('acc_fg', acc_fg), ('acc_bg', 0.75),
                                        ('score_std', float('nan')), ('rpn_recall', 0.25)]),
        data_s=0.01, step_s=0.1, images_per_s=20.0)


def stub_trainer(model_dump_dir='/nonexistent', **extra):
    trainer = types.SimpleNamespace(
        cfg=EasyDict(model_dump_dir=model_dump_dir), logger=logging.getLogger('test_hooks'),
        loss_keys=LOSS_KEYS, health_keys=list(HEALTH_KEYS), images_per_step=2)
    for key, value in extra.items():
        setattr(trainer, key, value)
    return trainer


class Recorder(hooks.Hook):
    def __init__(self, name, calls, fail_at=None):
        self.name, self.calls, self.fail_at = name, calls, fail_at

    def begin(self, trainer):
        self.calls.append((self.name, 'begin', trainer.start_step, trainer.end_step))

    def after_step(self, trainer, step, results):
        self.calls.append((self.name, 'step', step, results.lr))
        if step == self.fail_at:
            raise RuntimeError('stop at %d' % step)

    def end(self, trainer):
        self.calls.append((self.name, 'end', trainer.step, trainer.finished))


def test_loop_calls_every_hook_each_step_in_order_and_ends_in_reverse():
    calls = []
    trainer = stub_trainer()
    done = hooks.run_loop(trainer, [Recorder('a', calls), Recorder('b', calls)], 3, 6,
                          lambda step: results(lr=step / 10.0))
    assert done == 6 and trainer.finished and trainer.step == 6
    assert calls == [('a', 'begin', 3, 6), ('b', 'begin', 3, 6),
                     ('a', 'step', 3, 0.3), ('b', 'step', 3, 0.3),
                     ('a', 'step', 4, 0.4), ('b', 'step', 4, 0.4),
                     ('a', 'step', 5, 0.5), ('b', 'step', 5, 0.5),
                     ('b', 'end', 6, True), ('a', 'end', 6, True)]


def test_loop_ends_its_hooks_when_a_hook_raises():
    calls = []
    trainer = stub_trainer()
    with pytest.raises(RuntimeError, match='stop at 1'):
        hooks.run_loop(trainer, [Recorder('a', calls, fail_at=1), Recorder('b', calls)], 0, 5,
                       lambda step: results())
    # b never saw step 1; both were ended, with step 1 not done and the run not finished.
    assert [c for c in calls if c[1] == 'step'] == [('a', 'step', 0, 0.01),
                                                   ('b', 'step', 0, 0.01),
                                                   ('a', 'step', 1, 0.01)]
    assert calls[-2:] == [('b', 'end', 1, False), ('a', 'end', 1, False)]
    assert not trainer.finished


def schedule(snapshot_iters=0):
    cfg = EasyDict(max_epoch=3, warm_iter=2, lr_steps=[[3, 1.0]], basic_lr=0.01,
                   snapshot_iters=snapshot_iters)
    return Schedule(cfg, num_towers=1, iters_per_epoch=3)


def test_checkpoint_hook_chooses_epoch_ends_and_every_nth_step():
    sched = schedule()
    assert sched.total_steps == 11
    every_2 = hooks.CheckpointHook('unused', 2)
    names = {s: every_2.checkpoint_name(sched, s) for s in range(sched.total_steps)}
    # Epochs end after steps 4 (2 warm-up + 3), 7 and 10; iter_N names the steps done.
    assert {s: n for s, n in names.items() if n} == {
        1: 'iter_2.ckpt', 3: 'iter_4.ckpt', 4: 'epoch_1.ckpt', 5: 'iter_6.ckpt',
        7: 'epoch_2.ckpt', 9: 'iter_10.ckpt', 10: 'epoch_3.ckpt'}
    never = hooks.CheckpointHook('unused', 0)
    assert [s for s in range(11) if never.checkpoint_name(sched, s)] == [4, 7, 10]


def test_checkpoint_hook_saves_atomically_and_sets_the_epoch(tmp_path):
    model_dir = str(tmp_path / 'model_dump')
    sched = schedule()
    with tf.Graph().as_default():
        step_var = tf.train.get_or_create_global_step()
        epoch = tf.get_variable('epoch', [], tf.int64, tf.zeros_initializer(), trainable=False)
        epoch_ph = tf.placeholder(tf.int64, [])
        set_epoch = tf.assign(epoch, epoch_ph)
        increment = tf.assign_add(step_var, 1)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            trainer = stub_trainer(model_dir, schedule=sched, sess=sess,
                                   saver=tf.train.Saver(max_to_keep=None), epoch_ph=epoch_ph,
                                   set_epoch=set_epoch)
            hook = hooks.CheckpointHook(model_dir, 3)
            for step in range(6):
                sess.run(increment)
                hook.after_step(trainer, step, results())
    assert ckpt.list_checkpoints(model_dir) == ['iter_3.ckpt', 'epoch_1.ckpt', 'iter_6.ckpt']
    for name, steps_done, epochs in (('iter_3.ckpt', 3, 0), ('epoch_1.ckpt', 5, 1),
                                     ('iter_6.ckpt', 6, 1)):
        reader = tf.train.load_checkpoint(os.path.join(model_dir, name))
        assert (reader.get_tensor('global_step'), reader.get_tensor('epoch')) == \
            (steps_done, epochs), name
    assert not [n for n in os.listdir(model_dir) if n.startswith('.tmp-')]


@pytest.mark.parametrize('bad', [dict(loss=float('nan')), dict(grad_norm=float('inf'))])
def test_nan_stop_hook_raises_on_a_non_finite_loss_or_gradient(bad, tmp_path, caplog):
    hook = hooks.NaNStopHook()
    trainer = stub_trainer(str(tmp_path))
    hook.after_step(trainer, 6, results(epoch=1))   # finite: nothing happens
    with caplog.at_level(logging.ERROR, logger='test_hooks'):
        with pytest.raises(hooks.TrainingDiverged) as info:
            hook.after_step(trainer, 7, results(epoch=1, **bad))
    message = str(info.value)
    assert message.startswith('loss or gradient became non-finite at step 7 (epoch 2): ')
    assert message.endswith('no checkpoint passed the divergence check; start again with a '
                            'lower basic_lr (or set clip_gradient_norm)')
    assert message in caplog.text


def test_csv_hook_writes_the_header_once_and_appends_on_resume(tmp_path):
    path = str(tmp_path / 'losses.csv')
    for start, steps in ((0, (0, 1)), (2, (2,))):
        trainer = stub_trainer(start_step=start)
        hook = hooks.CsvLogHook(path)
        hook.begin(trainer)
        for step in steps:
            hook.after_step(trainer, step, results(acc_fg=0.125))
        hook.end(trainer)
    with open(path) as f:
        lines = f.read().splitlines()
    assert lines[0] == ('step,epoch,lr,rpn_loss_cls,rpn_loss_box,loss_cls,loss_box,tot_losses,'
                        'grad_norm,images_per_s,data_s,acc_fg,acc_bg,score_std,rpn_recall')
    assert lines[1:] == ['%d,0,0.01,0.5,0.5,0.5,0.5,0.5,1,20.000,0.0100,0.125,0.75,nan,0.25' % s
                         for s in range(3)]


def test_timer_hook_skips_step_zero_and_sets_stats_only_when_finished(capsys):
    trainer = stub_trainer(finished=False)
    hook = hooks.TimerHook()
    hook.begin(trainer)
    for step in range(3):
        hook.after_step(trainer, step, results())
    hook.end(trainer)
    assert not hasattr(trainer, 'stats')
    trainer.finished = True
    hook.end(trainer)
    assert trainer.stats['steps'] == 2 and math.isclose(trainer.stats['step_s'], 0.2)
    assert math.isclose(trainer.stats['images_per_s'], 2 * 2 / 0.2)
    assert 'lighthead: 20.00 images/s, data loading 10.0% of the step time' in \
        capsys.readouterr().out


def test_health_check_hook_warns_in_the_log_at_the_check_step(caplog, capsys):
    from lighthead.train.health import HeadHealthCheck
    cfg = EasyDict(health_check_after=3, health_min_balanced_acc=0.6, health_min_score_std=0.05)
    hook = hooks.HealthCheckHook(HeadHealthCheck(cfg))
    trainer = stub_trainer(start_step=0, end_step=10)
    at_chance = results(acc_fg=0.0)._replace(health={'acc_fg': 0.0, 'acc_bg': 1.0,
                                                      'score_std': 0.001})
    with caplog.at_level(logging.WARNING, logger='test_hooks'):
        for step in range(5):
            hook.after_step(trainer, step, at_chance)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and 'still at chance after 3 steps' in warnings[0]
    assert 'lighthead: ' + warnings[0] in capsys.readouterr().out
