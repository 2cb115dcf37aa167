"""Image and box transforms shared by training and testing (SPEC 2.1).

Images are OpenCV BGR uint8 ``[H, W, 3]``; the network input is RGB float32 minus the BGR
means reordered to RGB. Boxes are ``[N, >=4]`` with inclusive ``x1, y1, x2, y2`` first.
"""
import os

import cv2
import numpy as np


class ImageReadError(IOError):
    """An image file that is missing or cannot be decoded; the message names the file."""


def read_image(path):
    """BGR uint8 ``[H, W, 3]`` of ``path``; raises :class:`ImageReadError` naming the file."""
    if not os.path.isfile(path):
        raise ImageReadError('cannot read image %s: no such file' % path)
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise ImageReadError('cannot read image %s: not a decodable image (corrupt?)' % path)
    return img


def short_max_scale(height, width, short, max_size):
    """The resize factor that makes the short side ``short`` and the long side at most
    ``max_size``: ``short / min(h, w)``, lowered to ``max_size / max(h, w)`` if needed."""
    scale = float(short) / min(height, width)
    if scale * max(height, width) > max_size:
        scale = float(max_size) / max(height, width)
    return scale


def resize_by(img, scale):
    """Resize ``img`` ``[H, W, C]`` to ``(round(h * scale), round(w * scale))`` (bilinear).

    Returns ``(resized, actual_scale)`` with ``actual_scale = resized_h / h``.
    """
    h, w = img.shape[:2]
    new_h, new_w = int(round(h * scale)), int(round(w * scale))
    resized = cv2.resize(img, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    return resized, float(new_h) / h


def resize_short_max(img, short, max_size):
    """Resize so the short side is ``short`` and the long side at most ``max_size``.

    ``scale`` is :func:`short_max_scale`; the size is ``(round(h * scale), round(w * scale))``
    (bilinear). Returns ``(resized, scale)`` with ``scale = resized_h / h``.
    """
    return resize_by(img, short_max_scale(img.shape[0], img.shape[1], short, max_size))


# Box columns ``(lo, hi)`` of each image axis: 0 (rows) holds y1, y2; 1 (columns) x1, x2.
_AXIS_COLUMNS = {0: (1, 3), 1: (0, 2)}


def flip_boxes(boxes, size, axis):
    """Boxes of the image flipped along its ``axis`` (as ``np.flip(img, axis)``) of
    ``size = img.shape[axis]`` pixels: axis 1 flips left-right, ``x1' = W - x2 - 1``,
    ``x2' = W - x1 - 1``; axis 0 upside down, ``y1' = H - y2 - 1``, ``y2' = H - y1 - 1``
    (inclusive corners). Other columns unchanged. Returns a new array of the same dtype."""
    if axis not in _AXIS_COLUMNS:
        raise ValueError('flip_boxes: axis must be 0 (vertical) or 1 (horizontal), not %r'
                         % (axis,))
    lo, hi = _AXIS_COLUMNS[axis]
    flipped = np.array(boxes, copy=True)
    flipped[:, lo] = size - boxes[:, hi] - 1
    flipped[:, hi] = size - boxes[:, lo] - 1
    return flipped


def hflip_boxes(boxes, width):
    """:func:`flip_boxes` left-right: ``flip_boxes(boxes, width, 1)``."""
    return flip_boxes(boxes, width, 1)


def normalize(img_bgr_uint8, mean_bgr):
    """BGR uint8 ``[H, W, 3]`` -> RGB float32 ``[H, W, 3]`` minus the means (no std)."""
    rgb = cv2.cvtColor(img_bgr_uint8, cv2.COLOR_BGR2RGB)
    mean_rgb = tuple(float(m) for m in mean_bgr[::-1]) + (0.0,)
    return cv2.subtract(rgb, mean_rgb, dtype=cv2.CV_32F)


def load_test_image(path, short, max_size, mean):
    """Read and prepare one image for inference.

    Returns ``(data, im_info, raw_bgr)``: ``data`` float32 ``[1, H, W, 3]`` (resized, RGB,
    mean-subtracted), ``im_info`` float32 ``[1, 6]`` = ``(resized_h, resized_w, scale,
    orig_h, orig_w, 0)``, ``raw_bgr`` the image as read. Raises :class:`ImageReadError`.
    """
    raw = read_image(path)
    resized, scale = resize_short_max(raw, short, max_size)
    data = normalize(resized, mean)[None]
    im_info = np.array([[resized.shape[0], resized.shape[1], scale, raw.shape[0],
                         raw.shape[1], 0]], dtype=np.float32)
    return data, im_info, raw
