"""Training augmentation (lighthead.data.augment, cfg.augment): boxes follow the pixels,
the crop's ignore rule, colour jitter, determinism, and all-off batches unchanged."""
import hashlib

import cv2
import numpy as np
import pytest

from lighthead.config import IMAGE_MEAN_BGR, apply_overrides, make_config
from lighthead.data.augment import (adjust_colour, colour_factors, crop, random_crop, rot90,
                                    rot90_boxes, vflip)
from lighthead.data.transforms import flip_boxes, hflip_boxes
from lighthead.data.batch import BatchMaker, batch_settings
from lighthead.datasets import make_record

CLASSES = ['background', 'a', 'b']
MEAN_BGR = np.array(IMAGE_MEAN_BGR, np.float32)
# Distinct BGR colours, far apart, one per box of a test image (background black).
COLOURS = np.array([[250, 0, 0], [0, 250, 0], [0, 0, 250], [250, 250, 0], [250, 0, 250],
                    [0, 250, 250]], np.uint8)


def label_image(h, w, boxes):
    """int32 ``[H, W]``: 0, and ``i + 1`` on box ``i`` (later boxes drawn over earlier)."""
    labels = np.zeros((h, w), np.int32)
    for i, (x1, y1, x2, y2) in enumerate(np.asarray(boxes)[:, :4].astype(int)):
        labels[y1:y2 + 1, x1:x2 + 1] = i + 1
    return labels


def region_box(mask):
    """Inclusive ``[x1, y1, x2, y2]`` of the True pixels of ``mask`` ``[H, W]``, or None."""
    ys, xs = np.nonzero(mask)
    if not len(xs):
        return None
    return [xs.min(), ys.min(), xs.max(), ys.max()]


def gt_rows(boxes, classes=None):
    """float32 ``[N, 5]`` gt rows; classes default to ``1..N``."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    classes = np.arange(1, len(boxes) + 1) if classes is None else classes
    return np.concatenate([boxes, np.asarray(classes, np.float32)[:, None]], axis=1)


BOXES = gt_rows([[2, 3, 11, 7], [20, 1, 29, 24], [5, 15, 14, 29], [31, 26, 39, 29]])
H, W = 30, 40


def assert_rows_are_label_boxes(labels, rows):
    """Row ``i`` of ``rows`` is exactly the bounding box of label ``cls_i`` in ``labels``."""
    for row in rows:
        assert region_box(labels == int(row[4])) == row[:4].tolist()


# ---- geometric transforms, by construction ----

def test_label_boxes_helper_recovers_the_boxes():
    assert_rows_are_label_boxes(label_image(H, W, BOXES), BOXES)


def test_vflip_boxes_match_the_pixels():
    labels, rows = vflip(label_image(H, W, BOXES), BOXES)
    assert labels.shape == (H, W)
    assert_rows_are_label_boxes(labels, rows)
    np.testing.assert_array_equal(flip_boxes(BOXES, H, 0)[:, [0, 2, 4]], BOXES[:, [0, 2, 4]])


@pytest.mark.parametrize('axis', [0, 1])
def test_flip_boxes_match_the_pixels_on_either_axis(axis):
    labels = label_image(H, W, BOXES)
    rows = flip_boxes(BOXES, labels.shape[axis], axis)
    assert rows.dtype == BOXES.dtype and rows is not BOXES
    assert_rows_are_label_boxes(np.flip(labels, axis), rows)
    kept = [0, 2, 4] if axis == 0 else [1, 3, 4]
    np.testing.assert_array_equal(rows[:, kept], BOXES[:, kept])


def test_flip_boxes_formulas_and_the_hflip_alias():
    # Inclusive corners: x' = W - 1 - x on both ends, the two ends swapped (W = 40, H = 30).
    box = BOXES[:1]   # (2, 3, 11, 7, 1)
    np.testing.assert_array_equal(flip_boxes(box, W, 1), [[28, 3, 37, 7, 1]])
    np.testing.assert_array_equal(flip_boxes(box, H, 0), [[2, 22, 11, 26, 1]])
    np.testing.assert_array_equal(hflip_boxes(BOXES, W), flip_boxes(BOXES, W, 1))
    before = BOXES.copy()
    flip_boxes(BOXES, W, 1)
    np.testing.assert_array_equal(BOXES, before)   # the input is left alone
    with pytest.raises(ValueError, match='axis'):
        flip_boxes(BOXES, W, 2)


@pytest.mark.parametrize('k', [0, 1, 2, 3, 5, -1])
def test_rot90_boxes_match_the_pixels(k):
    labels, rows = rot90(label_image(H, W, BOXES), BOXES, k)
    assert labels.shape == ((W, H) if k % 2 else (H, W))
    assert_rows_are_label_boxes(labels, rows)


def test_rot90_one_turn_formula():
    # (x1, y1, x2, y2) -> (y1, W - 1 - x2, y2, W - 1 - x1) for a W = 40 wide image
    np.testing.assert_array_equal(rot90_boxes(BOXES[:1], H, W, 1), [[3, 28, 7, 37, 1]])


def test_rot90_four_times_and_vflip_twice_are_the_identity():
    img = np.random.RandomState(0).randint(0, 256, (H, W, 3)).astype(np.uint8)
    turned, rows = img, BOXES
    for turns in range(1, 5):
        turned, rows = rot90(turned, rows, 1)
        assert np.array_equal(rows, BOXES) == (turns == 4)
    np.testing.assert_array_equal(turned, img)
    np.testing.assert_array_equal(rows, BOXES)
    flipped, rows = vflip(*vflip(img, BOXES))
    np.testing.assert_array_equal(flipped, img)
    np.testing.assert_array_equal(rows, BOXES)


def test_crop_boxes_match_the_pixels():
    labels = label_image(H, W, BOXES)
    for crop_box in ([0, 0, W - 1, H - 1], [4, 2, 25, 20], [8, 10, 39, 29], [21, 5, 22, 6]):
        cropped, rows = crop(labels, BOXES, crop_box)
        x1, y1, x2, y2 = crop_box
        assert cropped.shape == (y2 - y1 + 1, x2 - x1 + 1)
        visible = [region_box(cropped == i + 1) for i in range(len(BOXES))]
        assert sorted(rows[:, :4].tolist()) == sorted(b for b in visible if b is not None)


def test_crop_ignore_rule_hand_case():
    rows = gt_rows([[70, 10, 169, 19],   # 30 of 100 columns inside: ignore, clipped
                    [30, 50, 129, 59],   # 70 inside: an object, clipped
                    [150, 150, 160, 160],  # outside: dropped
                    [10, 80, 20, 90]],   # inside, already an ignore region
                   [1, 2, 1, -1])
    img = np.zeros((200, 200, 3), np.uint8)
    cropped, out = crop(img, rows, [0, 0, 99, 99])
    assert cropped.shape == (100, 100, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out, [[70, 10, 99, 19, -1], [30, 50, 99, 59, 2],
                                        [10, 80, 20, 90, -1]])
    _, shifted = crop(img, rows[1:2], [40, 45, 139, 144])  # crop pixels: minus the origin
    np.testing.assert_array_equal(shifted, [[0, 5, 89, 14, 2]])


def test_random_crop_keeps_an_object_or_falls_back():
    img = np.random.RandomState(1).randint(0, 256, (100, 100, 3)).astype(np.uint8)
    corner = gt_rows([[0, 0, 9, 9]])
    cropped_some = False
    for seed in range(20):
        out, rows = random_crop(img, corner, 0.5, np.random.RandomState(seed))
        assert (rows[:, 4] >= 0).any()
        if out.shape[:2] == (50, 50):
            cropped_some = True
            assert rows[0, 2] - rows[0, 0] + 1 >= 5 and rows[0, 3] - rows[0, 1] + 1 >= 5
        else:
            assert out is img and rows is corner
    assert cropped_some
    whole = gt_rows([[0, 0, 99, 99]])  # a half-size crop shows 25 % of it: never an object
    rng = np.random.RandomState(0)
    out, rows = random_crop(img, whole, 0.5, rng, attempts=3)
    assert out is img and rows is whole
    used = np.random.RandomState(0)
    used.randint(51, size=6)  # three attempts, two draws each, same rng
    assert rng.randint(10 ** 6) == used.randint(10 ** 6)


# ---- colour ----

def test_colour_factors_draw_only_what_is_on():
    assert colour_factors(np.random.RandomState(0)) == (1.0, 1.0, 1.0)
    b, c, s = colour_factors(np.random.RandomState(0), brightness=0.2, saturation=0.4)
    assert 0.8 <= b <= 1.2 and c == 1.0 and 0.6 <= s <= 1.4 and b != 1.0 and s != 1.0


def test_adjust_colour():
    img = np.random.RandomState(2).randint(0, 256, (20, 30, 3)).astype(np.uint8)
    np.testing.assert_array_equal(adjust_colour(img), img)
    brighter = adjust_colour(img, brightness=1.5)
    assert brighter.dtype == np.uint8
    np.testing.assert_array_equal(brighter, np.clip(np.rint(img * 1.5), 0, 255))  # saturates
    flat = adjust_colour(img, contrast=0.0)
    assert flat.min() == flat.max()  # everything at the mean luma
    grey = adjust_colour(img, saturation=0.0).astype(int)
    assert (grey == grey[..., :1]).all()  # B = G = R: the luma
    assert np.abs(grey[..., 0] - cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)).max() <= 1


# ---- in the batch ----

def write_record(folder, name, h, w, boxes, classes, ignore, noise=False):
    """A PNG with box ``i`` filled with ``COLOURS[i]`` (background black, or noise), and
    its record."""
    if noise:
        img = np.random.RandomState(len(name) + h * w).randint(0, 256, (h, w, 3)).astype(np.uint8)
    else:
        img = np.zeros((h, w, 3), np.uint8)
        for i, (x1, y1, x2, y2) in enumerate(np.asarray(boxes, int)):
            img[y1:y2 + 1, x1:x2 + 1] = COLOURS[i]
    path = str(folder / (name + '.png'))
    cv2.imwrite(path, img)
    return make_record(str(folder / 'ann.json'), name, len(name), path, h, w, boxes, classes,
                       ignore)


def colour_records(folder):
    return [
        write_record(folder, 'wide', 40, 64, [[2, 3, 17, 20], [30, 5, 50, 30], [40, 32, 60, 38]],
                     [1, 2, 1], [False, False, True]),
        write_record(folder, 'tall', 64, 40, [[5, 6, 25, 30], [10, 40, 35, 60]], [2, 1],
                     [False, False]),
    ]


def config(tmp_path, **kw):
    values = dict(class_names=CLASSES, output_dir=str(tmp_path / 'out'), seed=7,
                  image_short_size=40, image_max_size=1000, train_batch_per_gpu=2,
                  train_flip=False, nr_dataflow=0)
    values.update(kw)
    return make_config(**values)


def maker(records, cfg, towers=1):
    return BatchMaker(records, batch_settings(cfg, towers, 1))


def image_region(batch, b, colour):
    """Bounding box, in the batch image ``b``, of the pixels more than half ``colour`` (BGR,
    values 0 or 250; blended with black by resampling): every channel within 124 of it."""
    bgr = batch['data'][b][..., ::-1] + MEAN_BGR
    h, w = batch['im_info'][b, :2].astype(int)
    mask = (np.abs(bgr[:h, :w] - colour) <= 124).all(axis=-1)
    return region_box(mask)


def assert_boxes_on_colours(batch, tol):
    """Every non-ignore gt box is, within ``tol`` px, the region of one of the COLOURS."""
    for b in range(len(batch['data'])):
        for row in batch['boxes'][b, :int(batch['im_info'][b, 5])]:
            if row[4] < 0:
                continue
            regions = [image_region(batch, b, c) for c in COLOURS]
            errors = [np.abs(np.subtract(r, row[:4])).max() for r in regions if r is not None]
            assert min(errors) <= tol, (row, regions)


def test_geometric_augmentations_move_boxes_with_pixels(tmp_path):
    cfg = config(tmp_path, train_flip=True,
                 augment=dict(vflip=True, rot90=True, scale_range=[0.8, 1.3], crop_fraction=0.7))
    make = maker(colour_records(tmp_path), cfg).make
    shapes, scales, boxes = set(), set(), set()
    crop_made_ignore = 0
    for k in range(16):
        batch, _, _ = make(k)
        assert_boxes_on_colours(batch, tol=1.5)  # scales 0.8 to 1.3: see below
        for b in range(2):
            h, w, scale, oh, ow, n = batch['im_info'][b]
            assert not batch['data'][b, int(h):].any() and not batch['data'][b, :, int(w):].any()
            assert (batch['boxes'][b, :int(n), [0, 2]] <= w - 1).all()
            assert (batch['boxes'][b, :int(n), [1, 3]] <= h - 1).all()
            ignored = batch['boxes'][b, :int(n), 4] < 0
            np.testing.assert_array_equal(ignored, np.sort(ignored))  # objects first
            ignores_in_record = 1 if (oh, ow) == (40, 64) else 0
            crop_made_ignore += ignored.sum() > ignores_in_record
            shapes.add(h > w)
            scales.add(round(float(scale), 3))
            boxes.add(tuple(batch['boxes'][b, 0].tolist()))
    assert shapes == {True, False} and len(scales) > 4 and len(boxes) > 10
    assert crop_made_ignore


def test_rot90_swaps_height_and_width_in_im_info(tmp_path):
    records = [write_record(tmp_path, 'r', 40, 64, [[2, 3, 17, 20]], [1], [False])]
    cfg = config(tmp_path, train_batch_per_gpu=1, augment=dict(rot90=True))
    make = maker(records, cfg).make
    infos = {tuple(make(k)[0]['im_info'][0].tolist()) for k in range(12)}
    assert infos == {(40, 64, 1, 40, 64, 1), (64, 40, 1, 40, 64, 1)}


def test_scale_jitter_respects_the_range_and_max_size(tmp_path):
    records = [write_record(tmp_path, 'r', 40, 80, [[2, 3, 30, 20]], [1], [False])]
    cfg = config(tmp_path, train_batch_per_gpu=1, image_max_size=110,
                 augment=dict(scale_range=[0.5, 2.0]))
    make = maker(records, cfg).make
    heights = []
    for k in range(20):
        batch = make(k)[0]
        h, w, scale = batch['im_info'][0, :3]
        assert 20 <= h <= 55 and w <= 110 and scale == pytest.approx(h / 40.0)
        # 1 px of resampling, plus the corner-scaling convention: x2 * s, not (x2 + 1) * s - 1
        assert_boxes_on_colours(batch, tol=1.0 + abs(scale - 1.0))
        heights.append(h)
    assert min(heights) < 30 and max(heights) == 55  # 80 x 2.0 > 110: capped at 55 x 110


def test_colour_jitter_changes_pixels_not_boxes(tmp_path):
    records = colour_records(tmp_path)
    plain = maker(records, config(tmp_path, train_flip=True)).make
    jittered = maker(records, config(tmp_path, train_flip=True, augment=dict(
        brightness=0.3, contrast=0.3, saturation=0.3))).make
    for k in range(3):
        want, got = plain(k)[0], jittered(k)[0]
        np.testing.assert_array_equal(got['boxes'], want['boxes'])
        np.testing.assert_array_equal(got['im_info'], want['im_info'])
        assert np.abs(got['data'] - want['data']).mean() > 1.0


def test_same_step_same_batch_other_steps_differ(tmp_path):
    records = colour_records(tmp_path)
    records += [write_record(tmp_path, 'noise', 48, 52, [[1, 2, 30, 40]], [1], [False], True),
                write_record(tmp_path, 'noisy', 56, 44, [[3, 4, 40, 50]], [2], [False], True)]
    cfg = config(tmp_path, train_flip=True, augment=dict(
        vflip=True, rot90=True, brightness=0.2, contrast=0.2, saturation=0.2,
        scale_range=[0.7, 1.4], crop_fraction=0.8))
    first, second = maker(records, cfg, towers=2), maker(records, cfg, towers=2)
    for k in (5, 0, 3):  # any order, any maker: the same (seed, step, tower), the same batch
        a, b = first.make(k)[0], second.make(k)[0]
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    batches = [first.make(k)[0] for k in (0, 2, 4, 6)]  # tower 0 of steps 0..3 (same images)
    for i in range(len(batches)):
        for j in range(i):
            assert (batches[i]['data'].shape != batches[j]['data'].shape
                    or not np.array_equal(batches[i]['data'], batches[j]['data']))


# ---- all off: the batches of before ----

def golden_records(folder):
    """Four noise PNGs of different sizes, each with two objects and one ignore region."""
    rng = np.random.RandomState(0)
    records = []
    for i, (h, w) in enumerate([(37, 61), (50, 44), (41, 80), (64, 64)]):
        img = rng.randint(0, 256, size=(h, w, 3)).astype(np.uint8)
        path = str(folder / ('g%d.png' % i))
        cv2.imwrite(path, img)
        boxes = np.array([[2, 3, w // 2, h // 2], [w // 3, h // 4, w - 1, h - 2],
                          [1, h // 2, w // 4, h - 1]], np.float32)
        records.append(make_record(str(folder / 'ann.json'), 'g%d' % i, i + 1, path, h, w,
                                   boxes, [1, 2, 1], [False, True, False]))
    return records


def batches_digest(records, cfg, tasks=8):
    """sha256 of data, im_info and boxes of tasks ``0..tasks-1`` (2 towers)."""
    make = maker(records, cfg, towers=2).make
    digest = hashlib.sha256()
    for k in range(tasks):
        batch = make(k)[0]
        for key in ('data', 'im_info', 'boxes'):
            digest.update(batch[key].tobytes())
    return digest.hexdigest()


# Computed with the code before cfg.augment existed (OpenCV 5.1.0, NumPy 2.4.6): multi-scale
# with the max-size cap, horizontal flips, an ignore region, two towers.
BEFORE_AUGMENT_DIGEST = '10dd1d12aa1cd272b3e2c2ab91496c629aeb8d4c3a8ae99bec0c12c7f469ca0a'


def test_augment_off_gives_the_batches_of_before(tmp_path):
    kw = dict(seed=11, train_short_sizes=[24, 40, 56], image_max_size=70, train_flip=True,
              max_boxes_of_image=4)
    cfg = config(tmp_path, **kw)
    assert all(not v for v in cfg.augment.values())  # off by default
    records = golden_records(tmp_path)
    assert batches_digest(records, cfg) == BEFORE_AUGMENT_DIGEST
    on = config(tmp_path, augment=dict(vflip=True), **kw)
    assert batches_digest(records, on) != BEFORE_AUGMENT_DIGEST


# ---- config ----

def test_augment_config_merges_and_checks(tmp_path):
    cfg = config(tmp_path, augment=dict(vflip=True, scale_range=[0.8, 1.2]))
    assert cfg.augment.vflip and not cfg.augment.rot90 and cfg.augment.crop_fraction is None
    assert batch_settings(cfg, 1, 1)['augment']['scale_range'] == [0.8, 1.2]
    apply_overrides(cfg, ['augment.rot90=True'])
    assert batch_settings(cfg, 1, 1)['augment']['rot90'] is True
    with pytest.raises(KeyError, match='augment.hflip'):
        config(tmp_path, augment=dict(hflip=True))
    for bad in (dict(crop_fraction=0.0), dict(crop_fraction=1.5), dict(brightness=1.0),
                dict(scale_range=[1.2, 0.8]), dict(scale_range=[0.5])):
        with pytest.raises(ValueError, match='augment'):
            batch_settings(config(tmp_path, augment=bad), 1, 1)
