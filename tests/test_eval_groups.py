"""Evaluation per group of images (``eval_groups``, e.g. per site) and of the RPN alone
(``eval_rpn_only``), on hand-made ground truths and detections with known answers."""
import json
import os

import numpy as np
import pytest

from lighthead.config import apply_overrides, make_config
from lighthead.eval import cli
from lighthead.eval.coco_eval import coco_evaluate, group_image_ids, group_table, load_coco_gt
from lighthead.eval.tiling import predict_tiled

# Four 100 x 100 images at two sites; 'sub/' checks that the regex sees the base name only.
FILE_NAMES = ['siteA_1.png', 'siteA_2.png', 'siteB_1.png', 'sub/siteB_2.png']
GROUPS = {'A': '^siteA', 'B': '^siteB'}


def _gt(num_categories=1, boxes_per_image=2):
    """COCO dict: every image holds ``boxes_per_image`` 20 x 20 boxes (category 1, 2, 1, ...)."""
    images, annotations = [], []
    for i, name in enumerate(FILE_NAMES):
        images.append({'id': i + 1, 'file_name': name, 'height': 100, 'width': 100})
        for j in range(boxes_per_image):
            annotations.append({'id': len(annotations) + 1, 'image_id': i + 1,
                                'bbox': [10 + 40 * j, 10, 20, 20], 'area': 400, 'iscrowd': 0,
                                'category_id': 1 + j % num_categories})
    categories = [{'id': c + 1, 'name': 'class%d' % (c + 1)} for c in range(num_categories)]
    return {'images': images, 'annotations': annotations, 'categories': categories}


def _perfect(gt, image_ids, score=0.9, category_id=None):
    """COCO results equal to the ground-truth boxes of ``image_ids``."""
    return [{'image_id': a['image_id'], 'bbox': list(a['bbox']), 'score': score,
             'category_id': a['category_id'] if category_id is None else category_id}
            for a in gt['annotations'] if a['image_id'] in image_ids]


def test_groups_match_the_base_name_by_regex():
    coco = load_coco_gt(_gt())
    assert group_image_ids(coco, dict(GROUPS, two='_2[.]png$')) == {
        'A': [1, 2], 'B': [3, 4], 'two': [2, 4]}


def test_group_perfect_on_one_site_empty_on_the_other():
    gt = _gt()
    metrics, _ = coco_evaluate(gt, _perfect(gt, {1, 2}), GROUPS)
    a, b = metrics['groups']['A'], metrics['groups']['B']
    assert (a['images'], b['images']) == (2, 2)
    assert a['AP50'] == pytest.approx(1.0) and a['AP'] == pytest.approx(1.0)
    assert b['AP50'] == pytest.approx(0.0) and b['AP'] == pytest.approx(0.0)
    # Overall: half the ground truths found at precision 1 -> 51 of 101 recall points.
    assert metrics['AP50'] == pytest.approx(51 / 101.0, abs=1e-6)
    assert metrics['ungrouped_images'] == 0


def test_group_ap_equals_ap_of_its_images_alone():
    """Restricting params.imgIds gives the AP of a ground truth file holding only the group."""
    gt = _gt(boxes_per_image=3)
    rng = np.random.RandomState(0)
    results = []
    for a in gt['annotations']:  # jittered boxes, random scores, plus one false positive each
        x, y, w, h = a['bbox']
        results.append({'image_id': a['image_id'], 'category_id': 1, 'score': rng.rand(),
                        'bbox': [x + rng.randint(-4, 5), y + rng.randint(-4, 5), w, h]})
        results.append({'image_id': a['image_id'], 'category_id': 1, 'score': rng.rand(),
                        'bbox': [x, 60, w, h]})
    metrics, _ = coco_evaluate(gt, results, GROUPS)
    for name, ids in (('A', {1, 2}), ('B', {3, 4})):
        alone = {'images': [i for i in gt['images'] if i['id'] in ids],
                 'annotations': [a for a in gt['annotations'] if a['image_id'] in ids],
                 'categories': gt['categories']}
        expected, _ = coco_evaluate(alone, [r for r in results if r['image_id'] in ids])
        assert 0.0 < expected['AP'] < 1.0
        for key in ('AP', 'AP50', 'AP75'):
            assert metrics['groups'][name][key] == pytest.approx(expected[key]), (name, key)
    assert metrics['groups']['A']['AP'] != pytest.approx(metrics['groups']['B']['AP'])


def test_group_without_images_is_reported_not_a_crash():
    gt = _gt()
    groups = {'A': '^siteA', 'OSBS': '^OSBS'}
    metrics, _ = coco_evaluate(gt, _perfect(gt, {1, 2, 3, 4}), groups)
    assert metrics['groups']['OSBS']['images'] == 0 and metrics['groups']['OSBS']['AP'] is None
    assert metrics['groups']['A']['AP50'] == pytest.approx(1.0)
    assert metrics['ungrouped_images'] == 2
    table = group_table(metrics)
    osbs = [line for line in table.splitlines() if line.startswith('OSBS')]
    assert len(osbs) == 1 and 'no image file name matches' in osbs[0]
    assert '2 images match no group' in table
    json.dumps(metrics)  # None, not NaN: the metrics file stays valid JSON


def test_no_detections_at_all_scores_zero_per_group():
    metrics, summary = coco_evaluate(_gt(), [], GROUPS)
    assert summary.startswith('no detections')
    assert metrics['AP50'] == 0.0 and metrics['groups']['B']['AP50'] == 0.0


@pytest.mark.parametrize('groups, message', [
    ({'YELL': '^2019_(YELL'}, r"eval_groups\['YELL'\].*not a valid regular expression"),
    ({'YELL': 5}, r"eval_groups\['YELL'\] must be a regex string"),
    (['^2019_YELL'], 'eval_groups must be None or a dict'),
])
def test_bad_eval_groups_are_refused_naming_the_key(groups, message):
    with pytest.raises(ValueError, match=message):
        make_config(eval_groups=groups)


def test_eval_groups_and_rpn_only_keys(tmp_path):
    cfg = make_config(output_dir=str(tmp_path))
    assert cfg.eval_groups is None and cfg.eval_rpn_only is True
    apply_overrides(cfg, ["eval_groups={'A': '^siteA'}", 'eval_rpn_only=False'])
    assert dict(cfg.eval_groups) == {'A': '^siteA'} and cfg.eval_rpn_only is False
    with pytest.raises(ValueError, match='eval_rpn_only'):
        apply_overrides(cfg, ['eval_rpn_only=yes'])
    # test.py turns a bad override into a clean exit that names the key.
    with pytest.raises(SystemExit, match=r"eval_groups\['A'\]"):
        cli.main(make_config(output_dir=str(tmp_path)), None, ["eval_groups={'A': '('}"])


def test_rpn_only_ap_of_hand_made_proposals():
    """Image 1 holds two crowns; its proposals rank a false positive first: precision 1/2 at
    recall 1/2, 2/3 at recall 1, so the interpolated AP (and AP50) is 2/3. The head's
    detections are perfect (AP 1)."""
    gt = _gt()
    gt['images'], gt['annotations'] = gt['images'][:1], gt['annotations'][:2]
    detections = _perfect(gt, {1})
    proposals = [{'image_id': 1, 'category_id': 1, 'score': 0.9, 'bbox': [60, 60, 20, 20]},
                 {'image_id': 1, 'category_id': 1, 'score': 0.8, 'bbox': [10, 10, 20, 20]},
                 {'image_id': 1, 'category_id': 1, 'score': 0.7, 'bbox': [50, 10, 20, 20]}]
    metrics, _, table = cli.evaluate_results(gt, detections, proposals, {'A': '^siteA'})
    assert metrics['AP'] == pytest.approx(1.0)
    rpn = metrics['rpn_only']
    assert rpn['AP50'] == pytest.approx(2 / 3.0, abs=1e-6)
    assert rpn['AP'] == pytest.approx(2 / 3.0, abs=1e-6)
    assert rpn['groups']['A']['AP50'] == pytest.approx(2 / 3.0, abs=1e-6)
    assert 'per_class' not in rpn
    assert 'RPN-only AP' in table
    row = [line.split() for line in table.splitlines() if line.startswith('A ')][0]
    assert row[-4:] == ['1.000', '1.000', '0.667', '0.667']


def test_rpn_only_is_class_agnostic_with_several_classes():
    """Two classes; proposals (all category 1) cover every box of both: class-agnostic AP50 1,
    while matched by category class 2 gets no detection and class 1 as many false positives
    as true ones."""
    gt = _gt(num_categories=2)
    proposals = _perfect(gt, {1, 2, 3, 4}, category_id=1)
    metrics, _, _ = cli.evaluate_results(gt, [], proposals, GROUPS, class_agnostic_rpn=True)
    assert metrics['rpn_only']['AP50'] == pytest.approx(1.0)
    assert metrics['rpn_only']['groups']['B']['AP50'] == pytest.approx(1.0)
    by_category, _ = coco_evaluate(gt, proposals)
    assert by_category['per_class']['class2'] == 0.0 and by_category['AP50'] < 0.5


def test_tiled_prediction_merges_proposals_too():
    def predict_fn(window):
        h, w = window.shape[:2]
        box = np.float32([[w // 2 - 5, h // 2 - 5, w // 2 + 5, h // 2 + 5]])
        return {'boxes': box, 'scores': np.float32([0.9]), 'classes': np.int32([1]),
                'proposal_boxes': np.concatenate([box, box + 1]),
                'proposal_scores': np.float32([0.8, 0.7])}
    det = predict_tiled(predict_fn, np.zeros((100, 160, 3), np.uint8), 100, 40, 0.5)
    assert sorted(det) == ['boxes', 'classes', 'proposal_boxes', 'proposal_scores', 'scores']
    # Two windows (x 0 and 60): each window's centre box, its +1 twin suppressed by NMS 0.5.
    assert len(det['boxes']) == 2 and len(det['proposal_boxes']) == 2
    np.testing.assert_allclose(sorted(det['proposal_boxes'][:, 0]), [45, 105])
    np.testing.assert_allclose(det['proposal_scores'], [0.8, 0.8])


class _FakePredictor(object):
    """Stands in for lighthead.eval.predictor.Predictor: perfect detections on the 'A' images,
    none on 'B'; one proposal per ground truth, everywhere."""
    gt = None

    def __init__(self, cfg, network, checkpoint, session_config=None, proposals=False):
        self.proposals = proposals

    def predict_file(self, path, tile=0, overlap=0):
        name = os.path.basename(path)
        image = [i for i in self.gt['images'] if i['file_name'].endswith(name)][0]
        boxes = np.float32([[x, y, x + w - 1, y + h - 1] for x, y, w, h in
                            (a['bbox'] for a in self.gt['annotations']
                             if a['image_id'] == image['id'])])
        det = {'boxes': boxes if name.startswith('siteA') else boxes[:0],
               'scores': np.full(len(boxes), 0.9, np.float32),
               'classes': np.ones(len(boxes), np.int32)}
        det['scores'], det['classes'] = det['scores'][:len(det['boxes'])], det['classes'][
            :len(det['boxes'])]
        if self.proposals:
            det['proposal_boxes'], det['proposal_scores'] = boxes, np.full(len(boxes), 0.5)
        return det, None

    def close(self):
        pass


class _Dataset(object):
    def __init__(self, gt):
        self.class_names = ['background', 'class1']
        self.category_ids = [None, 1]
        self.records = [{'image_id': i['id'], 'fpath': '/images/' + i['file_name']}
                        for i in gt['images']]


@pytest.mark.parametrize('rpn_only', [True, False])
def test_evaluate_epoch_writes_groups_and_rpn_only(tmp_path, monkeypatch, rpn_only):
    gt = _gt()
    _FakePredictor.gt = gt
    monkeypatch.setattr('lighthead.eval.predictor.Predictor', _FakePredictor)
    monkeypatch.setattr('lighthead.utils.session.session_config', lambda *a, **k: None)
    cfg = make_config(output_dir=str(tmp_path), class_names=['background', 'class1'],
                      eval_groups=GROUPS, eval_rpn_only=rpn_only)
    os.makedirs(cfg.model_dump_dir)
    open(os.path.join(cfg.model_dump_dir, 'epoch_1.ckpt.index'), 'w').close()
    metrics = cli.evaluate_epoch(cfg, lambda: None, 1, _Dataset(gt), gt)

    with open(os.path.join(cfg.eval_dir, 'epoch_1_metrics.json')) as f:
        written = json.load(f)
    assert written['groups']['A']['AP50'] == pytest.approx(1.0)
    assert written['groups']['B']['AP50'] == pytest.approx(0.0)
    with open(os.path.join(cfg.eval_dir, 'results.txt')) as f:
        results = f.read()
    dump = os.path.join(cfg.eval_dir, 'epoch_1_rpn_only.json')
    if rpn_only:
        assert written['rpn_only']['AP50'] == pytest.approx(1.0)
        assert written['rpn_only']['groups']['B']['AP50'] == pytest.approx(1.0)
        assert 'RPN-only AP50' in results
        with open(dump) as f:
            assert len(json.load(f)) == len(gt['annotations'])
    else:
        assert 'rpn_only' not in metrics and 'RPN-only' not in results
        assert not os.path.exists(dump)
    row = [line.split() for line in results.splitlines() if line.startswith('B ')][0]
    assert row[:5] == ['B', '^siteB', '2', '0.000', '0.000']
