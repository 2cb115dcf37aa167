"""COCO bbox metrics through pycocotools' ``COCOeval``, with a per-class AP table."""
import contextlib
import copy
import io
import json

import numpy as np

METRIC_NAMES = ('AP', 'AP50', 'AP75', 'APs', 'APm', 'APl',
                'AR1', 'AR10', 'AR100', 'ARs', 'ARm', 'ARl')


def load_coco_gt(gt):
    """A pycocotools ``COCO`` from a path or an in-memory instances dict (stdout kept quiet)."""
    from pycocotools.coco import COCO
    with contextlib.redirect_stdout(io.StringIO()):
        if isinstance(gt, dict):
            coco = COCO()
            coco.dataset = copy.deepcopy(gt)
            coco.createIndex()
        else:
            coco = COCO(gt)
    return coco


def coco_evaluate(gt, detections):
    """Evaluate COCO-format ``detections`` (list of dicts or a JSON path) against ``gt``.

    Returns (metrics, summary_text): metrics has the 12 COCO numbers under ``METRIC_NAMES`` and
    ``per_class`` {category name: AP at IoU .50:.95}; summary_text is COCOeval's printout.
    """
    from pycocotools.cocoeval import COCOeval
    coco_gt = gt if hasattr(gt, 'loadRes') else load_coco_gt(gt)
    if isinstance(detections, str):
        with open(detections) as f:
            detections = json.load(f)
    metrics = dict((k, 0.0) for k in METRIC_NAMES)
    metrics['per_class'] = {}
    if not detections:
        return metrics, 'no detections\n'
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes(list(detections))
        ev = COCOeval(coco_gt, coco_dt, 'bbox')
        ev.evaluate()
        ev.accumulate()
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        ev.summarize()
    for name, value in zip(METRIC_NAMES, ev.stats):
        metrics[name] = float(value)
    precision = ev.eval['precision']  # [iou, recall, category, area, max_dets]
    for k, cat_id in enumerate(ev.params.catIds):
        p = precision[:, :, k, 0, -1]
        p = p[p > -1]
        name = coco_gt.cats[int(cat_id)]['name']
        metrics['per_class'][name] = float(np.mean(p)) if p.size else float('nan')
    return metrics, buf.getvalue()


def per_class_table(per_class):
    """Per-class AP as a fixed-width text table."""
    width = max([len('class')] + [len(n) for n in per_class])
    lines = ['%-*s  AP' % (width, 'class'), '-' * (width + 8)]
    for name, ap in per_class.items():
        lines.append('%-*s  %.3f' % (width, name, ap))
    return '\n'.join(lines) + '\n'
