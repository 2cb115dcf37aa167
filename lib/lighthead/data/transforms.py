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
    """BGR uint8 ``[H, W, 3]`` of ``path``; raises :class:`ImageReadError` naming the file.

    Every image is read here (training, evaluation, prediction). Besides missing and
    undecodable files, a JPEG or PNG that is cut short is an error: OpenCV would decode it
    with the missing part flat grey (libjpeg only prints "Premature end of JPEG file", without
    the file name). Checked before decoding: a JPEG must have an end-of-image marker (FF D9)
    after its first scan header, a PNG an ``IEND`` chunk; bytes after them are allowed.
    """
    if not os.path.isfile(path):
        raise ImageReadError('cannot read image %s: no such file' % path)
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except (IOError, OSError) as e:
        raise ImageReadError('cannot read image %s: %s' % (path, e))
    problem = _truncation(data) if data else 'empty file'
    if problem:
        raise ImageReadError('cannot read image %s: %s (truncated or corrupt file)'
                             % (path, problem))
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise ImageReadError('cannot read image %s: not a decodable image (corrupt?)' % path)
    return img


_JPEG_SOI = b'\xff\xd8'
_JPEG_EOI = b'\xff\xd9'
_PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'


def _truncation(data):
    """Why the JPEG / PNG bytes ``data`` are incomplete, or None (also for other formats)."""
    if data.startswith(_JPEG_SOI):
        return _jpeg_truncation(data)
    if data.startswith(_PNG_SIGNATURE):
        end = data.rfind(b'IEND')
        if end < len(_PNG_SIGNATURE) + 4 or data[end - 4:end] != b'\x00\x00\x00\x00':
            return 'PNG without its IEND chunk (%d bytes)' % len(data)
    return None


def _jpeg_truncation(data):
    """Walk the JPEG marker segments to the first scan (SOS), then look for the end-of-image
    marker after it (entropy-coded data never holds FF D9). Oddities that libjpeg tolerates
    end the walk early and are left to the decoder."""
    pos, n = 2, len(data)
    while pos < n:
        if data[pos] != 0xFF:
            break  # not at a marker: search from here
        marker = data[pos + 1] if pos + 1 < n else None
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker is None or pos + 4 > n:
            return 'JPEG ends inside its headers (%d bytes)' % n
        if marker == 0xD9:
            return None
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a length
            pos += 2
            continue
        pos += 2 + ((data[pos + 2] << 8) | data[pos + 3])
        if marker == 0xDA:  # start of scan: the entropy-coded data follows its header
            break
    if pos >= n:
        return 'JPEG ends inside its headers (%d bytes)' % n
    if data.find(_JPEG_EOI, pos) < 0:
        return 'JPEG without its end-of-image marker FF D9 (%d bytes)' % n
    return None


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


def make_im_info(resized_hw, scale, original_hw, num_boxes=0):
    """The network's ``im_info`` row of one image: float32 ``[1, 6]`` =
    ``[[resized_h, resized_w, scale, orig_h, orig_w, num_boxes]]``.

    ``resized_hw``: ``(height, width)`` of the image as fed (after resizing and any
    augmentation; e.g. ``img.shape[:2]``); ``scale``: the resize factor (resized over
    original); ``original_hw``: ``(height, width)`` of the image as read; ``num_boxes``: the
    gt boxes filled in for training (0 at test time). The one builder of ``im_info`` rows:
    a batch stacks them (``[B, 6]``). Raises ``ValueError`` for a size that is not two values.
    """
    for name, hw in (('resized_hw', resized_hw), ('original_hw', original_hw)):
        if len(hw) != 2:
            raise ValueError('make_im_info: %s must be (height, width), got %r' % (name, hw))
    return np.array([[resized_hw[0], resized_hw[1], scale, original_hw[0], original_hw[1],
                      num_boxes]], dtype=np.float32)


def prepare_test_image(image_bgr, short, max_size, mean):
    """Prepare a BGR uint8 image for inference: ``(data, im_info)``, ``data`` float32
    ``[1, H, W, 3]`` (resized by :func:`resize_short_max`, RGB, mean-subtracted), ``im_info``
    float32 ``[1, 6]`` = ``(resized_h, resized_w, scale, orig_h, orig_w, 0)``
    (:func:`make_im_info`)."""
    resized, scale = resize_short_max(image_bgr, short, max_size)
    data = normalize(resized, mean)[None]
    return data, make_im_info(resized.shape[:2], scale, image_bgr.shape[:2])


def load_test_image(path, short, max_size, mean):
    """Read and prepare one image for inference: ``(data, im_info, raw_bgr)`` as
    :func:`prepare_test_image`, ``raw_bgr`` the image as read. Raises :class:`ImageReadError`.
    """
    raw = read_image(path)
    data, im_info = prepare_test_image(raw, short, max_size, mean)
    return data, im_info, raw
