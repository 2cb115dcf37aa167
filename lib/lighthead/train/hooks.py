"""The training loop and its hooks (tensorpack / detectron2 style).

:func:`run_loop` is the whole loop: it calls every hook's ``begin(trainer)``, then for each
step ``run_step(step)`` and every hook's ``after_step(trainer, step, results)`` in list order,
and at the end (also when a hook or a step raised) the ``end(trainer)`` of every begun hook in
reverse order. Everything a run does besides the step itself is a hook:

- :class:`NaNStopHook`: raises :class:`TrainingDiverged` on a non-finite loss or gradient
  norm (first in the list, so that nothing logs or saves such a step), and keeps the
  divergence check of the checkpoints (:class:`DivergenceGuard`);
- :class:`TimerHook`: data-loading and step time; ``trainer.stats`` and the speed line;
- :class:`CsvLogHook`: one row per step in ``log/losses.csv``;
- :class:`TrainLogHook`: a line in ``log/train.log`` every ``log_interval`` steps and the last;
- :class:`TensorBoardHook`: the same figures as TensorBoard summaries;
- :class:`HealthCheckHook`: the head-at-chance warning
  (:class:`lighthead.train.health.HeadHealthCheck`);
- :class:`ProgressBarHook`: the tqdm bar and its postfix;
- :class:`CheckpointHook`: ``epoch_N.ckpt`` at each epoch end, ``iter_N.ckpt`` every
  ``snapshot_iters`` steps, the newest ``keep_iter_checkpoints`` of those kept, none saved
  that fails the divergence check (last in the list: a checkpoint follows the step's log
  rows).

The divergence check (:class:`DivergenceGuard`). A checkpoint is saved only when the step's
total loss is finite and at most ``LOSS_EXPLOSION_FACTOR`` (1e3) times the median of the
previous (up to ``LOSS_HISTORY``, 100) accepted total losses of this run (no earlier loss:
finite is enough), and the global norm of the trainable weights is finite
(``trainer.weight_norm``, one op, run only before a save). The loss of step ``s`` is computed
with the weights saved after step ``s - 1``; so when it fails (exploded or non-finite), a
checkpoint this run saved after step ``s - 1`` is taken out of the ``checkpoint`` index (its
files stay) and no longer counts as good: ``-c`` does not resume from it. When the run stops
on a non-finite loss, the message names the newest checkpoint that passed (the resumed one
counts), or says there is none.

What a hook may read from ``trainer`` during a run: ``cfg``, ``schedule``, ``sess``, ``saver``,
``logger``, ``loss_keys``, ``health_keys``, ``images_per_step``, ``epoch_ph`` / ``set_epoch``,
and, set by :func:`run_loop`, ``start_step``, ``end_step`` (the loop runs the global steps
``start_step .. end_step - 1``), ``step`` (steps done) and ``finished`` (the loop reached
``end_step``; False while running and after an exception).

``results`` of a step is a :class:`StepResults`. ``step`` is the global step just run (0-based):
after it, ``step + 1`` steps are done.
"""
import collections
import json
import math
import os

import numpy as np

from tqdm import tqdm

from lighthead import checkpoint as ckpt
from lighthead.compat import tf

StepResults = collections.namedtuple('StepResults', [
    'epoch',         # 0-based epoch of the step (schedule.epoch_of)
    'lr',            # learning rate of the step (all towers together)
    'losses',        # OrderedDict trainer.loss_keys -> float (the network's losses + total)
    'grad_norm',     # global norm of the (multiplied, unclipped) gradient, float
    'health',        # OrderedDict trainer.health_keys -> float (health figures, part norms)
    'data_s',        # seconds waiting for the batch
    'step_s',        # seconds of the whole step (data + session run)
    'images_per_s',  # images of the step / step_s
])


class TrainingDiverged(RuntimeError):
    """A loss or the gradient became NaN or infinite."""


class Hook(object):
    """Base class: every method does nothing."""

    def begin(self, trainer):
        """Before the first step (the session is open and the start step known)."""

    def after_step(self, trainer, step, results):
        """After global step ``step`` ran; ``results`` is its :class:`StepResults`."""

    def end(self, trainer):
        """After the loop, also when it stopped on an exception (``trainer.finished`` False)."""


def run_loop(trainer, hooks, start, end, run_step):
    """Run global steps ``start .. end - 1``: ``results = run_step(step)``, then every hook's
    ``after_step(trainer, step, results)`` in order. Hooks are begun in order before the first
    step and ended in reverse order after the last (or on an exception, which propagates).
    Returns the number of steps done (``end`` unless an exception stopped the loop)."""
    trainer.start_step, trainer.end_step = start, end
    trainer.step = start
    trainer.finished = False
    begun = []
    try:
        for hook in hooks:
            hook.begin(trainer)
            begun.append(hook)
        while trainer.step < end:
            step = trainer.step
            results = run_step(step)
            for hook in hooks:
                hook.after_step(trainer, step, results)
            trainer.step = step + 1
        trainer.finished = True
    finally:
        for hook in reversed(begun):
            hook.end(trainer)
    return trainer.step


LOSS_EXPLOSION_FACTOR = 1e3  # a total loss above this times the median of earlier ones
LOSS_HISTORY = 100  # earlier accepted total losses that the median is taken over


def _total_loss(results):
    losses = results.losses
    return float(losses['tot_losses'] if 'tot_losses' in losses else sum(losses.values()))


class DivergenceGuard(object):
    """The divergence check of one run (see the module doc): which steps' weights may be
    saved, and the newest checkpoint that passed. Kept by :class:`NaNStopHook` as
    ``trainer.divergence``; :class:`CheckpointHook` asks it before a save.

    ``good``: prefix of the newest checkpoint that passed (the resumed one at the start), or
    None. ``problem``: why the last step's weights may not be saved, or None."""

    def __init__(self, good=None, factor=LOSS_EXPLOSION_FACTOR, history=LOSS_HISTORY):
        self.good = good
        self.factor = factor
        self.losses = collections.deque(maxlen=history)
        self.problem = self.previous_problem = None
        self.saved = None  # (step, prefix, previous good) of this run's newest save

    def check_step(self, step, results):
        """Judge global ``step``'s figures; returns the problem (a phrase) or None."""
        values = list(results.losses.values()) + [results.grad_norm]
        loss = _total_loss(results)
        self.previous_problem = self.problem
        if not all(math.isfinite(float(v)) for v in values):
            self.problem = 'non-finite loss or gradient'
        elif self.losses and loss > self.factor * float(np.median(self.losses)):
            self.problem = 'total loss %.4g is over %g x the median %.4g of the %d before' % (
                loss, self.factor, float(np.median(self.losses)), len(self.losses))
        else:
            self.problem = None
            self.losses.append(loss)
        return self.problem

    def condemn_previous(self, model_dir, step):
        """Step ``step``'s loss failed: a checkpoint this run saved after ``step - 1`` holds
        the weights that gave it; take it out of the index. Returns its prefix or None."""
        if self.saved is None or self.saved[0] != step - 1:
            return None
        _, prefix, previous = self.saved
        self.saved = None
        newest = ckpt.drop_from_index(model_dir, os.path.basename(prefix))
        if previous is not None and not os.path.exists(previous + '.index'):
            previous = newest  # pruned by that save (keep_iter_checkpoints=1)
        self.good = previous
        return prefix

    def saved_checkpoint(self, step, prefix):
        self.saved = (step, prefix, self.good)
        self.good = prefix

    def newest_good(self):
        if self.good is None:
            return ('no checkpoint passed the divergence check; start again with a lower '
                    'basic_lr (or set clip_gradient_norm)')
        return 'the newest checkpoint that passed the divergence check is %s' % self.good


class NaNStopHook(Hook):
    """Checks every step (:class:`DivergenceGuard`, kept as ``trainer.divergence``) and stops
    the run with :class:`TrainingDiverged` when a loss or the gradient norm of a step is not
    finite; the message (also logged as an error) names the step, the figures and the newest
    checkpoint that passed the divergence check (or says there is none). An exploded but
    finite loss only blocks the checkpoints (a warning). Put it first, so that no later hook
    logs or saves a non-finite step."""

    def begin(self, trainer):
        resumed = trainer.start_step > 0
        trainer.divergence = DivergenceGuard(
            ckpt.latest_checkpoint(trainer.cfg.model_dump_dir) if resumed else None)

    def after_step(self, trainer, step, results):
        guard = getattr(trainer, 'divergence', None)
        if guard is None:  # not begun (a hook used on its own)
            guard = trainer.divergence = DivergenceGuard()
        problem = guard.check_step(step, results)
        if problem is None:
            return
        condemned = guard.condemn_previous(trainer.cfg.model_dump_dir, step)
        dropped = ('; %s, saved from the weights that gave this loss, was taken out of the '
                   'checkpoint index' % condemned if condemned else '')
        if problem.startswith('non-finite'):
            msg = ('loss or gradient became non-finite at step %d (epoch %d): %s, '
                   'gradient norm %s%s; %s' % (
                       step, results.epoch + 1, dict(results.losses),
                       float(results.grad_norm), dropped, guard.newest_good()))
            trainer.logger.error(msg)
            raise TrainingDiverged(msg)
        if guard.previous_problem is None or dropped:  # once per streak of such steps
            msg = 'step %d: %s; no checkpoint is saved until the loss is back%s' % (
                step, problem, dropped)
            trainer.logger.warning(msg)
            tqdm.write('lighthead: ' + msg)


class TimerHook(Hook):
    """Sums the data-loading and step times of every step but global step 0 (graph warm-up).
    When the loop finished: sets ``trainer.stats`` (``steps``, ``data_s``, ``step_s``,
    ``images_per_s``) and, if a step was timed, logs it and prints the speed line."""

    def begin(self, trainer):
        self.steps, self.data_s, self.step_s = 0, 0.0, 0.0

    def after_step(self, trainer, step, results):
        if step > 0:  # the first step includes graph warm-up
            self.data_s += results.data_s
            self.step_s += results.step_s
            self.steps += 1

    def end(self, trainer):
        if not trainer.finished:
            return
        trainer.stats = dict(steps=self.steps, data_s=self.data_s, step_s=self.step_s,
                             images_per_s=(self.steps * trainer.images_per_step / self.step_s
                                           if self.step_s else float('nan')))
        if self.steps:
            trainer.logger.info('timing: %s', json.dumps(trainer.stats))
            print('lighthead: %.2f images/s, data loading %.1f%% of the step time' % (
                trainer.stats['images_per_s'], 100.0 * self.data_s / max(self.step_s, 1e-9)))


class CsvLogHook(Hook):
    """One row per step in ``path`` (flushed every step), columns ``step, epoch, lr``, the
    losses (``trainer.loss_keys``), ``grad_norm, images_per_s, data_s`` and the health figures
    (``trainer.health_keys``). A new file (with its header) when there is none or the run
    starts at step 0; else the rows are appended (a resumed run)."""

    def __init__(self, path):
        self.path = path
        self.file = None

    def header(self, trainer):
        return ('step,epoch,lr,' + ','.join(trainer.loss_keys) + ',grad_norm,images_per_s,'
                'data_s,' + ','.join(trainer.health_keys) + '\n')

    def begin(self, trainer):
        new = not os.path.exists(self.path) or trainer.start_step == 0
        self.file = open(self.path, 'w' if new else 'a')
        if new:
            self.file.write(self.header(trainer))

    def after_step(self, trainer, step, results):
        self.file.write('%d,%d,%.6g,%s,%.6g,%.3f,%.4f,%s\n' % (
            step, results.epoch, results.lr,
            ','.join('%.6g' % results.losses[k] for k in trainer.loss_keys),
            results.grad_norm, results.images_per_s, results.data_s,
            ','.join('%.6g' % results.health[k] for k in trainer.health_keys)))
        self.file.flush()

    def end(self, trainer):
        if self.file is not None:
            self.file.close()
            self.file = None


def _losses_and_grad_norm(results):
    figures = collections.OrderedDict(results.losses)
    figures['grad_norm'] = results.grad_norm
    return figures


def _is_logged(trainer, step, interval):
    return step % interval == 0 or step + 1 == trainer.end_step


class TrainLogHook(Hook):
    """Every ``interval`` steps and at the last step: one line in the trainer's log
    (``log/train.log``) with the epoch, step, losses, gradient norm, lr, speed, data time and
    health figures."""

    def __init__(self, interval):
        self.interval = int(interval)

    def after_step(self, trainer, step, results):
        if not _is_logged(trainer, step, self.interval):
            return
        trainer.logger.info(
            'epoch %d iter %d, %s, lr: %.6g, speed: %.2f img/s, data: %.3fs, health: %s',
            results.epoch + 1, step,
            ', '.join('%s: %.4f' % kv for kv in _losses_and_grad_norm(results).items()),
            results.lr, results.images_per_s, results.data_s,
            ', '.join('%s: %.4g' % kv for kv in results.health.items()))


class TensorBoardHook(Hook):
    """Every ``interval`` steps and at the last step: summaries ``loss/<name>`` (losses and
    ``grad_norm``), ``health/<name>`` (finite figures only), ``lr``, ``speed/images_per_s``
    and ``speed/data_s`` in ``tb_dir``."""

    def __init__(self, tb_dir, interval):
        self.tb_dir = tb_dir
        self.interval = int(interval)
        self.writer = None

    def begin(self, trainer):
        self.writer = tf.summary.FileWriter(self.tb_dir)

    def after_step(self, trainer, step, results):
        if not _is_logged(trainer, step, self.interval):
            return
        values = [tf.Summary.Value(tag='loss/' + k, simple_value=v)
                  for k, v in _losses_and_grad_norm(results).items()]
        values += [tf.Summary.Value(tag='health/' + k, simple_value=v)
                   for k, v in results.health.items() if math.isfinite(v)]
        values.append(tf.Summary.Value(tag='lr', simple_value=results.lr))
        values.append(tf.Summary.Value(tag='speed/images_per_s',
                                       simple_value=results.images_per_s))
        values.append(tf.Summary.Value(tag='speed/data_s', simple_value=results.data_s))
        self.writer.add_summary(tf.Summary(value=values), step)
        self.writer.flush()

    def end(self, trainer):
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class HealthCheckHook(Hook):
    """Feeds every step's health figures to ``check`` (a
    :class:`lighthead.train.health.HeadHealthCheck`) and writes its warning, when it fires,
    to the log and above the progress bar."""

    def __init__(self, check):
        self.check = check

    def after_step(self, trainer, step, results):
        warning = self.check.update(step, results.health,
                                    last_step=step + 1 == trainer.end_step)
        if warning:
            trainer.logger.warning(warning)
            tqdm.write('lighthead: ' + warning)


class ProgressBarHook(Hook):
    """A tqdm bar over the global steps, its postfix the epoch, lr, total and classification
    loss, the head's accuracies and the RPN recall of the step."""

    def __init__(self, desc=None):
        self.desc = desc
        self.bar = None

    def begin(self, trainer):
        self.bar = tqdm(total=trainer.end_step, initial=trainer.start_step, desc=self.desc,
                        dynamic_ncols=True)

    def after_step(self, trainer, step, results):
        losses, health = results.losses, results.health
        self.bar.set_postfix(ep=results.epoch + 1, lr='%.2g' % results.lr,
                             loss='%.3f' % losses['tot_losses'],
                             cls='%.3f' % losses['loss_cls'],
                             acc='%.2f/%.2f' % (health['acc_fg'], health['acc_bg']),
                             recall='%.2f' % health['rpn_recall'])
        self.bar.update(1)

    def end(self, trainer):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class CheckpointHook(Hook):
    """Saves ``trainer.saver``'s variables atomically (:func:`lighthead.checkpoint.
    save_checkpoint`) in ``model_dir``: after the last step of each epoch, with the ``epoch``
    variable first set to the epochs completed, ``epoch_N.ckpt``; else after every
    ``snapshot_iters``-th step (0: never), ``iter_N.ckpt``, N the steps done. Only the newest
    ``keep_iter`` iteration checkpoints stay (None or 0: all).

    A save is skipped (with a warning) when the step failed the divergence check
    (``trainer.divergence.problem``) or the global norm of the trainable weights
    (``trainer.weight_norm``, where the trainer has one) is not finite."""

    def __init__(self, model_dir, snapshot_iters, keep_iter=None):
        self.model_dir = model_dir
        self.snapshot_iters = int(snapshot_iters or 0)
        self.keep_iter = int(keep_iter or 0)

    def checkpoint_name(self, schedule, step):
        """Name of the checkpoint saved after global ``step``, or None."""
        if schedule.is_epoch_end(step):
            return 'epoch_%d.ckpt' % (schedule.epoch_of(step) + 1)
        if self.snapshot_iters and (step + 1) % self.snapshot_iters == 0:
            return 'iter_%d.ckpt' % (step + 1)
        return None

    def after_step(self, trainer, step, results):
        name = self.checkpoint_name(trainer.schedule, step)
        if name is None:
            return
        guard = getattr(trainer, 'divergence', None)
        problem = guard.problem if guard is not None else None
        if problem is None and getattr(trainer, 'weight_norm', None) is not None:
            norm = float(trainer.sess.run(trainer.weight_norm))
            if not math.isfinite(norm):
                problem = 'the global norm of the weights is %s' % norm
        if problem is not None:
            msg = 'not saving %s after step %d: %s' % (name, step, problem)
            trainer.logger.warning(msg)
            tqdm.write('lighthead: ' + msg)
            return
        if trainer.schedule.is_epoch_end(step):
            trainer.sess.run(trainer.set_epoch,
                             {trainer.epoch_ph: trainer.schedule.epoch_of(step) + 1})
        prefix = ckpt.save_checkpoint(trainer.saver, trainer.sess, self.model_dir, name,
                                      keep_iter=self.keep_iter)
        if guard is not None:
            guard.saved_checkpoint(step, prefix)
        trainer.logger.info('saved %s', prefix)
