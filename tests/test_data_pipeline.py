"""Transforms and the training data flow: batch format, flips, scales, order, bad inputs."""
import json
import logging
import os
import signal
import time

import cv2
import numpy as np
import pytest

from lighthead.config import IMAGE_MEAN_BGR, make_config
from lighthead.data import (ImageReadError, TrainDataFlow, hflip_boxes, load_test_image, normalize,
                            resize_short_max)
from lighthead.datasets import BadRecordError, load_dataset, make_record

CLASSES = ['background', 'a', 'b']
BRIGHT = 250
MEAN_RGB = np.array(IMAGE_MEAN_BGR[::-1], np.float32)


def config(tmp_path, **kw):
    values = dict(class_names=CLASSES, output_dir=str(tmp_path / 'out'), seed=5,
                  image_short_size=40, image_max_size=1000, train_batch_per_gpu=2,
                  train_flip=False, nr_dataflow=0, data_timeout=10.0)
    values.update(kw)
    return make_config(**values)


def write_record(tmp_path, name, h, w, boxes, classes=None, ignore=None):
    """A PNG of zeros with each box filled BRIGHT, and its record."""
    boxes = np.array(boxes, np.float32).reshape(-1, 4)
    img = np.zeros((h, w, 3), np.uint8)
    for x1, y1, x2, y2 in boxes.astype(int):
        img[y1:y2 + 1, x1:x2 + 1] = BRIGHT
    path = str(tmp_path / (name + '.png'))
    cv2.imwrite(path, img)
    n = len(boxes)
    return make_record(str(tmp_path / 'ann.json'), name, len(name), path, h, w, boxes,
                       [1] * n if classes is None else classes,
                       [False] * n if ignore is None else ignore)


def distinct_records(tmp_path, count):
    """Records with distinct raw sizes (h, w) = (40 + i, 60 + 2 i), so im_info names them."""
    return [write_record(tmp_path, 'r%d' % i, 40 + i, 60 + 2 * i,
                         [[3 + i, 4, 20 + i, 30]], [1 + i % 2]) for i in range(count)]


def step_ids(batches):
    return [tuple(row) for b in batches for row in b['im_info'][:, 3:5].astype(int).tolist()]


def assert_bright_boxes(batch):
    """Every valid, non-ignore gt box of the batch covers BRIGHT pixels in ``data``."""
    for b in range(len(batch['data'])):
        for x1, y1, x2, y2, cls in batch['boxes'][b, :int(batch['im_info'][b, 5])]:
            if cls < 0:
                continue
            patch = batch['data'][b, int(y1):int(y2) + 1, int(x1):int(x2) + 1]
            np.testing.assert_allclose(patch, np.broadcast_to(BRIGHT - MEAN_RGB, patch.shape),
                                       atol=1e-4)


# ---- transforms ----

def test_resize_short_max_rule():
    img = np.zeros((100, 300, 3), np.uint8)
    out, scale = resize_short_max(img, 50, 120)  # capped by the long side: 120 / 300
    assert out.shape == (40, 120, 3) and scale == pytest.approx(0.4)
    out, scale = resize_short_max(np.zeros((33, 50, 3), np.uint8), 20, 1000)
    assert out.shape[:2] == (20, 30) and scale == pytest.approx(20 / 33.0)


def test_hflip_boxes():
    boxes = np.array([[0, 1, 9, 4, 7], [15, 0, 19, 2, -1]], np.float32)
    flipped = hflip_boxes(boxes, 20)
    np.testing.assert_array_equal(flipped, [[10, 1, 19, 4, 7], [0, 0, 4, 2, -1]])
    np.testing.assert_array_equal(hflip_boxes(flipped, 20), boxes)


def test_normalize_is_rgb_minus_means():
    img = np.array([[[10, 20, 30]]], np.uint8)
    out = normalize(img, (1, 2, 3))
    assert out.dtype == np.float32 and out.tolist() == [[[27.0, 18.0, 9.0]]]


def test_load_test_image(tmp_path):
    rec = write_record(tmp_path, 'x', 30, 60, [[0, 0, 5, 5]])
    data, im_info, raw = load_test_image(rec['fpath'], 60, 100, IMAGE_MEAN_BGR)
    # short side 60 would make the long side 120 > 100: capped to 50 x 100
    assert data.shape == (1, 50, 100, 3) and data.dtype == np.float32
    np.testing.assert_allclose(im_info, [[50, 100, 50 / 30.0, 30, 60, 0]], rtol=1e-6)
    assert raw.shape == (30, 60, 3)
    with pytest.raises(ImageReadError, match='nope.png'):
        load_test_image(str(tmp_path / 'nope.png'), 60, 100, IMAGE_MEAN_BGR)


# ---- batch format ----

def test_batch_shapes_padding_and_boxes(tmp_path):
    records = [
        write_record(tmp_path, 'wide', 40, 60, [[1, 2, 10, 20], [30, 5, 50, 30]], [2, 1],
                     [True, False]),
        write_record(tmp_path, 'tall', 60, 40, [[5, 6, 25, 50]], [1]),
    ]
    with TrainDataFlow(records, config(tmp_path, max_boxes_of_image=4), 1) as flow:
        (batch,) = next(flow)
    assert sorted(batch) == ['boxes', 'data', 'im_info']
    assert batch['data'].shape == (2, 60, 60, 3) and batch['data'].dtype == np.float32
    assert batch['boxes'].shape == (2, 4, 5) and batch['boxes'].dtype == np.float32
    assert batch['im_info'].dtype == np.float32
    for b in range(2):
        h, w, scale, oh, ow, n = batch['im_info'][b]
        assert (h, w, scale) == (oh, ow, 1.0)  # short side 40 = raw short side
        assert not batch['data'][b, int(h):].any() and not batch['data'][b, :, int(w):].any()
        assert not batch['boxes'][b, int(n):].any()
        if (oh, ow) == (40, 60):
            # non-ignore first; the ignore region keeps its box with class -1
            np.testing.assert_array_equal(batch['boxes'][b, :2],
                                          [[30, 5, 50, 30, 1], [1, 2, 10, 20, -1]])
        else:
            np.testing.assert_array_equal(batch['boxes'][b, :1], [[5, 6, 25, 50, 1]])
    assert_bright_boxes(batch)


def test_boxes_follow_the_scale(tmp_path):
    records = [write_record(tmp_path, 'r', 40, 80, [[10, 10, 29, 19]])] * 2
    with TrainDataFlow(records, config(tmp_path, image_short_size=20), 1) as flow:
        (batch,) = next(flow)
    assert batch['data'].shape == (2, 20, 40, 3)
    np.testing.assert_allclose(batch['im_info'][0], [20, 40, 0.5, 40, 80, 1])
    np.testing.assert_allclose(batch['boxes'][0, 0], [5, 5, 14.5, 9.5, 1])


def test_flip_moves_boxes_with_pixels(tmp_path):
    records = [write_record(tmp_path, 'r', 40, 64, [[2, 3, 12, 30]])]
    cfg = config(tmp_path, train_flip=True, train_batch_per_gpu=1)
    seen = set()
    with TrainDataFlow(records, cfg, 1) as flow:
        for _ in range(12):
            (batch,) = next(flow)
            assert_bright_boxes(batch)
            seen.add(tuple(batch['boxes'][0, 0, :4].tolist()))
    assert seen == {(2, 3, 12, 30), (64 - 12 - 1, 3, 64 - 2 - 1, 30)}


def test_multi_scale_short_sides_and_max_size(tmp_path):
    records = [write_record(tmp_path, 'r%d' % i, 40, 120, [[1, 1, 30, 30]]) for i in range(2)]
    cfg = config(tmp_path, train_short_sizes=[20, 30, 40], image_max_size=90)
    shorts = set()
    with TrainDataFlow(records, cfg, 1) as flow:
        for _ in range(12):
            (batch,) = next(flow)
            h, w = batch['im_info'][0, :2]
            assert w <= 90 and batch['data'].shape[1:3] == (h, w)
            shorts.add(int(h))
    assert shorts == {20, 30}  # 40 would make the long side 120 > 90: capped to 30 x 90


def test_order_is_a_permutation_per_epoch_and_resumes_exactly(tmp_path):
    records = distinct_records(tmp_path, 10)
    cfg = config(tmp_path, train_flip=True, train_short_sizes=[30, 40])
    with TrainDataFlow(records, cfg, 1) as flow:
        assert flow.steps_per_epoch == 5
        run = [next(flow) for _ in range(10)]
    epoch0 = [i for step in run[:5] for i in step_ids(step)]
    epoch1 = [i for step in run[5:] for i in step_ids(step)]
    assert sorted(epoch0) == sorted(epoch1) == sorted((40 + i, 60 + 2 * i) for i in range(10))
    assert epoch0 != epoch1
    with TrainDataFlow(records, config(tmp_path, train_flip=True, train_short_sizes=[30, 40],
                                       nr_dataflow=2), 1, start_step=3) as resumed:
        for step in range(3, 10):
            (got,) = next(resumed)
            for key in got:
                np.testing.assert_array_equal(got[key], run[step][0][key])
        assert resumed.step == 10


def test_towers_split_a_step(tmp_path):
    records = distinct_records(tmp_path, 8)
    with TrainDataFlow(records, config(tmp_path), 2) as flow:
        assert flow.steps_per_epoch == 2
        steps = [next(flow) for _ in range(2)]
    assert all(len(s) == 2 for s in steps)
    ids = [i for s in steps for i in step_ids(s)]
    assert len(set(ids)) == 8


def test_workers_deliver_in_order_like_in_process(tmp_path):
    records = distinct_records(tmp_path, 12)
    kw = dict(train_flip=True, prefetch_batches=5)
    with TrainDataFlow(records, config(tmp_path, **kw), 2) as local:
        expected = [step_ids(next(local)) for _ in range(8)]
    with TrainDataFlow(records, config(tmp_path, nr_dataflow=2, **kw), 2) as flow:
        got = [step_ids(next(flow)) for _ in range(8)]
        assert flow.total_wait > 0 and flow.last_wait >= 0
    assert got == expected


def test_spawn_workers(tmp_path):
    records = distinct_records(tmp_path, 4)
    with TrainDataFlow(records, config(tmp_path), 1) as local:
        expected = [next(local)[0] for _ in range(3)]
    with TrainDataFlow(records, config(tmp_path, nr_dataflow=2), 1,
                       start_method='spawn') as flow:
        for want in expected:
            (got,) = next(flow)
            np.testing.assert_array_equal(got['data'], want['data'])


def test_images_without_usable_boxes_are_skipped_and_counted(tmp_path, caplog):
    records = distinct_records(tmp_path, 2) + [
        write_record(tmp_path, 'only-ignore', 40, 60, [[1, 1, 5, 5]], ignore=[True]),
        write_record(tmp_path, 'empty', 40, 60, []),
    ]
    with caplog.at_level(logging.WARNING):
        with TrainDataFlow(records, config(tmp_path), 1) as flow:
            assert (flow.num_empty, flow.num_usable, flow.steps_per_epoch) == (2, 2, 1)
            for _ in range(3):
                assert sorted(step_ids(next(flow))) == [(40, 60), (41, 62)]
    assert 'skipped 2 of 4' in caplog.text
    with pytest.raises(ValueError, match='cannot fill one step'):
        TrainDataFlow(records[2:] + records[:1], config(tmp_path), 1)


def test_more_boxes_than_max_keeps_the_first(tmp_path, caplog):
    boxes = [[0, 0, 3, 3], [1, 1, 5, 5], [2, 2, 6, 6], [3, 3, 7, 7], [4, 4, 8, 8]]
    rec = write_record(tmp_path, 'many', 40, 60, boxes, [1] * 5, [True] + [False] * 4)
    with caplog.at_level(logging.WARNING):
        with TrainDataFlow([rec, rec], config(tmp_path, max_boxes_of_image=3), 1) as flow:
            (batch,) = next(flow)
            next(flow)
    assert batch['boxes'].shape == (2, 3, 5) and batch['im_info'][0, 5] == 3
    # non-ignore boxes come first, so the ignore region is what is cut
    np.testing.assert_array_equal(batch['boxes'][0, :, :4], boxes[1:4])
    assert (batch['boxes'][0, :, 4] == 1).all()
    assert caplog.text.count('more than max_boxes_of_image') == 1


# ---- bad inputs ----

def first_error(flow, steps=6):
    """Run ``flow`` until it raises; returns the exception (fails if it never does)."""
    with pytest.raises(Exception) as info:
        for _ in range(steps):
            next(flow)
    return info.value


def assert_closed(flow):
    for pid in flow.worker_pids:
        with pytest.raises(OSError):  # reaped: no such process
            os.kill(pid, 0)


def test_missing_image_with_workers(tmp_path):
    records = distinct_records(tmp_path, 4)
    os.remove(records[2]['fpath'])
    flow = TrainDataFlow(records, config(tmp_path, nr_dataflow=2), 1)
    err = first_error(flow)
    assert isinstance(err, BadRecordError)
    assert err.record_id == 'r2' and records[2]['fpath'] in str(err) and 'no such file' in str(err)
    assert_closed(flow)


def test_corrupt_image_with_workers(tmp_path):
    records = distinct_records(tmp_path, 4)
    with open(records[1]['fpath'], 'wb') as f:
        f.write(os.urandom(500))
    flow = TrainDataFlow(records, config(tmp_path, nr_dataflow=2), 1)
    err = first_error(flow)
    assert isinstance(err, BadRecordError) and err.record_id == 'r1'
    assert records[1]['fpath'] in str(err) and 'corrupt' in str(err)


def test_image_size_differs_from_annotation(tmp_path):
    records = distinct_records(tmp_path, 2)
    records[0]['height'] = 45
    err = first_error(TrainDataFlow(records, config(tmp_path, nr_dataflow=2), 1))
    assert isinstance(err, BadRecordError) and 'annotation says' in str(err)


def write_coco(tmp_path, records, edit=None):
    """The COCO JSON of ``records`` (images in ``tmp_path``); ``edit(coco)`` may spoil it."""
    coco = {'images': [], 'annotations': [],
            'categories': [{'id': i, 'name': n} for i, n in enumerate(CLASSES) if i]}
    for image_id, rec in enumerate(records, 1):
        coco['images'].append({'id': image_id, 'file_name': os.path.basename(rec['fpath']),
                               'height': rec['height'], 'width': rec['width']})
        for (x1, y1, x2, y2), cls, ign in zip(rec['boxes'].tolist(), rec['classes'].tolist(),
                                              rec['ignore'].tolist()):
            coco['annotations'].append({
                'id': len(coco['annotations']) + 1, 'image_id': image_id,
                'bbox': [x1, y1, x2 - x1 + 1, y2 - y1 + 1], 'category_id': cls,
                'iscrowd': int(ign)})
    if edit:
        edit(coco)
    path = str(tmp_path / 'ann.json')
    with open(path, 'w') as f:
        json.dump(coco, f)
    return path


def loader_config(tmp_path, records, edit=None, **kw):
    return config(tmp_path, train_source=write_coco(tmp_path, records, edit),
                  train_root_folder=str(tmp_path), **kw)


def _set(index, key, value):
    def edit(coco):
        coco['annotations'][index][key] = value
    return edit


def _drop_bbox(coco):
    del coco['annotations'][1]['bbox']


@pytest.mark.parametrize('edit, record, text', [
    (_drop_bbox, 'r1.png', 'malformed'),
    (_set(0, 'bbox', [50, 4, 21, 27]), 'r0.png', 'outside'),  # the image is 60 wide
    (_set(1, 'bbox', [10, 4, -1, 27]), 'r1.png', 'non-positive size'),
    (_set(0, 'category_id', 3), 'r0.png', 'unknown class'),
])
def test_bad_annotations_are_found_by_the_loader(tmp_path, edit, record, text):
    records = distinct_records(tmp_path, 2)
    cfg = loader_config(tmp_path, records, edit)
    with pytest.raises(BadRecordError) as info:
        load_dataset(cfg, 'train')
    assert info.value.record_id == record and 'ann.json' in str(info.value)
    assert text in str(info.value)


def test_records_are_validated_once(tmp_path, monkeypatch):
    import lighthead.data.pipeline as pipeline
    import lighthead.datasets.coco as coco_module
    calls = []
    real = coco_module.validate_record

    def counting(rec, *args, **kw):
        calls.append(rec['id'])
        return real(rec, *args, **kw)
    monkeypatch.setattr(coco_module, 'validate_record', counting)
    records = distinct_records(tmp_path, 4)
    cfg = loader_config(tmp_path, records)
    dataset = load_dataset(cfg, 'train')
    with TrainDataFlow(dataset.records, cfg, 1) as flow:
        next(flow)
    assert sorted(calls) == ['r%d.png' % i for i in range(4)]
    assert not hasattr(pipeline, 'validate_record') and not hasattr(TrainDataFlow, '_usable')


def test_skip_bad_records_logs_and_replaces(tmp_path):
    records = distinct_records(tmp_path, 8)
    os.remove(records[0]['fpath'])                    # loader: missing image
    with open(records[1]['fpath'], 'wb') as f:        # flow: undecodable image
        f.write(b'garbage')
    records[2]['classes'][0] = 7                      # loader: unknown class
    records[3]['boxes'][0, 2] = 500                   # loader: box outside the image
    cfg = loader_config(tmp_path, records, nr_dataflow=2, skip_bad_records=True)
    dataset = load_dataset(cfg, 'train')
    assert [r['id'] for r in dataset.records] == ['r%d.png' % i for i in range(1, 8) if i != 2
                                                   and i != 3]
    with TrainDataFlow(dataset.records, cfg, 1) as flow:
        assert flow.num_usable == 5 and flow.steps_per_epoch == 2
        seen = set()
        for _ in range(6):
            (batch,) = next(flow)
            assert batch['data'].shape[0] == 2
            seen.update(step_ids([batch]))
        assert flow.num_bad == 1
    assert seen == {(40 + i, 60 + 2 * i) for i in range(4, 8)}
    with open(os.path.join(cfg.log_dir, 'bad_records.txt')) as f:
        lines = f.read().splitlines()
    assert len(lines) == 4
    for i in range(4):
        assert sum("'r%d.png'" % i in line for line in lines) == 1
    assert records[1]['fpath'] in [l for l in lines if "'r1.png'" in l][0]


def test_killed_worker_is_reported(tmp_path):
    records = distinct_records(tmp_path, 4)
    flow = TrainDataFlow(records, config(tmp_path, nr_dataflow=2), 1)
    next(flow)
    os.kill(flow.worker_pids[1], signal.SIGKILL)
    start = time.time()
    err = first_error(flow, steps=20)
    assert isinstance(err, RuntimeError) and 'data worker 1' in str(err) and 'died' in str(err)
    assert time.time() - start < 10
    assert_closed(flow)


def test_stalled_worker_times_out(tmp_path):
    records = distinct_records(tmp_path, 4)
    flow = TrainDataFlow(records, config(tmp_path, nr_dataflow=2, data_timeout=1.0,
                                         prefetch_batches=2), 1)
    next(flow)
    os.kill(flow.worker_pids[0], signal.SIGSTOP)
    err = first_error(flow, steps=10)
    assert isinstance(err, RuntimeError) and 'data_timeout' in str(err)
    assert_closed(flow)


def test_close_terminates_workers(tmp_path):
    records = distinct_records(tmp_path, 4)
    with TrainDataFlow(records, config(tmp_path, nr_dataflow=2), 1) as flow:
        next(flow)
        pids = flow.worker_pids
        assert len(pids) == 2
    assert_closed(flow)
    with pytest.raises(RuntimeError, match='closed'):
        next(flow)
