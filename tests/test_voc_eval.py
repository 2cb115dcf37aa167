import numpy as np
import pytest

from lighthead.eval.voc_eval import average_precision, voc_class_ap, voc_evaluate


def _case():
    gts = {1: (np.array([[0, 0, 9, 9], [20, 20, 29, 29]], float), np.array([False, False])),
           2: (np.array([[0, 0, 9, 9]], float), np.array([True]))}
    dets = [(1, 0.9, [0, 0, 9, 9]),       # TP
            (1, 0.8, [0, 0, 9, 9]),       # duplicate: FP
            (2, 0.7, [0, 0, 9, 9]),       # on a difficult box: ignored
            (1, 0.6, [20, 20, 29, 29]),   # TP
            (1, 0.5, [50, 50, 60, 60])]   # FP
    return gts, dets


def test_hand_computed_11_point_and_area():
    gts, dets = _case()
    ap07, recall, precision = voc_class_ap(gts, dets, use_07_metric=True)
    # recall .5 .5 .5 1 1, precision 1 .5 .5 2/3 .5: six thresholds see 1, five see 2/3
    assert ap07 == pytest.approx((6 * 1.0 + 5 * 2.0 / 3.0) / 11.0)
    np.testing.assert_allclose(recall, [0.5, 0.5, 0.5, 1.0, 1.0])
    ap_area, _, _ = voc_class_ap(gts, dets, use_07_metric=False)
    assert ap_area == pytest.approx(0.5 * 1.0 + 0.5 * 2.0 / 3.0)


def test_iou_threshold_is_strict_and_plus_one():
    # [0,0,9,9] vs [5,0,14,9]: inter 5*10=50, union 150 -> 1/3
    gts = {0: (np.array([[0, 0, 9, 9]], float), np.array([False]))}
    assert voc_class_ap(gts, [(0, 1.0, [5, 0, 14, 9])], iou_thresh=0.3)[0] == pytest.approx(1.0)
    assert voc_class_ap(gts, [(0, 1.0, [5, 0, 14, 9])], iou_thresh=0.34)[0] == pytest.approx(0.0)


def test_voc_evaluate_means_over_classes_with_boxes():
    records = [{'image_id': 7, 'boxes': np.array([[0, 0, 9, 9], [30, 30, 39, 49]], np.float32),
                'classes': np.array([1, 2]), 'ignore': np.array([False, False])}]
    dets = [{'image_id': 7, 'category': 1, 'score': 0.9, 'box': [0, 0, 9, 9]},
            {'image_id': 7, 'category': 2, 'score': 0.9, 'box': [100, 100, 120, 120]}]
    out = voc_evaluate(records, dets, ['background', 'a', 'b', 'empty'])
    assert out['per_class']['a']['AP_07'] == pytest.approx(1.0)
    assert out['per_class']['b']['AP_area'] == pytest.approx(0.0)
    assert np.isnan(out['per_class']['empty']['AP_07'])
    assert out['mAP_07'] == pytest.approx(0.5)


def test_average_precision_perfect_curve():
    assert average_precision(np.array([0.5, 1.0]), np.array([1.0, 1.0]), False) == pytest.approx(1.0)
