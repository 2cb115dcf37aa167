"""Readers (COCO, odgt, VOC), record validation and load_dataset, on small hand-written files."""
import json
import os

import numpy as np
import pytest

from lighthead.config import make_config
from annotation_files import VOC_IMAGES, write_voc
from lighthead.datasets import (BadRecordError, load_coco, load_dataset, load_odgt, load_voc,
                                load_voc_xml, make_record, validate_record)

TREECROWNS = os.path.join(os.path.dirname(__file__), '..', 'data', 'treecrowns')


def write_json(path, obj):
    with open(str(path), 'w') as f:
        json.dump(obj, f)
    return str(path)


def coco_dict():
    return {
        'images': [
            {'id': 42, 'file_name': 'a.jpg', 'height': 100, 'width': 200},
            {'id': 7, 'file_name': 'sub/b.jpg', 'height': 50, 'width': 60},
        ],
        'annotations': [
            {'id': 1, 'image_id': 42, 'bbox': [10, 20, 30, 40], 'category_id': 5, 'iscrowd': 0},
            {'id': 2, 'image_id': 42, 'bbox': [0.5, 1.5, 2.25, 3], 'category_id': 2,
             'iscrowd': 1},
        ],
        'categories': [{'id': 5, 'name': 'dog'}, {'id': 2, 'name': 'cat'}],
    }


def test_coco_boxes_plus_one_crowd_and_class_order(tmp_path):
    ds = load_coco(write_json(tmp_path / 'i.json', coco_dict()), str(tmp_path))
    assert ds.class_names == ['background', 'cat', 'dog']  # sorted by category id
    assert ds.category_ids == [None, 2, 5]
    a, b = ds.records
    assert a['id'] == 'a.jpg' and a['image_id'] == 42
    assert a['fpath'] == os.path.join(str(tmp_path), 'a.jpg')
    np.testing.assert_allclose(a['boxes'], [[10, 20, 39, 59], [0.5, 1.5, 1.75, 3.5]])
    assert a['boxes'].dtype == np.float32 and a['classes'].dtype == np.int32
    assert a['classes'].tolist() == [2, 1]
    assert a['ignore'].tolist() == [False, True]
    assert b['boxes'].shape == (0, 4) and b['fpath'].endswith(os.path.join('sub', 'b.jpg'))


def test_coco_given_class_names_fix_the_order(tmp_path):
    ds = load_coco(write_json(tmp_path / 'i.json', coco_dict()), str(tmp_path),
                   ['background', 'dog', 'cat'])
    assert ds.category_ids == [None, 5, 2]
    assert ds.records[0]['classes'].tolist() == [1, 2]


def test_coco_unknown_class_raises_or_is_skipped(tmp_path):
    path = write_json(tmp_path / 'i.json', coco_dict())
    with pytest.raises(BadRecordError) as info:
        load_coco(path, str(tmp_path), ['background', 'dog'])
    assert 'i.json' in str(info.value) and "'a.jpg'" in str(info.value)
    assert 'cat' in str(info.value)
    skipped = []
    ds = load_coco(path, str(tmp_path), ['background', 'dog'], on_bad=skipped.append)
    assert [r['id'] for r in ds.records] == ['sub/b.jpg']
    assert [e.record_id for e in skipped] == ['a.jpg']


def test_coco_malformed_annotation_names_file_and_record(tmp_path):
    coco = coco_dict()
    del coco['annotations'][0]['bbox']
    with pytest.raises(BadRecordError) as info:
        load_coco(write_json(tmp_path / 'i.json', coco), str(tmp_path))
    assert info.value.path.endswith('i.json') and info.value.record_id == 'a.jpg'
    assert 'malformed' in str(info.value)


def test_coco_not_json_raises(tmp_path):
    path = tmp_path / 'i.json'
    path.write_text('{"images": [')
    with pytest.raises(BadRecordError, match='i.json'):
        load_coco(str(path), str(tmp_path))


def write_odgt(path, lines):
    with open(str(path), 'w') as f:
        for line in lines:
            f.write((line if isinstance(line, str) else json.dumps(line)) + '\n')
    return str(path)


ODGT_LINES = [
    {'ID': 'COCO_val2014_000000000042.jpg', 'fpath': '/val2014/COCO_val2014_000000000042.jpg',
     'height': 100, 'width': 200,
     'gtboxes': [{'box': [10, 20, 30, 40], 'tag': 'dog'},
                 {'box': [0, 0, 5, 5], 'tag': 'cat', 'extra': {'ignore': 1}}]},
    {'ID': 'COCO_val2014_000000000007.jpg', 'fpath': 'val2014/COCO_val2014_000000000007.jpg',
     'height': 50, 'width': 60, 'gtboxes': []},
]


def test_odgt_reader(tmp_path):
    ds = load_odgt(write_odgt(tmp_path / 'a.odgt', ODGT_LINES), str(tmp_path / 'root'),
                   ['background', 'cat', 'dog'])
    a, b = ds.records
    assert (a['id'], a['image_id'], b['image_id']) == ('COCO_val2014_000000000042.jpg', 42, 7)
    # fpath joined under the root with or without a leading '/'
    assert a['fpath'] == str(tmp_path / 'root' / 'val2014' / 'COCO_val2014_000000000042.jpg')
    assert b['fpath'] == str(tmp_path / 'root' / 'val2014' / 'COCO_val2014_000000000007.jpg')
    np.testing.assert_array_equal(a['boxes'], [[10, 20, 39, 59], [0, 0, 4, 4]])
    assert a['classes'].tolist() == [2, 1] and a['ignore'].tolist() == [False, True]
    assert ds.category_ids == [None, 1, 2]


def test_odgt_unknown_tag_and_bad_line(tmp_path):
    path = write_odgt(tmp_path / 'a.odgt', ODGT_LINES)
    with pytest.raises(BadRecordError) as info:
        load_odgt(path, str(tmp_path), ['background', 'dog'])
    assert 'a.odgt' in str(info.value) and 'COCO_val2014_000000000042.jpg' in str(info.value)
    assert "unknown class 'cat'" in str(info.value)
    path = write_odgt(tmp_path / 'a.odgt', [ODGT_LINES[0], 'not json'])
    with pytest.raises(BadRecordError, match="a.odgt: record 'line 2': malformed"):
        load_odgt(path, str(tmp_path), ['background', 'cat', 'dog'])
    skipped = []
    ds = load_odgt(path, str(tmp_path), ['background', 'cat', 'dog'], on_bad=skipped.append)
    assert len(ds.records) == 1
    assert skipped[0].record_id == 'line 2' and 'a.odgt' in str(skipped[0])


def test_odgt_duplicate_ids_are_bad(tmp_path):
    path = write_odgt(tmp_path / 'a.odgt', [ODGT_LINES[1], ODGT_LINES[1]])
    with pytest.raises(BadRecordError, match='duplicate'):
        load_odgt(path, str(tmp_path), ['background', 'cat'])


def test_voc_split_one_based_and_difficult(tmp_path):
    root = write_voc(str(tmp_path / 'VOC'), VOC_IMAGES)
    ds = load_voc(root, 'train')
    assert ds.class_names == ['background', 'cat', 'dog']
    a, b = ds.records
    assert (a['id'], a['image_id'], b['image_id']) == ('000005', 5, 2008000123)
    # full-image VOC box (1..W) -> 0..W-1
    np.testing.assert_array_equal(a['boxes'], [[0, 0, 49, 39], [9, 4, 19, 14]])
    assert a['classes'].tolist() == [2, 1] and a['ignore'].tolist() == [False, True]
    assert a['fpath'] == os.path.join(root, 'JPEGImages', '000005.jpg')
    assert ds.category_ids == [None, 1, 2]


def test_voc_malformed_xml_names_file(tmp_path):
    root = write_voc(str(tmp_path / 'VOC'), VOC_IMAGES)
    with open(os.path.join(root, 'Annotations', '000005.xml'), 'w') as f:
        f.write('<annotation><size><width>3</width></size>')
    with pytest.raises(BadRecordError) as info:
        load_voc(root, 'train')
    assert info.value.path.endswith('000005.xml') and info.value.record_id == '000005'


def test_voc_xml_single_file(tmp_path):
    write_voc(str(tmp_path), {'tile_1': (30, 20, [('Tree', [1, 2, 30, 20], False)])})
    xml = os.path.join(str(tmp_path), 'Annotations', 'tile_1.xml')
    ds = load_voc_xml(xml)
    (rec,) = ds.records
    assert ds.class_names == ['background', 'Tree']
    assert rec['fpath'] == os.path.join(str(tmp_path), 'Annotations', 'tile_1.jpg')
    np.testing.assert_array_equal(rec['boxes'], [[0, 1, 29, 19]])
    assert load_voc_xml(xml, image_path='/x/y.png', image_id=9).records[0]['image_id'] == 9


def test_voc_xml_treecrowns():
    ds = load_voc_xml(os.path.join(TREECROWNS, 'OSBS_029.xml'), class_names=['background', 'Tree'])
    (rec,) = ds.records
    assert (rec['height'], rec['width'], len(rec['boxes'])) == (400, 400, 61)
    validate_record(rec, ds.class_names)  # image exists and every box is inside
    assert rec['boxes'][:, 2].max() == 399


def good_record(tmp_path, **changes):
    img = tmp_path / 'img.png'
    img.write_bytes(b'')
    rec = make_record(str(tmp_path / 'ann.json'), 'rec-1', 1, str(img), 20, 30,
                      [[0, 0, 29, 19], [5, 5, 10, 10]], [1, 2], [False, True])
    rec.update(changes)
    return rec


CLASSES = ['background', 'a', 'b']


def assert_bad(rec, text, check_file=True):
    with pytest.raises(BadRecordError) as info:
        validate_record(rec, CLASSES, check_file=check_file)
    message = str(info.value)
    assert "'rec-1'" in message and text in message
    return info.value


def test_validate_accepts_good_record(tmp_path):
    validate_record(good_record(tmp_path), CLASSES)


def test_validate_box_outside_image(tmp_path):
    err = assert_bad(good_record(tmp_path, boxes=np.float32([[0, 0, 31.5, 19], [1, 1, 2, 2]])),
                     'outside')
    assert err.path.endswith('ann.json')
    # within the one-pixel tolerance is accepted
    validate_record(good_record(tmp_path, boxes=np.float32([[-0.5, 0, 29.5, 19.5], [1, 1, 2, 2]])),
                    CLASSES)


def test_validate_non_positive_sizes(tmp_path):
    assert_bad(good_record(tmp_path, boxes=np.float32([[5, 5, 3, 9], [1, 1, 2, 2]])),
               'non-positive size')
    assert_bad(good_record(tmp_path, height=0), 'non-positive image size')


def test_validate_unknown_class(tmp_path):
    assert_bad(good_record(tmp_path, classes=np.int32([1, 3])), 'unknown class index 3')
    assert_bad(good_record(tmp_path, classes=np.int32([0, 1])), 'unknown class index 0')


def test_validate_malformed(tmp_path):
    rec = good_record(tmp_path)
    del rec['ignore']
    assert_bad(rec, 'missing ignore')
    assert_bad(good_record(tmp_path, boxes=[[0, 0, 1, 1], [0, 0, 1, 1]]), 'boxes must be')
    assert_bad(good_record(tmp_path, height='20'), 'height must be an int')
    assert_bad(good_record(tmp_path, classes=np.int32([1])), 'do not match')


def test_validate_missing_image(tmp_path):
    rec = good_record(tmp_path, fpath=str(tmp_path / 'nope.png'))
    validate_record(rec, CLASSES, check_file=False)
    err = assert_bad(rec, 'missing image file')
    assert err.path == str(tmp_path / 'nope.png')


def test_bad_record_error_pickles():
    import pickle
    err = pickle.loads(pickle.dumps(BadRecordError('f: record x: y', 'f', 'x')))
    assert (str(err), err.path, err.record_id) == ('f: record x: y', 'f', 'x')


def touch(*paths):
    for path in paths:
        path = str(path)
        if not os.path.isdir(os.path.dirname(path)):
            os.makedirs(os.path.dirname(path))
        open(path, 'wb').close()


def test_load_dataset_dispatch(tmp_path):
    coco_path = write_json(tmp_path / 'i.json', coco_dict())
    touch(tmp_path / 'a.jpg', tmp_path / 'sub' / 'b.jpg')
    cfg = make_config(dataset_format='coco', train_source=coco_path,
                      train_root_folder=str(tmp_path), class_names=['background', 'cat', 'dog'],
                      output_dir=str(tmp_path / 'out'))
    assert load_dataset(cfg, 'train').class_names == ['background', 'cat', 'dog']

    odgt_path = write_odgt(tmp_path / 'a.odgt', ODGT_LINES)
    touch(*[tmp_path / 'r' / l['fpath'].lstrip('/') for l in ODGT_LINES])
    cfg = make_config(dataset_format='odgt', eval_source=odgt_path,
                      eval_root_folder=str(tmp_path / 'r'),
                      class_names=['background', 'cat', 'dog'], output_dir=str(tmp_path / 'o'))
    assert len(load_dataset(cfg, 'eval').records) == 2

    root = write_voc(str(tmp_path / 'VOC'), VOC_IMAGES, split='test')
    touch(*[os.path.join(root, 'JPEGImages', n + '.jpg') for n in VOC_IMAGES])
    cfg = make_config(dataset_format='voc', eval_source=root, eval_split='test',
                      class_names=['background', 'dog', 'cat'], output_dir=str(tmp_path / 'v'))
    ds = load_dataset(cfg, 'eval')
    assert ds.records[0]['classes'].tolist() == [1, 2]


def test_load_dataset_resolves_class_names_into_the_config(tmp_path):
    coco_path = write_json(tmp_path / 'i.json', coco_dict())
    touch(tmp_path / 'a.jpg', tmp_path / 'sub' / 'b.jpg')
    cfg = make_config(train_source=coco_path, train_root_folder=str(tmp_path),
                      eval_source=coco_path, eval_root_folder=str(tmp_path),
                      output_dir=str(tmp_path / 'out'))
    assert cfg.class_names == ['background']
    # training: the network is sized by the config, so the classes must be there already
    with pytest.raises(ValueError, match=r"class_names is not set.*'cat', 'dog'"):
        load_dataset(cfg, 'train')
    ds = load_dataset(cfg, 'eval')
    assert cfg.class_names == ds.class_names == ['background', 'cat', 'dog']
    assert cfg.num_classes == 3
    # odgt cannot find classes in its data
    cfg = make_config(dataset_format='odgt', eval_source=write_odgt(tmp_path / 'a.odgt',
                                                                    ODGT_LINES),
                      output_dir=str(tmp_path / 'o'))
    with pytest.raises(ValueError, match="'odgt' needs cfg.class_names"):
        load_dataset(cfg, 'eval')


def test_load_dataset_missing_image_names_file_and_record(tmp_path):
    coco_path = write_json(tmp_path / 'i.json', coco_dict())
    touch(tmp_path / 'a.jpg')
    cfg = make_config(train_source=coco_path, train_root_folder=str(tmp_path),
                      class_names=['background', 'cat', 'dog'], output_dir=str(tmp_path / 'out'))
    with pytest.raises(BadRecordError) as info:
        load_dataset(cfg, 'train')
    assert info.value.path == str(tmp_path / 'sub' / 'b.jpg')
    assert info.value.record_id == 'sub/b.jpg'
    assert 'missing image file' in str(info.value) and 'i.json' in str(info.value)
    cfg = make_config(train_source=coco_path, train_root_folder=str(tmp_path),
                      class_names=['background', 'cat', 'dog'], output_dir=str(tmp_path / 'out'),
                      skip_bad_records=True)
    assert [r['id'] for r in load_dataset(cfg, 'train').records] == ['a.jpg']


def test_load_dataset_skip_bad_records_logs(tmp_path):
    coco = coco_dict()
    coco['annotations'][0]['bbox'] = [190, 20, 30, 40]  # beyond the 200 px wide image
    touch(tmp_path / 'a.jpg', tmp_path / 'sub' / 'b.jpg')
    values = dict(train_source=write_json(tmp_path / 'i.json', coco),
                  train_root_folder=str(tmp_path), class_names=['background', 'cat', 'dog'],
                  output_dir=str(tmp_path / 'out'))
    with pytest.raises(BadRecordError, match='outside'):
        load_dataset(make_config(**values), 'train')
    cfg = make_config(skip_bad_records=True, **values)
    ds = load_dataset(cfg, 'train')
    assert [r['id'] for r in ds.records] == ['sub/b.jpg']
    with open(os.path.join(cfg.log_dir, 'bad_records.txt')) as f:
        lines = f.read().splitlines()
    assert len(lines) == 1 and "'a.jpg'" in lines[0] and 'i.json' in lines[0]
    load_dataset(cfg, 'train')  # the run's one log: the same bad record is not written twice
    with open(os.path.join(cfg.log_dir, 'bad_records.txt')) as f:
        assert f.read().splitlines() == lines
