"""Detection metrics: COCO AP (pycocotools), per-scan Pd/Pfa, ROC and FROC, breakdowns.

A scan *alarms* when any detection scores at or above the threshold: Pd is the fraction of
scans with an object that alarm, Pfa the fraction of scans without one that alarm. An object
is *hit* when an alarming detection overlaps it with IoU >= ``HIT_IOU``.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field

import numpy as np

from detector.ct_inference import MIN_SCORE
from detector.postprocess import box_iou

HIT_IOU = 0.3


@dataclass
class ScanRecord:
    """Ground truth and predictions of one scan, all boxes xyxy in scan pixels (a CT
    volume's record: xyzxyz in voxels, ``size_hw`` its slice size)."""

    scan_id: str
    size_hw: tuple[int, int]
    gt_boxes: np.ndarray
    gt_labels: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    objects: list[dict] = field(default_factory=list)
    #: Benign look-alikes (COCO image field ``benign_packet``) and other benign solids
    #: (``benign_object``) of the scan, boxes like ``gt_boxes``: what `false_alarm_causes`
    #: blames false alarms on.
    lookalike_boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    benign_boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    #: What each of those is (`material_name` of its annotation), where the set says.
    lookalike_names: list[str] = field(default_factory=list)
    benign_names: list[str] = field(default_factory=list)

    @property
    def positive(self) -> bool:
        return len(self.gt_boxes) > 0

    @property
    def max_score(self) -> float:
        return float(self.scores.max()) if len(self.scores) else 0.0


def coco_ap(records: list[ScanRecord], classes: list[str]) -> tuple[float, float]:
    """(AP50, AP50:95) over all classes; -1 where the set has no ground truth."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, anns, dets = [], [], []
    for i, r in enumerate(records):
        images.append({"id": i, "height": r.size_hw[0], "width": r.size_hw[1]})
        for b, lab in zip(r.gt_boxes, r.gt_labels, strict=True):
            w, h = float(b[2] - b[0]), float(b[3] - b[1])
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": int(lab) + 1,
                         "bbox": [float(b[0]), float(b[1]), w, h], "area": w * h, "iscrowd": 0})
        for b, s, lab in zip(r.boxes, r.scores, r.labels, strict=True):
            dets.append({"image_id": i, "category_id": int(lab) + 1, "score": float(s),
                         "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]),
                                  float(b[3] - b[1])]})
    if not anns:
        return -1.0, -1.0
    gt = COCO()
    gt.dataset = {"images": images, "annotations": anns,
                  "categories": [{"id": i + 1, "name": n} for i, n in enumerate(classes)]}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        if not dets:
            return 0.0, 0.0
        ev = COCOeval(gt, gt.loadRes(dets), "bbox")
        ev.params.maxDets = [1, 10, 100]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[1]), float(ev.stats[0])


def pd_pfa(records: list[ScanRecord], thresh: float) -> tuple[float, float]:
    """Per-scan (Pd, Pfa) at ``thresh``; NaN where there are no positive / negative scans."""
    pos = [r.max_score >= thresh for r in records if r.positive]
    neg = [r.max_score >= thresh for r in records if not r.positive]
    return (float(np.mean(pos)) if pos else float("nan"),
            float(np.mean(neg)) if neg else float("nan"))


def roc(records: list[ScanRecord]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(thresholds, Pd, Pfa), thresholds descending over every distinct scan score."""
    scores = np.unique([r.max_score for r in records] + [1.0 + 1e-6])[::-1]
    pairs = np.array([pd_pfa(records, t) for t in scores]).reshape(-1, 2)
    return scores, pairs[:, 0], pairs[:, 1]


def threshold_for(records: list[ScanRecord], target_pfa: float | None = None,
                  target_pd: float | None = None) -> float:
    """Lowest threshold whose Pfa <= ``target_pfa``, or highest whose Pd >= ``target_pd``.

    Capped at 1.0, the highest threshold a model can carry: when scans without objects score
    1.0 (a saturated model), no threshold reaches ``target_pfa`` and the Pfa at 1.0, which
    callers report with the threshold, is above it.
    """
    if (target_pfa is None) == (target_pd is None):
        raise ValueError("give exactly one of target_pfa and target_pd")
    thresholds, pd, pfa = roc(records)
    if target_pfa is not None:
        if np.isnan(pfa).all():
            raise ValueError("target Pfa needs scans without objects in the set")
        ok = pfa <= target_pfa
        # pfa grows as thresholds fall; the last threshold (above every score) never alarms
        return min(1.0, float(thresholds[np.nonzero(ok)[0].max()]))
    if np.isnan(pd).all():
        raise ValueError("target Pd needs scans with objects in the set")
    ok = np.nonzero(pd >= target_pd)[0]
    if len(ok) == 0:
        raise ValueError(f"no threshold reaches Pd {target_pd} on this set")
    return float(thresholds[ok.min()])


#: The lowest box score the workstation reports (``concealscan detect --min-score``'s
#: default, `detector.ct_inference.MIN_SCORE`): it never alarms on a box scoring less, so an
#: alarm threshold stored in a model is never below it (evaluation keeps boxes down to 0.01).
REPORT_FLOOR = MIN_SCORE


@dataclass(frozen=True)
class AlarmThreshold:
    """The alarm threshold to store for a target, as the workstation will run it."""

    threshold: float
    wanted: float  # what the target needs (`threshold_for`); lower than ``threshold`` when raised
    pd: float  # per scan, at ``threshold`` on the set it was picked on
    pfa: float
    #: Why it is not what was asked for (raised to `REPORT_FLOOR`, target not met, no alarm
    #: on any scan with objects), or None.
    note: str | None = None

    @property
    def never_alarms(self) -> bool:
        """No scan with objects of the set alarms at ``threshold`` (Pd 0): a model carrying
        it would let every packet through. False where the set has no such scans."""
        return self.pd == 0.0


def alarm_threshold_for(records: list[ScanRecord], target_pfa: float | None = None,
                        target_pd: float | None = None) -> AlarmThreshold:
    """`threshold_for`'s threshold raised to `REPORT_FLOOR` where it is lower, with the Pd and
    Pfa obtained there and a note when that is not what was asked (below the floor, or the
    target is not met at all)."""
    wanted = threshold_for(records, target_pfa, target_pd)
    thr = max(wanted, REPORT_FLOOR)
    pd, pfa = pd_pfa(records, thr)
    target = f"target Pfa {target_pfa}" if target_pfa is not None else f"target Pd {target_pd}"
    missed = (pfa > target_pfa) if target_pfa is not None else not pd >= target_pd
    notes = []
    if wanted < REPORT_FLOOR:
        notes.append(f"the {target} needs threshold {wanted:.4f}, below the {REPORT_FLOOR:g} "
                     f"the workstation reports boxes from (detect --min-score); raised to it")
    if missed:
        notes.append(f"the {target} is not met on this set: Pd {pd:.3f}, Pfa {pfa:.3f} at "
                     f"threshold {thr:.4f}")
    if pd == 0.0:  # e.g. a packet-free scan outscores every packet, and Pfa 0 is wanted
        notes.append(f"at threshold {thr:.4f} no scan with objects of this set alarms (Pd 0): "
                     f"a model carrying it would never alarm on them")
    elif thr >= 1.0:
        notes.append("threshold 1.0 is the highest a model can carry: only a box scoring "
                     "exactly 1.0 alarms")
    return AlarmThreshold(thr, wanted, pd, pfa, "; ".join(notes) or None)


def operating_point_on(records: list[ScanRecord], target_pfa: float = 0.05) -> dict | None:
    """Threshold, Pd and Pfa that ``target_pfa`` fitted on ``records`` themselves gives: what
    the set allows at that rate (optimistic, the threshold is chosen on it), for comparing
    models at equal Pfa; None without scans free of objects."""
    try:
        thresh = threshold_for(records, target_pfa=target_pfa)
    except ValueError:
        return None
    pd, pfa = pd_pfa(records, thresh)
    return {"threshold": thresh, "pd": pd, "pfa": pfa}


def pd_at_pfa(scores: np.ndarray, positive: np.ndarray, pfa: float) -> tuple[float, float]:
    """(Pd, Pfa) of the lowest threshold that lets at most floor(``pfa`` x negatives) scans
    without objects alarm, fitted on these scores (per-scan top scores): how models compare
    at an equal false-alarm rate. The same point as `operating_point_on` for one rate, from
    arrays, so that reports and bootstrap resamples can use it."""
    scores, positive = np.asarray(scores, np.float64), np.asarray(positive, bool)
    neg = np.sort(scores[~positive])[::-1]
    pos = scores[positive]
    if not len(neg) or not len(pos):
        raise ValueError("Pd at equal Pfa needs scans with and without objects")
    allowed = int(np.floor(pfa * len(neg) + 1e-9))
    # alarm above the (allowed+1)-th highest negative score (ties stay quiet)
    bar = neg[allowed] if allowed < len(neg) else -np.inf
    return float(np.mean(pos > bar)), float(np.mean(neg > bar))


def object_hits(record: ScanRecord, thresh: float) -> np.ndarray:
    """Per ground-truth object: hit by an alarming detection (IoU >= HIT_IOU)."""
    alarming = record.boxes[record.scores >= thresh]
    if len(alarming) == 0:
        return np.zeros(len(record.gt_boxes), bool)
    return np.array([box_iou(g, alarming).max() >= HIT_IOU for g in record.gt_boxes], bool)


def _hits_an_object(box: np.ndarray, gt_boxes: np.ndarray, hit_iou: float = HIT_IOU,
                    iou=box_iou) -> bool:
    """True when ``box`` overlaps a ground-truth box with ``iou`` >= ``hit_iou``."""
    return bool(len(gt_boxes)) and bool(iou(box, gt_boxes).max() >= hit_iou)


def scan_froc_scores(r: ScanRecord) -> tuple[list[float], list[float]]:
    """One scan's part of `_froc_scores`: (per object, the best score of a box overlapping it
    with IoU >= ``HIT_IOU``, -inf when none does; the scores of the boxes overlapping no
    object). Written per scan by the 2-D report, so that `concealscan compare` can bootstrap
    the FROC points over scans."""
    if len(r.gt_boxes) and len(r.boxes):
        hit = np.stack([box_iou(g, r.boxes) >= HIT_IOU for g in r.gt_boxes])
        return ([float(r.scores[h].max()) if h.any() else -np.inf for h in hit],
                r.scores[~hit.any(axis=0)].tolist())
    return [-np.inf] * len(r.gt_boxes), r.scores.tolist()


def _froc_scores(records: list[ScanRecord]) -> tuple[np.ndarray, np.ndarray]:
    """(per object: the best score of a box overlapping it with IoU >= ``HIT_IOU``, -inf when
    none does; per false box, one overlapping no object: its score). An object is found at
    threshold t when its score is >= t; the false boxes at t are those scoring >= t."""
    found, false = [], []
    for r in records:
        f, x = scan_froc_scores(r)
        found += f
        false += x
    return np.array(found, float), np.array(false, float)


def froc(records: list[ScanRecord], thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positives per scan, object sensitivity) at each threshold."""
    found, false = _froc_scores(records)
    return froc_curve(found, false, len(records), thresholds)


def froc_curve(found: np.ndarray, false: np.ndarray, scans: int,
               thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`froc` from `_froc_scores`' arrays over ``scans`` scans."""
    fps = np.array([(false >= t).sum() / max(scans, 1) for t in thresholds])
    sens = np.array([(found >= t).sum() / max(len(found), 1) for t in thresholds])
    return fps, sens


#: False boxes per scan at which `froc_at_rates` reads the object sensitivity.
FROC_RATES = (0.02, 0.05, 0.1, 0.2, 0.5, 1.0)


def froc_at_rates(records: list[ScanRecord], rates=FROC_RATES) -> dict[str, dict]:
    """Object sensitivity at each rate of false boxes per scan, the threshold swept over every
    detection's score (the lowest threshold whose false boxes stay within rate x scans), as
    `froc` counts them: an object is found when a box at or above the threshold overlaps it
    with IoU >= ``HIT_IOU``, a false box overlaps none. Where the records' boxes run out (the
    decoder's lowest score) before the rate is reached, the sensitivity is that of all boxes
    and ``threshold`` their lowest score. Keys are the rates as text (JSON)."""
    found_arr, false = _froc_scores(records)
    lowest = float(min((r.scores.min() for r in records if len(r.scores)), default=0.0))
    return froc_points(found_arr, false, len(records), lowest, rates)


def froc_points(found_arr: np.ndarray, false: np.ndarray, scans: int, lowest: float,
                rates=FROC_RATES) -> dict[str, dict]:
    """`froc_at_rates` from `_froc_scores`' arrays over ``scans`` scans; ``lowest``: the
    lowest box score of those scans (the threshold reported where the boxes run out)."""
    false_desc = np.sort(false)[::-1]
    out = {}
    for rate in rates:
        allowed = int(np.floor(rate * scans + 1e-9))
        if allowed < len(false_desc):  # the threshold must clear the (allowed + 1)-th false box
            cut = false_desc[allowed]
            sens = float((found_arr > cut).mean()) if len(found_arr) else None
            thresh, fp = float(np.nextafter(cut, np.inf)), int((false_desc > cut).sum())
        else:
            sens = float(np.isfinite(found_arr).mean()) if len(found_arr) else None
            thresh, fp = lowest, len(false_desc)
        out[f"{rate:g}"] = {"sensitivity": sens, "threshold": thresh,
                            "false_boxes_per_scan": fp / max(scans, 1)}
    return out


#: A false detection is put down to a benign item when at least this fraction of the smaller
#: of the two boxes lies in the other (a detection on part of a long bar has a low IoU).
BLAME_OVERLAP = 0.5
CAUSES = ("look_alike", "benign_object", "elsewhere")


def _size(boxes: np.ndarray) -> np.ndarray:
    """Area (xyxy) or volume (xyzxyz) of each box."""
    d = boxes.shape[-1] // 2
    return np.prod(np.clip(boxes[..., d:] - boxes[..., :d], 0, None), axis=-1)


def _blamed(box: np.ndarray, others: np.ndarray) -> int | None:
    """Index of the box of ``others`` that holds half of the smaller of it and ``box`` (the
    most overlapped, if several), else None."""
    if len(others) == 0:
        return None
    d = box.shape[-1] // 2
    inter = _size(np.concatenate([np.maximum(box[:d], others[:, :d]),
                                  np.minimum(box[d:], others[:, d:])], axis=1))
    smaller = np.minimum(_size(box), _size(others))
    share = inter / np.maximum(smaller, 1e-9)
    best = int(np.argmax(share))
    return best if share[best] >= BLAME_OVERLAP else None


def _cause(record: ScanRecord, box: np.ndarray) -> tuple[str, str]:
    """(cause, what it is): look-alike, other benign solid or elsewhere, and its name."""
    for cause, boxes, names in (("look_alike", record.lookalike_boxes, record.lookalike_names),
                                ("benign_object", record.benign_boxes, record.benign_names)):
        i = _blamed(box, boxes)
        if i is not None:
            return cause, names[i] if i < len(names) else "?"
    return "elsewhere", ""


def material_name(material) -> str:
    """A benign item's ``material`` field as one name: a mixture ``{pvc: 0.62, copper:
    0.38}`` becomes ``pvc+copper`` (largest share first)."""
    if isinstance(material, dict):
        return "+".join(k for k, _ in sorted(material.items(), key=lambda kv: -kv[1]))
    return "?" if material is None else str(material)


def material_names(entries: list[dict]) -> list[str]:
    """`material_name` of each benign annotation (``benign_packet`` / ``benign_object``)."""
    return [material_name(e.get("material")) for e in entries]


def false_alarm_causes(records: list[ScanRecord], thresh: float, hit_iou: float = HIT_IOU,
                       iou=box_iou) -> dict:
    """Where the false alarms at ``thresh`` fall: alarming detections that hit no object
    (``iou`` < ``hit_iou`` with every one; CT passes its 3-D IoU), and the top detection of
    each alarming scan without objects (what sets Pfa), each put down to a benign look-alike,
    another benign solid or neither (`CAUSES`). Without benign annotations in the set
    everything is ``elsewhere``."""
    detections = dict.fromkeys(CAUSES, 0)
    scans = dict.fromkeys(CAUSES, 0)
    items: dict[str, int] = {}
    for r in records:
        keep = r.scores >= thresh
        boxes, scores = r.boxes[keep], r.scores[keep]
        for b in boxes:
            if not _hits_an_object(b, r.gt_boxes, hit_iou, iou):
                detections[_cause(r, b)[0]] += 1
        if not r.positive and len(boxes):
            cause, name = _cause(r, boxes[int(np.argmax(scores))])
            scans[cause] += 1
            if cause != "elsewhere":
                key = f"{cause}: {name}"
                items[key] = items.get(key, 0) + 1
    return {"false_detections": detections,
            "false_detections_per_scan": sum(detections.values()) / max(len(records), 1),
            "alarming_negative_scans": sum(scans.values()),
            "negative_scans": sum(not r.positive for r in records),
            "top_alarm_of_negative_scans": scans,
            # which items those top alarms sit on, most frequent first
            "top_alarm_items": dict(sorted(items.items(), key=lambda kv: (-kv[1], kv[0]))),
            "benign_annotated": any(len(r.lookalike_boxes) or len(r.benign_boxes)
                                    for r in records)}


#: Difficulty is the packet's contrast-to-noise ratio in the simulator (lower is harder).
DIFFICULTY_BINS = (3.0, 10.0, 30.0)


def _group(value, bins: tuple[float, ...] | None) -> str:
    if bins is None or not isinstance(value, (int, float)):
        return str(value)
    edges = (float("-inf"), *bins, float("inf"))
    for lo, hi in zip(edges, edges[1:], strict=False):
        if lo <= value < hi:
            return f"<{hi:g}" if lo == float("-inf") else (
                f">={lo:g}" if hi == float("inf") else f"{lo:g}-{hi:g}")
    return str(value)


def breakdown(records: list[ScanRecord], thresh: float, key: str,
              bins: tuple[float, ...] | None = None) -> dict[str, dict]:
    """Object hit rate at ``thresh`` grouped by an object attribute (difficulty, host, ...);
    numeric attributes are grouped by ``bins`` edges when given."""
    groups: dict[str, list[bool]] = {}
    for r in records:
        for obj, hit in zip(r.objects, object_hits(r, thresh), strict=True):
            groups.setdefault(_group(obj.get(key), bins), []).append(bool(hit))
    return {g: {"objects": len(v), "hit_rate": float(np.mean(v))}
            for g, v in sorted(groups.items())}


def best_difficulty(record: ScanRecord) -> float | None:
    """The highest difficulty (simulator CNR) among a scan's objects: how visible its most
    visible packet is; None without objects or where the set does not say."""
    values = [o.get("difficulty") for o in record.objects]
    values = [v for v in values if isinstance(v, (int, float))]
    return max(values) if values else None


def pd_by_best_difficulty(records: list[ScanRecord], thresh: float,
                          bins: tuple[float, ...] = DIFFICULTY_BINS) -> dict[str, dict]:
    """Per-scan Pd at ``thresh`` over scans with objects, grouped by `best_difficulty`: a scan
    whose best packet has CNR < 3 is one no observer could be asked to find, which bounds the
    reachable Pd; empty where the set's objects carry no difficulty."""
    groups: dict[str, list[bool]] = {}
    for r in records:
        best = best_difficulty(r) if r.positive else None
        if best is not None:
            groups.setdefault(_group(best, bins), []).append(r.max_score >= thresh)
    return {g: {"scans": len(v), "pd": float(np.mean(v))} for g, v in sorted(groups.items())}
