"""The one box decoding: network outputs (heat map + box distances) to boxes, scores, labels.

Training's evaluation and the workstation detector both call `decode`; nothing else turns
network outputs into boxes.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class DecodeParams:
    """Decoding knobs; ``stride`` comes from the model, the rest from the caller."""

    stride: int
    score_thresh: float = 0.05
    iou_thresh: float = 0.5
    max_candidates: int = 100

    def __post_init__(self) -> None:
        if self.stride < 1:
            raise ValueError(f"stride: expected >= 1, got {self.stride}")
        if not 0.0 <= self.score_thresh <= 1.0:
            raise ValueError(f"score_thresh: expected 0..1, got {self.score_thresh}")
        if not 0.0 < self.iou_thresh <= 1.0:
            raise ValueError(f"iou_thresh: expected (0, 1], got {self.iou_thresh}")


def _check_outputs(heat: np.ndarray, box_ltrb: np.ndarray) -> None:
    if heat.ndim != 3 or box_ltrb.ndim != 3 or box_ltrb.shape[0] != 4:
        raise ValueError(f"decode: expected heat (K,h,w) and box_ltrb (4,h,w), got "
                         f"{heat.shape} and {box_ltrb.shape}")
    if heat.shape[1:] != box_ltrb.shape[1:]:
        raise ValueError(f"decode: heat {heat.shape} and box_ltrb {box_ltrb.shape} differ in size")
    if not (np.isfinite(heat).all() and np.isfinite(box_ltrb).all()):
        raise ValueError("decode: network output contains NaN or inf")


def _peaks(heat: np.ndarray, score_thresh: float) -> tuple[np.ndarray, ...]:
    """(class, y, x) of 3x3 local maxima at or above ``score_thresh``."""
    kernel = np.ones((3, 3), np.uint8)
    found = []
    for k in range(heat.shape[0]):
        plane = np.ascontiguousarray(heat[k], dtype=np.float32)
        is_peak = (plane >= cv2.dilate(plane, kernel)) & (plane >= score_thresh)
        ys, xs = np.nonzero(is_peak)
        found.append((np.full(len(ys), k, np.int64), ys, xs))
    return tuple(np.concatenate(parts) for parts in zip(*found, strict=True))


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one xyxy box against ``(N, 4)`` xyxy boxes."""
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def nms(boxes_xyxy: np.ndarray, scores: np.ndarray, labels: np.ndarray,
        iou_thresh: float) -> np.ndarray:
    """Indices kept by class-wise greedy NMS, highest score first."""
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    suppressed = np.zeros(len(order), bool)
    for pos, i in enumerate(order):
        if suppressed[pos]:
            continue
        keep.append(int(i))
        rest = order[pos + 1:]
        same = labels[rest] == labels[i]
        overlap = box_iou(boxes_xyxy[i], boxes_xyxy[rest]) > iou_thresh
        suppressed[pos + 1:] |= same & overlap
    return np.asarray(keep, np.int64)


def decode(heat: np.ndarray, box_ltrb: np.ndarray, params: DecodeParams,
           size_hw: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes ``(N,4)`` xyxy float32 in input pixels, scores ``(N,)`` float32, labels ``(N,)``.

    ``heat`` is ``(K, h, w)`` probabilities, ``box_ltrb`` ``(4, h, w)`` distances (input pixels)
    from each cell centre to the box's left, top, right and bottom edges. Boxes are clipped to
    ``size_hw`` (height, width) when given. Sorted by score, highest first; may be empty.
    """
    _check_outputs(heat, box_ltrb)
    cls, ys, xs = _peaks(heat, params.score_thresh)
    scores = heat[cls, ys, xs].astype(np.float32)
    top = np.argsort(-scores, kind="stable")[: params.max_candidates]
    cls, ys, xs, scores = cls[top], ys[top], xs[top], scores[top]
    s = params.stride
    cx, cy = (xs + 0.5) * s, (ys + 0.5) * s
    ltrb = box_ltrb[:, ys, xs].astype(np.float32)
    boxes = np.stack([cx - ltrb[0], cy - ltrb[1], cx + ltrb[2], cy + ltrb[3]], axis=1)
    boxes = boxes.astype(np.float32).reshape(-1, 4)
    if size_hw is not None:
        h, w = size_hw
        boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, w)
        boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, h)
    keep = nms(boxes, scores, cls, params.iou_thresh)
    return boxes[keep].reshape(-1, 4), scores[keep], cls[keep]
