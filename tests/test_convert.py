"""COCO <-> odgt round trips and VOC -> COCO, through the library and tools/convert.py."""
import json
import os
import subprocess
import sys

import numpy as np

from annotation_files import VOC_IMAGES, write_text, write_voc
from lighthead.datasets import load_coco, load_odgt, load_voc
from lighthead.datasets.convert import coco_to_odgt, odgt_to_coco, voc_to_coco

CONVERT = os.path.join(os.path.dirname(__file__), '..', 'tools', 'convert.py')

ODGT_LINES = [
    {'ID': 'COCO_val2014_000000000042.jpg', 'fpath': '/val2014/COCO_val2014_000000000042.jpg',
     'height': 100, 'width': 200,
     'gtboxes': [{'box': [10, 20, 30, 40], 'tag': 'dog'},
                 {'box': [0.5, 0, 5, 5.25], 'tag': 'cat', 'extra': {'ignore': 1}}]},
    {'ID': 'COCO_val2014_000000000007.jpg', 'fpath': '/val2014/COCO_val2014_000000000007.jpg',
     'height': 50, 'width': 60, 'gtboxes': []},
]

def rich_coco():
    """Non-contiguous category ids, float boxes, crowd, an image without boxes."""
    return {
        'images': [
            {'id': 42, 'file_name': 'a.jpg', 'height': 100, 'width': 200},
            {'id': 7, 'file_name': 'sub/b.jpg', 'height': 50, 'width': 60},
            {'id': 1000, 'file_name': 'c.jpg', 'height': 10, 'width': 10},
        ],
        'annotations': [
            {'id': 1, 'image_id': 42, 'bbox': [10, 20, 30, 40], 'category_id': 5, 'iscrowd': 0},
            {'id': 2, 'image_id': 42, 'bbox': [0.5, 1.5, 2.25, 3], 'category_id': 2,
             'iscrowd': 1},
            {'id': 9, 'image_id': 7, 'bbox': [1.1, 2.2, 3.3, 4.4], 'category_id': 90,
             'iscrowd': 0},
            {'id': 10, 'image_id': 42, 'bbox': [5, 6, 7, 8], 'category_id': 5, 'iscrowd': 0},
        ],
        'categories': [{'id': 5, 'name': 'dog'}, {'id': 2, 'name': 'cat'},
                       {'id': 90, 'name': 'toothbrush'}],
    }


def boxes_by_image(coco):
    out = {}
    for a in coco['annotations']:
        out.setdefault(a['image_id'], []).append((a['bbox'], a['category_id'], a['iscrowd']))
    return out


def test_coco_odgt_coco_is_lossless():
    coco = rich_coco()
    back = odgt_to_coco(json.loads(json.dumps(coco_to_odgt(coco))))
    assert back['images'] == coco['images']
    assert boxes_by_image(back) == boxes_by_image(coco)
    assert sorted((c['id'], c['name']) for c in back['categories']) == \
        sorted((c['id'], c['name']) for c in coco['categories'])


def odgt_fields(lines):
    return [(l['ID'], l['fpath'], l['height'], l['width'],
             [(g['box'], g['tag'], (g.get('extra') or {}).get('ignore', 0)) for g in l['gtboxes']])
            for l in lines]


def test_odgt_coco_odgt_is_lossless():
    coco = odgt_to_coco(ODGT_LINES, ['background', 'cat', 'dog'])
    assert [i['id'] for i in coco['images']] == [42, 7]  # the original's id rule
    assert coco['images'][0]['file_name'] == 'val2014/COCO_val2014_000000000042.jpg'
    back = coco_to_odgt(json.loads(json.dumps(coco)))
    assert odgt_fields(back) == odgt_fields(ODGT_LINES)


def test_odgt_to_coco_then_reader_agree_with_odgt_reader(tmp_path):
    """Boxes of an odgt file and of its COCO conversion load identically."""
    names = ['background', 'cat', 'dog']
    odgt_text = ''.join(json.dumps(l) + '\n' for l in ODGT_LINES)
    odgt_ds = load_odgt(write_text(tmp_path / 'a.odgt', odgt_text), '/r', names)
    coco_text = json.dumps(odgt_to_coco(ODGT_LINES, names))
    coco_ds = load_coco(write_text(tmp_path / 'a.json', coco_text), '/r', names)
    for a, b in zip(odgt_ds.records, coco_ds.records):
        np.testing.assert_array_equal(a['boxes'], b['boxes'])
        assert a['fpath'] == b['fpath'] and a['image_id'] == b['image_id']
        assert a['ignore'].tolist() == b['ignore'].tolist()
    assert odgt_ds.category_ids == coco_ds.category_ids


def test_voc_to_coco_boxes(tmp_path):
    root = write_voc(str(tmp_path / 'VOC'), VOC_IMAGES)
    coco = voc_to_coco(root, 'train')
    first = [a for a in coco['annotations'] if a['image_id'] == 5]
    # VOC [1, 1, 50, 40] (1-based inclusive) -> COCO [0, 0, 50, 40]; difficult -> crowd
    assert first[0]['bbox'] == [0, 0, 50, 40] and first[0]['iscrowd'] == 0
    assert first[1]['bbox'] == [9, 4, 11, 11] and first[1]['iscrowd'] == 1
    assert coco['images'][0]['file_name'] == '000005.jpg'
    voc_ds = load_voc(root, 'train')
    json_path = str(tmp_path / 'voc.json')
    with open(json_path, 'w') as f:
        json.dump(coco, f)
    coco_ds = load_coco(json_path, os.path.join(root, 'JPEGImages'))
    for a, b in zip(voc_ds.records, coco_ds.records):
        np.testing.assert_array_equal(a['boxes'], b['boxes'])
        assert a['classes'].tolist() == b['classes'].tolist() and a['fpath'] == b['fpath']


def run_cli(*args):
    out = subprocess.run([sys.executable, CONVERT] + [str(a) for a in args],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    assert out.returncode == 0, out.stdout
    return out.stdout


def test_cli_round_trip_and_voc(tmp_path):
    src = tmp_path / 'in.json'
    src.write_text(json.dumps(rich_coco()))
    run_cli('coco2odgt', src, tmp_path / 'a.odgt')
    assert len((tmp_path / 'a.odgt').read_text().splitlines()) == 3
    out = run_cli('odgt2coco', tmp_path / 'a.odgt', tmp_path / 'b.json', '--classes', 'toothbrush',
                  'cat', 'dog')
    assert 'wrote 3 images' in out
    back = json.loads((tmp_path / 'b.json').read_text())
    assert back['images'] == rich_coco()['images']
    assert boxes_by_image(back) == boxes_by_image(rich_coco())
    root = write_voc(str(tmp_path / 'VOC'), VOC_IMAGES)
    run_cli('voc2coco', root, 'train', tmp_path / 'voc.json')
    assert len(json.loads((tmp_path / 'voc.json').read_text())['annotations']) == 3
