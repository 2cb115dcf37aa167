"""Detect objects in images with a trained checkpoint; draw them and write them as JSON (SPEC 5.4).

    python tools/predict.py --exp experiments/user --ckpt PATH (--images DIR | FILE ...)
        --out DIR [--thresh 0.3] [--json FILE] [--tile SIZE --overlap PX] [--skip-bad]
        [--set KEY=VALUE] [--set KEY=VALUE] ...

The network is the experiment's own: ``network_desp.Network`` of ``--exp``, bound to its
``config.py`` (``lighthead.config.load_experiment``), as ``test.py`` builds it. Config overrides
are the ``KEY=VALUE`` of ``train.py``/``test.py`` (e.g. ``TEST.NMS=0.3``), each given with its
own ``--set`` (``--set TEST.NMS=0.3 --set eval_image_short_size=600``) because the positional
arguments here are image files (whose names may contain ``=``).

``--ckpt`` is a checkpoint prefix (``.../epoch_30.ckpt``), a ``model_dump`` folder (its
newest checkpoint) or an output folder holding ``model_dump/``
(:func:`lighthead.checkpoint.resolve_checkpoint`). A missing checkpoint, or one that does not
fit the experiment's network (another experiment, backbone or class count), exits non-zero
with one line ``lighthead: ...``. Each image gets ``DIR/<name>.png`` with its detections
drawn. The JSON
(``--json FILE``, default ``DIR/detections.json``) is a list, one entry per image:
``{"file", "boxes": [[x1, y1, x2, y2], ...], "scores", "classes", "class_names"}`` with
inclusive-corner boxes in original-image pixels, class ids 1..C-1 and their names, by
descending score. Only detections with score >= ``--thresh`` are drawn and written.

``--images DIR`` takes the regular files of ``DIR`` with an image extension (a folder named
``x.png`` is not an image). The JSON is written atomically (a temporary file renamed over it)
at least every ``JSON_EVERY_S`` seconds and always when the run ends, also when it stops on an
error or Ctrl-C, so the images done are never lost. An image that cannot be read or decoded
stops the run with one line ``predict.py: cannot read image FILE: ...`` saying where the
detections done so far are (exit status 1); with ``--skip-bad`` it is reported on one line
(``predict.py: skipped bad image: cannot read image FILE: ...``) and the run goes on.

``--tile SIZE`` predicts a large image by sliding windows of ``SIZE x SIZE`` original-image
pixels, neighbours sharing ``--overlap PX`` (default 0), each window resized by the
experiment's eval rule (so ``SIZE`` = the training tile size predicts at the training scale);
the detections are shifted to the image and merged per class so that an object cut by a window
edge but whole in another window is reported once, with its whole box (rule:
:mod:`lighthead.eval.tiling`). Choose ``PX`` at least the size of the largest object. Without
``--tile`` the whole image is resized and predicted at once.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

from lighthead.checkpoint import (CheckpointMismatchError, CheckpointNotFoundError,
                                  resolve_checkpoint)
from lighthead.config import load_experiment
from lighthead.data.transforms import ImageReadError
from lighthead.eval.predictor import Predictor
from lighthead.utils.vis import draw_detections, write_png

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')
JSON_EVERY_S = 30.0  # the detections JSON is rewritten at least this often during a run


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument('--exp', required=True,
                   help='experiment folder (holds config.py and network_desp.py)')
    p.add_argument('--ckpt', required=True, help='checkpoint prefix or model_dump folder')
    p.add_argument('--images', help='folder of images (all files with an image extension)')
    p.add_argument('files', nargs='*', metavar='FILE', help='image files (instead of --images)')
    p.add_argument('--out', required=True, help='folder for the PNGs')
    p.add_argument('--thresh', type=float, default=0.3, help='minimum score kept (default 0.3)')
    p.add_argument('--json', help='detections JSON (default: OUT/detections.json)')
    p.add_argument('--tile', type=int, default=0, metavar='SIZE',
                   help='predict by sliding windows of SIZE original-image pixels (default: '
                        'the whole image at once)')
    p.add_argument('--overlap', type=int, default=0, metavar='PX',
                   help='pixels shared by neighbouring windows (with --tile; default 0)')
    p.add_argument('--skip-bad', action='store_true',
                   help='report an image that cannot be read on one line and go on (default: '
                        'stop there, keeping the detections of the images done)')
    p.add_argument('--set', dest='overrides', action='append', default=[], metavar='KEY=VALUE',
                   help='config override as in train.py/test.py (e.g. TEST.NMS=0.3); one per '
                        '--set, repeat for more')
    return p


def list_images(images_dir, files):
    """Sorted image paths of ``images_dir`` (its regular files with an image extension), or
    ``files``; IOError if none, or if one of ``files`` is missing or not a regular file."""
    if images_dir:
        if not os.path.isdir(images_dir):
            raise IOError('image folder %s not found' % images_dir)
        paths = sorted(os.path.join(images_dir, n) for n in os.listdir(images_dir)
                       if n.lower().endswith(IMAGE_EXTENSIONS) and
                       os.path.isfile(os.path.join(images_dir, n)))
        if not paths:
            raise IOError('no image files (%s) in %s' % (' '.join(IMAGE_EXTENSIONS), images_dir))
        return paths
    missing = [f for f in files if not os.path.isfile(f)]
    if missing:
        raise IOError('image file(s) not found (or not a regular file): %s' % ', '.join(missing))
    return list(files)


def output_names(paths):
    """``<name>.png`` for each path; IOError if two images would write the same file."""
    names = [os.path.splitext(os.path.basename(p))[0] + '.png' for p in paths]
    seen = {}
    for path, name in zip(paths, names):
        if name in seen:
            raise IOError('%s and %s would both be drawn to %s' % (seen[name], path, name))
        seen[name] = path
    return names


def select(det, thresh):
    """Detections with score >= thresh, by descending score (numpy arrays)."""
    order = np.argsort(-det['scores'], kind='stable')
    keep = order[det['scores'][order] >= thresh]
    return {k: v[keep] for k, v in det.items()}


def to_record(path, det, class_names):
    return {'file': path,
            'boxes': [[float(v) for v in box] for box in det['boxes']],
            'scores': [float(s) for s in det['scores']],
            'classes': [int(c) for c in det['classes']],
            'class_names': [class_names[int(c)] for c in det['classes']]}


def write_json(path, records):
    """Write ``records`` to ``path`` atomically: a temporary file in the same folder, renamed
    over ``path`` (a reader never sees a half-written file)."""
    tmp = '%s.tmp%d' % (path, os.getpid())
    with open(tmp, 'w') as f:
        f.write('[\n' + ',\n'.join(json.dumps(r) for r in records) + '\n]\n')
    os.replace(tmp, path)


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if bool(args.images) == bool(args.files):
        parser.error('give either --images DIR or image files')
    if args.tile < 0 or (args.tile and not 0 <= args.overlap < args.tile):
        parser.error('--tile must be > 0 and --overlap in [0, tile), got %d and %d'
                     % (args.tile, args.overlap))
    if args.overlap and not args.tile:
        parser.error('--overlap needs --tile')
    try:
        cfg, network_cls = load_experiment(args.exp, args.overrides)
        checkpoint = resolve_checkpoint(args.ckpt)
        paths = list_images(args.images, args.files)
        names = output_names(paths)
    except CheckpointNotFoundError as e:  # an IOError: before the general case
        sys.exit('lighthead: %s' % e)
    except (IOError, ImportError, KeyError, ValueError) as e:
        sys.exit('predict.py: %s' % (e.args[0] if isinstance(e, KeyError) and e.args else e))
    os.makedirs(args.out, exist_ok=True)
    json_path = args.json or os.path.join(args.out, 'detections.json')

    try:
        predictor = Predictor(cfg, network_cls(), checkpoint)
    except (CheckpointNotFoundError, CheckpointMismatchError) as e:
        sys.exit('lighthead: %s' % e)
    records, skipped, bad = [], [], None
    written = time.time()
    try:
        for path, name in zip(paths, names):
            try:
                det, raw = predictor.predict_file(path, args.tile, args.overlap)
            except ImageReadError as e:  # names the file
                if not args.skip_bad:
                    bad = e
                    break
                skipped.append(path)
                print('predict.py: skipped bad image: %s' % e, file=sys.stderr)
                continue
            det = select(det, args.thresh)
            write_png(os.path.join(args.out, name),
                      draw_detections(raw, det['boxes'], det['scores'], det['classes'],
                                      cfg.class_names))
            records.append(to_record(path, det, cfg.class_names))
            print('%s: %d detections' % (path, len(det['scores'])))
            if time.time() - written >= JSON_EVERY_S:
                write_json(json_path, records)
                written = time.time()
    finally:
        predictor.close()
        write_json(json_path, records)  # also on an error or Ctrl-C: keep what is done
    if bad is not None:
        sys.exit('predict.py: %s; stopped there: the detections of the %d images before it '
                 'are in %s (--skip-bad skips images that cannot be read)'
                 % (bad, len(records), json_path))
    print('wrote %d images to %s and detections to %s%s' % (
        len(records), args.out, json_path,
        ' (%d bad images skipped, named above)' % len(skipped) if skipped else ''))
    return records


if __name__ == '__main__':
    main()
