"""The operator's picture: the scan as they know it, the heat map over suspicious regions,
numbered boxes with scores, and a legend."""

from __future__ import annotations

import cv2
import numpy as np

from detector.inference import Detection
from detector.scan import Scan

HEAT_FLOOR = 0.15  # heat below this is left uncoloured so clear regions stay readable
ALARM_BGR, BELOW_BGR = (0, 0, 255), (0, 200, 255)
MAX_BELOW = 3  # strongest non-alarming candidates drawn, so near-misses are visible
MAX_DRAWN = 12  # more boxes than this hide the scan; the legend counts the rest


def base_view(scan: Scan) -> np.ndarray:
    """The scan as an 8-bit RGB ``(H, W, 3)``: pseudo-colour for dual, gray for gray."""
    from detector.render import gray_view, pseudo_colour

    if scan.kind == "color":
        return np.ascontiguousarray(scan.image.transpose(1, 2, 0))
    if scan.kind == "dual":
        return pseudo_colour(scan.image[0], scan.image[1])
    gray = gray_view(scan.image[0])
    return np.repeat(gray[:, :, None], 3, axis=2) if gray.ndim == 2 else gray


def _blend_heat(bgr: np.ndarray, det: Detection) -> np.ndarray:
    h, w = bgr.shape[:2]
    heat = cv2.resize(det.heat, (w, h), interpolation=cv2.INTER_LINEAR)
    colour = cv2.applyColorMap(np.uint8(np.clip(heat, 0, 1) * 255), cv2.COLORMAP_INFERNO)
    alpha = (np.clip((heat - HEAT_FLOOR) / (1 - HEAT_FLOOR), 0, 1) * 0.6)[:, :, None]
    # float32 in place: a float64 blend of a large scan costs more memory than the model.
    out = bgr.astype(np.float32)
    out *= 1 - alpha
    out += colour * alpha
    return out.astype(np.uint8)


def _legend(width: int, det: Detection) -> np.ndarray:
    bar = np.full((44, max(width, 360), 3), 32, np.uint8)
    verdict = "ALARM" if det.alarm else "clear"
    n = int(det.alarms.sum())
    more = f" ({n - MAX_DRAWN} not drawn)" if n > MAX_DRAWN else ""
    text = (f"{verdict}: {n} of {len(det.scores)} above threshold {det.alarm_threshold:.2f}"
            f"{more}  model {det.model['name']} {det.model['version']}")
    cv2.putText(bar, text, (6, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                ALARM_BGR if det.alarm else (200, 200, 200), 1, cv2.LINE_AA)
    cv2.putText(bar, "red box: alarm   orange: below threshold   heat: model attention",
                (6, 36), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (200, 200, 200), 1, cv2.LINE_AA)
    return bar


def render_overlay(scan: Scan, det: Detection) -> np.ndarray:
    """BGR image ready for `cv2.imwrite`: scan + heat + numbered boxes + legend."""
    bgr = np.ascontiguousarray(base_view(scan)[:, :, ::-1])
    bgr = _blend_heat(bgr, det)
    thick = max(1, round(max(bgr.shape[:2]) / 500))
    shown = min(int(det.alarms.sum()) + MAX_BELOW, MAX_DRAWN)  # sorted: alarms come first
    for i, (box, score, alarm) in enumerate(zip(det.boxes_xyxy[:shown], det.scores[:shown],
                                                det.alarms[:shown], strict=True), start=1):
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        colour = ALARM_BGR if alarm else BELOW_BGR
        cv2.rectangle(bgr, (x1, y1), (x2, y2), colour, thick)
        cv2.putText(bgr, f"{i}: {score:.2f}", (x1, max(12, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.4 * thick, colour, thick, cv2.LINE_AA)
    legend = _legend(bgr.shape[1], det)
    if legend.shape[1] > bgr.shape[1]:
        pad = np.full((bgr.shape[0], legend.shape[1] - bgr.shape[1], 3), 32, np.uint8)
        bgr = np.concatenate([bgr, pad], axis=1)
    return np.concatenate([bgr, legend], axis=0)
