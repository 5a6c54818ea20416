"""Per-scan Pd/Pfa, operating-point choice, hits and breakdowns on hand-made records."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training.metrics import (
    ScanRecord,
    breakdown,
    coco_ap,
    froc,
    object_hits,
    pd_pfa,
    threshold_for,
)


def rec(gt, preds, objects=None, sid="s"):
    gt = np.asarray(gt, np.float32).reshape(-1, 4)
    boxes = np.asarray([p[:4] for p in preds], np.float32).reshape(-1, 4)
    scores = np.asarray([p[4] for p in preds], np.float32)
    return ScanRecord(sid, (100, 100), gt, np.zeros(len(gt), np.int64), boxes, scores,
                      np.zeros(len(scores), np.int64), objects or [{} for _ in gt])


BOX = [10, 10, 30, 30]
RECORDS = [
    rec([BOX], [[10, 10, 30, 30, 0.9]]),          # positive, found
    rec([BOX], [[60, 60, 80, 80, 0.6]]),          # positive, alarm elsewhere
    rec([BOX], []),                               # positive, missed
    rec([], [[0, 0, 5, 5, 0.7]]),                 # negative, false alarm at <= 0.7
    rec([], [[0, 0, 5, 5, 0.2]]),
    rec([], []),
]


@pytest.mark.parametrize("thresh, pd, pfa", [
    (0.95, 0 / 3, 0 / 3), (0.85, 1 / 3, 0 / 3), (0.65, 1 / 3, 1 / 3), (0.55, 2 / 3, 1 / 3),
    (0.1, 2 / 3, 2 / 3),
])
def test_pd_pfa_table(thresh, pd, pfa):
    assert pd_pfa(RECORDS, thresh) == pytest.approx((pd, pfa))


def test_pd_pfa_without_negatives_is_nan():
    pd, pfa = pd_pfa(RECORDS[:3], 0.5)
    assert pd == pytest.approx(2 / 3) and math.isnan(pfa)


@pytest.mark.parametrize("target_pfa, expected", [(0.0, 0.9), (0.34, 0.6), (1.0, 0.0)])
def test_threshold_for_target_pfa(target_pfa, expected):
    thr = threshold_for(RECORDS, target_pfa=target_pfa)
    assert thr == pytest.approx(expected)
    assert pd_pfa(RECORDS, thr)[1] <= target_pfa


def test_threshold_for_a_saturated_model_is_capped_at_one():
    """Scans without objects at 1.0: no threshold reaches the Pfa; 1.0 (storable), with the
    Pfa there above the target for the caller to report."""
    saturated = [rec([], [[0, 0, 5, 5, 1.0]], sid=f"n{i}") for i in range(3)]
    thr = threshold_for(RECORDS + saturated, target_pfa=0.05)
    assert thr == 1.0 and pd_pfa(RECORDS + saturated, thr)[1] > 0.05


def test_threshold_for_target_pd_and_errors():
    assert threshold_for(RECORDS, target_pd=0.6) == pytest.approx(0.6)
    with pytest.raises(ValueError, match="exactly one"):
        threshold_for(RECORDS)
    with pytest.raises(ValueError, match="without objects"):
        threshold_for(RECORDS[:3], target_pfa=0.1)


def test_hits_froc_breakdown_and_ap():
    assert object_hits(RECORDS[0], 0.5).tolist() == [True]
    assert object_hits(RECORDS[1], 0.5).tolist() == [False]
    assert object_hits(RECORDS[5], 0.5).tolist() == []
    fps, sens = froc(RECORDS, np.array([0.95, 0.5]))
    assert sens.tolist() == pytest.approx([0.0, 1 / 3])
    assert fps.tolist() == pytest.approx([0, 2 / 6])
    recs = [rec([BOX], [[10, 10, 30, 30, 0.9]], [{"difficulty": 2.0, "host": "book"}]),
            rec([BOX], [], [{"difficulty": 50.0, "host": "book"}])]
    got = breakdown(recs, 0.5, "difficulty", (3.0, 10.0, 30.0))
    assert got == {"<3": {"objects": 1, "hit_rate": 1.0}, ">=30": {"objects": 1, "hit_rate": 0.0}}
    assert breakdown(recs, 0.5, "host") == {"book": {"objects": 2, "hit_rate": 0.5}}
    ap50, _ = coco_ap(recs, ["concealed_organic"])
    assert ap50 == pytest.approx(0.5, abs=0.02)
    assert coco_ap([rec([], [])], ["concealed_organic"]) == (-1.0, -1.0)
