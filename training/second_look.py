"""Fit a model's second look (`detector.second_look`) on a simulated set it never trained on.

The exported model runs on every scan of the set (dual or gray scans, or CT volumes), keeping
its boxes down to ``min_cnn_score``; each box is measured (`detector.second_look.box_features`,
a CT model's fused 3-D boxes `box_features_3d`) and labelled 1 when it hits a packet (IoU >=
``training.metrics.HIT_IOU``, 3-D IoU >= 0.25 for CT: evaluate's hit rules). A
scikit-learn gradient-boosted classifier learns from them; its trees are written out as plain
arrays (`ensemble_dict`) that the workstation walks with numpy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from detector.second_look import (
    CT_DUAL_FEATURES,
    FORMAT,
    KIND_FEATURES,
    box_features,
    box_features_3d,
)
from training.metrics import HIT_IOU, ScanRecord, _hits_an_object

#: Boxes the CNN scores lower are not looked at (`concealscan second-look --min-cnn-score`).
MIN_CNN_SCORE = 0.02
#: The classifier's settings (scikit-learn's HistGradientBoostingClassifier).
FIT = {"max_iter": 300, "learning_rate": 0.05, "random_state": 0}


def collect(predict, data, spec, stride: int, min_cnn_score: float,
            progress: bool = True) -> tuple[list[ScanRecord], np.ndarray, np.ndarray]:
    """(records with the CNN's boxes; per box its features (`KIND_FEATURES` of ``spec``'s
    kind); per box its record's index) for every scan of ``data`` (`training.data.CocoScans`
    of that kind)."""
    from training.engine import evaluate

    rows, owner = [], []

    def measure(item, raw) -> None:
        rows.append(box_features(item.scan.image, raw.boxes_xyxy, raw.scores, spec.kind))
        owner.append(np.full(len(raw.scores), len(owner), np.int64))

    records = evaluate(predict, data, spec, stride, min_cnn_score, progress, on_scan=measure)
    return (records, np.concatenate(rows).reshape(-1, len(KIND_FEATURES[spec.kind])),
            np.concatenate(owner) if owner else np.zeros(0, np.int64))


def collect_ct(predict, volumes, spec, stride: int, min_cnn_score: float,
               progress: bool = True, energies: int = 1) -> tuple[list[ScanRecord], np.ndarray]:
    """(records with the CT model's fused boxes down to ``min_cnn_score``; per box its
    features, `KIND_FEATURES["ct"]`, or with ``energies`` 2 `CT_DUAL_FEATURES`) for every
    volume of ``volumes`` (`training.ct_data.CtVolumes`, read with both energies for 2)."""
    from training.ct_eval import evaluate_volumes

    rows = []

    def measure(cands, boxes, scores) -> None:  # on the model's grid, as the workstation
        rows.append(box_features_3d(cands.grid, (cands.grid_voxel_mm,) * 3, boxes, scores,
                                    cands.low_grid if energies == 2 else None))

    records = evaluate_volumes(predict, volumes, spec, stride, progress,
                               min_score=min_cnn_score, on_fused=measure,
                               with_low=energies == 2)
    width = len(CT_DUAL_FEATURES if energies == 2 else KIND_FEATURES["ct"])
    return records, np.concatenate(rows).reshape(-1, width)


def hit_labels(records: list[ScanRecord], kind: str = "dual") -> np.ndarray:
    """Per box, in record order: 1 when it overlaps a packet with IoU >= HIT_IOU (a CT
    model's 3-D boxes: 3-D IoU >= evaluate's `training.ct_eval.AP_IOU`)."""
    from detector.ct_fuse import iou_3d
    from detector.postprocess import box_iou
    from training.ct_eval import AP_IOU

    hit_iou, iou = (AP_IOU, iou_3d) if kind == "ct" else (HIT_IOU, box_iou)
    return np.array([_hits_an_object(box, r.gt_boxes, hit_iou, iou)
                     for r in records for box in r.boxes], np.int64)


def fit(x: np.ndarray, y: np.ndarray, min_cnn_score: float | None = None):
    """The fitted classifier; UsageError when there are no boxes (the CNN scored none at least
    ``min_cnn_score``: a lower one is suggested) or they hold only one class."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    from detector.errors import UsageError

    if len(y) == 0:
        floor = "" if min_cnn_score is None else f" at least {min_cnn_score:g}"
        lower = "" if min_cnn_score is None else f" (e.g. {min_cnn_score / 4:g})"
        raise UsageError(f"second look: the CNN scored no box{floor} on these scans, so there "
                         f"is nothing to fit on; try a lower --min-cnn-score{lower}, a set "
                         f"with more scans, or check that the model suits them")
    if len(set(y.tolist())) < 2:
        raise UsageError(f"second look: the {len(y)} boxes found are all "
                         f"{'on packets' if len(y) and y[0] else 'off packets'}; fit on a set "
                         f"with scans with and without packets")
    return HistGradientBoostingClassifier(**FIT).fit(x, y)


def ensemble_dict(clf) -> dict:
    """The trees of a fitted binary HistGradientBoostingClassifier as plain lists (what
    `detector.second_look.TreeEnsemble.from_dict` reads)."""
    if list(clf.classes_) != [0, 1]:
        raise ValueError(f"expected a binary classifier of 0/1, got classes {clf.classes_}")
    trees = []
    for (predictor,) in clf._predictors:  # one tree per iteration for a binary problem
        n = predictor.nodes
        if n["is_categorical"].any():
            raise ValueError("categorical splits are not supported")
        trees.append({"feature": n["feature_idx"].astype(int).tolist(),
                      "threshold": n["num_threshold"].astype(float).tolist(),
                      "missing_left": n["missing_go_to_left"].astype(bool).tolist(),
                      "left": n["left"].astype(int).tolist(),
                      "right": n["right"].astype(int).tolist(),
                      "leaf": n["is_leaf"].astype(bool).tolist(),
                      "value": n["value"].astype(float).tolist()})
    return {"baseline": float(np.ravel(clf._baseline_prediction)[0]), "trees": trees}


def second_look_dict(clf, min_cnn_score: float, provenance: dict, kind: str = "dual",
                     features: tuple | None = None) -> dict:
    """The metadata entry (`detector.model.ModelInfo.second_look`); ``features`` default to
    the kind's (`CT_DUAL_FEATURES` for a dual-energy CT one)."""
    return {"format": FORMAT, "kind": kind, "features": list(features or KIND_FEATURES[kind]),
            "min_cnn_score": min_cnn_score, **ensemble_dict(clf), "provenance": provenance}


def data_summary(path: Path, records: list[ScanRecord], y: np.ndarray) -> dict:
    return {"data": str(path), "scans": len(records),
            "scans_with_packets": sum(r.positive for r in records),
            "boxes": int(len(y)), "boxes_on_packets": int(y.sum())}


def fit_for_model(model, paths: list, min_cnn_score: float, progress: bool = True,
                  energies: int = 1) -> dict:
    """The metadata entry of a second look fitted for exported ``model`` (a loaded
    `detector.model.OnnxModel` of kind dual, gray or ct) on the COCO sets ``paths``; UsageError
    for a set of the wrong kind or one without boxes of both classes. ``energies`` 2 (CT):
    each box measured in the low-energy volume too; the sets' volumes need both energies."""
    from detector.errors import UsageError
    from training.ct_data import CtVolumes
    from training.data import CocoScans

    info = model.info
    xs, ys, sets = [], [], []
    for path in paths:
        try:
            data = (CtVolumes(path, list(info.classes), max(energies,
                                                            info.input_spec.ct_energies))
                    if info.kind == "ct" else CocoScans(path, info.kind, list(info.classes)))
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
        if info.kind == "ct":
            records, x = collect_ct(model.predict, data, info.input_spec, info.stride,
                                    min_cnn_score, progress, energies)
        else:
            records, x, _ = collect(model.predict, data, info.input_spec, info.stride,
                                    min_cnn_score, progress)
        y = hit_labels(records, info.kind)
        xs.append(x)
        ys.append(y)
        sets.append(data_summary(Path(path), records, y))
    clf = fit(np.concatenate(xs), np.concatenate(ys), min_cnn_score)
    features = CT_DUAL_FEATURES if energies == 2 else None
    return second_look_dict(clf, min_cnn_score,
                            {"fitted_on": sets,
                             "classifier": {"sklearn": "HistGradientBoostingClassifier", **FIT},
                             "cnn": {"name": info.name, "version": info.version,
                                     "sha256": model.sha256,
                                     "alarm_threshold": info.alarm_threshold}}, info.kind,
                            features)


def attach(path: Path, info, entry: dict, version: str | None = None,
           alarm_threshold: float = 0.5, threshold_source: str | None = None):
    """Write second look ``entry`` into exported model ``path`` (whose `ModelInfo` is ``info``;
    new manifest), with ``version`` and ``alarm_threshold`` (0.5, a placeholder, unless given:
    the rescored boxes need their own); returns the new `ModelInfo`. The entry is checked
    (`detector.second_look.SecondLook.from_dict`) before anything is written."""
    from dataclasses import replace

    from detector.second_look import SecondLook
    from training.export import set_metadata

    look = SecondLook.from_dict(entry)
    source = threshold_source or ("none yet: pick it with concealscan evaluate --target-pfa "
                                  "on a calibration set")
    new = replace(info, version=version or info.version, second_look=look,
                  alarm_threshold=alarm_threshold,
                  provenance={**info.provenance, "threshold_source": source})
    set_metadata(path, new)
    return new
