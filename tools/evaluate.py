"""Evaluate COCO-format detections with pycocotools.

    python tools/evaluate.py --gt ANNOTATIONS.json --dt DETECTIONS.json [--per-class] [--out METRICS.json]
"""
import argparse
import json
import os
import sys

from lighthead.eval.coco_eval import coco_evaluate, per_class_table


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument('--gt', required=True, help='COCO instances JSON with the ground truth')
    p.add_argument('--dt', required=True, help='COCO results JSON (list of detections)')
    p.add_argument('--per-class', action='store_true', help='also print AP per class')
    p.add_argument('--out', help='write the metrics as JSON here')
    args = p.parse_args(argv)
    for path in (args.gt, args.dt):
        if not os.path.exists(path):
            sys.exit('evaluate.py: %s not found' % path)
    metrics, summary = coco_evaluate(args.gt, args.dt)
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
