"""Cut large annotated images into fixed-size tiles (COCO JSON + PNG), split train/val by region.

Rules (boxes are inclusive pixels ``[x1, y1, x2, y2]``, ``w = x2 - x1 + 1``, SPEC 2.1):

- **Regions.** Each source image is assigned whole to ``'train'`` or ``'val'``, or split in
  ``'band'`` mode: its bottom ``round(val_fraction * H)`` rows are the val region, the rows
  above are the train region. Tiles are cut inside one region only, so no pixel of a val tile
  is in a train tile. A crown cut by the band boundary appears partly on both sides, each part
  under the box rule below.
- **Grid.** In a region of size ``W x H`` a tile of ``T x T`` starts at ``0, s, 2s, ...`` along
  each axis while it fits; when that grid misses the far edge, one more tile flush with the
  edge is added. Every pixel of the region is covered and no tile leaves it. A region smaller
  than ``T`` on either side is an error. Tiles are ordered row by row (top-left first).
- **Boxes.** A box is intersected with the tile. Its visible fraction ``v`` is the intersection
  area over the box area (``+1`` areas). ``v = 0``: dropped. ``v >= min_visible``: kept as an
  object, clipped to the tile. ``0 < v < min_visible``: kept, clipped, as an ignore region
  (COCO ``iscrowd = 1``: neither positive nor negative in training, detections on it not
  counted in evaluation). A box that was already an ignore region stays one.

Training uses overlapping tiles (``stride < T``, every crown is seen whole in some tile);
validation uses ``val_stride = T`` by default, so tiles overlap only where an edge-flush tile
is needed and each crown is counted about once.

Layout written by :func:`write_tiles`::

    <out>/train/<stem>_x<X>_y<Y>.png ...  <out>/val/...         (X, Y: tile origin in the source)
    <out>/annotations/train.json  <out>/annotations/val.json    (file_name relative to the
                                                                 split's image folder)

Each COCO image also carries ``source_file`` (the source image's file name) and
``tile_origin`` ``[x, y]`` (its top-left pixel there), so detections can be mapped back.
No randomness: the same inputs and settings give byte-identical files.

Command line: ``python -m lighthead.datasets.tiles [--data DIR] [--out DIR] [--tile 400] ...``
reads the tree-crown images of ``data/treecrowns/`` (:data:`TREECROWN_SOURCES`).
"""
import argparse
import os

import cv2
import numpy as np

from ..config import REPO_ROOT
from .convert import dataset_to_coco, write_json
from .records import Dataset, make_record
from .voc import load_voc_xml

CLASS_NAMES = ['background', 'Tree']
DEFAULT_DATA = os.path.join(REPO_ROOT, 'data', 'treecrowns')
DEFAULT_OUT = os.path.join(REPO_ROOT, 'data', 'generated', 'treecrowns')
SPLITS = ('train', 'val')
PLACEMENTS = ('band',) + SPLITS

# (VOC annotation file in DEFAULT_DATA, placement). OSBS_029 is a second site (Florida pine
# flatwoods vs. Yellowstone conifers): kept out of training it measures transfer across sites,
# and DeepForest's documentation reports precision and recall on that very image.
TREECROWN_SOURCES = (('2019_YELL_2_528000_4978000_image_crop2.xml', 'band'),
                     ('OSBS_029.xml', 'val'))


def tile_starts(length, tile, stride):
    """Tile start offsets along an axis of ``length`` pixels: ``0, stride, ...`` while the tile
    fits, plus ``length - tile`` when the last one does not reach the end. ``[int]``."""
    if tile > length:
        raise ValueError('a tile of %d px does not fit in %d px' % (tile, length))
    if stride <= 0:
        raise ValueError('stride must be positive, got %d' % stride)
    starts = list(range(0, length - tile + 1, stride))
    if starts[-1] + tile < length:
        starts.append(length - tile)
    return starts


def tile_grid(region, tile, stride):
    """Top-left corners ``[(x, y)]`` of the tiles covering ``region`` (inclusive
    ``[x1, y1, x2, y2]`` in source pixels), row by row."""
    x1, y1, x2, y2 = [int(v) for v in region]
    xs = tile_starts(x2 - x1 + 1, tile, stride)
    ys = tile_starts(y2 - y1 + 1, tile, stride)
    return [(x1 + x, y1 + y) for y in ys for x in xs]


def clip_to_tile(boxes, ignore, tile_box, min_visible=0.5):
    """The boxes that touch ``tile_box``, clipped to it, in tile pixels.

    ``boxes`` float ``[N, 4]`` and ``tile_box`` ``[x1, y1, x2, y2]`` inclusive source pixels;
    ``ignore`` bool ``[N]``. Returns ``(index, clipped, ignore)``: ``index`` int64 ``[K]`` of
    the touching boxes, ``clipped`` float32 ``[K, 4]`` relative to the tile's top-left, and
    ``ignore`` bool ``[K]``: the input flag, or the visible area fraction below ``min_visible``.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    tx1, ty1, tx2, ty2 = [float(v) for v in tile_box]
    inter = np.stack([np.maximum(boxes[:, 0], tx1), np.maximum(boxes[:, 1], ty1),
                      np.minimum(boxes[:, 2], tx2), np.minimum(boxes[:, 3], ty2)], axis=1)
    iw = inter[:, 2] - inter[:, 0] + 1
    ih = inter[:, 3] - inter[:, 1] + 1
    index = np.nonzero((iw > 0) & (ih > 0))[0]
    area = (boxes[index, 2] - boxes[index, 0] + 1) * (boxes[index, 3] - boxes[index, 1] + 1)
    visible = iw[index] * ih[index] / area
    clipped = (inter[index] - [tx1, ty1, tx1, ty1]).astype(np.float32)
    partial = np.asarray(ignore, bool).reshape(-1)[index] | (visible < min_visible)
    return index, clipped, partial


def split_regions(height, width, placement, val_fraction=0.25):
    """``[(split, region)]`` of an image: ``placement`` ``'train'`` or ``'val'`` gives the whole
    image; ``'band'`` gives the bottom ``round(val_fraction * height)`` rows to val and the rest
    to train. Regions are inclusive ``[x1, y1, x2, y2]``."""
    whole = [0, 0, width - 1, height - 1]
    if placement in SPLITS:
        return [(placement, whole)]
    if placement != 'band':
        raise ValueError('placement must be one of %s, got %r' % (PLACEMENTS, placement))
    val_rows = int(round(val_fraction * height))
    if not 0 < val_rows < height:
        raise ValueError('val_fraction %r leaves no train or no val rows of %d'
                         % (val_fraction, height))
    boundary = height - val_rows
    return [('train', [0, 0, width - 1, boundary - 1]),
            ('val', [0, boundary, width - 1, height - 1])]


def cut_tiles(record, region, tile, stride, min_visible=0.5):
    """The tiles of ``region`` of a record: ``[{'origin': (x, y), 'boxes' float32 [K, 4] (tile
    pixels), 'classes' int32 [K], 'ignore' bool [K]}]`` (pixels are not read here)."""
    tiles = []
    for x, y in tile_grid(region, tile, stride):
        index, boxes, ignore = clip_to_tile(record['boxes'], record['ignore'],
                                            [x, y, x + tile - 1, y + tile - 1], min_visible)
        tiles.append({'origin': (x, y), 'boxes': boxes, 'classes': record['classes'][index],
                      'ignore': ignore})
    return tiles


def read_sources(data_dir=DEFAULT_DATA, sources=TREECROWN_SOURCES):
    """``[(record, placement)]`` of the VOC files named in ``sources`` (in ``data_dir``), with
    classes :data:`CLASS_NAMES`."""
    out = []
    for xml_name, placement in sources:
        dataset = load_voc_xml(os.path.join(data_dir, xml_name), class_names=CLASS_NAMES)
        out.append((dataset.records[0], placement))
    return out


def _read_image(record):
    # The one image reader (truncated files are errors); imported here: lighthead.data imports
    # this module (augment uses clip_to_tile).
    from ..data.transforms import read_image
    image = read_image(record['fpath'])
    if image.shape[:2] != (record['height'], record['width']):
        raise ValueError('image %s is %dx%d (w x h) but its annotation says %dx%d' % (
            record['fpath'], image.shape[1], image.shape[0], record['width'], record['height']))
    return image


def write_tiles(sources, out_dir=DEFAULT_OUT, tile=400, stride=300, val_stride=None,
                val_fraction=0.25, min_visible=0.5):
    """Tile ``sources`` (``[(record, placement)]``, see :func:`read_sources`) into ``out_dir``.

    ``stride``: train tile step; ``val_stride``: val tile step (None: ``tile``, no overlap
    beyond edge-flush tiles). Returns ``{'train_json', 'train_images', 'val_json',
    'val_images', 'train_tiles', 'val_tiles'}`` (paths, and tile counts).
    """
    steps = {'train': stride, 'val': tile if val_stride is None else val_stride}
    tiles_of = dict((split, []) for split in SPLITS)
    for record, placement in sources:
        image = _read_image(record)
        stem = os.path.splitext(os.path.basename(record['fpath']))[0]
        for split, region in split_regions(record['height'], record['width'], placement,
                                           val_fraction):
            image_dir = os.path.join(out_dir, split)
            os.makedirs(image_dir, exist_ok=True)
            for t in cut_tiles(record, region, tile, steps[split], min_visible):
                x, y = t['origin']
                fpath = os.path.join(image_dir, '%s_x%04d_y%04d.png' % (stem, x, y))
                cv2.imwrite(fpath, image[y:y + tile, x:x + tile], [cv2.IMWRITE_PNG_COMPRESSION, 3])
                t['fpath'] = fpath
                t['source_file'] = os.path.basename(record['fpath'])
                tiles_of[split].append(t)
    paths = {}
    for split in SPLITS:
        image_dir = os.path.join(out_dir, split)
        json_path = os.path.join(out_dir, 'annotations', split + '.json')
        records = [make_record(json_path, os.path.basename(t['fpath']), i + 1, t['fpath'],
                               tile, tile, t['boxes'], t['classes'], t['ignore'])
                   for i, t in enumerate(tiles_of[split])]
        coco = dataset_to_coco(Dataset(CLASS_NAMES, records, [None, 1], json_path), image_dir)
        for image, t in zip(coco['images'], tiles_of[split]):
            image['source_file'] = t['source_file']
            image['tile_origin'] = list(t['origin'])
        write_json(coco, json_path)
        paths.update({split + '_json': json_path, split + '_images': image_dir,
                      split + '_tiles': len(records)})
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(
        description='Tile the tree-crown images into train/val COCO datasets (split by region).')
    parser.add_argument('--data', default=DEFAULT_DATA,
                        help='folder with the source images and VOC XML (default %(default)s)')
    parser.add_argument('--out', default=DEFAULT_OUT, help='output folder (default %(default)s)')
    parser.add_argument('--tile', type=int, default=400, help='tile side in pixels')
    parser.add_argument('--stride', type=int, default=300, help='train tile step in pixels')
    parser.add_argument('--val-stride', type=int, default=None,
                        help='val tile step in pixels (default: the tile side)')
    parser.add_argument('--val-fraction', type=float, default=0.25,
                        help="bottom fraction of rows of a 'band' image that is val")
    parser.add_argument('--min-visible', type=float, default=0.5,
                        help='a clipped box with less of its area in the tile is an ignore region')
    args = parser.parse_args(argv)
    paths = write_tiles(read_sources(args.data), args.out, args.tile, args.stride,
                        args.val_stride, args.val_fraction, args.min_visible)
    for key in sorted(paths):
        print('%s: %s' % (key, paths[key]))


if __name__ == '__main__':
    main()
