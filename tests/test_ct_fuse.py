"""Table tests for CT geometry: 3-D IoU, 3-D NMS, and fusion of slab boxes into 3-D boxes."""

from __future__ import annotations

import numpy as np
import pytest

from detector.ct_fuse import FuseParams, fuse, iou_3d, nms_3d

B = np.array([0, 0, 0, 10, 10, 10], np.float32)


@pytest.mark.parametrize("other, expected", [
    ([0, 0, 0, 10, 10, 10], 1.0),
    ([0, 0, 0, 10, 10, 5], 0.5),
    ([5, 0, 0, 15, 10, 10], 500 / 1500),
    ([10, 10, 10, 20, 20, 20], 0.0),  # touching corners
    ([20, 20, 20, 30, 30, 30], 0.0),
])
def test_iou_3d(other, expected):
    assert iou_3d(B, np.array([other], np.float32))[0] == pytest.approx(expected)


def test_iou_3d_empty_and_nms():
    assert iou_3d(B, np.zeros((0, 6))).shape == (0,)
    boxes = np.array([B, B + 1, B + 50], np.float32)
    keep = nms_3d(boxes, np.array([0.5, 0.9, 0.3], np.float32), 0.25)
    assert keep.tolist() == [1, 2]
    assert nms_3d(np.zeros((0, 6), np.float32), np.zeros(0, np.float32), 0.5).tolist() == []


def chain(z0, z1, box, score=0.8):
    n = z1 - z0
    return np.arange(z0, z1), np.tile(np.array(box, np.float32), (n, 1)), np.full(n, score)


@pytest.mark.parametrize("parts, expected", [
    ([], []),
    ([chain(4, 5, [10, 10, 20, 20])], [[10, 10, 4, 20, 20, 5]]),  # one slab
    ([chain(3, 9, [10, 10, 20, 20])], [[10, 10, 3, 20, 20, 9]]),
    ([chain(3, 6, [10, 10, 20, 20]), chain(7, 9, [11, 10, 21, 20])],  # gap of 1 slab: linked
     [[10.4, 10, 3, 20.4, 20, 9]]),
    ([chain(3, 6, [10, 10, 20, 20]), chain(9, 12, [10, 10, 20, 20])],  # gap of 3: split
     [[10, 10, 3, 20, 20, 6], [10, 10, 9, 20, 20, 12]]),
    ([chain(3, 8, [10, 10, 20, 20]), chain(3, 8, [60, 60, 80, 70])],  # side by side
     [[10, 10, 3, 20, 20, 8], [60, 60, 3, 80, 70, 8]]),
])
def test_fuse_table(parts, expected):
    z = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int64)
    boxes = np.concatenate([p[1] for p in parts]) if parts else np.zeros((0, 4), np.float32)
    scores = np.concatenate([p[2] for p in parts]) if parts else np.zeros(0, np.float32)
    out, s = fuse(z, boxes, scores, FuseParams())
    assert out.shape == (len(expected), 6) and out.dtype == np.float32
    got = sorted(out.tolist())
    for g, e in zip(got, sorted(expected), strict=True):
        np.testing.assert_allclose(g, e, atol=1e-4)


def test_support_ranks_long_objects_over_single_slab_blips():
    z = np.array([2, 10, 11, 12, 13])
    boxes = np.array([[0, 0, 5, 5]] + [[40, 40, 60, 60]] * 4, np.float32)
    scores = np.array([0.95, 0.7, 0.8, 0.7, 0.6], np.float32)
    out, s = fuse(z, boxes, scores, FuseParams())
    np.testing.assert_allclose(out[0], [40, 40, 10, 60, 60, 14], atol=1e-4)
    assert s[0] == pytest.approx((0.8 + 0.7 + 0.7) / 3) and s[1] == pytest.approx(0.95 / 3)


@pytest.mark.parametrize("bad", [dict(link_iou=0), dict(max_gap=0), dict(support=0),
                                 dict(member_frac=2), dict(nms_iou=1.5)])
def test_fuse_params_are_validated(bad):
    with pytest.raises(ValueError, match="FuseParams"):
        FuseParams(**bad)
