"""Evaluate COCO-format detections with pycocotools.

    python tools/evaluate.py --gt ANNOTATIONS.json --dt DETECTIONS.json [--per-class] [--out METRICS.json]

Bad input exits non-zero with one line ``evaluate.py: ...`` naming the file and the record: a
file that is not JSON, a ground-truth image or annotation the dataset loaders would refuse
(:func:`lighthead.datasets.load_coco`: e.g. a non-finite or empty box), a detection whose
``image_id`` or ``category_id`` the ground truth does not have, or without a finite score or
bbox (:func:`lighthead.eval.coco_eval.check_results`).
"""
import argparse
import json
import os
import sys

from lighthead.datasets import load_coco
from lighthead.eval.coco_eval import coco_evaluate, per_class_table


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument('--gt', required=True, help='COCO instances JSON with the ground truth')
    p.add_argument('--dt', required=True, help='COCO results JSON (list of detections)')
    p.add_argument('--per-class', action='store_true', help='also print AP per class')
    p.add_argument('--out', help='write the metrics as JSON here')
    args = p.parse_args(argv)
    for path in (args.gt, args.dt):
        if not os.path.isfile(path):
            sys.exit('evaluate.py: %s not found' % path)
    try:
        # The ground truth's records checked as training and test.py load them (no image files
        # needed): a bad one names the file and the image.
        load_coco(args.gt, os.path.dirname(os.path.abspath(args.gt)))
        metrics, summary = coco_evaluate(args.gt, args.dt)
    except (IOError, OSError, ValueError) as e:
        sys.exit('evaluate.py: %s' % e)
    print(summary, end='')
    if args.per_class:
        print(per_class_table(metrics['per_class']), end='')
    if args.out:
        keep = ('AP', 'AP50', 'AP75', 'APs', 'APm', 'APl', 'per_class')
        with open(args.out, 'w') as f:
            json.dump({k: metrics[k] for k in keep}, f, indent=2)
    return metrics


if __name__ == '__main__':
    main()
