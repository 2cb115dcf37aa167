"""lighthead.eval.tiling: sliding-window prediction with a fake detector of bright rectangles."""
import cv2
import numpy as np
import pytest

from lighthead.eval.tiling import merge_windows, predict_tiled, window_origins

NMS = 0.5


def find_rectangles(window_bgr, cut_score=None):
    """Fake detector: the bounding box of each 4-connected blob of equal non-zero intensity,
    in window pixels (inclusive corners); class 1 for intensity 255, else 2; score 0.9, or
    ``cut_score`` for a blob touching the window border."""
    gray = window_bgr[..., 0]
    height, width = gray.shape
    boxes, scores, classes = [], [], []
    for value in np.unique(gray[gray > 0]):
        count, _, stats, _ = cv2.connectedComponentsWithStats((gray == value).astype(np.uint8),
                                                              connectivity=4)
        for x, y, w, h, _ in stats[1:count]:
            box = [x, y, x + w - 1, y + h - 1]
            on_border = x == 0 or y == 0 or box[2] == width - 1 or box[3] == height - 1
            boxes.append(box)
            scores.append(cut_score if on_border and cut_score is not None else 0.9)
            classes.append(1 if value == 255 else 2)
    order = np.argsort(-np.array(scores, np.float32), kind='stable')
    return {'boxes': np.array(boxes, np.float32).reshape(-1, 4)[order],
            'scores': np.array(scores, np.float32)[order],
            'classes': np.array(classes, np.int32)[order]}


def image_with(height, width, rects, value=255):
    """Black BGR image with filled rectangles ``[x1, y1, x2, y2]`` (inclusive)."""
    image = np.zeros((height, width, 3), np.uint8)
    for x1, y1, x2, y2 in rects:
        image[y1:y2 + 1, x1:x2 + 1] = value
    return image


def sorted_boxes(det):
    return sorted(tuple(float(v) for v in b) for b in det['boxes'])


def test_window_origins_cover_the_image_last_flush_with_edge():
    origins = window_origins(250, 230, 100, 30)
    xs = sorted({x for x, _ in origins})
    ys = sorted({y for _, y in origins})
    assert xs == [0, 70, 130]            # stride 70; 130 + 100 = 230 reaches the edge
    assert ys == [0, 70, 140, 150]       # 140 + 100 < 250: one more, flush with the edge
    assert origins == [(x, y) for y in ys for x in xs]  # row by row
    covered = np.zeros((250, 230), int)
    for x, y in origins:
        covered[y:y + 100, x:x + 100] += 1
    assert covered.min() >= 1
    assert max(x for x, _ in origins) + 100 == 230 and max(ys) + 100 == 250


def test_window_origins_small_side_gets_one_whole_window():
    assert window_origins(50, 300, 100, 20) == [(0, 0), (80, 0), (160, 0), (200, 0)]
    assert window_origins(40, 60, 100, 20) == [(0, 0)]


@pytest.mark.parametrize('tile, overlap', [(0, 0), (-5, 0), (100, 100), (100, -1)])
def test_window_origins_reject_bad_settings(tile, overlap):
    with pytest.raises(ValueError):
        window_origins(200, 200, tile, overlap)


def test_object_cut_by_window_edge_is_reported_once_with_whole_box():
    # Windows x in [0, 99] and [60, 159]; the object (x 90..115) is cut at x = 99 in the first.
    obj = [90, 30, 115, 50]
    image = image_with(100, 160, [obj])
    piece = find_rectangles(image[:, :100])
    assert sorted_boxes(piece) == [(90, 30, 99, 50)]  # the fake really sees a cut piece
    # The cut piece has IoU 10/26 with the whole box: plain NMS at 0.5 would keep both.
    det = predict_tiled(find_rectangles, image, 100, 40, NMS)
    assert sorted_boxes(det) == [tuple(map(float, obj))]
    assert det['scores'].tolist() == pytest.approx([0.9])
    assert det['classes'].tolist() == [1]


def test_cut_piece_with_higher_score_gives_its_score_to_the_whole_box():
    image = image_with(100, 160, [[90, 30, 115, 50]])
    det = predict_tiled(lambda w: find_rectangles(w, cut_score=0.97), image, 100, 40, NMS)
    assert sorted_boxes(det) == [(90.0, 30.0, 115.0, 50.0)]
    assert det['scores'].tolist() == pytest.approx([0.97])


def test_object_in_a_four_window_corner_is_reported_once():
    # Windows at x, y in {0, 60} of 100 px: the object is cut in three windows, whole in one.
    obj = [85, 88, 110, 112]
    det = predict_tiled(find_rectangles, image_with(160, 160, [obj]), 100, 40, NMS)
    assert sorted_boxes(det) == [tuple(map(float, obj))]


def test_two_pieces_of_an_object_larger_than_the_overlap_are_reported_once():
    # 70 px wide, overlap 40: pieces x 50..99 and 60..119 share 40 of the smaller's 50 px.
    det = predict_tiled(find_rectangles, image_with(100, 160, [[50, 10, 119, 40]]), 100, 40,
                        NMS)
    assert len(det['scores']) == 1
    assert sorted_boxes(det)[0] in [(50.0, 10.0, 99.0, 40.0), (60.0, 10.0, 119.0, 40.0)]


def test_merge_replaces_a_cut_box_only_by_an_uncut_box_of_another_window():
    boxes = np.array([[90, 10, 99, 30], [80, 5, 120, 35]], np.float32)  # cut box inside whole
    scores = np.array([0.95, 0.6], np.float32)
    classes = np.array([1, 1], np.int32)
    cut = np.array([True, False])
    keep, merged = merge_windows(boxes, scores, classes, np.array([0, 1]), cut, NMS)
    assert keep.tolist() == [1] and merged[1] == pytest.approx(0.95)
    # The same two boxes from one window are two objects (the detector's own output) ...
    keep, merged = merge_windows(boxes, scores, classes, np.array([0, 0]), cut, NMS)
    assert keep.tolist() == [0, 1] and merged.tolist() == pytest.approx([0.95, 0.6])
    # ... and so are they when of different classes.
    keep, _ = merge_windows(boxes, scores, np.array([1, 2], np.int32), np.array([0, 1]), cut,
                            NMS)
    assert keep.tolist() == [0, 1]


@pytest.mark.parametrize('tile', [120, 500])
def test_one_window_gives_predict_fn_result_unchanged(tile):
    rects = [[0, 0, 9, 9], [30, 40, 70, 60], [100, 110, 119, 119], [50, 5, 52, 7]]
    image = image_with(120, 120, rects)
    calls = []

    def spy(window):
        calls.append(window.shape)
        return find_rectangles(window)
    det = predict_tiled(spy, image, tile, 30, NMS)
    assert calls == [(120, 120, 3)]
    whole = find_rectangles(image)
    assert len(whole['scores']) == 4
    for key in ('boxes', 'scores', 'classes'):
        np.testing.assert_array_equal(det[key], whole[key])


def test_image_smaller_than_tile_on_one_side():
    # 50 x 300 image, tile 100: windows of 50 x 100 at x = 0, 80, 160, 200.
    rects = [[70, 10, 90, 30], [190, 0, 230, 49], [280, 20, 299, 25]]
    calls = []

    def spy(window):
        calls.append(window.shape[:2])
        return find_rectangles(window)
    det = predict_tiled(spy, image_with(50, 300, rects), 100, 20, NMS)
    assert calls == [(50, 100)] * 4
    assert sorted_boxes(det) == sorted(tuple(map(float, r)) for r in rects)


def test_distinct_nearby_objects_are_not_merged():
    # Pairs 2 px apart across the first window's right edge (x = 99) and in the overlap, and a
    # class-2 object cut in the first window: each is reported once, none swallows another.
    near = [[88, 10, 97, 30], [100, 10, 110, 30], [80, 60, 89, 70], [92, 60, 104, 70]]
    image = image_with(100, 160, near)
    image[40:51, 70:111] = 128  # class 2, x 70..110: cut in the first window, whole in the next
    det = predict_tiled(find_rectangles, image, 100, 40, NMS)
    by_class = {c: sorted(tuple(map(float, b)) for b, k in zip(det['boxes'], det['classes'])
                          if k == c) for c in (1, 2)}
    assert by_class[1] == sorted(tuple(map(float, r)) for r in near)
    assert by_class[2] == [(70.0, 40.0, 110.0, 50.0)]


def test_boxes_are_shifted_by_window_origins():
    # Each 100 px window of a 160 x 160 image reports one box at window pixels (10..20, 12..25).
    def fixed(window):
        return {'boxes': np.array([[10, 12, 20, 25]], np.float32),
                'scores': np.array([0.8], np.float32), 'classes': np.array([3], np.int32)}
    det = predict_tiled(fixed, np.zeros((160, 160, 3), np.uint8), 100, 40, NMS)
    expected = sorted((10.0 + x, 12.0 + y, 20.0 + x, 25.0 + y) for x, y in
                      [(0, 0), (60, 0), (0, 60), (60, 60)])
    assert sorted_boxes(det) == expected
    assert det['classes'].tolist() == [3] * 4


def test_far_window_object_has_image_coordinates_and_output_is_sorted_and_typed():
    rects = [[230, 200, 245, 215], [5, 5, 14, 14]]
    image = image_with(250, 250, rects)
    image[100:111, 120:131] = 128
    det = predict_tiled(lambda w: find_rectangles(w, cut_score=0.5), image, 100, 30, NMS)
    assert sorted_boxes(det) == sorted([(120.0, 100.0, 130.0, 110.0)] +
                                       [tuple(map(float, r)) for r in rects])
    assert det['boxes'].dtype == np.float32 and det['boxes'].shape == (3, 4)
    assert det['scores'].dtype == np.float32 and det['classes'].dtype == np.int32
    assert np.all(np.diff(det['scores']) <= 0)


def test_max_per_image_and_empty_image():
    image = image_with(100, 160, [[5, 5, 10, 10], [30, 5, 40, 10], [140, 50, 150, 60]])
    det = predict_tiled(find_rectangles, image, 100, 40, NMS, max_per_image=2)
    assert len(det['scores']) == 2 and det['boxes'].shape == (2, 4)
    empty = predict_tiled(find_rectangles, np.zeros((100, 160, 3), np.uint8), 100, 40, NMS)
    assert empty['boxes'].shape == (0, 4) and empty['scores'].shape == (0,)
    assert empty['classes'].shape == (0,)
