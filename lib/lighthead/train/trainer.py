"""Multi-tower training: one tower per device, summed gradients, atomic checkpoints, resume.

Each tower computes ``loss / num_towers``; the last tower adds the weight decay once; the
gradients are summed over towers, so the step equals the mean data-loss gradient plus the weight
decay gradient, as the original. Variables live on ``/cpu:0``. Each gradient is multiplied by
the network's ``gradient_multiplier`` of its variable (the large separable conv's
``cfg.large_sep_conv_grad_mult``).

Every step also logs the gradient norm of each part of the detector (``network.part_of``) and
the network's training-health figures (``get_health_collection``) to ``log/losses.csv``, and
:class:`lighthead.train.health.HeadHealthCheck` warns when the head stays at chance.
"""
import collections
import json
import logging
import math
import os
import time

import numpy as np
from tqdm import tqdm

from lighthead.compat import tf
from lighthead.config import to_json
from lighthead.data.pipeline import TrainDataFlow
from lighthead.datasets import load_dataset
from lighthead.train import checkpoint as ckpt
from lighthead.train.health import HeadHealthCheck
from lighthead.train.schedule import Schedule
from lighthead.utils.devices import setup_towers
from lighthead.utils.tf_utils.weights import load_pretrained

LOSS_KEYS = ('rpn_loss_cls', 'rpn_loss_box', 'loss_cls', 'loss_box', 'tot_losses')
_VARIABLE_OPS = ('Variable', 'VariableV2', 'VarHandleOp')


class TrainingDiverged(RuntimeError):
    """A loss or the gradient became NaN or infinite."""


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
    """Builds the towers for ``network`` and runs the schedule of ``cfg``."""

    def __init__(self, cfg, network, devices, iters_per_epoch=None):
        self.cfg = cfg
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
        grads = [(_scaled(g, self.network.gradient_multiplier(v)), v) for g, v in grads]
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
        self.loss_tensors = [collection[k] / self.num_towers for k in LOSS_KEYS]
        self.health_tensors = self.network.get_health_collection()
        self.health_tensors.update(self.part_grad_norms)
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

    def _start(self, sess, resume, weights, logger):
        """Initialise, then resume or load pretrained weights. Returns the start step."""
        sess.run(self.init_op)
        latest = ckpt.latest_checkpoint(self.cfg.model_dump_dir) if resume else None
        if resume and latest is None:
            logger.info('no checkpoint in %s: starting from scratch', self.cfg.model_dump_dir)
            print('lighthead: -c given but no checkpoint in %s; starting a new run'
                  % self.cfg.model_dump_dir)
        if latest is not None:
            self.saver.restore(sess, latest)
            step = int(sess.run(self.global_step))
            logger.info('resumed from %s at step %d', latest, step)
            print('lighthead: resumed from %s (step %d, epoch %d)'
                  % (latest, step, sess.run(self.epoch)))
            return step
        if weights:
            report = load_pretrained(sess, weights, self.cfg.weight_name_map,
                                     report_path=os.path.join(self.cfg.log_dir, 'weights.json'))
            logger.info('pretrained weights %s: %d restored, %d missing, %d unexpected', weights,
                        len(report['restored']), len(report['missing']), len(report['unexpected']))
        return 0

    def train(self, resume=False, weights=None, max_steps=None):
        """Run until the schedule ends (or ``max_steps`` more steps). Returns the final step."""
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
            step = self._start(sess, resume, weights, logger)
            end = sched.total_steps if max_steps is None else min(sched.total_steps, step + max_steps)
            if step >= end:
                print('lighthead: training already finished at step %d' % step)
                return step
            writer = tf.summary.FileWriter(cfg.tb_dir)
            csv_path = os.path.join(cfg.log_dir, 'losses.csv')
            new_csv = not os.path.exists(csv_path) or step == 0
            csv = open(csv_path, 'w' if new_csv else 'a')
            health_keys = list(self.health_tensors)
            if new_csv:
                csv.write('step,epoch,lr,' + ','.join(LOSS_KEYS) + ',grad_norm,images_per_s,'
                          'data_s,' + ','.join(health_keys) + '\n')
            health_check = HeadHealthCheck(cfg)
            flow = TrainDataFlow(dataset.records, cfg, self.num_towers, start_step=step)
            current_lr = None
            data_time = step_time = 0.0
            timed_steps = 0
            bar = tqdm(total=end, initial=step, desc=cfg.exp_name, dynamic_ncols=True)
            try:
                while step < end:
                    t0 = time.time()
                    batches = next(flow)
                    t1 = time.time()
                    lr = sched.lr(step)
                    if lr != current_lr:
                        sess.run(self.set_lr, {self.lr_ph: lr})
                        current_lr = lr
                    _, values, grad_norm, health = sess.run(
                        [self.train_op, self.loss_tensors, self.grad_norm, self.health_tensors],
                        self._feed(batches))
                    health = {k: float(v) for k, v in health.items()}
                    t2 = time.time()
                    if not all(math.isfinite(float(v)) for v in list(values) + [grad_norm]):
                        last = ckpt.latest_checkpoint(cfg.model_dump_dir)
                        msg = ('loss or gradient became non-finite at step %d (epoch %d): %s, '
                               'gradient norm %s; the newest checkpoint is %s' % (
                                   step, sched.epoch_of(step) + 1,
                                   dict(zip(LOSS_KEYS, map(float, values))), float(grad_norm),
                                   last))
                        logger.error(msg)
                        raise TrainingDiverged(msg)
                    if step > 0:  # the first step includes graph warm-up
                        data_time += t1 - t0
                        step_time += t2 - t0
                        timed_steps += 1
                    epoch = sched.epoch_of(step)
                    speed = self.images_per_step / max(t2 - t0, 1e-9)
                    losses = dict(zip(LOSS_KEYS, (float(v) for v in values)))
                    losses['grad_norm'] = float(grad_norm)
                    csv.write('%d,%d,%.6g,%s,%.6g,%.3f,%.4f,%s\n' % (
                        step, epoch, lr, ','.join('%.6g' % losses[k] for k in LOSS_KEYS),
                        grad_norm, speed, t1 - t0,
                        ','.join('%.6g' % health[k] for k in health_keys)))
                    if step % cfg.log_interval == 0 or step + 1 == end:
                        self._log(writer, logger, step, epoch, lr, losses, speed, t1 - t0,
                                  health)
                    warning = health_check.update(step, health, last_step=step + 1 == end)
                    if warning:
                        logger.warning(warning)
                        tqdm.write('lighthead: ' + warning)
                    bar.set_postfix(ep=epoch + 1, lr='%.2g' % lr,
                                    loss='%.3f' % losses['tot_losses'],
                                    cls='%.3f' % losses['loss_cls'],
                                    acc='%.2f/%.2f' % (health['acc_fg'], health['acc_bg']),
                                    recall='%.2f' % health['rpn_recall'])
                    bar.update(1)
                    step += 1
                    if sched.is_epoch_end(step - 1):
                        sess.run(self.set_epoch, {self.epoch_ph: epoch + 1})
                        prefix = ckpt.save_checkpoint(self.saver, sess, cfg.model_dump_dir,
                                                      'epoch_%d.ckpt' % (epoch + 1))
                        logger.info('saved %s', prefix)
                    elif cfg.snapshot_iters and step % cfg.snapshot_iters == 0:
                        prefix = ckpt.save_checkpoint(self.saver, sess, cfg.model_dump_dir,
                                                      'iter_%d.ckpt' % step)
                        logger.info('saved %s', prefix)
                    csv.flush()
            finally:
                bar.close()
                flow.close()
                csv.close()
                writer.close()
            self.stats = dict(steps=timed_steps, data_s=data_time, step_s=step_time,
                              images_per_s=(timed_steps * self.images_per_step / step_time
                                            if step_time else float('nan')))
            if timed_steps:
                logger.info('timing: %s', json.dumps(self.stats))
                print('lighthead: %.2f images/s, data loading %.1f%% of the step time' % (
                    self.stats['images_per_s'], 100.0 * data_time / max(step_time, 1e-9)))
        return step

    def _log(self, writer, logger, step, epoch, lr, losses, speed, data_s, health):
        logger.info('epoch %d iter %d, %s, lr: %.6g, speed: %.2f img/s, data: %.3fs, health: %s',
                    epoch + 1, step, ', '.join('%s: %.4f' % kv for kv in losses.items()), lr,
                    speed, data_s, ', '.join('%s: %.4g' % kv for kv in health.items()))
        values = [tf.Summary.Value(tag='loss/' + k, simple_value=v) for k, v in losses.items()]
        values += [tf.Summary.Value(tag='health/' + k, simple_value=v)
                   for k, v in health.items() if math.isfinite(v)]
        values.append(tf.Summary.Value(tag='lr', simple_value=lr))
        values.append(tf.Summary.Value(tag='speed/images_per_s', simple_value=speed))
        values.append(tf.Summary.Value(tag='speed/data_s', simple_value=data_s))
        writer.add_summary(tf.Summary(value=values), step)
        writer.flush()


def plot_losses(csv_path, png_path):
    """Plot the loss curves of ``losses.csv`` into ``png_path``."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    table = np.genfromtxt(csv_path, delimiter=',', names=True)
    table = np.atleast_1d(table)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for key in LOSS_KEYS:
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
