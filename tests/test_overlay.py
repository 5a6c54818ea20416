"""Overlays readable at any scan size: the scan whole and unaltered where nothing is drawn,
boxes where the detections are after enlargement, labels and legend inside the canvas."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detector.ct_inference import VolumeDetection
from detector.ct_overlay import PANEL, render_volume_overlay
from detector.drawing import STRIP_BGR, Style, put_label, wrap
from detector.inference import Detection
from detector.overlay import (
    ALARM_BGR,
    MAX_DISPLAY_SIDE,
    MIN_DISPLAY_WIDTH,
    base_view,
    display_factor,
    render_overlay,
)
from detector.scan import Scan
from detector.volume import Volume

MODEL = {"name": "dual", "version": "1.0.0", "sha256": "0" * 64}
STRIDE = 8.0


def _scan(h: int, w: int, kind: str = "gray") -> Scan:
    rng = np.random.default_rng(h * 7 + w)
    att = rng.uniform(0.0, 3.0, (2 if kind == "dual" else 1, h, w)).astype(np.float32)
    return Scan(f"s{h}x{w}", kind, att, ("x.png",), 16)


def _det(scan: Scan, boxes, scores=None, heat=None, model=MODEL) -> Detection:
    h, w = scan.size_hw
    boxes = np.array(boxes, np.float32).reshape(-1, 4)
    n = len(boxes)
    if scores is None:
        scores = np.linspace(0.9, 0.1, n)
    if heat is None:
        heat = np.zeros((math.ceil(h / STRIDE), math.ceil(w / STRIDE)), np.float32)
    return Detection(scan.id, scan.kind, (h, w), boxes, np.asarray(scores, np.float32),
                     np.zeros(n, np.int64), ("concealed_organic",), 0.5, heat, STRIDE,
                     model, 1.0)


def _many_boxes(h: int, w: int, n: int) -> list[list[float]]:
    rng = np.random.default_rng(n)
    x1, y1 = rng.uniform(0, 0.7, n) * w, rng.uniform(0, 0.7, n) * h
    boxes = np.stack([x1, y1, x1 + 0.3 * w, y1 + 0.3 * h], 1)
    boxes[0] = [max(0, w - 2), 0, w, min(h, 2)]  # a corner box: its label must move inside
    return boxes.tolist()


def _enlarged(scan: Scan) -> np.ndarray:
    k = display_factor(scan.size_hw)
    return np.repeat(np.repeat(base_view(scan)[:, :, ::-1], k, 0), k, 1)


@pytest.mark.parametrize("size_hw, factor", [
    ((146, 320), 3),  # a sample scan: enlarged to at least MIN_DISPLAY_WIDTH
    ((306, 480), 2),
    ((768, 1024), 1),  # wide enough already
    ((300, 2000), 1),
    ((2000, 300), 2),  # tall: capped by MAX_DISPLAY_SIDE, not the width wanted (4)
    ((5000, 100), 1),  # longer than MAX_DISPLAY_SIDE: never shrunk
    ((1, 1), MIN_DISPLAY_WIDTH),
])
def test_display_factor(size_hw, factor):
    k = display_factor(size_hw)
    assert k == factor
    assert k * size_hw[1] >= MIN_DISPLAY_WIDTH or (k + 1) * max(size_hw) > MAX_DISPLAY_SIDE
    assert k * max(size_hw) <= MAX_DISPLAY_SIDE or k == 1


@pytest.mark.parametrize("size_hw", [(0, 5), (5, 0)])
def test_display_factor_refuses_an_empty_scan(size_hw):
    with pytest.raises(ValueError, match="size_hw"):
        display_factor(size_hw)


@pytest.mark.parametrize("size_hw", [(1, 1), (146, 320), (768, 1024), (2000, 300),
                                     (300, 2000)])
@pytest.mark.parametrize("heat_value", [0.0, 0.1])  # 0.1: under HEAT_FLOOR, uncoloured
def test_no_detection_leaves_every_scan_pixel_as_it_was(size_hw, heat_value):
    scan = _scan(*size_hw)
    det = _det(scan, [])
    det = _det(scan, [], heat=np.full_like(det.heat, heat_value))
    out = render_overlay(scan, det)
    expected = _enlarged(scan)
    h, w = expected.shape[:2]
    assert out.shape[0] >= h and out.shape[1] >= w  # never cropped
    assert (out.shape[0] > h) != (out.shape[1] > w)  # legend below or beside, not both
    np.testing.assert_array_equal(out[:h, :w], expected)


@pytest.mark.parametrize("kind", ["gray", "dual"])
def test_boxes_frame_the_detection_after_enlargement(kind):
    scan = _scan(100, 80, kind)
    k = display_factor(scan.size_hw)
    assert k > 1
    out = render_overlay(scan, _det(scan, [[20.0, 30.0, 50.0, 60.0]]))
    x1, y1, x2, y2 = 20 * k, 30 * k, 50 * k, 60 * k
    red = np.all(out == ALARM_BGR, axis=2)
    # The frame lies on the box's own outermost display pixels ...
    assert red[y1:y2, x1].all() and red[y1:y2, x2 - 1].all()
    assert red[y1, x1:x2].all() and red[y2 - 1, x1:x2].all()
    # ... and not one pixel outside (the label sits above the top edge).
    assert not red[y1:y2, x1 - 1].any() and not red[y1:y2, x2].any()
    assert not red[y2, x1:x2].any()
    # Inside the frame the scan is untouched.
    t = Style.for_size(out.shape[:2]).line_thick
    np.testing.assert_array_equal(out[y1 + t:y2 - t, x1 + t:x2 - t],
                                  _enlarged(scan)[y1 + t:y2 - t, x1 + t:x2 - t])


def test_heat_lands_on_the_scan_pixels_its_cell_covers():
    scan = _scan(64, 64)
    k = display_factor(scan.size_hw)
    heat = np.zeros((8, 8), np.float32)
    heat[2, 5] = 1.0  # scan rows 16..24, columns 40..48
    out = render_overlay(scan, _det(scan, [], heat=heat)).astype(int)
    changed = np.abs(out[:64 * k, :64 * k] - _enlarged(scan)).sum(axis=2) > 0
    ys, xs = np.nonzero(changed)
    centre_y, centre_x = ys.mean() / k, xs.mean() / k
    assert abs(centre_y - 20) < 1 and abs(centre_x - 44) < 1
    assert changed[20 * k, 44 * k] and not changed[:8 * k].any() and not changed[:, :32 * k].any()


def test_heat_that_does_not_cover_the_scan_is_an_error():
    scan = _scan(64, 64)
    with pytest.raises(ValueError, match="Detection.heat"):
        render_overlay(scan, _det(scan, [], heat=np.zeros((4, 8), np.float32)))


def test_a_detection_of_another_size_is_an_error():
    scan, other = _scan(64, 64), _scan(64, 65)
    with pytest.raises(ValueError, match="size_hw"):
        render_overlay(scan, _det(other, []))


def _legend_region(out: np.ndarray, scan: Scan) -> np.ndarray:
    h, w = _enlarged(scan).shape[:2]
    return out[h:, :] if out.shape[0] > h else out[:, w:]


def _assert_text_inside(region: np.ndarray, margin: int) -> None:
    """Some text, and none on the outer ``margin`` pixels: text cut off at an edge would be."""
    text = np.any(region != STRIP_BGR, axis=2)
    assert text.any()
    assert not text[:margin].any() and not text[-margin:].any()
    assert not text[:, :margin].any() and not text[:, -margin:].any()


LONG_MODEL = {"name": "an_unusually_long_model_name_" * 4, "version": "12.345.6789-rc1+build",
              "sha256": "0" * 64}


@pytest.mark.parametrize("size_hw", [(1, 1), (146, 320), (768, 1024), (2000, 300),
                                     (300, 2000)])
@pytest.mark.parametrize("n", [0, 1, 15])
@pytest.mark.parametrize("model", [MODEL, LONG_MODEL], ids=["model", "long_name"])
def test_legend_is_whole_and_inside_the_canvas(size_hw, n, model):
    scan = _scan(*size_hw)
    h, w = size_hw
    det = _det(scan, _many_boxes(h, w, n) if n else [], model=model)
    out = render_overlay(scan, det)
    region = _legend_region(out, scan)
    # The words of the legend are drawn at least as tall as the smallest legible style.
    assert region.shape[0] >= Style.for_size((1, 1)).line_height
    _assert_text_inside(region, margin=2)


@pytest.mark.parametrize("box", [(0, 0, 4, 4), (96, 0, 100, 3), (96, 57, 100, 60),
                                 (0, 57, 3, 60), (40, 20, 60, 40)])
def test_a_label_is_drawn_whole_inside_the_canvas(box):
    canvas = np.zeros((60, 100, 3), np.uint8)
    style = Style.for_size((60, 100))
    put_label(canvas, "12: 0.99", box, (0, 0, 255), style)
    ys, xs = np.nonzero(np.any(canvas != 0, axis=2))
    tw, th = style.text_wh("12: 0.99")
    pad = max(2, style.pad // 2)
    assert xs.max() - xs.min() + 1 == tw + 2 * pad  # not clipped by an edge
    assert ys.max() - ys.min() + 1 == th + 2 * pad


@pytest.mark.parametrize("text, width", [
    ("", 100),
    ("clear", 1000),
    ("7 of 15 above threshold 0.50", 120),
    ("an_unbroken_identifier_far_wider_than_the_strip", 80),
    ("a b", 1),  # narrower than any character: one character a line
])
def test_wrap_keeps_every_character_and_fits(text, width):
    style = Style.for_size((600, 960))
    lines = wrap(text, width, style)
    assert "".join(lines).replace(" ", "") == text.replace(" ", "")
    assert all(style.text_wh(line)[0] <= width or len(line) == 1 for line in lines)


@pytest.mark.parametrize("n", [0, 1, 5])
def test_ct_overlay_titles_and_legend_fit(n):
    hu = np.full((20, 40, 48), -1000.0, np.float32)
    hu[5:15, 10:30, 10:40] = 300.0
    volume = Volume("a_volume_with_a_rather_long_identifier_0001", hu, (2.0, 1.0, 1.0),
                    ("x.npy",))
    boxes = np.array([[10, 10, 5, 40, 30, 15], [44, 0, 0, 48, 4, 4], [0, 0, 0, 4, 4, 20],
                      [20, 20, 1, 30, 40, 19], [1, 1, 1, 9, 9, 9]][:n], np.float32)
    det = VolumeDetection(volume.id, (20, 40, 48), (2.0, 1.0, 1.0), boxes.reshape(-1, 6),
                          np.linspace(0.9, 0.1, n).astype(np.float32), np.zeros(n, np.int64),
                          ("concealed_organic",), 0.5, {"name": "ct", "version": "0.1"}, 1.0)
    out = render_volume_overlay(volume, det)
    black = np.all(out == 0, axis=2)  # panel background; strips are STRIP_BGR, text coloured
    rows, cols = np.nonzero(black.any(axis=1))[0], np.nonzero(black.any(axis=0))[0]
    title = out[: rows[0], :PANEL]  # the projection's title, the longest
    _assert_text_inside(title, margin=2)
    legend = out[:, cols[-1] + 1:] if out.shape[1] > cols[-1] + 1 else out[rows[-1] + 1:]
    _assert_text_inside(legend, margin=2)
