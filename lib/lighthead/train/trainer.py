"""Multi-tower training: one tower per device, summed gradients, atomic checkpoints, resume.

Each tower computes ``loss / num_towers``; the last tower adds the weight decay once; the
gradients are summed over towers, so the step equals the mean data-loss gradient plus the weight
decay gradient, as the original. Variables live on ``/cpu:0``. The gradients of the variables
the network declares (``network.gradient_multipliers()``: the large separable conv's, by
``cfg.large_sep_conv_grad_mult``) are multiplied; the losses logged are the network's
``loss_names`` and their total ``tot_losses``.

The loop (:func:`lighthead.train.hooks.run_loop`) runs a step and hands its results to the
hooks (:meth:`Trainer.build_hooks`), which do everything else: the NaN stop, timing,
``log/losses.csv`` (with the gradient norm of each part of the detector, ``network.part_of``,
and the network's training-health figures, ``get_health_collection``), ``log/train.log``,
TensorBoard, the head-at-chance warning (:class:`lighthead.train.health.HeadHealthCheck`), the
progress bar and the checkpoint schedule.
"""
import collections
import logging
import os
import time

import numpy as np

from lighthead import checkpoint as ckpt
from lighthead.compat import tf
from lighthead.config import to_json
from lighthead.data.pipeline import TrainDataFlow
from lighthead.datasets import load_dataset
from lighthead.train import hooks as hooklib
from lighthead.train import run_lock
from lighthead.train.health import HeadHealthCheck
from lighthead.train.hooks import TrainingDiverged  # noqa: F401  (raised by NaNStopHook)
from lighthead.train.schedule import Schedule
from lighthead.utils.devices import setup_towers
from lighthead.utils.tf_utils.weights import load_pretrained

_VARIABLE_OPS = ('Variable', 'VariableV2', 'VarHandleOp')


def _tower_device(device):
    def place(op):
        return '/cpu:0' if op.type in _VARIABLE_OPS else device
    return place


def _sum_gradients(tower_grads):
    summed = []
    for grads_and_vars in zip(*tower_grads):
        var = grads_and_vars[0][1]
        grads = [g for g, _ in grads_and_vars if g is not None]
        if not grads:
            continue
        with tf.device('/cpu:0'):
            summed.append((tf.add_n(grads) if len(grads) > 1 else grads[0], var))
    return summed


def _scaled(grad, multiplier):
    return grad if multiplier == 1.0 else grad * multiplier


def _setup_logging(cfg):
    os.makedirs(cfg.log_dir, exist_ok=True)
    logger = logging.getLogger('lighthead.train')
    logger.setLevel(logging.INFO)
    for h in list(logger.handlers):
        logger.removeHandler(h)
    handler = logging.FileHandler(os.path.join(cfg.log_dir, 'train.log'))
    handler.setFormatter(logging.Formatter('%(asctime)s %(message)s'))
    logger.addHandler(handler)
    logger.propagate = False
    return logger


class Trainer(object):
    """Builds the towers for ``network`` and runs the schedule of ``cfg``.

    ``hooks``: more :class:`lighthead.train.hooks.Hook` objects for every run, after the
    default ones but before the checkpoint (:meth:`build_hooks`).
    """

    def __init__(self, cfg, network, devices, iters_per_epoch=None, hooks=()):
        self.cfg = cfg
        self.extra_hooks = list(hooks)
        self.network = network
        self.num_towers = len(devices)
        self.tower_devices, self.session_config = setup_towers(devices)
        images_per_step = self.num_towers * cfg.train_batch_per_gpu
        if iters_per_epoch is None:
            iters_per_epoch = max(1, cfg.nr_image_per_epoch // images_per_step)
        self.schedule = Schedule(cfg, self.num_towers, iters_per_epoch)
        self.images_per_step = images_per_step
        self.graph = tf.Graph()
        with self.graph.as_default():
            self._build()

    # ------------------------------------------------------------------ graph
    def _build(self):
        cfg = self.cfg
        tf.set_random_seed(cfg.seed)
        with tf.device('/cpu:0'):
            self.global_step = tf.train.get_or_create_global_step()
            self.epoch = tf.get_variable('epoch', [], tf.int64, tf.zeros_initializer(),
                                         trainable=False)
            self.epoch_ph = tf.placeholder(tf.int64, [])
            self.set_epoch = tf.assign(self.epoch, self.epoch_ph)
            self.lr = tf.get_variable('learning_rate', [], tf.float32, tf.zeros_initializer(),
                                      trainable=False)
            self.lr_ph = tf.placeholder(tf.float32, [])
            self.set_lr = tf.assign(self.lr, self.lr_ph)
        optimizer = tf.train.MomentumOptimizer(self.lr, cfg.momentum)

        self.inputs, tower_grads, tower_losses = [], [], []
        for i, device in enumerate(self.tower_devices):
            with tf.device(_tower_device(device)), tf.name_scope('tower_%d' % i), \
                    tf.variable_scope(tf.get_variable_scope(), reuse=i > 0):
                inputs = self.network.get_inputs()
                loss = self.network.inference('TRAIN', inputs) / self.num_towers
                if i == self.num_towers - 1:
                    decay = tf.get_collection(tf.GraphKeys.REGULARIZATION_LOSSES)
                    if decay:
                        loss = loss + tf.add_n(decay, name='weight_decay')
                if i == 0:
                    update_ops = tf.get_collection(tf.GraphKeys.UPDATE_OPS, 'tower_0')
                grads = optimizer.compute_gradients(loss, tf.trainable_variables())
                self.inputs.append(inputs)
                tower_grads.append(grads)
                tower_losses.append(loss)

        grads = _sum_gradients(tower_grads)
        multipliers = self.network.gradient_multipliers()
        grads = [(_scaled(g, multipliers.get(v, 1.0)), v) for g, v in grads]
        parts = collections.OrderedDict()
        for g, v in grads:
            parts.setdefault(self.network.part_of(v), []).append(g)
        self.part_grad_norms = collections.OrderedDict(
            ('grad_' + part, tf.global_norm(gs)) for part, gs in parts.items())
        # Checked after every step, before any checkpoint is written: a non-finite loss or
        # gradient stops the run, so no checkpoint ever holds the weights it produced.
        self.grad_norm = tf.global_norm([g for g, _ in grads], name='grad_norm')
        if cfg.clip_gradient_norm:
            clipped, _ = tf.clip_by_global_norm([g for g, _ in grads], cfg.clip_gradient_norm,
                                                use_norm=self.grad_norm)
            grads = [(g, v) for g, (_, v) in zip(clipped, grads)]
        with tf.control_dependencies(update_ops):
            self.train_op = optimizer.apply_gradients(grads, global_step=self.global_step)
        collection = self.network.get_train_collection()
        self.loss_keys = tuple(self.network.loss_names) + ('tot_losses',)
        self.loss_tensors = [collection[k] / self.num_towers for k in self.loss_keys]
        self.health_tensors = self.network.get_health_collection()
        self.health_tensors.update(self.part_grad_norms)
        self.health_keys = list(self.health_tensors)
        # Checked before each save (CheckpointHook): no checkpoint holds non-finite weights.
        self.weight_norm = tf.global_norm(tf.trainable_variables(), name='weight_norm')
        self.saver = tf.train.Saver(max_to_keep=None)
        self.init_op = tf.global_variables_initializer()

    # ------------------------------------------------------------------ run
    def _feed(self, batches):
        feed = {}
        for inputs, batch in zip(self.inputs, batches):
            data, im_info, boxes = inputs
            feed[data] = batch['data']
            feed[im_info] = batch['im_info']
            feed[boxes] = batch['boxes']
        return feed

    def _start(self, sess, plan, logger):
        """Initialise, then execute ``plan`` (a :class:`lighthead.checkpoint.StartPlan`):
        restore its checkpoint (checked against the graph first), or load its pretrained
        weights, or nothing more. Returns the start step (the restored global step, else 0).

        Raises ``CheckpointNotFoundError``/``CheckpointMismatchError`` (resume) and what
        ``load_pretrained`` raises (pretrained weights).
        """
        sess.run(self.init_op)
        if plan.note:
            logger.info(plan.note)
            print('lighthead: ' + plan.note)
        if plan.action == ckpt.RESUME:
            ckpt.restore(sess, plan.path, saver=self.saver, experiment=self.cfg.exp_name)
            step = int(sess.run(self.global_step))
            logger.info('resumed from %s at step %d', plan.path, step)
            print('lighthead: resumed from %s (step %d, epoch %d)'
                  % (plan.path, step, sess.run(self.epoch)))
            return step
        if plan.action == ckpt.PRETRAINED:
            report = load_pretrained(sess, plan.path, self.cfg.weight_name_map,
                                     report_path=os.path.join(self.cfg.log_dir, 'weights.json'))
            logger.info('pretrained weights %s: %d restored, %d missing, %d unexpected',
                        plan.path, len(report['restored']), len(report['missing']),
                        len(report['unexpected']))
        return 0

    def train(self, resume=False, weights=None, max_steps=None, plan=None):
        """Run until the schedule ends (or ``max_steps`` more steps). Returns the final step.

        ``plan``: how to start (:func:`lighthead.checkpoint.plan_start`, as ``train.py`` makes
        it); None: ``plan_start(model_dump_dir, resume, weights)`` (``weights`` None: from
        scratch), raising ``CheckpointNotFoundError`` for missing weights.

        Holds the lock of ``cfg.output_dir`` (:mod:`lighthead.train.run_lock`) throughout,
        before writing anything there; raises ``RunLockedError`` when another run holds it.
        """
        with run_lock.acquire(self.cfg.output_dir):
            return self._train(resume, weights, max_steps, plan)

    def _train(self, resume, weights, max_steps, plan):
        if plan is None:
            plan = ckpt.plan_start(self.cfg.model_dump_dir, resume, weights or 'none')
        cfg = self.cfg
        for d in (cfg.output_dir, cfg.model_dump_dir, cfg.log_dir, cfg.tb_dir):
            os.makedirs(d, exist_ok=True)
        with open(os.path.join(cfg.output_dir, 'config.json'), 'w') as f:
            f.write(to_json(cfg))
        logger = _setup_logging(cfg)
        dataset = load_dataset(cfg, 'train')
        sched = self.schedule
        logger.info('towers %s, %d images/step, %d iters/epoch, %d steps', self.tower_devices,
                    self.images_per_step, sched.iters_per_epoch, sched.total_steps)

        with self.graph.as_default(), tf.Session(config=self.session_config) as sess:
            step = self._start(sess, plan, logger)
            end = sched.total_steps if max_steps is None else min(sched.total_steps, step + max_steps)
            if step >= end:
                print('lighthead: training already finished at step %d' % step)
                return step
            self.sess, self.logger = sess, logger
            self._current_lr = None
            flow = TrainDataFlow(dataset.records, cfg, self.num_towers, start_step=step)
            try:
                step = hooklib.run_loop(self, self.build_hooks(), step, end,
                                        lambda s: self._run_step(flow, s))
            finally:
                flow.close()
                self.sess = None
        return step

    def build_hooks(self):
        """The hooks of one run (:mod:`lighthead.train.hooks`), in the order they see a step:
        NaN stop, timer, ``log/losses.csv``, ``log/train.log`` and TensorBoard (every
        ``cfg.log_interval`` steps), the head-at-chance check, the progress bar, the hooks
        given to the constructor, and the checkpoint schedule (``cfg.snapshot_iters``,
        ``cfg.keep_iter_checkpoints``)."""
        cfg = self.cfg
        return [hooklib.NaNStopHook(),
                hooklib.TimerHook(),
                hooklib.CsvLogHook(os.path.join(cfg.log_dir, 'losses.csv')),
                hooklib.TrainLogHook(cfg.log_interval),
                hooklib.TensorBoardHook(cfg.tb_dir, cfg.log_interval),
                hooklib.HealthCheckHook(HeadHealthCheck(cfg)),
                hooklib.ProgressBarHook(cfg.exp_name)] + self.extra_hooks + [
                hooklib.CheckpointHook(cfg.model_dump_dir, cfg.snapshot_iters,
                                       cfg.get('keep_iter_checkpoints'))]

    def _run_step(self, flow, step):
        """Run global ``step``: its batch from ``flow``, the schedule's learning rate, one
        optimizer step. Returns its :class:`lighthead.train.hooks.StepResults`."""
        t0 = time.time()
        batches = next(flow)
        t1 = time.time()
        lr = self.schedule.lr(step)
        if lr != self._current_lr:
            self.sess.run(self.set_lr, {self.lr_ph: lr})
            self._current_lr = lr
        _, values, grad_norm, health = self.sess.run(
            [self.train_op, self.loss_tensors, self.grad_norm, self.health_tensors],
            self._feed(batches))
        t2 = time.time()
        return hooklib.StepResults(
            epoch=self.schedule.epoch_of(step), lr=lr,
            losses=collections.OrderedDict(zip(self.loss_keys, (float(v) for v in values))),
            grad_norm=float(grad_norm),
            health=collections.OrderedDict((k, float(health[k])) for k in self.health_keys),
            data_s=t1 - t0, step_s=t2 - t0,
            images_per_s=self.images_per_step / max(t2 - t0, 1e-9))


def plot_losses(csv_path, png_path):
    """Plot the loss curves of ``losses.csv`` (its columns between ``lr`` and ``grad_norm``)
    into ``png_path``."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    table = np.genfromtxt(csv_path, delimiter=',', names=True)
    table = np.atleast_1d(table)
    columns = table.dtype.names
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for key in columns[columns.index('lr') + 1:columns.index('grad_norm')]:
        values = table[key]
        window = max(1, len(values) // 50)
        smooth = np.convolve(values, np.ones(window) / window, mode='valid')
        ax.plot(table['step'][window - 1:], smooth, label=key)
    ax.set_xlabel('iteration')
    ax.set_ylabel('loss (moving average)')
    ax.set_yscale('log')
    ax.legend()
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return png_path
