"""Truncated JPEG / PNG files: OpenCV decodes a JPEG cut to a third with its lower part flat
grey; read_image refuses it (naming the file) and the training data flow treats it as a bad
record."""
import os

import cv2
import numpy as np
import pytest

from lighthead.config import make_config
from lighthead.data import ImageReadError, TrainDataFlow, read_image
from lighthead.datasets import BadRecordError, make_record

H, W = 120, 160


def noise_image(seed=0):
    return (np.random.RandomState(seed).rand(H, W, 3) * 255).astype(np.uint8)


def write_encoded(path, ext, img, keep=1.0, tail=b''):
    """``img`` encoded by cv2 as ``ext``; only the first ``keep`` of the bytes, plus ``tail``."""
    ok, buf = cv2.imencode(ext, img)
    assert ok
    data = buf.tobytes()
    with open(str(path), 'wb') as f:
        f.write(data[:int(len(data) * keep)] + tail)
    return str(path)


def test_opencv_alone_decodes_a_truncated_jpeg_grey(tmp_path):
    # what read_image guards against: no error, the missing rows a flat grey
    path = write_encoded(tmp_path / 'cut.jpg', '.jpg', noise_image(), keep=1.0 / 3)
    img = cv2.imread(path)
    assert img is not None and img.shape == (H, W, 3)
    assert img[int(0.6 * H):].std() == 0


@pytest.mark.parametrize('ext, marker', [('.jpg', 'FF D9'), ('.png', 'IEND')])
def test_truncated_image_is_an_error_naming_the_file(tmp_path, ext, marker):
    path = write_encoded(tmp_path / ('cut' + ext), ext, noise_image(), keep=1.0 / 3)
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    assert path in str(info.value) and marker in str(info.value)
    assert 'truncated' in str(info.value)


@pytest.mark.parametrize('ext', ['.jpg', '.png'])
def test_cut_anywhere_is_detected(tmp_path, ext):
    img = noise_image(1)
    for keep in (0.01, 0.2, 0.5, 0.9, 0.999):
        path = write_encoded(tmp_path / ('cut%g%s' % (keep, ext)), ext, img, keep=keep)
        with pytest.raises(ImageReadError, match='truncated'):
            read_image(path)


@pytest.mark.parametrize('ext', ['.jpg', '.png'])
def test_complete_images_read_exactly_as_opencv(tmp_path, ext):
    img = noise_image(2)
    for name, tail in (('plain', b''), ('padded', b'\x00' * 64), ('trailer', b'EXTRA DATA')):
        path = write_encoded(tmp_path / (name + ext), ext, img, tail=tail)
        got = read_image(path)
        np.testing.assert_array_equal(got, cv2.imread(path, cv2.IMREAD_COLOR))
    if ext == '.png':
        np.testing.assert_array_equal(got, img)


def test_other_failures_keep_their_messages(tmp_path):
    with pytest.raises(ImageReadError, match='no such file'):
        read_image(str(tmp_path / 'nope.jpg'))
    empty = tmp_path / 'empty.jpg'
    empty.write_bytes(b'')
    with pytest.raises(ImageReadError, match='empty file'):
        read_image(str(empty))
    junk = tmp_path / 'junk.jpg'
    junk.write_bytes(b'not an image at all')
    with pytest.raises(ImageReadError, match='corrupt'):
        read_image(str(junk))
    bmp = str(tmp_path / 'x.bmp')  # formats without an end marker are left to the decoder
    cv2.imwrite(bmp, noise_image(3))
    assert read_image(bmp).shape == (H, W, 3)


def write_records(tmp_path, count):
    records = []
    for i in range(count):
        img = np.zeros((H, W, 3), np.uint8)
        img[10:60, 20:90] = 200
        img[60:] = noise_image(i)[60:]
        path = write_encoded(tmp_path / ('r%d.jpg' % i), '.jpg', img)
        records.append(make_record(str(tmp_path / 'ann.json'), 'r%d' % i, i + 1, path, H, W,
                                   [[20, 10, 89, 59]], [1], [False]))
    return records


def flow_config(tmp_path, **kw):
    return make_config(class_names=['background', 'a'], output_dir=str(tmp_path / 'out'),
                       image_short_size=60, image_max_size=200, train_batch_per_gpu=1,
                       train_flip=False, data_timeout=20.0, **kw)


@pytest.mark.parametrize('workers', [0, 2])
def test_training_flow_reports_a_truncated_jpeg(tmp_path, workers):
    records = write_records(tmp_path, 3)
    write_encoded(records[1]['fpath'], '.jpg', cv2.imread(records[1]['fpath']), keep=1.0 / 3)
    flow = TrainDataFlow(records, flow_config(tmp_path, nr_dataflow=workers), 1)
    with pytest.raises(BadRecordError) as info:
        for _ in range(6):
            next(flow)
    flow.close()
    assert info.value.record_id == 'r1' and info.value.path == records[1]['fpath']
    assert records[1]['fpath'] in str(info.value) and 'truncated' in str(info.value)


def test_training_flow_skips_and_logs_a_truncated_png(tmp_path):
    records = write_records(tmp_path, 3)
    png = str(tmp_path / 'r2.png')
    write_encoded(png, '.png', cv2.imread(records[2]['fpath']), keep=0.5)
    records[2]['fpath'] = png
    cfg = flow_config(tmp_path, nr_dataflow=2, skip_bad_records=True)
    with TrainDataFlow(records, cfg, 1) as flow:
        for _ in range(9):  # three data epochs: the bad image comes up three times
            (batch,) = next(flow)
            assert batch['data'].shape[0] == 1
        assert flow.num_bad == 1
    with open(os.path.join(cfg.log_dir, 'bad_records.txt')) as f:
        lines = f.read().splitlines()
    assert len(lines) == 1 and png in lines[0] and 'IEND' in lines[0]


def test_workers_start_after_the_main_process_used_opencv_threads(tmp_path):
    # A forked worker would hang in its first OpenCV call here: the main process's OpenCV
    # thread pool does not survive a fork. The workers are spawned.
    big = np.random.RandomState(0).rand(1500, 1500, 3).astype(np.float32)
    for _ in range(2):
        cv2.resize(big, (2200, 2200))
        cv2.GaussianBlur(big, (9, 9), 2)
    records = write_records(tmp_path, 3)
    with TrainDataFlow(records, flow_config(tmp_path, nr_dataflow=2), 1) as flow:
        for _ in range(3):
            (batch,) = next(flow)
            assert batch['data'].shape[0] == 1
