"""tools/predict.py, tools/benchmark.py and tools/benchmark_table.py end to end on the
quickstart experiment."""
import importlib.util
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from lighthead.compat import tf
from lighthead.config import load_experiment, load_experiment_config
from lighthead import benchmark
from lighthead.utils import session

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..'))
QUICKSTART = os.path.join(REPO, 'experiments', 'quickstart')
SPEC_KEYS = ('forward_ms', 'end_to_end_ms', 'fps', 'gflops', 'stages', 'peak_gflops',
             'peak_fraction', 'height', 'width', 'rois', 'threads', 'precision', 'tf_version',
             'cpu')
SPEC_STAGES = ('backbone_ms', 'rpn_proposals_ms', 'thin_feature_ms', 'psalign_ms',
               'rcnn_head_ms', 'postprocess_ms')


def _tool(name):
    """tools/<name>.py as a module (loaded by path)."""
    spec = importlib.util.spec_from_file_location('tool_' + name,
                                                  os.path.join(REPO, 'tools', name + '.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(args):
    proc = subprocess.run([sys.executable] + args, cwd=REPO, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture(scope='module')
def quickstart():
    """``(config, Network)`` of the quickstart experiment (``Network()`` is bound to it)."""
    return load_experiment(QUICKSTART)


@pytest.fixture(scope='module')
def quickstart_cfg(quickstart):
    return quickstart[0]


@pytest.fixture(scope='module')
def random_checkpoint(tmp_path_factory, quickstart):
    """A checkpoint of a randomly initialised quickstart test graph."""
    prefix = str(tmp_path_factory.mktemp('ckpt') / 'random.ckpt')
    net = quickstart[1]()
    with tf.Graph().as_default():
        tf.set_random_seed(7)
        net.inference('TEST', net.get_inputs())
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            tf.train.Saver().save(sess, prefix)
    return prefix


def test_load_experiment_config_by_path(quickstart_cfg):
    assert quickstart_cfg.exp_name == 'quickstart'
    assert quickstart_cfg.num_classes == len(quickstart_cfg.class_names)
    assert load_experiment_config(QUICKSTART).exp_name == 'quickstart'
    with pytest.raises(IOError, match='no experiment config'):
        load_experiment_config(os.path.join(REPO, 'no_such_experiment'))


def test_predict_writes_pngs_and_json(tmp_path, quickstart_cfg, random_checkpoint):
    rng = np.random.RandomState(0)
    images = tmp_path / 'images'
    images.mkdir()
    sizes = {'a': (90, 120), 'b': (140, 100)}
    for name, (h, w) in sizes.items():
        cv2.imwrite(str(images / (name + '.png')), rng.randint(0, 256, (h, w, 3)).astype(np.uint8))
    (images / 'notes.txt').write_text('not an image')
    out, json_path = tmp_path / 'out', tmp_path / 'det.json'
    thresh = 0.2
    _run(['tools/predict.py', '--exp', QUICKSTART, '--ckpt', random_checkpoint,
          '--images', str(images), '--out', str(out), '--thresh', str(thresh),
          '--json', str(json_path)])

    records = json.loads(json_path.read_text())
    assert [os.path.basename(r['file']) for r in records] == ['a.png', 'b.png']
    names = quickstart_cfg.class_names
    total = 0
    for rec in records:
        assert set(rec) == {'file', 'boxes', 'scores', 'classes', 'class_names'}
        h, w = sizes[os.path.basename(rec['file'])[0]]
        drawn = cv2.imread(str(out / os.path.basename(rec['file'])))
        assert drawn.shape == (h, w, 3)
        n = len(rec['scores'])
        total += n
        assert len(rec['boxes']) == len(rec['classes']) == len(rec['class_names']) == n
        scores = np.array(rec['scores'])
        assert np.all(scores >= thresh) and np.all(np.diff(scores) <= 0)
        boxes = np.array(rec['boxes']).reshape(-1, 4)
        # Original-image pixels, inclusive corners, clipped to the image.
        assert np.all(boxes[:, :2] >= 0) and np.all(boxes[:, 2] <= w - 1)
        assert np.all(boxes[:, 3] <= h - 1)
        assert all(1 <= c < len(names) for c in rec['classes'])
        assert rec['class_names'] == [names[c] for c in rec['classes']]
    assert total > 0  # random weights still give scores near 1 / num_classes > thresh


def test_predict_clear_errors(tmp_path, random_checkpoint):
    predict = _tool('predict')
    image = tmp_path / 'x.png'
    cv2.imwrite(str(image), np.zeros((8, 8, 3), np.uint8))
    cases = [
        (['--ckpt', str(tmp_path / 'missing.ckpt'), str(image)], 'missing.ckpt not found'),
        (['--ckpt', str(tmp_path), str(image)], 'no checkpoint in folder'),
        (['--ckpt', random_checkpoint, str(tmp_path / 'nope.jpg')], 'nope.jpg'),
        (['--ckpt', random_checkpoint, '--images', str(tmp_path / 'none')], 'not found'),
    ]
    for args, message in cases:
        with pytest.raises(SystemExit) as exit_info:
            predict.main(['--exp', QUICKSTART, '--out', str(tmp_path / 'o')] + args)
        assert message in str(exit_info.value)


def test_predict_config_overrides(tmp_path, random_checkpoint, capsys):
    """``--set KEY=VALUE`` (repeatable) reaches the experiment's network; a bad one exits."""
    image = str(tmp_path / 'x.png')
    cv2.imwrite(image, np.random.RandomState(3).randint(0, 256, (90, 120, 3)).astype(np.uint8))
    records = _tool('predict').main(['--exp', QUICKSTART, '--ckpt', random_checkpoint,
                                     '--out', str(tmp_path / 'out'), '--thresh', '0', image,
                                     '--set', 'TEST.MAX_PER_IMAGE=2', '--set', 'TEST.NMS=0.4'])
    assert len(records[0]['scores']) == 2
    for bad, message in (('no_such_key=1', "unknown config key 'no_such_key'"),
                         ('TEST.NMS', 'is not KEY=VALUE')):
        with pytest.raises(SystemExit) as exit_info:
            _tool('predict').main(['--exp', QUICKSTART, '--ckpt', random_checkpoint, '--out',
                                   str(tmp_path / 'o'), image, '--set', bad])
        assert message in str(exit_info.value)


def test_benchmark_json_has_spec_keys():
    out = _run(['tools/benchmark.py', '--exp', QUICKSTART, '--height', '96', '--width', '128',
                '--rois', '500', '--repeat', '2', '--warmup', '1', '--peak', '--peak-size', '1024',
                '--json'])
    result = json.loads(out)
    for key in SPEC_KEYS:
        assert key in result, key
    for key in ('forward_ms', 'end_to_end_ms', 'fps', 'gflops', 'peak_gflops', 'peak_fraction'):
        assert result[key] > 0, key
    assert set(SPEC_STAGES) <= set(result['stages'])
    # Every stage is timed on its own (fed the outputs of the stages before it), never
    # computed by subtraction: each is a measured time, > 0. They need not add up to
    # end_to_end_ms (separate session calls, no overlap between stages).
    assert list(result['stages']) == list(benchmark.STAGES)
    for key, value in result['stages'].items():
        assert value > 0, (key, result['stages'])
    assert result['stages_sum_ms'] == pytest.approx(sum(result['stages'].values()), abs=0.01)
    assert (result['height'], result['width'], result['rois']) == (96, 128, 500)
    assert result['precision'] == 'fp32' and result['threads'] >= 1
    # 6 x 8 positions x 12 anchors = 576 proposals at most: NMS keeps fewer than 500, padded.
    assert result['nms_proposals'] < 500
    assert result['fps'] == pytest.approx(1000.0 / result['forward_ms'], rel=1e-3)


def test_benchmark_network_forces_roi_count(quickstart):
    cfg, network_cls = quickstart
    bench = benchmark.BenchmarkGraph(cfg, 64, 96, 400, session.session_config(1),
                                     network_cls=network_cls)
    try:
        feed = {bench.inputs[0]: bench.data, bench.inputs[1]: bench.im_info}
        points = bench.end_points
        rois, scores, kept, pooled = bench.sess.run(
            [points['rois'], points['roi_scores'], points['nms_proposals'], points['pooled']],
            feed)
        # Each stage runs on its own, fed the values the stages before it computed.
        stages = {k: v for k, v in bench.runners().items() if k.endswith('_ms')}
        assert sorted(stages) == sorted(benchmark.STAGES)
        for run in stages.values():
            run()
    finally:
        bench.close()
    assert bench.data.shape == (1, 64, 96, 3)
    assert bench.im_info.shape == (1, 6) and bench.im_info.dtype == np.float32
    assert rois.shape == (400, 5) and scores.shape == (400,) and pooled.shape[0] == 400
    assert 0 < kept < 400 and bench.nms_proposals() == kept
    # The NMS output repeated cyclically, the objectness with it.
    np.testing.assert_array_equal(rois, np.concatenate([rois[:kept]] * (400 // kept + 1))[:400])
    np.testing.assert_array_equal(scores,
                                  np.concatenate([scores[:kept]] * (400 // kept + 1))[:400])


def test_benchmark_table_prints_every_pair_and_the_fits(tmp_path):
    out = _run(['tools/benchmark_table.py', '--exp', QUICKSTART, '--sizes', '64x96,96x128',
                '--rois', '50,100', '--repeat', '1', '--warmup', '0',
                '--json', str(tmp_path / 'r.json')])
    rows = [line for line in out.splitlines() if line.startswith('| ') and 'RoIs' not in line]
    assert [row.split('|')[1:3] for row in rows] == [
        [' 64×96 ', ' 50 '], [' 64×96 ', ' 100 '], [' 96×128 ', ' 50 '], [' 96×128 ', ' 100 ']]
    assert 'ms per megapixel' in out and out.count('ms per 100 RoIs') == 2
    with open(str(tmp_path / 'r.json')) as f:
        results = json.load(f)
    assert [(r['height'], r['rois']) for r in results] == [(64, 50), (64, 100), (96, 50),
                                                           (96, 100)]
    assert all(r['fold_bn'] and r['forward_ms'] > 0 for r in results)


def test_benchmark_table_rejects_bad_sizes():
    proc = subprocess.run([sys.executable, 'tools/benchmark_table.py', '--exp', QUICKSTART,
                           '--sizes', '64by96'], cwd=REPO, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=120)
    assert proc.returncode == 2 and "'64by96' is not HEIGHTxWIDTH" in proc.stderr


def test_gflops_grow_with_rois_by_the_head_products(quickstart_cfg):
    cfg = quickstart_cfg
    low = benchmark.count_forward_gflops(cfg, 96, 128, 100)
    high = benchmark.count_forward_gflops(cfg, 96, 128, 300)
    per_roi_macs = (cfg.head_out_channels * cfg.fc_channels +
                    cfg.fc_channels * cfg.num_classes * 5)
    assert high - low == pytest.approx(2 * 200 * per_roi_macs / 1e9, rel=1e-9)


def test_bf16_option():
    rewrite = tf.ConfigProto().graph_options.rewrite_options
    if 'auto_mixed_precision_onednn_bfloat16' in rewrite.DESCRIPTOR.fields_by_name:  # TF 2.x
        config = session.session_config(2, 'bf16')
        rewrite = config.graph_options.rewrite_options
        assert rewrite.auto_mixed_precision_onednn_bfloat16 == type(rewrite).ON
        assert config.intra_op_parallelism_threads == 2
    else:
        with pytest.raises(session.UnsupportedPrecision, match='bf16'):
            session.session_config(2, 'bf16')
    with pytest.raises(ValueError):
        session.session_config(2, 'fp16')


def test_predict_tile_matches_windows_of_the_predictor(tmp_path, quickstart,
                                                       random_checkpoint):
    """--tile through the real Predictor: detections are the windows' detections shifted to
    the image (merged), and a tile covering the image gives the whole-image detections."""
    from lighthead.eval.predictor import Predictor
    from lighthead.eval.tiling import window_origins
    image = np.random.RandomState(1).randint(0, 256, (90, 150, 3)).astype(np.uint8)
    path = str(tmp_path / 'wide.png')
    cv2.imwrite(path, image)
    records = _tool('predict').main(['--exp', QUICKSTART, '--ckpt', random_checkpoint,
                                     '--out', str(tmp_path / 'out'), '--thresh', '0',
                                     '--tile', '64', '--overlap', '16', path])
    tiled_boxes = np.array(records[0]['boxes'], np.float32).reshape(-1, 4)
    assert len(tiled_boxes) > 0

    predictor = Predictor(quickstart[0], quickstart[1](), random_checkpoint)
    try:
        whole, _ = predictor.predict_file(path)
        covering, _ = predictor.predict_file(path, tile=200, overlap=0)
        window_boxes, window_scores = [], []
        for x, y in window_origins(90, 150, 64, 16):
            det = predictor.predict_image(image[y:y + 64, x:x + 64].copy())
            window_boxes.append(det['boxes'] + np.float32([x, y, x, y]))
            window_scores.append(det['scores'])
    finally:
        predictor.close()
    for key in ('boxes', 'scores', 'classes'):
        np.testing.assert_array_equal(covering[key], whole[key])
    window_boxes = np.concatenate(window_boxes)
    assert len(tiled_boxes) <= len(window_boxes)
    for box in tiled_boxes:  # every reported box is one window's box, in image pixels
        assert np.abs(window_boxes - box).max(axis=1).min() < 1e-3
    assert max(records[0]['scores']) == pytest.approx(float(np.concatenate(window_scores).max()),
                                                      abs=1e-5)
    assert tiled_boxes[:, 2].max() > 64 and tiled_boxes[:, 3].max() > 64  # far windows shifted


@pytest.mark.parametrize('args', [['--tile', '64', '--overlap', '64'], ['--overlap', '8'],
                                  ['--tile', '-1']])
def test_predict_rejects_bad_tile_options(tmp_path, capsys, args):
    with pytest.raises(SystemExit):
        _tool('predict').main(['--exp', QUICKSTART, '--ckpt', 'unused', '--out',
                               str(tmp_path / 'o'), 'x.png'] + args)
    assert '--overlap' in capsys.readouterr().err


def _predict_proc(args):
    return subprocess.run([sys.executable, 'tools/predict.py', '--exp', QUICKSTART] + args,
                          cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=300)


def test_predict_bad_image_keeps_the_results_done(tmp_path, random_checkpoint):
    """Issue 17 item 2: an undecodable file stops the run with one line naming it, and the
    detections of the images before it are still written; a folder named x.png is no image;
    --skip-bad names the bad image on one line and goes on."""
    rng = np.random.RandomState(5)
    images = tmp_path / 'images'
    images.mkdir()
    for name in ('a.png', 'c.png'):
        cv2.imwrite(str(images / name), rng.randint(0, 256, (80, 100, 3)).astype(np.uint8))
    (images / 'b.png').write_bytes(b'this is not a png')
    (images / 'd.png').mkdir()  # a folder with an image name: not an image
    out = tmp_path / 'out'
    common = ['--ckpt', random_checkpoint, '--images', str(images), '--out', str(out),
              '--thresh', '0']

    proc = _predict_proc(common)
    assert proc.returncode == 1, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith('predict.py: cannot read image ') and str(images / 'b.png') in last
    assert 'detections of the 1 images before it are in %s' % (out / 'detections.json') in last
    records = json.loads((out / 'detections.json').read_text())
    assert [os.path.basename(r['file']) for r in records] == ['a.png']
    assert len(records[0]['scores']) > 0

    json_path = tmp_path / 'all.json'
    proc = _predict_proc(common + ['--skip-bad', '--json', str(json_path)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    skipped = [l for l in proc.stderr.splitlines() if l.startswith('predict.py: skipped')]
    assert len(skipped) == 1 and str(images / 'b.png') in skipped[0], proc.stderr[-3000:]
    assert 'd.png' not in proc.stderr + proc.stdout
    assert '1 bad images skipped' in proc.stdout
    records = json.loads(json_path.read_text())
    assert [os.path.basename(r['file']) for r in records] == ['a.png', 'c.png']
    assert sorted(os.listdir(str(out))) == ['a.png', 'c.png', 'detections.json']


def test_predict_writes_the_json_when_interrupted(tmp_path, random_checkpoint, monkeypatch):
    """Any stop after the first image (here Ctrl-C on the second) leaves its detections."""
    from lighthead.eval.predictor import Predictor
    rng = np.random.RandomState(6)
    paths = []
    for name in ('a.png', 'b.png'):
        paths.append(str(tmp_path / name))
        cv2.imwrite(paths[-1], rng.randint(0, 256, (60, 80, 3)).astype(np.uint8))
    real = Predictor.predict_file

    def predict_file(self, path, *args, **kwargs):
        if path.endswith('b.png'):
            raise KeyboardInterrupt
        return real(self, path, *args, **kwargs)
    monkeypatch.setattr(Predictor, 'predict_file', predict_file)
    with pytest.raises(KeyboardInterrupt):
        _tool('predict').main(['--exp', QUICKSTART, '--ckpt', random_checkpoint, '--out',
                               str(tmp_path / 'out'), '--thresh', '0'] + paths)
    records = json.loads((tmp_path / 'out' / 'detections.json').read_text())
    assert [r['file'] for r in records] == paths[:1]
