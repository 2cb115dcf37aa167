"""Pascal VOC detection metric: per-class AP with the VOC07 11-point and the area (VOC2010+) rule.

Boxes are [x1, y1, x2, y2] inclusive pixels; IoU uses the +1 convention as VOC's devkit. A
detection matches the unmatched ground truth of its class with the highest IoU if that IoU is
> ``iou_thresh``; matches to ``difficult`` (ignore) boxes count neither as true nor false
positives.
"""
import numpy as np


def _iou_one_to_many(box, boxes):
    ix1 = np.maximum(boxes[:, 0], box[0])
    iy1 = np.maximum(boxes[:, 1], box[1])
    ix2 = np.minimum(boxes[:, 2], box[2])
    iy2 = np.minimum(boxes[:, 3], box[3])
    iw = np.maximum(ix2 - ix1 + 1.0, 0.0)
    ih = np.maximum(iy2 - iy1 + 1.0, 0.0)
    inter = iw * ih
    area = (box[2] - box[0] + 1.0) * (box[3] - box[1] + 1.0)
    areas = (boxes[:, 2] - boxes[:, 0] + 1.0) * (boxes[:, 3] - boxes[:, 1] + 1.0)
    return inter / (area + areas - inter)


def average_precision(recall, precision, use_07_metric):
    """AP from a recall/precision curve (both ordered by descending score)."""
    if use_07_metric:
        ap = 0.0
        for t in np.arange(0.0, 1.1, 0.1):
            p = precision[recall >= t].max() if np.any(recall >= t) else 0.0
            ap += p / 11.0
        return float(ap)
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([0.0], precision, [0.0]))
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    idx = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[idx + 1] - mrec[idx]) * mpre[idx + 1]))


def voc_class_ap(gts, dets, iou_thresh=0.5, use_07_metric=True):
    """AP of one class.

    gts: {image_key: (boxes [N,4], difficult bool [N])}; dets: list of (image_key, score, box[4]).
    Returns (ap, recall, precision); ap is NaN when the class has no non-difficult box.
    """
    npos = sum(int(np.sum(~d)) for _, d in gts.values())
    matched = {k: np.zeros(len(b), bool) for k, (b, _) in gts.items()}
    dets = sorted(dets, key=lambda d: -d[1])
    tp = np.zeros(len(dets))
    fp = np.zeros(len(dets))
    for i, (key, _, box) in enumerate(dets):
        boxes, difficult = gts.get(key, (np.zeros((0, 4)), np.zeros(0, bool)))
        if len(boxes) == 0:
            fp[i] = 1
            continue
        ious = _iou_one_to_many(np.asarray(box, np.float64), boxes.astype(np.float64))
        j = int(np.argmax(ious))
        if ious[j] > iou_thresh:
            if difficult[j]:
                continue
            if not matched[key][j]:
                tp[i] = 1
                matched[key][j] = True
            else:
                fp[i] = 1
        else:
            fp[i] = 1
    if npos == 0:
        return float('nan'), np.zeros(0), np.zeros(0)
    tp = np.cumsum(tp)
    fp = np.cumsum(fp)
    recall = tp / float(npos)
    precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    return average_precision(recall, precision, use_07_metric), recall, precision


def voc_evaluate(records, detections, class_names, iou_thresh=0.5):
    """mAP with both rules.

    records: dataset records (``boxes``, ``classes``, ``ignore``, ``image_id``); detections: COCO
    style dicts with ``image_id``, ``category`` (contiguous class index), ``score`` and ``box``
    [x1, y1, x2, y2]. Returns {'mAP_07', 'mAP_area', 'per_class': {name: {'AP_07', 'AP_area'}}}.
    """
    per_class = {}
    for c in range(1, len(class_names)):
        gts = {}
        for r in records:
            m = np.asarray(r['classes']) == c
            gts[r['image_id']] = (np.asarray(r['boxes'], np.float64)[m].reshape(-1, 4),
                                  np.asarray(r['ignore'], bool)[m])
        dets = [(d['image_id'], d['score'], d['box']) for d in detections if d['category'] == c]
        per_class[class_names[c]] = {
            'AP_07': voc_class_ap(gts, dets, iou_thresh, True)[0],
            'AP_area': voc_class_ap(gts, dets, iou_thresh, False)[0]}
    valid = [v for v in per_class.values() if not np.isnan(v['AP_07'])]
    return {'mAP_07': float(np.mean([v['AP_07'] for v in valid])) if valid else float('nan'),
            'mAP_area': float(np.mean([v['AP_area'] for v in valid])) if valid else float('nan'),
            'per_class': per_class}


def voc_summary(voc):
    """One line of :func:`voc_evaluate`'s result for results.txt."""
    return 'VOC07 11-point mAP: %.4f   area mAP: %.4f' % (voc['mAP_07'], voc['mAP_area'])
