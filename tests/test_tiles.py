"""Tiling of large annotated images: grid, box clipping and the partial-box rule, the region
split (no train/val overlap), determinism, the VOC reader and the command line."""
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from lighthead.datasets import load_coco, make_record, validate_record
from lighthead.datasets.tiles import (CLASS_NAMES, DEFAULT_DATA, clip_to_tile, cut_tiles,
                                      read_sources, split_regions, tile_grid, tile_starts,
                                      write_tiles)

TILE, STRIDE = 100, 75
BIG_H, BIG_W = 400, 260  # band split at 0.25: train rows 0..299, val rows 300..399


def test_tile_starts():
    assert tile_starts(1000, 400, 300) == [0, 300, 600]
    assert tile_starts(1001, 400, 300) == [0, 300, 600, 601]
    assert tile_starts(400, 400, 300) == [0]
    assert tile_starts(260, 100, 100) == [0, 100, 160]
    with pytest.raises(ValueError):
        tile_starts(399, 400, 300)


def test_tile_grid_stays_in_region_and_covers_it():
    region = [10, 300, 269, 399]
    grid = tile_grid(region, TILE, STRIDE)
    assert grid[:4] == [(10, 300), (85, 300), (160, 300), (170, 300)]
    covered = np.zeros((400, 270), bool)
    for x, y in grid:
        assert x >= 10 and y >= 300 and x + TILE - 1 <= 269 and y + TILE - 1 <= 399
        covered[y:y + TILE, x:x + TILE] = True
    assert covered[300:, 10:].all() and not covered[:300].any() and not covered[:, :10].any()


def test_clip_to_tile_partial_box_rule():
    tile = [100, 200, 199, 299]
    boxes = [[110, 210, 129, 229],   # inside
             [90, 210, 109, 229],    # 10 of 20 columns inside: exactly 50% -> object
             [89, 210, 108, 229],    # 9 of 20 columns: 45% -> ignore region
             [199, 299, 220, 320],   # one corner pixel inside -> ignore region
             [0, 0, 99, 299],        # left of the tile -> dropped
             [150, 250, 160, 260]]   # inside but already an ignore region
    ignore = [False, False, False, False, False, True]
    index, clipped, ign = clip_to_tile(boxes, ignore, tile, min_visible=0.5)
    assert index.tolist() == [0, 1, 2, 3, 5]
    assert clipped.dtype == np.float32
    assert clipped.tolist() == [[10, 10, 29, 29], [0, 10, 9, 29], [0, 10, 8, 29],
                                [99, 99, 99, 99], [50, 50, 60, 60]]
    assert ign.tolist() == [False, False, True, True, True]
    _, _, ign = clip_to_tile(boxes, ignore, tile, min_visible=0.6)
    assert ign.tolist() == [False, True, True, True, True]
    index, clipped, ign = clip_to_tile(np.zeros((0, 4)), np.zeros(0, bool), tile)
    assert index.shape == (0,) and clipped.shape == (0, 4) and ign.shape == (0,)


def test_split_regions():
    assert split_regions(400, 260, 'band', 0.25) == [('train', [0, 0, 259, 299]),
                                                     ('val', [0, 300, 259, 399])]
    assert split_regions(100, 120, 'val') == [('val', [0, 0, 119, 99])]
    assert split_regions(100, 120, 'train') == [('train', [0, 0, 119, 99])]
    with pytest.raises(ValueError):
        split_regions(100, 120, 'band', 0.001)
    with pytest.raises(ValueError):
        split_regions(100, 120, 'test')


def random_boxes(rng, n, h, w):
    sizes = rng.randint(5, 41, size=(n, 2))
    x1 = rng.randint(0, w - sizes[:, 0] + 1)
    y1 = rng.randint(0, h - sizes[:, 1] + 1)
    return np.stack([x1, y1, x1 + sizes[:, 0] - 1, y1 + sizes[:, 1] - 1], 1).astype(np.float32)


@pytest.fixture(scope='module')
def sources(tmp_path_factory):
    """A 260 x 400 'band' image (with a box across the band boundary and an ignore region)
    and a 120 x 100 'val' image, random pixels and boxes, as ``[(record, placement)]``."""
    folder = str(tmp_path_factory.mktemp('tile_sources'))
    rng = np.random.RandomState(0)
    out = []
    for name, (h, w), n, placement in (('big', (BIG_H, BIG_W), 60, 'band'),
                                       ('small', (100, 120), 8, 'val')):
        path = os.path.join(folder, name + '.png')
        cv2.imwrite(path, rng.randint(0, 256, size=(h, w, 3)).astype(np.uint8))
        boxes = random_boxes(rng, n, h, w)
        ignore = np.zeros(n, bool)
        if name == 'big':
            boxes[0] = [30, 280, 59, 319]  # across the boundary at row 300
            ignore[1] = True
        out.append((make_record(name, name, 0, path, h, w, boxes, np.ones(n, np.int32), ignore),
                    placement))
    return out


@pytest.fixture(scope='module')
def tiled(sources, tmp_path_factory):
    out = str(tmp_path_factory.mktemp('tiles'))
    paths = write_tiles(sources, out, tile=TILE, stride=STRIDE)
    paths['out'] = out
    return paths


def load_split(paths, split):
    with open(paths[split + '_json']) as f:
        coco = json.load(f)
    return coco, load_coco(paths[split + '_json'], paths[split + '_images'])


def test_tiles_match_source_pixels_and_boxes(sources, tiled):
    by_name = dict((os.path.basename(rec['fpath']), rec) for rec, _ in sources)
    checked = 0
    for split in ('train', 'val'):
        coco, dataset = load_split(tiled, split)
        assert dataset.class_names == CLASS_NAMES
        for image, rec in zip(coco['images'], dataset.records):
            validate_record(rec, CLASS_NAMES)  # file exists, boxes inside the tile
            src = by_name[image['source_file']]
            x, y = image['tile_origin']
            tile = cv2.imread(rec['fpath'])
            assert tile.shape == (TILE, TILE, 3)
            assert np.array_equal(tile, cv2.imread(src['fpath'])[y:y + TILE, x:x + TILE])
            # Expected boxes from pixel masks: each source box's pixels inside the tile.
            expected = []
            for box, ign in zip(src['boxes'].astype(int), src['ignore']):
                mask = np.zeros((src['height'], src['width']), bool)
                mask[box[1]:box[3] + 1, box[0]:box[2] + 1] = True
                inside = mask[y:y + TILE, x:x + TILE]
                if not inside.any():
                    continue
                ys, xs = np.nonzero(inside)
                partial = inside.sum() < 0.5 * mask.sum()
                expected.append((xs.min(), ys.min(), xs.max(), ys.max(), bool(ign or partial)))
            got = [tuple(int(v) for v in b) + (bool(i),)
                   for b, i in zip(rec['boxes'], rec['ignore'])]
            assert sorted(got) == sorted(expected)
            assert (rec['classes'] == 1).all()
            checked += len(got)
    assert checked > 60


def test_band_split_has_no_overlap(sources, tiled):
    rects = {}
    for split in ('train', 'val'):
        coco, _ = load_split(tiled, split)
        rects[split] = [(image['source_file'], image['tile_origin']) for image in coco['images']]
    for name, (x, y) in rects['train']:
        assert name == 'big.png' and y + TILE - 1 <= 299
    assert ('small.png', [0, 0]) in rects['val']
    for name, (x, y) in rects['val']:
        assert name == 'small.png' or y >= 300
    for _, (tx, ty) in rects['train']:
        for name, (vx, vy) in rects['val']:
            if name == 'big.png':
                assert tx + TILE <= vx or vx + TILE <= tx or ty + TILE <= vy or vy + TILE <= ty
    # The boundary-crossing box (rows 280..319, half on each side): its top half is an object
    # of the train tile at (0, 200), its bottom half an object of the val tile at (0, 300).
    _, train = load_split(tiled, 'train')
    _, val = load_split(tiled, 'val')
    assert ([30, 80, 59, 99], False) in boxes_of(train, 'big_x0000_y0200.png')
    assert ([30, 0, 59, 19], False) in boxes_of(val, 'big_x0000_y0300.png')


def boxes_of(dataset, record_id):
    rec = [r for r in dataset.records if r['id'] == record_id][0]
    return [(b.tolist(), bool(i)) for b, i in zip(rec['boxes'], rec['ignore'])]


def test_tile_counts_and_val_stride(tiled):
    # train: 4 rows (0, 75, 150, 200) x 4 columns (0, 75, 150, 160); val (stride = tile):
    # big 1 row x 3 columns (0, 100, 160), small 1 x 2 (0, 20).
    assert tiled['train_tiles'] == 16 and tiled['val_tiles'] == 5
    coco, _ = load_split(tiled, 'val')
    assert [i['tile_origin'] for i in coco['images']] == [[0, 300], [100, 300], [160, 300],
                                                          [0, 0], [20, 0]]
    assert [i['id'] for i in coco['images']] == [1, 2, 3, 4, 5]


def all_files(root):
    found = {}
    for folder, _, names in os.walk(root):
        for name in names:
            with open(os.path.join(folder, name), 'rb') as f:
                found[os.path.relpath(os.path.join(folder, name), root)] = f.read()
    return found


def test_deterministic(sources, tiled, tmp_path):
    write_tiles(sources, str(tmp_path), tile=TILE, stride=STRIDE)
    first = all_files(tiled['out'])
    again = all_files(str(tmp_path))
    assert len(again) == 16 + 5 + 2 and first == again


VOC_XML = """<annotation><filename>{name}</filename>
<size><width>{w}</width><height>{h}</height><depth>3</depth></size>{objects}</annotation>"""
VOC_OBJ = """<object><name>Tree</name><difficult>0</difficult><bndbox><xmin>{0}</xmin>
<ymin>{1}</ymin><xmax>{2}</xmax><ymax>{3}</ymax></bndbox></object>"""


def test_command_line_reads_voc(tmp_path):
    data = tmp_path / 'data'
    data.mkdir()
    for name, (h, w), placement in (('2019_YELL_2_528000_4978000_image_crop2', (160, 120), 'band'),
                                    ('OSBS_029', (40, 40), 'val')):
        cv2.imwrite(str(data / (name + '.png')), np.full((h, w, 3), 7, np.uint8))
        objects = VOC_OBJ.format(1, 1, 20, 10)  # 1-based: tile pixels 0..19 x 0..9
        (data / (name + '.xml')).write_text(VOC_XML.format(name=name + '.png', h=h, w=w,
                                                           objects=objects))
    assert [p for _, p in read_sources(str(data))] == ['band', 'val']
    out = tmp_path / 'out'
    subprocess.run([sys.executable, '-m', 'lighthead.datasets.tiles', '--data', str(data),
                    '--out', str(out), '--tile', '40', '--stride', '30'], check=True,
                   stdout=subprocess.DEVNULL)
    # band: train rows 0..119 (x 0, 30, 60, 80; y 0, 30, 60, 80), val rows 120..159 (x 0, 40, 80)
    train = load_coco(str(out / 'annotations' / 'train.json'), str(out / 'train'))
    val = load_coco(str(out / 'annotations' / 'val.json'), str(out / 'val'))
    assert len(train.records) == 16 and len(val.records) == 3 + 1
    assert train.records[0]['boxes'].tolist() == [[0, 0, 19, 9]]
    assert val.records[-1]['id'] == 'OSBS_029_x0000_y0000.png'
    assert val.records[-1]['boxes'].tolist() == [[0, 0, 19, 9]]


def test_bundled_tree_crowns_plan():
    """The bundled data: YELL split into a train and a val band, OSBS_029 all val (boxes only,
    no pixels read)."""
    (yell, yell_placement), (osbs, osbs_placement) = read_sources(DEFAULT_DATA)
    assert (yell['width'], yell['height'], len(yell['boxes'])) == (2299, 2472, 574)
    assert (osbs['width'], osbs['height'], len(osbs['boxes'])) == (400, 400, 61)
    assert (yell_placement, osbs_placement) == ('band', 'val')
    counts = {}
    for rec, placement in ((yell, yell_placement), (osbs, osbs_placement)):
        for split, region in split_regions(rec['height'], rec['width'], placement):
            tiles = cut_tiles(rec, region, 400, 300 if split == 'train' else 400)
            counts[split] = counts.get(split, 0) + len(tiles)
            for t in tiles:
                x, y = t['origin']
                assert region[1] <= y and y + 399 <= region[3]
    assert counts == {'train': 6 * 8, 'val': 2 * 6 + 1}
