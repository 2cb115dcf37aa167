"""Training-time augmentation of one image and its gt rows, for top-down (aerial) imagery too.

Images are OpenCV BGR uint8 ``[H, W, 3]`` (the geometric transforms accept any ``[H, W, ...]``
array). Gt rows are float ``[N, >=4]`` with inclusive pixel corners ``x1, y1, x2, y2`` first
(``w = x2 - x1 + 1``); further columns (the class, ``-1`` for an ignore region) are carried
along unchanged unless stated. Every function returns new arrays and leaves its inputs alone;
the random ones take their numbers from the ``rng`` (``numpy.random.RandomState``) passed in,
so a caller that seeds it controls everything.

Which of these a training batch uses, and in what order, is set by ``cfg.augment`` (see
:mod:`lighthead.data.batch`); all are off by default.
"""
import numpy as np

from ..datasets.tiles import clip_to_tile
from .transforms import flip_boxes

CROP_ATTEMPTS = 10  # random crop positions tried before giving up on cropping an image
MIN_VISIBLE = 0.5  # a cropped box with less of its area inside becomes an ignore region

# BGR weights of the luma (ITU-R BT.601), as in OpenCV's BGR -> gray.
_GRAY_BGR = np.array([0.114, 0.587, 0.299], np.float32)


def vflip(img, boxes):
    """Flip upside down: ``(img[::-1], flip_boxes(boxes, H, axis=0))`` (see
    :func:`lighthead.data.transforms.flip_boxes`)."""
    return np.ascontiguousarray(img[::-1]), flip_boxes(boxes, img.shape[0], 0)


def rot90_boxes(boxes, height, width, k):
    """Boxes of an ``height x width`` image turned ``k`` quarter turns counter-clockwise
    (as ``np.rot90(img, k)``). One turn maps pixel ``(x, y)`` to ``(y, W - 1 - x)`` in the
    ``W x H`` result, so ``(x1, y1, x2, y2) -> (y1, W - 1 - x2, y2, W - 1 - x1)``; ``k`` is
    taken modulo 4. Returns a new array."""
    turned = np.array(boxes, copy=True)
    for _ in range(k % 4):
        turned[:, :4] = np.stack([turned[:, 1], width - 1 - turned[:, 2],
                                  turned[:, 3], width - 1 - turned[:, 0]], axis=1)
        height, width = width, height
    return turned


def rot90(img, boxes, k):
    """Turn the image ``k`` quarter turns counter-clockwise: ``(np.rot90(img, k), boxes)``
    with the boxes of :func:`rot90_boxes`. An odd ``k`` swaps height and width."""
    h, w = img.shape[:2]
    return np.ascontiguousarray(np.rot90(img, k)), rot90_boxes(boxes, h, w, k)


def adjust_colour(img, brightness=1.0, contrast=1.0, saturation=1.0):
    """BGR uint8 ``[H, W, 3]`` with its colours changed by factors (1: unchanged), in order:

    - brightness: every value times ``brightness``;
    - contrast: blended with the image's mean luma, ``mean + contrast * (v - mean)``;
    - saturation: blended with each pixel's luma, ``luma + saturation * (v - luma)``.

    Computed in float32, rounded and saturated to ``[0, 255]`` uint8 once at the end. Boxes
    do not change, so none are taken.
    """
    out = img.astype(np.float32)
    if brightness != 1.0:
        out *= np.float32(brightness)
    if contrast != 1.0:
        mean = np.float32((out @ _GRAY_BGR).mean())
        out = mean + np.float32(contrast) * (out - mean)
    if saturation != 1.0:
        luma = (out @ _GRAY_BGR)[..., None]
        out = luma + np.float32(saturation) * (out - luma)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def colour_factors(rng, brightness=0.0, contrast=0.0, saturation=0.0):
    """Draw ``(brightness, contrast, saturation)`` factors for :func:`adjust_colour`: each
    uniform in ``[1 - x, 1 + x]`` for a jitter ``x > 0`` (one draw, in this order), else 1.0
    without a draw."""
    return tuple(float(rng.uniform(1.0 - x, 1.0 + x)) if x > 0 else 1.0
                 for x in (brightness, contrast, saturation))


def crop(img, gt, crop_box, min_visible=MIN_VISIBLE):
    """Cut ``crop_box`` (inclusive ``[x1, y1, x2, y2]``, integer, inside the image) out of
    ``img`` and its gt rows ``[N, 5]`` = ``(x1, y1, x2, y2, cls)``.

    Boxes follow :func:`lighthead.datasets.tiles.clip_to_tile`: a box not touching the crop is
    dropped; the others are intersected with it, in crop pixels; a box with less than
    ``min_visible`` of its area inside becomes an ignore region (``cls = -1``), as does one
    that was already. Returns ``(cropped_img, gt [K, 5])`` in the input's row order.
    """
    x1, y1, x2, y2 = [int(v) for v in crop_box]
    index, clipped, ignore = clip_to_tile(gt[:, :4], gt[:, 4] < 0, crop_box, min_visible)
    cls = np.where(ignore, -1, gt[index, 4])
    rows = np.concatenate([clipped, cls[:, None]], axis=1).astype(gt.dtype)
    return img[y1:y2 + 1, x1:x2 + 1], rows


def random_crop(img, gt, fraction, rng, attempts=CROP_ATTEMPTS, min_visible=MIN_VISIBLE):
    """A :func:`crop` of ``round(fraction * H) x round(fraction * W)`` pixels (at least 1)
    at a uniform position: ``y0 = rng.randint(H - h + 1)``, then ``x0 = rng.randint(W - w + 1)``.

    A crop that leaves no non-ignore box is redrawn, up to ``attempts`` positions in all;
    if none keeps one, the image and rows are returned uncropped (``gt`` as given).
    Returns ``(img, gt)``.
    """
    height, width = img.shape[:2]
    ch = min(height, max(1, int(round(fraction * height))))
    cw = min(width, max(1, int(round(fraction * width))))
    for _ in range(attempts):
        y0 = rng.randint(height - ch + 1)
        x0 = rng.randint(width - cw + 1)
        cropped, rows = crop(img, gt, [x0, y0, x0 + cw - 1, y0 + ch - 1], min_visible)
        if (rows[:, 4] >= 0).any():
            return cropped, rows
    return img, gt
