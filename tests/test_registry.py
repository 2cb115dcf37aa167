"""The dataset-format registry: lookup, registration, and a tiny format defined here that goes
through the same entry points as the built-in ones (config, load_dataset, the training data
flow, the evaluation CLI, conversion)."""
import collections
import csv
import json
import os

import cv2
import numpy as np
import pytest

from annotation_files import VOC_IMAGES, write_voc
from lighthead.config import make_config
from lighthead.data import TrainDataFlow
from lighthead.datasets import (BadRecordError, DatasetFormat, Dataset, data_spec, format_names,
                                get_format, load_dataset, make_record, register_format,
                                unregister_format, validate_record)
from lighthead.datasets.convert import convert_file
from lighthead.datasets.records import report_bad


# ---- a tiny format: one CSV row per box, "file,height,width,x1,y1,x2,y2,class" ----

class BoxCsvFormat(DatasetFormat):
    name = 'boxcsv'
    description = 'CSV rows file,height,width,x1,y1,x2,y2,class (source), images (root_folder)'
    classes_from_data = True

    def load(self, spec, class_names=None, on_bad=None, check_files=False):
        with open(spec.source) as f:
            rows = [r for r in csv.reader(f) if r]
        if class_names is None:
            class_names = ['background'] + sorted({r[7] for r in rows})
        index_of = {n: i for i, n in enumerate(class_names)}
        by_file = collections.OrderedDict()
        for r in rows:
            by_file.setdefault(r[0], []).append(r)
        records = []
        for image_id, (name, rs) in enumerate(by_file.items(), 1):
            rec = make_record(spec.source, name, image_id, os.path.join(spec.root_folder, name),
                              int(rs[0][1]), int(rs[0][2]),
                              [[float(v) for v in r[3:7]] for r in rs],
                              [index_of.get(r[7], -1) for r in rs], [False] * len(rs))
            try:
                validate_record(rec, class_names, check_file=check_files)
            except BadRecordError as e:
                report_bad(e, on_bad)
                continue
            records.append(rec)
        return Dataset(class_names, records, [None] + list(range(1, len(class_names))),
                       spec.source)

    def extra_metrics(self, dataset, detections):
        count = {'detections': len(detections), 'images': len(dataset.records)}
        return [('boxcsv', count, 'boxcsv: %d detections' % len(detections))]


@pytest.fixture
def boxcsv():
    fmt = register_format(BoxCsvFormat())
    yield fmt
    unregister_format('boxcsv')


def write_boxcsv(tmp_path, rows):
    """Images (black, boxes white) and the CSV; ``rows``: (file, h, w, box, class)."""
    images = {}
    for name, h, w, box, _ in rows:
        img = images.setdefault(name, np.zeros((h, w, 3), np.uint8))
        x1, y1, x2, y2 = box
        img[y1:y2 + 1, x1:x2 + 1] = 255
    for name, img in images.items():
        cv2.imwrite(str(tmp_path / name), img)
    path = str(tmp_path / 'boxes.csv')
    with open(path, 'w') as f:
        for name, h, w, box, cls in rows:
            f.write('%s,%d,%d,%s,%s\n' % (name, h, w, ','.join(map(str, box)), cls))
    return path


ROWS = [('a.png', 40, 60, (5, 6, 20, 30), 'tree'), ('a.png', 40, 60, (30, 2, 50, 20), 'rock'),
        ('b.png', 50, 40, (1, 1, 10, 10), 'tree'), ('c.png', 30, 30, (2, 2, 12, 12), 'rock')]


def boxcsv_config(tmp_path, path, **kw):
    values = dict(dataset_format='boxcsv', class_names=['background', 'rock', 'tree'],
                  train_source=path, train_root_folder=str(tmp_path), eval_source=path,
                  eval_root_folder=str(tmp_path), output_dir=str(tmp_path / 'out'),
                  image_short_size=40, image_max_size=100, train_batch_per_gpu=1,
                  nr_dataflow=0)
    values.update(kw)
    return make_config(**values)


# ---- lookup and registration ----

def test_builtin_formats_are_registered():
    assert {'coco', 'odgt', 'voc'} <= set(format_names())
    for name in ('coco', 'odgt', 'voc'):
        fmt = get_format(name)
        assert isinstance(fmt, DatasetFormat) and fmt.name == name


def test_unknown_format_names_the_registered_ones(tmp_path):
    with pytest.raises(ValueError) as info:
        get_format('yolo')
    assert "'yolo'" in str(info.value)
    assert all(repr(n) in str(info.value) for n in ('coco', 'odgt', 'voc'))
    with pytest.raises(ValueError, match="dataset_format.*'yolo'"):
        make_config(dataset_format='yolo', output_dir=str(tmp_path))
    with pytest.raises(ValueError, match='unknown conversion'):
        convert_file('yolo2coco', 'x', 'y')


def test_registration_rules(boxcsv):
    assert get_format('boxcsv') is boxcsv
    register_format(BoxCsvFormat())  # the same class again (a config file run twice): fine

    class Other(DatasetFormat):
        name = 'boxcsv'
    with pytest.raises(ValueError, match='already registered'):
        register_format(Other())
    other = register_format(Other(), replace=True)
    assert get_format('boxcsv') is other
    with pytest.raises(TypeError):
        register_format(object())

    class TwoInName(DatasetFormat):
        name = 'v2'
    with pytest.raises(ValueError, match='without "2"'):
        register_format(TwoInName())
    unregister_format('boxcsv')
    assert 'boxcsv' not in format_names()


# ---- the custom format through the entry points ----

def test_custom_format_loads_and_trains(tmp_path, boxcsv):
    cfg = boxcsv_config(tmp_path, write_boxcsv(tmp_path, ROWS))
    ds = load_dataset(cfg, 'train')
    assert [r['id'] for r in ds.records] == ['a.png', 'b.png', 'c.png']
    assert ds.records[0]['classes'].tolist() == [2, 1]
    with TrainDataFlow(ds.records, cfg, 1) as flow:
        (batch,) = next(flow)
    assert batch['data'].shape[0] == 1 and batch['im_info'][0, 5] >= 1


def test_custom_format_bad_records_once(tmp_path, boxcsv):
    rows = ROWS + [('d.png', 20, 20, (2, 2, 30, 10), 'tree')]  # box beyond the 20 px image
    path = write_boxcsv(tmp_path, rows)
    with pytest.raises(BadRecordError) as info:
        load_dataset(boxcsv_config(tmp_path, path), 'train')
    assert info.value.record_id == 'd.png' and 'boxes.csv' in str(info.value)
    assert 'outside' in str(info.value)
    os.remove(str(tmp_path / 'c.png'))
    cfg = boxcsv_config(tmp_path, path, skip_bad_records=True)
    ds = load_dataset(cfg, 'train')
    assert [r['id'] for r in ds.records] == ['a.png', 'b.png']
    with open(os.path.join(cfg.log_dir, 'bad_records.txt')) as f:
        lines = f.read().splitlines()
    assert len(lines) == 2
    assert "'c.png'" in lines[0] and 'missing image file' in lines[0]
    assert "'d.png'" in lines[1] and 'outside' in lines[1]


def test_custom_format_classes_from_data_resolve_into_the_config(tmp_path, boxcsv):
    cfg = boxcsv_config(tmp_path, write_boxcsv(tmp_path, ROWS), class_names=['background'])
    load_dataset(cfg, 'eval')
    assert cfg.class_names == ['background', 'rock', 'tree'] and cfg.num_classes == 3


class _PerfectPredictor(object):
    """Stands in for lighthead.eval.predictor.Predictor: the ground truth as detections."""
    records = {}

    def __init__(self, cfg, network, checkpoint, session_config=None, proposals=False):
        self.proposals = False

    def predict_file(self, path, tile=0, overlap=0):
        rec = self.records[path]
        n = len(rec['boxes'])
        return {'boxes': rec['boxes'], 'scores': np.full(n, 0.9, np.float32),
                'classes': rec['classes']}, None

    def close(self):
        pass


def test_custom_format_through_the_eval_cli(tmp_path, boxcsv, monkeypatch):
    from lighthead.eval import cli
    cfg = boxcsv_config(tmp_path, write_boxcsv(tmp_path, ROWS), eval_rpn_only=False)
    _PerfectPredictor.records = {r['fpath']: r for r in load_dataset(cfg, 'eval').records}
    monkeypatch.setattr('lighthead.eval.predictor.Predictor', _PerfectPredictor)
    monkeypatch.setattr('lighthead.utils.session.session_config', lambda *a, **k: None)
    os.makedirs(cfg.model_dump_dir)
    open(os.path.join(cfg.model_dump_dir, 'epoch_1.ckpt.index'), 'w').close()
    metrics = cli.main(cfg, lambda: None, ['-se', '1'])[1]
    assert metrics['AP50'] == pytest.approx(1.0)
    assert metrics['boxcsv'] == {'detections': 4, 'images': 3}
    with open(os.path.join(cfg.eval_dir, 'results.txt')) as f:
        assert 'boxcsv: 4 detections' in f.read()


def test_custom_format_converts_to_coco(tmp_path, boxcsv):
    path = write_boxcsv(tmp_path, ROWS)
    out = str(tmp_path / 'out.json')
    assert convert_file('boxcsv2coco', path, out, root_folder=str(tmp_path)) == 3
    with open(out) as f:
        coco = json.load(f)
    assert [i['file_name'] for i in coco['images']] == ['a.png', 'b.png', 'c.png']
    assert coco['annotations'][0]['bbox'] == [5, 6, 16, 25]
    assert [c['name'] for c in coco['categories']] == ['rock', 'tree']
    with pytest.raises(NotImplementedError, match="'boxcsv' cannot be written"):
        convert_file('coco2boxcsv', out, str(tmp_path / 'x.csv'))


# ---- built-in formats: ground truth and extra metrics come from the format ----

def test_coco_ground_truth_is_the_loaded_images_of_the_file(tmp_path):
    coco = {'images': [{'id': 1, 'file_name': 'a.jpg', 'height': 10, 'width': 10},
                       {'id': 2, 'file_name': 'b.jpg', 'height': 10, 'width': 10}],
            'annotations': [{'id': 1, 'image_id': 1, 'bbox': [1, 1, 3, 3], 'area': 7.5,
                             'category_id': 4, 'iscrowd': 0, 'segmentation': [[1, 1, 3, 3]]},
                            {'id': 2, 'image_id': 2, 'bbox': [1, 1, 30, 3], 'area': 90,
                             'category_id': 4, 'iscrowd': 0}],
            'categories': [{'id': 4, 'name': 'x'}]}
    path = str(tmp_path / 'i.json')
    with open(path, 'w') as f:
        json.dump(coco, f)
    for name in ('a.jpg', 'b.jpg'):
        open(str(tmp_path / name), 'w').close()
    cfg = make_config(eval_source=path, eval_root_folder=str(tmp_path), class_names=[
        'background', 'x'], skip_bad_records=True, output_dir=str(tmp_path / 'out'))
    ds = load_dataset(cfg, 'eval')  # b.jpg's box leaves the image: skipped
    gt = get_format('coco').coco_ground_truth(ds, data_spec(cfg, 'eval'))
    assert [i['id'] for i in gt['images']] == [1]
    assert gt['annotations'] == [{'id': 1, 'image_id': 1, 'bbox': [1, 1, 3, 3], 'area': 7.5,
                                  'category_id': 4, 'iscrowd': 0}]
    assert gt['categories'] == coco['categories']


def test_voc_ground_truth_and_voc_metrics(tmp_path):
    root = write_voc(str(tmp_path / 'VOC'), VOC_IMAGES, split='test')
    for name in VOC_IMAGES:
        open(os.path.join(root, 'JPEGImages', name + '.jpg'), 'w').close()
    cfg = make_config(dataset_format='voc', eval_source=root, eval_split='test',
                      class_names=['background', 'cat', 'dog'], output_dir=str(tmp_path / 'o'))
    ds = load_dataset(cfg, 'eval')
    fmt = get_format('voc')
    gt = fmt.coco_ground_truth(ds, data_spec(cfg, 'eval'))
    assert sorted(i['file_name'] for i in gt['images']) == ['000005.jpg', '2008_000123.jpg']
    dets = [{'image_id': r['image_id'], 'category': int(c), 'score': 0.9, 'box': b.tolist()}
            for r in ds.records for b, c in zip(r['boxes'], r['classes'])]
    ((key, voc, line),) = fmt.extra_metrics(ds, dets)
    assert key == 'voc' and voc['mAP_07'] == pytest.approx(1.0)
    assert line.startswith('VOC07 11-point mAP: 1.0000')
    assert get_format('coco').extra_metrics(ds, dets) == []
