"""CT evaluation: every volume through the workstation's `infer_volume`, 3-D AP at IoU 0.25,
per-volume Pd/Pfa (`training.metrics`) and object hit rates.

Records are `training.metrics.ScanRecord` with ``(N, 6)`` xyzxyz boxes in voxels, so the
per-scan metrics (`pd_pfa`, `roc`, `threshold_for`) are the 2-D ones, unchanged. The decode
threshold is the workstation's (`detector.ct_inference.MIN_SCORE`): fused scores depend on
which slab candidates are kept, so the operating point is picked on the scores ``detect``
will produce.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from detector.ct_fuse import iou_3d
from detector.ct_inference import MIN_SCORE, infer_volume
from detector.postprocess import DecodeParams
from detector.preprocess import InputSpec
from detector.report import Progress
from training.metrics import ScanRecord, false_alarm_causes, operating_point_on, pd_pfa

AP_IOU = 0.25


def evaluate_volumes(predict, volumes, spec: InputSpec, stride: int, progress: bool = True,
                     second_look=None, min_score: float = MIN_SCORE,
                     on_fused=None, with_low: bool = False) -> list[ScanRecord]:
    """Run ``predict`` on every volume of ``volumes`` (`training.ct_data.CtVolumes`), with the
    model's ``second_look`` where it has one; without one, boxes fused down to ``min_score``.
    ``on_fused(cands, boxes, scores)``: each volume's fused boxes on the model's grid
    (`detector.ct_inference.infer_volume`; `training.second_look.collect_ct` measures them;
    ``with_low``: with the low-energy volume on the grid)."""
    params = DecodeParams(stride=stride, score_thresh=MIN_SCORE)
    records = []
    with Progress(len(volumes), "evaluating CT", "volume", enabled=progress) as bar:
        for i in range(len(volumes)):
            item = volumes[i]
            boxes, scores = infer_volume(predict, item.volume, spec, params,
                                         second_look=second_look, floor=min_score,
                                         on_fused=on_fused, with_low=with_low)
            records.append(ScanRecord(item.volume.id, item.volume.size_dhw[1:], item.boxes_xyzxyz,
                                      np.zeros(len(item.boxes_xyzxyz), np.int64), boxes, scores,
                                      np.zeros(len(scores), np.int64), item.objects,
                                      item.lookalikes_xyzxyz, item.others_xyzxyz,
                                      item.lookalike_names, item.other_names))
            bar.update()
    return records


def _matches(record: ScanRecord, iou_thresh: float) -> np.ndarray:
    """Per detection (record order): True when it is the first to claim a ground truth."""
    taken = np.zeros(len(record.gt_boxes), bool)
    hit = np.zeros(len(record.scores), bool)
    for d in np.argsort(-record.scores, kind="stable"):
        if len(record.gt_boxes) == 0:
            break
        ious = np.where(taken, -1.0, iou_3d(record.boxes[d], record.gt_boxes))
        best = int(np.argmax(ious))
        if ious[best] >= iou_thresh:
            taken[best], hit[d] = True, True
    return hit


def ap_3d(records: list[ScanRecord], iou_thresh: float = AP_IOU) -> float:
    """Average precision of 3-D boxes at ``iou_thresh`` (COCO's 101-point interpolation);
    -1 when the set has no ground truth."""
    n_gt = sum(len(r.gt_boxes) for r in records)
    if n_gt == 0:
        return -1.0
    scores = np.concatenate([r.scores for r in records] or [np.zeros(0)])
    hits = np.concatenate([_matches(r, iou_thresh) for r in records] or [np.zeros(0, bool)])
    if len(scores) == 0:
        return 0.0
    order = np.argsort(-scores, kind="stable")
    tp = np.cumsum(hits[order])
    recall = tp / n_gt
    precision = tp / np.arange(1, len(order) + 1)
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    samples = np.linspace(0, 1, 101)
    at = np.searchsorted(recall, samples, side="left")
    return float(np.mean([envelope[i] if i < len(envelope) else 0.0 for i in at]))


def object_hits_3d(record: ScanRecord, thresh: float, iou_thresh: float = AP_IOU) -> np.ndarray:
    """Per ground-truth box: overlapped by an alarming detection with IoU >= ``iou_thresh``."""
    alarming = record.boxes[record.scores >= thresh]
    if len(alarming) == 0:
        return np.zeros(len(record.gt_boxes), bool)
    return np.array([iou_3d(g, alarming).max() >= iou_thresh for g in record.gt_boxes], bool)


def summarise_ct(records: list[ScanRecord], threshold: float) -> dict:
    pd, pfa = pd_pfa(records, threshold)
    groups: dict[str, list[bool]] = {}
    for r in records:
        for obj, hit in zip(r.objects, object_hits_3d(r, threshold), strict=True):
            groups.setdefault(str(obj.get("strategy")), []).append(bool(hit))
    hits = [h for v in groups.values() for h in v]
    return {"volumes": len(records), "positive_volumes": sum(r.positive for r in records),
            "at_pfa_0.05_on_this_set": operating_point_on(records, 0.05),
            "objects": len(hits), "ap3d_25": ap_3d(records), "threshold": threshold,
            "pd": pd, "pfa": pfa, "object_hit_rate": float(np.mean(hits)) if hits else None,
            "by_strategy": {k: {"objects": len(v), "hit_rate": float(np.mean(v))}
                            for k, v in sorted(groups.items())},
            "false_alarms": false_alarm_causes(records, threshold, AP_IOU, iou_3d)}


def summary_line_ct(s: dict) -> str:
    from training.report import missing_note, shown, threshold_shown

    return (f"AP3D@0.25={shown(s['ap3d_25'])} Pd={shown(s['pd'])} Pfa={shown(s['pfa'])} "
            f"{threshold_shown(s)} (volumes={s['volumes']}, "
            f"positive={s['positive_volumes']}, objects={s['objects']}"
            f"{missing_note(s['positive_volumes'], s['volumes'], 'volumes')})")


def write_report_ct(out: Path, records: list[ScanRecord], summary: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    from training.report import json_text

    (out / "metrics.json").write_text(json_text(summary))
    with (out / "per_volume.jsonl").open("w") as f:
        for r in records:
            f.write(json.dumps({"id": r.scan_id, "positive": r.positive,
                                "max_score": r.max_score, "objects": len(r.gt_boxes)}) + "\n")
