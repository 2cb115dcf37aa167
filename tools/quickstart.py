"""Quickstart: generate the bundled shapes data, train Xception* Light-Head R-CNN on it, evaluate.

    python tools/quickstart.py [--short] [--min-ap50 0.9] [-d 0-1]

Runs the experiment's own ``train.py`` and ``test.py -s`` (experiments/quickstart), then prints
COCO AP, AP50 and per-class AP, the wall-clock times, and where the pictures and the loss plot
are. ``--short`` is the few-minute version CI runs; ``--min-ap50`` exits non-zero below a floor.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..'))
EXP = os.path.join(REPO, 'experiments', 'quickstart')
DATA = os.path.join(REPO, 'data', 'generated', 'shapes')

# Overrides of the short run: fewer images per epoch, fewer epochs.
SHORT = ['nr_image_per_epoch=400', 'max_epoch=3', 'lr_steps=[[2, 1.0], [3, 0.1]]']


def run(cmd, cwd=REPO, env=None):
    print('$ ' + ' '.join(cmd), flush=True)
    subprocess.run(cmd, cwd=cwd, env=env, check=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument('--short', action='store_true', help='the few-minute version (CI)')
    p.add_argument('--min-ap50', type=float, default=None, help='fail below this AP50')
    p.add_argument('-d', '--devices', default='0-1', help='training towers (default 0-1)')
    p.add_argument('--output', default=None, help='output folder (default output/quickstart)')
    args = p.parse_args(argv)

    env = dict(os.environ)
    output = os.path.abspath(args.output or os.path.join(
        REPO, 'output', 'quickstart_short' if args.short else 'quickstart'))
    env['OUTPUT_DIR'] = output
    if os.path.exists(os.path.join(output, 'model_dump')):
        shutil.rmtree(output)
    overrides = SHORT if args.short else []
    py = sys.executable

    t0 = time.time()
    if not os.path.exists(os.path.join(DATA, 'annotations', 'val.json')):
        run([py, '-m', 'lighthead.datasets.synthetic', '--out', DATA], env=env)
    t1 = time.time()
    run([py, os.path.join(EXP, 'train.py'), '-d', args.devices] + overrides, env=env)
    t2 = time.time()
    with open(os.path.join(output, 'config.json')) as f:
        epochs = json.load(f)['max_epoch']
    run([py, 'test.py', '-d', '0', '-se', str(epochs), '-s'] + overrides, cwd=EXP, env=env)
    t3 = time.time()

    with open(os.path.join(output, 'eval_dump', 'epoch_%d_metrics.json' % epochs)) as f:
        metrics = json.load(f)
    print('\n== quickstart (%s)' % ('short' if args.short else 'full'))
    print('data %.0f s, training %.0f s, evaluation %.0f s, total %.1f min' % (
        t1 - t0, t2 - t1, t3 - t2, (t3 - t0) / 60.0))
    print('AP %.3f  AP50 %.3f  AP75 %.3f' % (metrics['AP'], metrics['AP50'], metrics['AP75']))
    for name, ap in metrics['per_class'].items():
        print('  %-10s AP %.3f' % (name, ap))
    print('pictures: %s' % os.path.join(output, 'eval_dump', 'vis_epoch_%d' % epochs))
    print('loss plot: %s' % os.path.join(output, 'log', 'losses.png'))
    if args.min_ap50 is not None and metrics['AP50'] < args.min_ap50:
        sys.exit('quickstart: AP50 %.3f is below the floor %.3f' % (metrics['AP50'], args.min_ap50))
    return metrics


if __name__ == '__main__':
    main()
