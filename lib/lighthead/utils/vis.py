"""Draw detections on images with OpenCV and write PNGs."""
import colorsys

import cv2
import numpy as np


def class_color(class_id):
    """A stable, distinct BGR colour per class id."""
    h = (class_id * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(h, 0.85, 1.0)
    return int(b * 255), int(g * 255), int(r * 255)


def draw_detections(image_bgr, boxes, scores, classes, class_names, thresh=0.0):
    """A copy of ``image_bgr`` (uint8 HxWx3) with boxes [N,4] (x1,y1,x2,y2 inclusive pixels),
    scores [N] and class ids [N] (1-based) drawn when score >= ``thresh``."""
    out = np.ascontiguousarray(image_bgr.copy())
    scale = max(out.shape[:2]) / 800.0
    thickness = max(1, int(round(2 * scale)))
    font = 0.4 * max(scale, 0.75)
    order = np.argsort(-np.asarray(scores))
    for i in order:
        if scores[i] < thresh:
            continue
        x1, y1, x2, y2 = (int(round(v)) for v in boxes[i])
        color = class_color(int(classes[i]))
        cv2.rectangle(out, (x1, y1), (x2, y2), color, thickness)
        label = '%s %.2f' % (class_names[int(classes[i])], scores[i])
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font, 1)
        ty = max(y1, th + base)
        cv2.rectangle(out, (x1, ty - th - base), (x1 + tw, ty), color, -1)
        cv2.putText(out, label, (x1, ty - base), cv2.FONT_HERSHEY_SIMPLEX, font, (0, 0, 0), 1,
                    cv2.LINE_AA)
    return out


def write_png(path, image_bgr):
    """Write ``image_bgr`` as PNG; raises ``IOError`` naming the path on failure."""
    if not cv2.imwrite(path, image_bgr):
        raise IOError('could not write %s' % path)
    return path
