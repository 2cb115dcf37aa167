"""Prediction on large images by sliding windows: detect in each window, shift, merge.

Boxes are ``[x1, y1, x2, y2]`` float32 with inclusive corners (``w = x2 - x1 + 1``); IoU and
overlaps use the +1 areas (:mod:`lighthead.detection_opr.boxes`).

**Windows.** Along each axis windows of ``tile`` pixels start at ``0, s, 2s, ...`` with stride
``s = tile - overlap`` while they fit, plus one flush with the far edge when that grid misses it
(:func:`lighthead.datasets.tiles.tile_starts`). An image side shorter than ``tile`` gets one
window covering that side whole (a smaller window, no padding). Each window is passed to
``predict_fn`` as it is, so a :class:`~lighthead.eval.predictor.Predictor` resizes it by the
experiment's eval rule: at the training scale when ``tile`` is the training tile size.

**Cut detections.** A detection is *cut* when one of its sides lies within ``edge_margin``
pixels (default 4) of an *interior* window edge (an edge that is not the image border): the
object may go on beyond the window. An object no larger than ``overlap`` on both sides lies
whole inside some window.

**Merge rule**, per class, over the detections of all windows in image coordinates:

1. A cut detection that lies at least half inside (intersection over its own area >= 0.5) an
   uncut detection from another window is dropped; that uncut detection (the one containing the
   largest fraction of it, then the highest-scoring) keeps the higher of the two scores.
2. Greedy NMS by descending score: a detection is dropped when its IoU with a kept one is
   ``> nms_thresh``, or when both are cut, come from different windows and their intersection
   over the smaller box is >= 0.5 (two pieces of one object that no window shows whole).

So an object cut by a window edge but seen whole in another window is reported once, with its
whole box and the best score any window gave it; an object larger than the overlap is reported
once only when its pieces overlap that much, so choose ``overlap`` >= the largest object.
Detections inside one window are never merged by rule 1 or the piece rule of 2 (the detector's
own NMS has already dealt with them). One window only: ``predict_fn``'s result, unchanged.
Detections per image: each window keeps what ``predict_fn`` gives (a Predictor: at most
``cfg.TEST.MAX_PER_IMAGE``); the merged list is cut only when ``max_per_image`` is given.

**RPN proposals.** When ``predict_fn`` also gives ``proposal_boxes`` and ``proposal_scores``
(a Predictor made with ``proposals=True``), they are shifted and merged by the same rule as
one class, and returned under the same keys (for the RPN-only AP of :mod:`lighthead.eval.cli`).
"""
import numpy as np

from lighthead.datasets.tiles import tile_starts
from lighthead.detection_opr.boxes import ioa_np, iou_np

# A box side this close (original-image pixels) to an interior window edge makes a cut detection.
EDGE_MARGIN = 4.0
# Rule 1 and the piece rule of 2: the overlap fraction that makes two detections one object.
SAME_OBJECT_OVERLAP = 0.5


def window_origins(height, width, tile, overlap):
    """Top-left corners ``[(x, y)]`` of the windows covering a ``height x width`` image, row by
    row. Each window is ``min(tile, width)`` wide and ``min(tile, height)`` high; consecutive
    ones overlap by ``overlap`` pixels (more for the last one, which is flush with the edge)."""
    if tile <= 0:
        raise ValueError('tile must be a positive number of pixels, got %r' % (tile,))
    if not 0 <= overlap < tile:
        raise ValueError('overlap must be in [0, tile) = [0, %d), got %r' % (tile, overlap))
    xs = tile_starts(width, min(tile, width), tile - overlap)
    ys = tile_starts(height, min(tile, height), tile - overlap)
    return [(x, y) for y in ys for x in xs]


def _cut_flags(boxes, window, height, width, edge_margin):
    """bool [N]: which ``boxes`` (image pixels) touch an interior edge of ``window``
    (inclusive ``[x1, y1, x2, y2]``) of an image ``height x width``."""
    wx1, wy1, wx2, wy2 = window
    return (((wx1 > 0) & (boxes[:, 0] <= wx1 + edge_margin)) |
            ((wy1 > 0) & (boxes[:, 1] <= wy1 + edge_margin)) |
            ((wx2 < width - 1) & (boxes[:, 2] >= wx2 - edge_margin)) |
            ((wy2 < height - 1) & (boxes[:, 3] >= wy2 - edge_margin)))


def _replace_cut_by_whole(boxes, scores, windows, cut):
    """Rule 1 on the detections of one class: returns bool [n], False for the cut detections
    covered by an uncut one from another window, and raises that one's score in ``scores``
    (in place)."""
    alive = np.ones(len(scores), bool)
    whole = np.nonzero(~cut)[0]
    if not whole.size:
        return alive
    whole = whole[np.argsort(-scores[whole], kind='stable')]  # argmax ties: higher score
    for i in np.nonzero(cut)[0]:
        inside = ioa_np(boxes[i:i + 1], boxes[whole])[0]
        inside[windows[whole] == windows[i]] = -1.0
        if inside.max() >= SAME_OBJECT_OVERLAP:
            partner = whole[np.argmax(inside)]
            scores[partner] = max(scores[partner], scores[i])
            alive[i] = False
    return alive


def _nms_with_pieces(boxes, scores, windows, cut, alive, nms_thresh):
    """Rule 2 on the detections of one class: indices kept, by descending score."""
    order = np.nonzero(alive)[0]
    order = order[np.argsort(-scores[order], kind='stable')]
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        overlap = iou_np(boxes[i:i + 1], boxes[rest])[0]
        drop = overlap > nms_thresh
        if cut[i]:
            smaller = np.maximum(ioa_np(boxes[i:i + 1], boxes[rest])[0],
                                 ioa_np(boxes[rest], boxes[i:i + 1])[:, 0])
            drop |= cut[rest] & (windows[rest] != windows[i]) & (smaller >= SAME_OBJECT_OVERLAP)
        order = rest[~drop]
    return np.array(keep, np.int64)


def merge_windows(boxes, scores, classes, windows, cut, nms_thresh):
    """Merge detections of several windows by the module's rule.

    Args: ``boxes`` float32 [N, 4] image pixels, ``scores`` float32 [N], ``classes`` int32 [N],
    ``windows`` int [N] (the window each came from), ``cut`` bool [N], ``nms_thresh`` float.
    Returns ``(keep, scores)``: int64 [K] indices of the kept detections by descending merged
    score, and float32 [N] the merged scores (rule 1 may raise some).
    """
    scores = np.array(scores, np.float32)
    keep = []
    for cls in np.unique(classes):
        rows = np.nonzero(classes == cls)[0]
        class_boxes, class_scores = boxes[rows], scores[rows]
        class_windows, class_cut = windows[rows], cut[rows]
        alive = _replace_cut_by_whole(class_boxes, class_scores, class_windows, class_cut)
        scores[rows] = class_scores
        kept = _nms_with_pieces(class_boxes, class_scores, class_windows, class_cut, alive,
                                nms_thresh)
        keep.append(rows[kept])
    keep = np.concatenate(keep) if keep else np.zeros(0, np.int64)
    return keep[np.argsort(-scores[keep], kind='stable')], scores


def _first(det, count):
    if count is None:
        return det
    return {k: v[:count] for k, v in det.items()}


def predict_tiled(predict_fn, image_bgr, tile, overlap, nms_thresh, max_per_image=None,
                  edge_margin=EDGE_MARGIN):
    """Detections of a BGR image ``[H, W, 3]`` by sliding windows (module docstring).

    ``predict_fn(window_bgr) -> {'boxes' [n, 4], 'scores' [n], 'classes' [n]}`` in window
    pixels (e.g. ``Predictor.predict_image``); ``tile``, ``overlap`` and ``edge_margin`` are
    original-image pixels; ``nms_thresh`` is the IoU of rule 2 (e.g. ``cfg.TEST.NMS``);
    ``max_per_image``: keep at most this many (None: all; each window is already limited by
    ``predict_fn``). Returns the same dict in image pixels: ``boxes`` float32 [N, 4]
    (inclusive), ``scores`` float32 [N] by descending score, ``classes`` int32 [N]; plus
    ``proposal_boxes`` and ``proposal_scores``, merged as one class, when ``predict_fn`` gives
    them (``max_per_image`` cuts them too).
    """
    height, width = image_bgr.shape[:2]
    origins = window_origins(height, width, tile, overlap)
    win_h, win_w = min(tile, height), min(tile, width)
    if len(origins) == 1:
        return _first(predict_fn(image_bgr), max_per_image)
    parts = {'': [], 'proposal_': []}  # per window: (boxes, scores, classes, window, cut)
    for index, (x, y) in enumerate(origins):
        det = predict_fn(np.ascontiguousarray(image_bgr[y:y + win_h, x:x + win_w]))
        window = (x, y, x + win_w - 1, y + win_h - 1)
        for prefix in parts:
            if prefix + 'boxes' not in det:
                continue
            shifted = (np.asarray(det[prefix + 'boxes'], np.float32).reshape(-1, 4) +
                       np.float32([x, y, x, y]))
            scores = np.asarray(det[prefix + 'scores'], np.float32).reshape(-1)
            classes = (np.asarray(det['classes'], np.int32).reshape(-1) if not prefix else
                       np.ones(len(scores), np.int32))  # proposals: one class
            parts[prefix].append((shifted, scores, classes, np.full(len(scores), index, np.int64),
                                  _cut_flags(shifted, window, height, width, edge_margin)))
    out = {}
    for prefix, windows_parts in parts.items():
        if not windows_parts:
            continue
        boxes, scores, classes, windows, cut = (np.concatenate(a) for a in zip(*windows_parts))
        keep, merged_scores = merge_windows(boxes, scores, classes, windows, cut, nms_thresh)
        out[prefix + 'boxes'] = boxes[keep]
        out[prefix + 'scores'] = merged_scores[keep]
        if not prefix:
            out['classes'] = classes[keep]
    return _first(out, max_per_image)
