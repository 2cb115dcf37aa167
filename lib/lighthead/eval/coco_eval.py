"""COCO bbox metrics through pycocotools' ``COCOeval``, with a per-class AP table, AP per
group of images (e.g. per site) and class-agnostic evaluation (e.g. RPN proposals).

**Groups** (``eval_groups``): ``{group name: regular expression}``; an image belongs to a group
when ``re.search(regex, base name of its file_name)`` matches. Images may be in several groups
or in none (those count in the overall figures only). Each group is evaluated by the same
``COCOeval`` with ``params.imgIds`` restricted to its images, so a group's AP is exactly the AP
of a ground truth file holding only those images. A group matching no image gets ``images: 0``
and ``None`` metrics; a group whose images hold no ground-truth box gets pycocotools' ``-1``.
"""
import contextlib
import copy
import io
import numbers
import os
import re

import numpy as np

METRIC_NAMES = ('AP', 'AP50', 'AP75', 'APs', 'APm', 'APl',
                'AR1', 'AR10', 'AR100', 'ARs', 'ARm', 'ARl')


def load_coco_gt(gt):
    """A pycocotools ``COCO`` from a path or an in-memory instances dict (stdout kept quiet).

    A file that is not JSON, or not a COCO instances dict that pycocotools can index, raises
    ValueError naming it (not pycocotools' bare JSON or key error)."""
    from pycocotools.coco import COCO
    from lighthead.datasets.coco import read_json
    if isinstance(gt, dict):
        name, dataset = '<ground truth>', copy.deepcopy(gt)
    else:
        name, dataset = gt, read_json(gt)
    if not isinstance(dataset, dict) or not isinstance(dataset.get('images'), list):
        raise ValueError('%s: not a COCO instances file (a JSON object with an "images" list)'
                         % name)
    coco = COCO()
    coco.dataset = dataset
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            coco.createIndex()
    except (KeyError, TypeError, AttributeError) as e:
        problem = ('an image, annotation or category without %r' % (e.args[0],)
                   if isinstance(e, KeyError) and e.args else repr(e))
        raise ValueError('%s: malformed COCO ground truth: %s' % (name, problem))
    return coco


def check_results(detections, coco_gt, source='<detections>', gt_name='the ground truth'):
    """Raise ValueError naming ``source`` and the first bad detection unless ``detections`` is a
    list of COCO results (dicts with ``image_id`` and ``category_id`` of ``coco_gt``, a finite
    ``score`` and ``bbox`` ``[x, y, w, h]``), which pycocotools would otherwise reject with a
    bare AssertionError (an unknown image) or score silently (an unknown category)."""
    if not isinstance(detections, list):
        raise ValueError('%s: COCO results must be a JSON list of detections, got a %s'
                         % (source, type(detections).__name__))
    images, categories = set(coco_gt.getImgIds()), set(coco_gt.getCatIds())
    first, count = None, 0
    for i, det in enumerate(detections):
        problem = _result_problem(det, images, categories, gt_name)
        if problem:
            count += 1
            if first is None:
                first = (i, det, problem)
    if first is not None:
        i, det, problem = first
        image = ' (image_id %r)' % (det.get('image_id'),) if isinstance(det, dict) else ''
        also = ' (%d of the %d detections have a problem)' % (count, len(detections)) \
            if count > 1 else ''
        raise ValueError('%s: detection %d%s: %s%s' % (source, i, image, problem, also))


def _finite_number(v):
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and bool(np.isfinite(v))


def _result_problem(det, images, categories, gt_name):
    """What is wrong with one COCO result, or None."""
    if not isinstance(det, dict):
        return 'not a JSON object'
    missing = [k for k in ('image_id', 'category_id', 'bbox', 'score') if k not in det]
    if missing:
        return 'no %s' % ', '.join(missing)
    if det['image_id'] not in images:
        return 'image_id %r is not an image of %s' % (det['image_id'], gt_name)
    if det['category_id'] not in categories:
        return 'category_id %r is not a category of %s (it has %s)' % (
            det['category_id'], gt_name, sorted(categories))
    if not _finite_number(det['score']):
        return 'score %r is not a finite number' % (det['score'],)
    bbox = det['bbox']
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4 or \
            not all(_finite_number(v) for v in bbox):
        return 'bbox %r is not [x, y, w, h] of finite numbers' % (bbox,)
    return None


def _results_coco(coco_gt, detections):
    """``coco_gt.loadRes(detections)``; with no detections, an empty results ``COCO`` over the
    same images (``loadRes`` cannot take an empty list), so every ground truth is a miss."""
    from pycocotools.coco import COCO
    with contextlib.redirect_stdout(io.StringIO()):
        if detections:
            return coco_gt.loadRes(list(detections))
        coco_dt = COCO()
        coco_dt.dataset = {'images': list(coco_gt.dataset['images']),
                           'categories': copy.deepcopy(coco_gt.dataset['categories']),
                           'annotations': []}
        coco_dt.createIndex()
    return coco_dt


def _run_cocoeval(coco_gt, coco_dt, img_ids=None, class_agnostic=False):
    """(COCOeval after evaluate/accumulate/summarize, summary text) over ``img_ids`` (None:
    all images); ``class_agnostic``: ``useCats = 0`` (categories ignored in matching)."""
    from pycocotools.cocoeval import COCOeval
    ev = COCOeval(coco_gt, coco_dt, 'bbox')
    if class_agnostic:
        ev.params.useCats = 0
    if img_ids is not None:
        ev.params.imgIds = sorted(img_ids)
    with contextlib.redirect_stdout(io.StringIO()):
        ev.evaluate()
        ev.accumulate()
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        ev.summarize()
    return ev, buf.getvalue()


def group_image_ids(coco_gt, groups):
    """``{name: sorted image ids}``: the images whose file base name ``re.search``-matches the
    group's regex (``groups``: ``{name: regex}``, in its order)."""
    names = [(img_id, os.path.basename(str(img.get('file_name', ''))))
             for img_id, img in coco_gt.imgs.items()]
    out = {}
    for group, pattern in groups.items():
        regex = re.compile(pattern)
        out[group] = sorted(i for i, name in names if regex.search(name))
    return out


def coco_evaluate(gt, detections, groups=None, class_agnostic=False):
    """Evaluate COCO-format ``detections`` (list of dicts or a JSON path) against ``gt``.

    Detections that pycocotools cannot take (an image or category the ground truth does not
    have, no finite score or bbox) and files that are not JSON raise ValueError naming the
    file and the first such detection (:func:`check_results`).

    Returns (metrics, summary_text): metrics has the 12 COCO numbers under ``METRIC_NAMES``,
    ``images`` (how many ground-truth images) and ``per_class`` {category name: AP at IoU
    .50:.95} (empty when ``class_agnostic``); summary_text is COCOeval's printout.

    ``groups``: None, or ``{name: regex on the image file name}`` (module docstring); then
    ``metrics['groups'][name]`` = ``{'pattern', 'images', <the 12 numbers>}`` and
    ``metrics['ungrouped_images']`` counts the images in no group.
    ``class_agnostic``: match detections to ground truths of any category (pycocotools
    ``useCats = 0``), e.g. to score RPN proposals of a several-class dataset.
    """
    coco_gt = gt if hasattr(gt, 'loadRes') else load_coco_gt(gt)
    source = '<detections>'
    if isinstance(detections, str):
        from lighthead.datasets.coco import read_json
        source, detections = detections, read_json(detections)
    check_results(detections, coco_gt, source,
                  'the ground truth %s' % gt if isinstance(gt, str) else 'the ground truth')
    coco_dt = _results_coco(coco_gt, detections)
    ev, summary = _run_cocoeval(coco_gt, coco_dt, class_agnostic=class_agnostic)
    if not detections:
        summary = 'no detections\n' + summary
    metrics = dict((name, float(value)) for name, value in zip(METRIC_NAMES, ev.stats))
    metrics['images'] = len(coco_gt.getImgIds())
    metrics['per_class'] = {}
    if not class_agnostic:
        precision = ev.eval['precision']  # [iou, recall, category, area, max_dets]
        for k, cat_id in enumerate(ev.params.catIds):
            p = precision[:, :, k, 0, -1]
            p = p[p > -1]
            name = coco_gt.cats[int(cat_id)]['name']
            metrics['per_class'][name] = float(np.mean(p)) if p.size else float('nan')
    if groups:
        metrics['groups'] = {}
        members = group_image_ids(coco_gt, groups)
        for name, img_ids in members.items():
            entry = {'pattern': groups[name], 'images': len(img_ids)}
            if img_ids:
                group_ev, _ = _run_cocoeval(coco_gt, coco_dt, img_ids, class_agnostic)
                entry.update((m, float(v)) for m, v in zip(METRIC_NAMES, group_ev.stats))
            else:
                entry.update((m, None) for m in METRIC_NAMES)
            metrics['groups'][name] = entry
        grouped = set(i for ids in members.values() for i in ids)
        metrics['ungrouped_images'] = len(set(coco_gt.getImgIds()) - grouped)
    return metrics, summary


def per_class_table(per_class):
    """Per-class AP as a fixed-width text table."""
    width = max([len('class')] + [len(n) for n in per_class])
    lines = ['%-*s  AP' % (width, 'class'), '-' * (width + 8)]
    for name, ap in per_class.items():
        lines.append('%-*s  %.3f' % (width, name, ap))
    return '\n'.join(lines) + '\n'


def _fmt(value):
    """A metric for the group table: ``n/a`` for pycocotools' -1 (no ground truth)."""
    if value is None or value < 0:
        return 'n/a'
    return '%.3f' % value


def group_table(metrics, rpn_metrics=None):
    """AP and AP50 overall (``all``) and per group (``metrics['groups']``, if any) as a
    fixed-width text table; with ``rpn_metrics`` (the RPN proposals scored the same way) also
    ``RPN-only AP`` and ``RPN-only AP50`` beside them. A group matching no image gets a note
    instead of numbers; ``n/a``: the images hold no ground-truth box."""
    groups = metrics.get('groups') or {}
    rows = [('all', '', metrics.get('images', ''), metrics, rpn_metrics)]
    for name, entry in groups.items():
        rpn_entry = (rpn_metrics.get('groups') or {}).get(name) if rpn_metrics else None
        rows.append((name, entry['pattern'], entry['images'], entry, rpn_entry))
    width = max(len('group'), max(len(r[0]) for r in rows))
    pat_width = max(len('file name regex'), max(len(r[1]) for r in rows))
    head = '%-*s  %-*s  %6s  %6s  %6s' % (width, 'group', pat_width, 'file name regex',
                                          'images', 'AP', 'AP50')
    if rpn_metrics is not None:
        head += '  %11s  %13s' % ('RPN-only AP', 'RPN-only AP50')
    lines = [head, '-' * len(head)]
    for name, pattern, images, entry, rpn_entry in rows:
        line = '%-*s  %-*s  %6s' % (width, name, pat_width, pattern, images)
        if images == 0:
            lines.append(line + '  no image file name matches this regex: no AP')
            continue
        line += '  %6s  %6s' % (_fmt(entry['AP']), _fmt(entry['AP50']))
        if rpn_metrics is not None:
            line += '  %11s  %13s' % (_fmt(rpn_entry['AP'] if rpn_entry else None),
                                      _fmt(rpn_entry['AP50'] if rpn_entry else None))
        lines.append(line)
    if metrics.get('ungrouped_images'):
        lines.append('(%d images match no group; they count in "all" only)' %
                     metrics['ungrouped_images'])
    return '\n'.join(lines) + '\n'
