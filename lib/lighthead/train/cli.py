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


def resolve_weights(cfg, arg):
    """The pretrained-weights path to load, or None. A missing default file is an error."""
    if arg is not None:
        if arg.lower() == 'none':
            return None
        path = arg
    else:
        path = cfg.weight
        if not path:
            return None
    exists = os.path.exists(path) or os.path.exists(path + '.index')
    if not exists:
        raise SystemExit(
            'lighthead: pretrained weights %s not found.\nPut the checkpoint there, pass '
            '--weights PATH, or train from scratch with --weights none (then set '
            'bn_training=True and freeze_at=0).' % path)
    return path


def main(cfg, network_cls, argv=None):
    """Entry point used by every experiment's ``train.py``."""
    from lighthead.train.checkpoint import latest_checkpoint
    from lighthead.train.trainer import Trainer, TrainingDiverged, plot_losses
    from lighthead.utils.devices import parse_devices
    args = build_parser().parse_args(argv)
    try:
        apply_overrides(cfg, args.overrides)
        devices = parse_devices(args.devices)
    except (KeyError, ValueError) as e:
        raise SystemExit('lighthead: %s' % (e.args[0] if e.args else e))
    resuming = args.resume and latest_checkpoint(cfg.model_dump_dir) is not None
    weights = None if resuming else resolve_weights(cfg, args.weights)
    trainer = Trainer(cfg, network_cls(), devices, iters_per_epoch=args.iters_per_epoch)
    try:
        trainer.train(resume=args.resume, weights=weights)
    except TrainingDiverged as e:
        print('lighthead: %s' % e, file=sys.stderr)
        raise SystemExit(2)
    csv = os.path.join(cfg.log_dir, 'losses.csv')
    if os.path.exists(csv):
        print('lighthead: loss plot %s' % plot_losses(csv, os.path.join(cfg.log_dir, 'losses.png')))
    return trainer
