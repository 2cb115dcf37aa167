"""``python experiments/<name>/train.py [-d 0-7] [-c] [--weights PATH|none] [KEY=VALUE ...]``."""
import argparse
import os
import sys

from lighthead.config import apply_overrides


def build_parser():
    p = argparse.ArgumentParser(description='Train a Light-Head R-CNN experiment.')
    p.add_argument('-d', '--devices', default='0',
                   help="devices, e.g. '0-7', '0,2,5', '0-1,4'; without GPUs, that many CPU towers")
    p.add_argument('-c', '--continue', dest='resume', action='store_true',
                   help='resume from the newest checkpoint in model_dump/')
    p.add_argument('--weights', default=None,
                   help="pretrained backbone checkpoint (slim ckpt or .npz), or 'none'")
    p.add_argument('--iters-per-epoch', type=int, default=None,
                   help='iterations per epoch (default: nr_image_per_epoch / images per step)')
    p.add_argument('overrides', nargs='*', metavar='KEY=VALUE',
                   help='config overrides, values as Python literals (TRAIN.RPN_BATCHSIZE=128)')
    return p


def main(cfg, network_cls, argv=None):
    """Entry point used by every experiment's ``train.py``: parse ``argv``, decide once how the
    run starts (:func:`lighthead.checkpoint.plan_start`: ``-c`` resumes from the newest
    checkpoint in ``cfg.model_dump_dir``, else ``--weights``/``cfg.weight`` or from scratch),
    train, and plot the losses. Returns the :class:`Trainer`.

    The run holds the lock of ``cfg.output_dir`` (:mod:`lighthead.train.run_lock`) from
    before anything is written there until it ends; another run on that folder is refused.

    Bad overrides or devices, an output folder in use by another run, missing pretrained
    weights, a checkpoint that does not fit the network, and a diverging run exit with one
    line ``lighthead: ...`` (SystemExit; exit status 2 for divergence, 1 otherwise).
    """
    from lighthead.train import run_lock
    from lighthead.utils.devices import parse_devices
    args = build_parser().parse_args(argv)
    try:
        apply_overrides(cfg, args.overrides)
        devices = parse_devices(args.devices)
    except (KeyError, ValueError) as e:
        raise SystemExit('lighthead: %s' % (e.args[0] if e.args else e))
    try:
        lock = run_lock.acquire(cfg.output_dir)
    except run_lock.RunLockedError as e:
        raise SystemExit('lighthead: %s' % e)
    try:
        return _run(cfg, network_cls, args, devices)
    finally:
        lock.release()


def _run(cfg, network_cls, args, devices):
    from lighthead.checkpoint import CheckpointMismatchError, CheckpointNotFoundError, plan_start
    from lighthead.train.trainer import Trainer, TrainingDiverged, plot_losses
    try:
        plan = plan_start(cfg.model_dump_dir, args.resume, args.weights, cfg.weight)
    except CheckpointNotFoundError as e:
        raise SystemExit('lighthead: %s' % e)
    trainer = Trainer(cfg, network_cls(), devices, iters_per_epoch=args.iters_per_epoch)
    try:
        trainer.train(plan=plan)
    except (CheckpointNotFoundError, CheckpointMismatchError) as e:
        raise SystemExit('lighthead: %s' % e)
    except TrainingDiverged as e:
        print('lighthead: %s' % e, file=sys.stderr)
        raise SystemExit(2)
    csv = os.path.join(cfg.log_dir, 'losses.csv')
    if os.path.exists(csv):
        print('lighthead: loss plot %s' % plot_losses(csv, os.path.join(cfg.log_dir, 'losses.png')))
    return trainer
