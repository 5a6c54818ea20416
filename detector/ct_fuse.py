"""The one fusion of per-slab 2-D boxes into 3-D boxes, and 3-D box geometry.

Boxes are ``(x1, y1, z1, x2, y2, z2)`` in voxels (``*_xyzxyz``). Per-slab candidates that
overlap in x-y (IoU >= ``link_iou``) in slabs at most ``max_gap`` apart join one object; its
box is the score-weighted mean x-y box of its strong members and the z span of those members.
Its score is the mean of its ``support`` best slab scores (missing slabs count 0), so a blip
in a single slab, a noise or streak artefact, scores lower than an object seen in several.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from detector.postprocess import box_iou


@dataclass(frozen=True)
class FuseParams:
    link_iou: float = 0.3
    max_gap: int = 2  # slabs
    support: int = 3
    member_frac: float = 0.5  # members scoring below this fraction of the best are context
    nms_iou: float = 0.25

    def __post_init__(self) -> None:
        if not 0 < self.link_iou <= 1 or not 0 < self.nms_iou <= 1:
            raise ValueError(f"FuseParams: IoUs must be in (0, 1], got {self.link_iou}, "
                             f"{self.nms_iou}")
        if self.max_gap < 1 or self.support < 1 or not 0 <= self.member_frac <= 1:
            raise ValueError(f"FuseParams: max_gap, support >= 1 and member_frac 0..1 "
                             f"expected, got {self.max_gap}, {self.support}, {self.member_frac}")


def iou_3d(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one xyzxyz box against ``(N, 6)`` boxes."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 6)
    lo = np.maximum(box[:3], boxes[:, :3])
    hi = np.minimum(box[3:], boxes[:, 3:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
    vol = np.prod(box[3:] - box[:3])
    vols = np.prod(boxes[:, 3:] - boxes[:, :3], axis=1)
    return inter / np.maximum(vol + vols - inter, 1e-9)


def nms_3d(boxes: np.ndarray, scores: np.ndarray, iou_thresh: float) -> np.ndarray:
    """Indices kept by greedy 3-D NMS, highest score first."""
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    for i in order:
        if not keep or iou_3d(boxes[i], boxes[keep]).max() <= iou_thresh:
            keep.append(int(i))
    return np.asarray(keep, np.int64)


def _components(z: np.ndarray, boxes: np.ndarray, params: FuseParams) -> list[list[int]]:
    parent = list(range(len(z)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(z)):
        near = np.nonzero((z > z[i]) & (z - z[i] <= params.max_gap))[0]
        if len(near):
            linked = near[box_iou(boxes[i], boxes[near]) >= params.link_iou]
            for j in linked:
                parent[root(int(j))] = root(i)
    groups: dict[int, list[int]] = {}
    for i in range(len(z)):
        groups.setdefault(root(i), []).append(i)
    return list(groups.values())


def fuse(z: np.ndarray, boxes_xyxy: np.ndarray, scores: np.ndarray,
         params: FuseParams) -> tuple[np.ndarray, np.ndarray]:
    """3-D boxes ``(N, 6)`` float32 and scores ``(N,)`` from slab candidates, best first.

    ``z`` is each candidate's slab index, ``boxes_xyxy`` its x-y box; a slab spans
    ``[z, z + 1)`` in the output's z.
    """
    z = np.asarray(z, np.int64)
    boxes_xyxy = np.asarray(boxes_xyxy, np.float32).reshape(-1, 4)
    scores = np.asarray(scores, np.float32)
    if len(z) == 0:
        return np.zeros((0, 6), np.float32), np.zeros(0, np.float32)
    out_boxes, out_scores = [], []
    for members in _components(z, boxes_xyxy, params):
        idx = np.asarray(members)
        s = scores[idx]
        strong = idx[s >= params.member_frac * s.max()]
        w = scores[strong][:, None]
        xy = (boxes_xyxy[strong] * w).sum(0) / w.sum()
        top = np.sort(s)[::-1][: params.support]
        out_scores.append(float(top.sum() / params.support))
        out_boxes.append([xy[0], xy[1], float(z[strong].min()), xy[2], xy[3],
                          float(z[strong].max() + 1)])
    boxes3d = np.asarray(out_boxes, np.float32)
    fused = np.asarray(out_scores, np.float32)
    keep = nms_3d(boxes3d, fused, params.nms_iou)
    return boxes3d[keep], fused[keep]
