"""Deterministic generator of the bundled quickstart dataset ("shapes"), in COCO format.

Five classes that differ by shape (and, for bars, aspect ratio): circle, square, triangle,
plus, bar. Each image has 1-6 objects on a textured background (colour gradient,
low-frequency noise, thin random lines, pixel noise). Each class has its own hue (jittered
saturation and brightness), so a network trained from scratch in minutes can learn the classes;
shape, scale and position still have to be learnt. Sizes go from small (sides of 20-24 px) to half
the image, with some aspect-ratio jitter; every object has a darker 1-px outline, so overlapping
objects of one class stay apart, and may partly hide earlier objects (at most 30% of an earlier
object's box is covered). Boxes are the tight, inclusive pixel bounds of each whole shape.

Layout written by :func:`generate`::

    <out>/train/000000.png ...   <out>/val/000000.png ...
    <out>/annotations/train.json <out>/annotations/val.json   (file_name relative to the
                                                               split's image folder)

Image ``i`` of a split depends only on ``(seed, split, i)``: the same seed gives byte-identical
files, and more images extend a dataset without changing the first ones.

Command line: ``python -m lighthead.datasets.synthetic [--out DIR] [--num-train N] ...``
"""
import argparse
import json
import os

import cv2
import numpy as np

from ..config import REPO_ROOT

CLASS_NAMES = ['background', 'circle', 'square', 'triangle', 'plus', 'bar']
DEFAULT_OUT = os.path.join(REPO_ROOT, 'data', 'generated', 'shapes')
SPLITS = ('train', 'val')

MIN_SIDE = 24          # compact shapes: smallest side length (before aspect jitter)
BAR_THICKNESS = (20, 36)
BAR_LENGTH_RATIO = (3.0, 4.5)
ASPECT_JITTER = 1.25   # compact shapes: h/w in [1/1.25, 1.25]
MAX_HIDDEN = 0.3       # an object may cover at most this fraction of an earlier box
MAX_OBJECTS = 6
# OpenCV hue (0..180) of each class, background first (unused): red, green, blue, yellow, magenta.
CLASS_HUES = (None, 0, 60, 120, 28, 150)
HUE_JITTER = 6
# Triangle corners in box coordinates (0..1), pointing up, down, left, right.
TRIANGLES = ([[0, 1], [1, 1], [0.5, 0]], [[0, 0], [1, 0], [0.5, 1]],
             [[1, 0], [1, 1], [0, 0.5]], [[0, 0], [0, 1], [1, 0.5]])


def _background(rng, h, w):
    base = rng.uniform(60, 190) + rng.uniform(-20, 20, size=3)  # a greyish colour
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)  # explicit: numpy 1.x and 2.x promote alike
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * (xs / w - 0.5) + np.sin(angle) * (ys / h - 0.5)) * 2
    img = base + ramp[..., None] * rng.uniform(10, 45, size=3)
    coarse = rng.normal(0, rng.uniform(5, 18), size=(h // 32 + 2, w // 32 + 2, 3))
    img = img + cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    img = img.astype(np.float32)
    for _ in range(rng.randint(3, 9)):
        p1 = (int(rng.randint(-w // 4, w + w // 4)), int(rng.randint(-h // 4, h + h // 4)))
        p2 = (int(rng.randint(-w // 4, w + w // 4)), int(rng.randint(-h // 4, h + h // 4)))
        colour = tuple(float(c) for c in np.clip(base + rng.uniform(-60, 60, size=3), 0, 255))
        cv2.line(img, p1, p2, colour, int(rng.randint(1, 3)))
    return img


def _shape_size(rng, cls, h, w):
    """(box width, box height) in pixels for class ``cls``."""
    if CLASS_NAMES[cls] == 'bar':
        thick = np.exp(rng.uniform(np.log(BAR_THICKNESS[0]), np.log(BAR_THICKNESS[1])))
        length = thick * rng.uniform(*BAR_LENGTH_RATIO)
        if rng.rand() < 0.5:
            return int(round(min(length, 0.9 * w))), int(round(thick))
        return int(round(thick)), int(round(min(length, 0.9 * h)))
    side = np.exp(rng.uniform(np.log(MIN_SIDE), np.log(0.5 * min(h, w))))
    aspect = np.sqrt(np.exp(rng.uniform(-np.log(ASPECT_JITTER), np.log(ASPECT_JITTER))))
    return int(round(side / aspect)), int(round(side * aspect))


def _draw_mask(rng, cls, box, h, w):
    """uint8 [h, w] mask of a shape of class ``cls`` filling ``box`` (inclusive x1,y1,x2,y2)."""
    x1, y1, x2, y2 = box
    mask = np.zeros((h, w), np.uint8)
    name = CLASS_NAMES[cls]
    if name == 'circle':
        centre = ((x1 + x2) // 2, (y1 + y2) // 2)
        cv2.ellipse(mask, centre, ((x2 - x1) // 2, (y2 - y1) // 2), 0, 0, 360, 1, -1)
    elif name in ('square', 'bar'):
        cv2.rectangle(mask, (x1, y1), (x2, y2), 1, -1)
    elif name == 'triangle':
        corners = np.array(TRIANGLES[rng.randint(len(TRIANGLES))], np.float64)
        pts = np.round([x1, y1] + corners * [x2 - x1, y2 - y1]).astype(np.int32)
        cv2.fillPoly(mask, [pts], 1)
    else:  # plus
        arm = rng.uniform(0.28, 0.4)
        th_y = max(int(round((y2 - y1 + 1) * arm)), 3)
        th_x = max(int(round((x2 - x1 + 1) * arm)), 3)
        cy, cx = (y1 + y2) // 2, (x1 + x2) // 2
        cv2.rectangle(mask, (x1, cy - th_y // 2), (x2, cy - th_y // 2 + th_y - 1), 1, -1)
        cv2.rectangle(mask, (cx - th_x // 2, y1), (cx - th_x // 2 + th_x - 1, y2), 1, -1)
    return mask


def _covered_fraction(box, other):
    """Fraction of ``other``'s area covered by ``box`` (inclusive pixel boxes)."""
    iw = min(box[2], other[2]) - max(box[0], other[0]) + 1
    ih = min(box[3], other[3]) - max(box[1], other[1]) + 1
    if iw <= 0 or ih <= 0:
        return 0.0
    return float(iw * ih) / ((other[2] - other[0] + 1) * (other[3] - other[1] + 1))


def _colour(rng, cls):
    """A BGR colour of class ``cls``: its hue, random saturation and brightness."""
    hue = (CLASS_HUES[cls] + rng.randint(-HUE_JITTER, HUE_JITTER + 1)) % 180
    hsv = np.array([[[hue, rng.randint(160, 256), rng.randint(140, 256)]]], np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32)


def render_image(rng, image_size):
    """One image: ``(bgr uint8 [H, W, 3], [(class index, [x1, y1, x2, y2]), ...])``."""
    h, w = image_size
    img = _background(rng, h, w)
    objects = []  # (cls, box)
    for _ in range(rng.randint(1, MAX_OBJECTS + 1)):
        for _attempt in range(30):
            cls = rng.randint(1, len(CLASS_NAMES))
            bw, bh = _shape_size(rng, cls, h, w)
            x1, y1 = int(rng.randint(0, w - bw + 1)), int(rng.randint(0, h - bh + 1))
            box = (x1, y1, x1 + bw - 1, y1 + bh - 1)
            if all(_covered_fraction(box, o[1]) <= MAX_HIDDEN for o in objects):
                break
        else:
            continue
        colour = _colour(rng, cls)
        mask = _draw_mask(rng, cls, box, h, w)
        ys, xs = np.nonzero(mask)
        img[mask > 0] = colour
        img[(mask - cv2.erode(mask, np.ones((3, 3), np.uint8))) > 0] = colour * 0.45
        objects.append((cls, (int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max()))))
    img = cv2.GaussianBlur(img, (3, 3), 0.8)
    img = img + rng.normal(0, rng.uniform(3, 9), size=img.shape)
    img = np.clip(np.round(img), 0, 255).astype(np.uint8)
    return img, [(cls, list(box)) for cls, box in objects]


def _write_split(out_dir, split, count, image_size, seed):
    split_index = SPLITS.index(split)
    image_dir = os.path.join(out_dir, split)
    os.makedirs(image_dir, exist_ok=True)
    images, annotations = [], []
    for i in range(count):
        rng = np.random.RandomState([seed, split_index, i])
        img, objects = render_image(rng, image_size)
        file_name = '%06d.png' % i
        cv2.imwrite(os.path.join(image_dir, file_name), img, [cv2.IMWRITE_PNG_COMPRESSION, 3])
        images.append({'id': i + 1, 'file_name': file_name, 'height': image_size[0],
                       'width': image_size[1]})
        for cls, (x1, y1, x2, y2) in objects:
            bw, bh = x2 - x1 + 1, y2 - y1 + 1
            annotations.append({'id': len(annotations) + 1, 'image_id': i + 1,
                                'category_id': cls, 'bbox': [x1, y1, bw, bh],
                                'area': bw * bh, 'iscrowd': 0})
    coco = {
        'info': {'description': 'lighthead synthetic shapes, seed %d' % seed},
        'images': images,
        'annotations': annotations,
        'categories': [{'id': i, 'name': n, 'supercategory': 'shape'}
                       for i, n in enumerate(CLASS_NAMES) if i > 0],
    }
    json_path = os.path.join(out_dir, 'annotations', split + '.json')
    os.makedirs(os.path.dirname(json_path), exist_ok=True)
    with open(json_path, 'w') as f:
        json.dump(coco, f, sort_keys=True)
    return json_path, image_dir


def generate(out_dir=DEFAULT_OUT, num_train=1000, num_val=200, image_size=(256, 320), seed=0):
    """Write the shapes dataset to ``out_dir`` and return its paths:
    ``{'train_json', 'train_images', 'val_json', 'val_images'}``.

    ``image_size``: (height, width) of every image (at least 64 x 64).
    """
    if min(image_size) < 64:
        raise ValueError('image_size %s is too small (min side 64)' % (image_size,))
    paths = {}
    for split, count in zip(SPLITS, (num_train, num_val)):
        json_path, image_dir = _write_split(out_dir, split, count, tuple(image_size), seed)
        paths[split + '_json'] = json_path
        paths[split + '_images'] = image_dir
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(description='Generate the synthetic shapes dataset.')
    parser.add_argument('--out', default=DEFAULT_OUT, help='output folder (default %(default)s)')
    parser.add_argument('--num-train', type=int, default=1000)
    parser.add_argument('--num-val', type=int, default=200)
    parser.add_argument('--height', type=int, default=256)
    parser.add_argument('--width', type=int, default=320)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    paths = generate(args.out, args.num_train, args.num_val, (args.height, args.width), args.seed)
    for key in sorted(paths):
        print('%s: %s' % (key, paths[key]))


if __name__ == '__main__':
    main()
