"""The operator's picture of a CT result: a projection with every box, then the slice
through the centre of each of the strongest detections with its box."""

from __future__ import annotations

import cv2
import numpy as np

from detector.ct_inference import VolumeDetection
from detector.overlay import ALARM_BGR, BELOW_BGR
from detector.volume import Volume

WINDOW_HU = (-1000.0, 2000.0)  # display window: air black, metal white
MAX_SLICES = 3
PANEL = 384  # pixels per panel side


def _gray(hu: np.ndarray) -> np.ndarray:
    lo, hi = WINDOW_HU
    g = np.clip((hu - lo) / (hi - lo) * 255.0, 0, 255).astype(np.uint8)
    return cv2.cvtColor(g, cv2.COLOR_GRAY2BGR)


def _panel(image: np.ndarray, boxes, colours, title: str, aspect: float) -> np.ndarray:
    h, w = image.shape[:2]
    scale = PANEL / max(h * aspect, w)
    out = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * aspect * scale))),
                     interpolation=cv2.INTER_NEAREST)
    for (x1, y1, x2, y2), colour, label in zip(boxes, colours, range(1, 100), strict=False):
        p1 = (int(x1 * scale), int(y1 * aspect * scale))
        p2 = (int(x2 * scale), int(y2 * aspect * scale))
        cv2.rectangle(out, p1, p2, colour, 2)
        cv2.putText(out, str(label), (p1[0], max(12, p1[1] - 3)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.45, colour, 1, cv2.LINE_AA)
    canvas = np.zeros((PANEL + 22, PANEL, 3), np.uint8)
    canvas[22: 22 + out.shape[0], : out.shape[1]] = out
    cv2.putText(canvas, title, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1,
                cv2.LINE_AA)
    return canvas


def render_volume_overlay(volume: Volume, det: VolumeDetection) -> np.ndarray:
    """BGR image: maximum projection along z with all boxes, then one slice per detection."""
    colours = [ALARM_BGR if a else BELOW_BGR for a in det.alarms]
    top = _gray(volume.hu.max(axis=0))
    aspect = volume.voxel_mm[1] / volume.voxel_mm[2]
    panels = [_panel(top, [(b[0], b[1], b[3], b[4]) for b in det.boxes_xyzxyz], colours,
                     f"{det.scan_id}: max projection along z, {len(det.scores)} box(es)", aspect)]
    for i, (box, score) in enumerate(zip(det.boxes_xyzxyz[:MAX_SLICES],
                                         det.scores[:MAX_SLICES], strict=True)):
        z = int(np.clip((box[2] + box[5]) / 2, 0, volume.size_dhw[0] - 1))
        panels.append(_panel(_gray(volume.hu[z]), [(box[0], box[1], box[3], box[4])],
                             [colours[i]], f"#{i + 1} score {score:.2f}, slice z={z}", aspect))
    return np.concatenate(panels, axis=1)
