"""The operator's picture of a CT result: a projection with every box, then the slice
through the centre of each of the strongest detections with its box, and a legend."""

from __future__ import annotations

import cv2
import numpy as np

from detector.ct_inference import VolumeDetection
from detector.drawing import STRIP_BGR, TEXT_BGR, Style, framed_box, put_label, text_strip
from detector.overlay import ALARM_BGR, BELOW_BGR, legend_segments, with_legend
from detector.volume import Volume

WINDOW_HU = (-1000.0, 2000.0)  # display window: air black, metal white
MAX_SLICES = 3
PANEL = 384  # pixels per panel side


def _gray(hu: np.ndarray) -> np.ndarray:
    lo, hi = WINDOW_HU
    g = np.clip((hu - lo) / (hi - lo) * 255.0, 0, 255).astype(np.uint8)
    return cv2.cvtColor(g, cv2.COLOR_GRAY2BGR)


def _panel(image: np.ndarray, boxes, colours, numbers, aspect: float,
           style: Style) -> np.ndarray:
    """``image`` scaled into a `PANEL`-sided square (rows stretched by ``aspect``), with
    each box framed and tagged with its detection number."""
    h, w = image.shape[:2]
    scale = PANEL / max(h * aspect, w)
    out = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * aspect * scale))),
                     interpolation=cv2.INTER_NEAREST)
    drawn = [framed_box(out, (x1 * scale, y1 * aspect * scale, x2 * scale,
                              y2 * aspect * scale), colour, style)
             for (x1, y1, x2, y2), colour in zip(boxes, colours, strict=True)]
    for box, colour, number in reversed(list(zip(drawn, colours, numbers, strict=True))):
        put_label(out, str(number), box, colour, style)
    canvas = np.zeros((PANEL, PANEL, 3), np.uint8)
    canvas[: out.shape[0], : out.shape[1]] = out
    return canvas


def _titled(panels: list[np.ndarray], titles: list[str], style: Style) -> np.ndarray:
    """Panels side by side, each under its title, wrapped to the panel; one title height."""
    strips = [text_strip([(t, TEXT_BGR)], PANEL, style) for t in titles]
    rows = max(s.shape[0] for s in strips)
    strips = [np.concatenate([s, np.full((rows - s.shape[0], PANEL, 3), STRIP_BGR, np.uint8)])
              for s in strips]
    gap = np.full((rows + PANEL, style.pad, 3), STRIP_BGR, np.uint8)  # panels are mostly black
    columns = [np.concatenate([s, p]) for s, p in zip(strips, panels, strict=True)]
    return np.concatenate([part for c in columns for part in (gap, c)][1:], axis=1)


def render_volume_overlay(volume: Volume, det: VolumeDetection) -> np.ndarray:
    """BGR image: maximum projection along z with all boxes, then one slice per detection,
    each panel titled, the legend below."""
    style = Style.for_size((PANEL, PANEL))
    colours = [ALARM_BGR if a else BELOW_BGR for a in det.alarms]
    top = _gray(volume.hu.max(axis=0))
    aspect = volume.voxel_mm[1] / volume.voxel_mm[2]
    numbers = range(1, len(det.scores) + 1)
    panels = [_panel(top, [(b[0], b[1], b[3], b[4]) for b in det.boxes_xyzxyz], colours,
                     numbers, aspect, style)]
    titles = [f"{det.scan_id}: max projection along z, {len(det.scores)} box(es)"]
    for i, (box, score) in enumerate(zip(det.boxes_xyzxyz[:MAX_SLICES],
                                         det.scores[:MAX_SLICES], strict=True)):
        z = int(np.clip((box[2] + box[5]) / 2, 0, volume.size_dhw[0] - 1))
        panels.append(_panel(_gray(volume.hu[z]), [(box[0], box[1], box[3], box[4])],
                             [colours[i]], [i + 1], aspect, style))
        titles.append(f"#{i + 1} score {score:.2f}, slice z={z}")
    picture = _titled(panels, titles, style)
    return with_legend(picture, legend_segments(det, len(det.scores), heat=False), style)
