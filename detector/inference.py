"""Run a detector network on a whole scan: preprocess, tile if large, decode, map back.

`infer` is the one path from a `Scan` to boxes; the workstation (`Detector`, ONNX) and
training's evaluation (torch) both call it with their own ``predict`` function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from detector.postprocess import DecodeParams, decode, nms
from detector.preprocess import InputSpec, model_input
from detector.scan import Scan

#: ``predict(x)``: x ``(1, C, H, W)`` float32 -> (heat ``(1, K, h, w)``, box_ltrb ``(1, 4, h, w)``).
Predict = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]

#: Scans larger than this (model pixels, either side) are cut into overlapping tiles,
#: so memory stays bounded and small packets keep their full resolution.
DEFAULT_TILE = 1536
TILE_OVERLAP = 128


@dataclass(frozen=True)
class RawDetections:
    """Decoded candidates in scan pixels plus the class heat map (max over classes)."""

    boxes_xyxy: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    heat: np.ndarray  # (h, w) float32, 0..1
    heat_stride: float  # scan pixels per heat-map cell


def tile_spans(length: int, tile: int) -> list[tuple[int, int]]:
    """(start, end) of overlapping tiles covering ``range(length)``; starts are multiples of 32
    so heat-map cells of every tile line up."""
    if length <= tile:
        return [(0, length)]
    n = -(-(length - TILE_OVERLAP) // (tile - TILE_OVERLAP))
    starts = [(i * (length - tile) // (n - 1)) // 32 * 32 for i in range(n)]
    spans = {s: s + tile for s in starts[:-1]}
    spans[starts[-1]] = length  # the last tile runs to the end (up to 31 pixels longer)
    return sorted(spans.items())


def infer(predict: Predict, scan: Scan, spec: InputSpec, params: DecodeParams,
          tile: int = DEFAULT_TILE, second_look=None) -> RawDetections:
    """Candidates at or above ``params.score_thresh`` for ``scan``, boxes in scan pixels.

    ``second_look`` (`detector.second_look.SecondLook`, a dual or gray model's): the CNN's
    boxes down to its ``min_cnn_score`` are rescored by it, and those whose new score reaches
    ``params.score_thresh`` are returned; the heat map stays the CNN's."""
    final = params
    if second_look is not None:
        from dataclasses import replace

        params = replace(params, score_thresh=min(params.score_thresh,
                                                  second_look.min_cnn_score))
    x = model_input(scan, spec)
    _, h, w = x.shape
    s = params.stride
    heat_full = np.zeros((-(-h // s), -(-w // s)), np.float32)
    all_boxes, all_scores, all_labels = [], [], []
    for y0, y1 in tile_spans(h, tile):
        for x0, x1 in tile_spans(w, tile):
            part = np.ascontiguousarray(x[:, y0:y1, x0:x1])
            heat, ltrb = predict(part[None])
            th, tw = part.shape[1:]
            boxes, scores, labels = decode(heat[0], ltrb[0], params, size_hw=(th, tw))
            all_boxes.append(boxes + np.array([x0, y0, x0, y0], np.float32))
            all_scores.append(scores)
            all_labels.append(labels)
            hy, hx = y0 // s, x0 // s
            cell = heat[0].max(axis=0)[: heat_full.shape[0] - hy, : heat_full.shape[1] - hx]
            view = heat_full[hy:hy + cell.shape[0], hx:hx + cell.shape[1]]
            np.maximum(view, cell, out=view)
    boxes = np.concatenate(all_boxes).reshape(-1, 4)
    scores, labels = np.concatenate(all_scores), np.concatenate(all_labels)
    if len(all_boxes) > 1:  # tiles overlap: the same object may be found twice
        keep = nms(boxes, scores, labels, params.iou_thresh)
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
    boxes = boxes / np.float32(spec.scale)
    sh, sw = scan.size_hw
    boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, sw)
    boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, sh)
    order = np.argsort(-scores, kind="stable")
    boxes, scores, labels = (boxes[order].astype(np.float32), scores[order].astype(np.float32),
                             labels[order].astype(np.int64))
    if second_look is not None:
        boxes, scores, labels = second_look.rescore(scan.image, boxes, scores, labels)
        keep = scores >= final.score_thresh
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
    return RawDetections(boxes, scores, labels, heat_full, s / spec.scale)


def _expect(cond: bool, what: str, expected: str, got, owner: str = "Detection") -> None:
    if not cond:
        raise ValueError(f"{owner}.{what}: expected {expected}, got {got}")


def check_candidates(owner: str, box_name: str, boxes, scores, labels,
                     class_names: tuple[str, ...], alarm_threshold: float) -> None:
    """The checks every detection result shares (2-D boxes of 4 values, 3-D of 6): arrays of
    the right dtype and length, finite, scores in 0..1 and descending, labels that name a
    class, an alarm threshold in (0, 1]."""
    b, s, lab = boxes, scores, labels
    n = len(s) if isinstance(s, np.ndarray) else -1
    cols = 6 if box_name.endswith("xyzxyz") else 4
    _expect(isinstance(b, np.ndarray) and b.dtype == np.float32 and b.shape == (n, cols),
            box_name, f"float32 ({n}, {cols})", getattr(b, "shape", type(b)), owner)
    _expect(isinstance(s, np.ndarray) and s.dtype == np.float32 and s.ndim == 1, "scores",
            "float32 (N,)", getattr(s, "dtype", type(s)), owner)
    _expect(isinstance(lab, np.ndarray) and lab.dtype == np.int64 and lab.shape == (n,),
            "labels", f"int64 ({n},)", getattr(lab, "shape", type(lab)), owner)
    _expect(bool(np.isfinite(b).all() and np.isfinite(s).all()), "boxes/scores",
            "finite values", "NaN or inf", owner)
    _expect(bool(((s >= 0) & (s <= 1)).all()), "scores", "values in 0..1", s, owner)
    _expect(bool((np.diff(s) <= 0).all()), "scores", "descending order", s, owner)
    _expect(bool(((lab >= 0) & (lab < len(class_names))).all()), "labels",
            f"0..{len(class_names) - 1}", lab, owner)
    _expect(0 < alarm_threshold <= 1, "alarm_threshold", "(0, 1]", alarm_threshold, owner)


class Alarms:
    """Alarm flags of a validated result with ``scores`` and ``alarm_threshold``."""

    scores: np.ndarray
    alarm_threshold: float

    @property
    def alarms(self) -> np.ndarray:
        """Per detection: score at or above the model's alarm threshold."""
        return self.scores >= self.alarm_threshold

    @property
    def alarm(self) -> bool:
        return bool(self.alarms.any())


@dataclass(frozen=True)
class Detection(Alarms):
    """The validated result for one scan: boxes in the scan's own pixels, sorted by score."""

    scan_id: str
    kind: str
    size_hw: tuple[int, int]  # (height, width) of the scan
    boxes_xyxy: np.ndarray  # (N, 4) float32
    scores: np.ndarray  # (N,) float32, descending
    labels: np.ndarray  # (N,) int64 into class_names
    class_names: tuple[str, ...]
    alarm_threshold: float
    heat: np.ndarray  # (h, w) float32 in 0..1, max over classes
    heat_stride: float  # scan pixels per heat-map cell
    model: dict  # name, version, sha256
    time_ms: float

    def __post_init__(self) -> None:
        b = self.boxes_xyxy
        check_candidates("Detection", "boxes_xyxy", b, self.scores, self.labels,
                         self.class_names, self.alarm_threshold)
        h, w = self.size_hw
        inside = ((b[:, 0] >= 0) & (b[:, 1] >= 0) & (b[:, 2] <= w) & (b[:, 3] <= h)
                  & (b[:, 2] >= b[:, 0]) & (b[:, 3] >= b[:, 1]))
        _expect(bool(inside.all()), "boxes_xyxy", f"x1<=x2<={w}, y1<=y2<={h}", b[~inside])
        hm = self.heat
        _expect(isinstance(hm, np.ndarray) and hm.ndim == 2 and hm.dtype == np.float32,
                "heat", "float32 (h, w)", getattr(hm, "shape", type(hm)))
        _expect(bool(np.isfinite(hm).all() and hm.min(initial=0) >= 0
                     and hm.max(initial=0) <= 1), "heat", "finite values in 0..1", "other")


class Detector:
    """One exported model on the workstation: ``detect(scan) -> Detection``."""

    def __init__(self, model_path, threads: int = 1, min_score: float = 0.05,
                 tile: int = DEFAULT_TILE) -> None:
        from detector.model import OnnxModel

        if not 0.0 <= min_score <= 1.0:
            raise ValueError(f"min_score: expected 0..1, got {min_score}")
        self.model = OnnxModel(model_path, threads=threads)
        self.info = self.model.info
        self.params = DecodeParams(stride=self.info.stride, score_thresh=min_score)
        self.tile = tile

    @property
    def identity(self) -> dict:
        return {"name": self.info.name, "version": self.info.version,
                "sha256": self.model.sha256}

    def detect(self, scan: Scan) -> Detection:
        import time

        t0 = time.perf_counter()
        raw = infer(self.model.predict, scan, self.info.input_spec, self.params, self.tile,
                    self.info.second_look)
        return Detection(scan.id, scan.kind, scan.size_hw, raw.boxes_xyxy, raw.scores,
                         raw.labels, self.info.classes, self.info.alarm_threshold, raw.heat,
                         raw.heat_stride, self.identity, (time.perf_counter() - t0) * 1e3)
