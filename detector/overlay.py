"""The operator's picture: the scan as they know it, the heat map over suspicious regions,
numbered boxes with scores, and a legend in a strip beside or below the scan."""

from __future__ import annotations

import math

import cv2
import numpy as np

from detector.drawing import (
    STRIP_BGR,
    TEXT_BGR,
    Segment,
    Style,
    framed_box,
    put_label,
    strip_width,
    text_strip,
)
from detector.inference import Alarms, Detection
from detector.scan import Scan

HEAT_FLOOR = 0.15  # heat below this is left uncoloured so clear regions stay readable
ALARM_BGR, BELOW_BGR = (0, 0, 255), (0, 200, 255)
HEAT_KEY_BGR = (60, 140, 250)  # a warm inferno tone for the legend's heat entry
MAX_BELOW = 3  # strongest non-alarming candidates drawn, so near-misses are visible
MAX_DRAWN = 12  # more boxes than this hide the scan; the legend counts the rest
MIN_DISPLAY_WIDTH = 960  # narrower scans are enlarged: labels and legend need the room
MAX_DISPLAY_SIDE = 4096  # ... but never past this, so a long scan stays a sane PNG


def base_view(scan: Scan) -> np.ndarray:
    """The scan as an 8-bit RGB ``(H, W, 3)``: pseudo-colour for dual, gray for gray."""
    from detector.render import gray_view, pseudo_colour

    if scan.kind == "color":
        return np.ascontiguousarray(scan.image.transpose(1, 2, 0))
    if scan.kind == "dual":
        return pseudo_colour(scan.image[0], scan.image[1])
    gray = gray_view(scan.image[0])
    return np.repeat(gray[:, :, None], 3, axis=2) if gray.ndim == 2 else gray


def display_factor(size_hw: tuple[int, int]) -> int:
    """Whole number of display pixels per scan pixel (``size_hw`` is (height, width)):
    enough for `MIN_DISPLAY_WIDTH`, capped by `MAX_DISPLAY_SIDE`, at least 1. Whole, so each
    scan pixel is a square block of its own value and boxes map exactly."""
    h, w = size_hw
    if h < 1 or w < 1:
        raise ValueError(f"size_hw: expected positive (height, width), got {size_hw}")
    wanted = math.ceil(MIN_DISPLAY_WIDTH / w)
    return max(1, min(wanted, MAX_DISPLAY_SIDE // max(h, w)))


def _heat_at(det: Detection, size_hw: tuple[int, int], factor: int) -> np.ndarray:
    """The heat map in display pixels: cell i covers scan pixels [i, i + 1) * heat_stride,
    so the map is stretched to what its cells cover, then cut to the scan."""
    h, w = size_hw
    cells_h, cells_w = det.heat.shape
    cover_h = max(1, round(cells_h * det.heat_stride * factor))
    cover_w = max(1, round(cells_w * det.heat_stride * factor))
    cell = det.heat_stride * factor
    if cover_h + cell < h or cover_w + cell < w:
        raise ValueError(f"Detection.heat: expected cells covering the scan {(h, w)} display "
                         f"pixels, got {det.heat.shape} cells of {cell:g} pixels")
    heat = cv2.resize(det.heat, (cover_w, cover_h), interpolation=cv2.INTER_LINEAR)
    # Rounding in the model's resize can leave the last scan row a fraction of a cell short.
    heat = cv2.copyMakeBorder(heat, 0, max(0, h - cover_h), 0, max(0, w - cover_w),
                              cv2.BORDER_REPLICATE)
    return heat[:h, :w]


def _blend_heat(bgr: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """``bgr`` with the heat map laid over it in the INFERNO colours, up to 60 % opaque above
    `HEAT_FLOOR`. One OpenCV pass (``blendLinear``): no float copy of a large scan."""
    heat = np.asarray(heat, np.float32)
    colour = cv2.applyColorMap(np.uint8(np.clip(heat, 0, 1) * 255), cv2.COLORMAP_INFERNO)
    alpha = heat - np.float32(HEAT_FLOOR)
    alpha *= np.float32(0.6 / (1 - HEAT_FLOOR))
    np.clip(alpha, 0.0, 0.6, out=alpha)
    return cv2.blendLinear(np.ascontiguousarray(bgr), colour, 1 - alpha, alpha)


def legend_segments(det: Alarms, n_drawn: int, heat: bool = True) -> list[Segment]:
    """The legend's text: verdict, counts, model, and the key to colours (CT shares it)."""
    n = int(det.alarms.sum())
    verdict = ("ALARM", ALARM_BGR) if det.alarm else ("clear", TEXT_BGR)
    counts = f"{n} of {len(det.scores)} above threshold {det.alarm_threshold:.2f}"
    segments = [verdict, (counts, verdict[1])]
    if n_drawn < len(det.scores):
        segments.append((f"{n_drawn} of {len(det.scores)} boxes drawn", TEXT_BGR))
    model = det.model
    segments += [(f"model {model.get('name', '?')} {model.get('version', '?')}", TEXT_BGR),
                 ("red box: alarm", ALARM_BGR), ("orange box: below threshold", BELOW_BGR)]
    if heat:
        segments.append(("heat: model attention", HEAT_KEY_BGR))
    return segments


def with_legend(picture: np.ndarray, segments: list[Segment], style: Style) -> np.ndarray:
    """``picture`` whole, with the legend beside it when it is taller than wide (where a
    strip below would be far from the top and squeezed), else below it."""
    h, w = picture.shape[:2]
    if h > w:
        strip = text_strip(segments, strip_width(segments, style), style, flow=False)
        rows = max(h, strip.shape[0])
        canvas = np.full((rows, w + strip.shape[1], 3), STRIP_BGR, np.uint8)
        canvas[:h, :w] = picture
        canvas[: strip.shape[0], w:] = strip
        return canvas
    return np.concatenate([picture, text_strip(segments, w, style)], axis=0)


def n_drawn(det: Alarms) -> int:
    """Boxes drawn: every alarm and the `MAX_BELOW` best others, at most `MAX_DRAWN`
    (scores are sorted, so alarms come first)."""
    return min(int(det.alarms.sum()) + MAX_BELOW, MAX_DRAWN, len(det.scores))


def render_overlay(scan: Scan, det: Detection) -> np.ndarray:
    """BGR image ready for `cv2.imwrite`: the scan, enlarged by `display_factor`, with heat
    and numbered boxes; the legend in its own strip. The scan is never cropped."""
    if tuple(det.size_hw) != scan.size_hw:
        raise ValueError(f"Detection.size_hw: expected the scan's {scan.size_hw}, got "
                         f"{det.size_hw}")
    k = display_factor(scan.size_hw)
    rgb = base_view(scan)
    if k > 1:  # nearest: the operator sees the scanner's pixels, not invented detail
        rgb = cv2.resize(rgb, None, fx=k, fy=k, interpolation=cv2.INTER_NEAREST)
    bgr = _blend_heat(np.ascontiguousarray(rgb[:, :, ::-1]), _heat_at(det, rgb.shape[:2], k))
    style = Style.for_size(bgr.shape[:2])
    shown = n_drawn(det)
    boxes, scores, alarms = det.boxes_xyxy[:shown], det.scores[:shown], det.alarms[:shown]
    drawn = [framed_box(bgr, box * k, ALARM_BGR if a else BELOW_BGR, style)
             for box, a in zip(boxes, alarms, strict=True)]
    # Labels after every frame, and the strongest last, so no frame hides a label and the
    # best candidate's label is on top.
    for i in range(shown, 0, -1):
        put_label(bgr, f"{i}: {scores[i - 1]:.2f}", drawn[i - 1],
                  ALARM_BGR if alarms[i - 1] else BELOW_BGR, style)
    return with_legend(bgr, legend_segments(det, shown), style)
