"""The bundled synthetic shapes dataset: determinism and basic sanity."""
import os
import subprocess
import sys

import cv2
import numpy as np

from lighthead.datasets import load_coco, validate_record
from lighthead.datasets.synthetic import (ASPECT_JITTER, BAR_THICKNESS, CLASS_NAMES, MIN_SIDE,
                                          generate)


def all_files(root):
    found = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            with open(path, 'rb') as f:
                found[os.path.relpath(path, root)] = f.read()
    return found


def test_same_seed_gives_identical_files(tmp_path):
    kwargs = dict(num_train=5, num_val=3, image_size=(96, 128))
    generate(str(tmp_path / 'a'), seed=1, **kwargs)
    generate(str(tmp_path / 'b'), seed=1, **kwargs)
    a, b = all_files(str(tmp_path / 'a')), all_files(str(tmp_path / 'b'))
    assert len(a) == 5 + 3 + 2 and a == b
    generate(str(tmp_path / 'c'), seed=2, **kwargs)
    c = all_files(str(tmp_path / 'c'))
    assert a['annotations/train.json'] != c['annotations/train.json']
    assert a['train/000000.png'] != c['train/000000.png']


def test_more_images_keep_the_first_ones(tmp_path):
    generate(str(tmp_path / 'a'), num_train=2, num_val=1, image_size=(96, 128))
    generate(str(tmp_path / 'b'), num_train=4, num_val=1, image_size=(96, 128))
    for name in ('train/000000.png', 'train/000001.png', 'val/000000.png'):
        assert (tmp_path / 'a' / name).read_bytes() == (tmp_path / 'b' / name).read_bytes()


def overlap(a, b):
    return min(a[2], b[2]) >= max(a[0], b[0]) and min(a[3], b[3]) >= max(a[1], b[1])


def test_sanity(tmp_path):
    paths = generate(str(tmp_path), num_train=40, num_val=4)
    ds = load_coco(paths['train_json'], paths['train_images'])
    assert ds.class_names == CLASS_NAMES and len(ds.records) == 40
    counts = np.zeros(len(CLASS_NAMES), int)
    overlapping = 0
    for rec in ds.records:
        validate_record(rec, CLASS_NAMES)  # image exists, boxes inside, known classes
        assert (rec['height'], rec['width']) == (256, 320) and len(rec['boxes']) >= 1
        b = rec['boxes']
        assert b[:, 0].min() >= 0 and b[:, 2].max() <= 319 and b[:, 3].max() <= 255
        sides = np.minimum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) + 1
        # aspect jitter, then rounding of the size and of the ellipse
        assert sides.min() >= min(MIN_SIDE / np.sqrt(ASPECT_JITTER), BAR_THICKNESS[0]) - 2
        np.add.at(counts, rec['classes'], 1)
        overlapping += any(overlap(b[i], b[j]) for i in range(len(b)) for j in range(i))
    assert (counts[1:] >= 5).all(), counts
    assert overlapping >= 3
    img = cv2.imread(ds.records[0]['fpath'])
    assert img.shape == (256, 320, 3) and img.std() > 10
    assert load_coco(paths['val_json'], paths['val_images']).records[0]['image_id'] == 1


def test_cli(tmp_path):
    out = subprocess.run(
        [sys.executable, '-m', 'lighthead.datasets.synthetic', '--out', str(tmp_path),
         '--num-train', '2', '--num-val', '1', '--height', '64', '--width', '80'],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    assert out.returncode == 0, out.stdout
    assert sorted(os.listdir(str(tmp_path / 'train'))) == ['000000.png', '000001.png']
    assert (tmp_path / 'annotations' / 'val.json').exists()
    assert cv2.imread(str(tmp_path / 'val' / '000000.png')).shape == (64, 80, 3)
