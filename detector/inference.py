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
          tile: int = DEFAULT_TILE) -> RawDetections:
    """Candidates at or above ``params.score_thresh`` for ``scan``, boxes in scan pixels."""
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
    return RawDetections(boxes[order].astype(np.float32), scores[order].astype(np.float32),
                         labels[order].astype(np.int64), heat_full, s / spec.scale)
