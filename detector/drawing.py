"""Text and boxes that stay readable and inside the canvas at any picture size: the pieces
the scan overlay (`detector.overlay`) and the CT overlay (`detector.ct_overlay`) share."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

FONT = cv2.FONT_HERSHEY_SIMPLEX
STRIP_BGR = (32, 32, 32)  # background of legend and title strips
TEXT_BGR = (220, 220, 220)

#: One piece of legend text in one colour: ``(text, bgr)``.
Segment = tuple[str, tuple[int, int, int]]


@dataclass(frozen=True)
class Style:
    """Font and line sizes for one picture."""

    font_scale: float
    text_thick: int
    line_thick: int
    pad: int  # pixels around text

    @classmethod
    def for_size(cls, size_hw: tuple[int, int]) -> Style:
        """Sized by the picture's geometric-mean side (``size_hw`` is (height, width)), so
        labels keep their share of a large picture and an elongated one is not swamped;
        0.6 (text about 14 pixels high) is the smallest that reads well at 100 %."""
        side = float(np.sqrt(max(1, size_hw[0]) * max(1, size_hw[1])))
        font = max(0.6, side / 1200)
        return cls(font, max(1, round(font * 1.6)), max(2, round(side / 450)),
                   max(4, round(8 * font)))

    def text_wh(self, text: str) -> tuple[int, int]:
        """(width, height) in pixels of ``text``, descenders included."""
        (w, h), baseline = cv2.getTextSize(text, FONT, self.font_scale, self.text_thick)
        return w, h + baseline

    @property
    def line_height(self) -> int:
        return self.text_wh("Ag")[1] + self.pad

    def put(self, img: np.ndarray, text: str, xy_top_left: tuple[int, int], bgr) -> None:
        """Draw ``text`` with its top-left corner at ``xy_top_left``."""
        (_, h), _ = cv2.getTextSize(text, FONT, self.font_scale, self.text_thick)
        cv2.putText(img, text, (xy_top_left[0], xy_top_left[1] + h), FONT, self.font_scale,
                    bgr, self.text_thick, cv2.LINE_AA)


def wrap(text: str, width_px: int, style: Style) -> list[str]:
    """``text`` in lines no wider than ``width_px``: split at spaces, and inside a word only
    where the word alone is too wide. Every character but the spaces is kept."""
    def fits(s: str) -> bool:
        return style.text_wh(s)[0] <= width_px

    words: list[str] = []
    for word in text.split():
        while len(word) > 1 and not fits(word):
            cut = 1
            while fits(word[:cut + 1]):
                cut += 1
            words.append(word[:cut])
            word = word[cut:]
        words.append(word)
    lines: list[str] = []
    for word in words:
        if lines and fits(f"{lines[-1]} {word}"):
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines


def text_strip(segments: list[Segment], width: int, style: Style,
               flow: bool = True) -> np.ndarray:
    """A strip ``width`` pixels wide holding every segment, left to right, a new line where
    the next one does not fit (or for each one, without ``flow``); a segment wider than the
    strip is wrapped. Height fits."""
    inner = max(1, width - 2 * style.pad)
    gap = style.text_wh("  ")[0]
    pieces = [(line, bgr) for text, bgr in segments for line in wrap(text, inner, style)]
    rows: list[list[tuple[int, str, tuple]]] = [[]]
    x = 0
    for text, bgr in pieces:
        w = style.text_wh(text)[0]
        if rows[-1] and (not flow or x + gap + w > inner):
            rows.append([])
            x = 0
        start = x + gap if rows[-1] else 0
        rows[-1].append((start, text, bgr))
        x = start + w
    strip = np.full((len(rows) * style.line_height + style.pad, width, 3), STRIP_BGR, np.uint8)
    for i, row in enumerate(rows):
        for x0, text, bgr in row:
            style.put(strip, text, (style.pad + x0, style.pad + i * style.line_height), bgr)
    return strip


def strip_width(segments: list[Segment], style: Style) -> int:
    """Width of a strip that shows each segment on one line, unwrapped."""
    return max(style.text_wh(text)[0] for text, _ in segments) + 2 * style.pad


def framed_box(img: np.ndarray, box_xyxy, bgr, style: Style) -> tuple[int, int, int, int]:
    """Frame the pixels ``box_xyxy`` (edges, in ``img`` pixels) from the inside, so the frame
    never covers a pixel outside the box nor leaves the canvas; returns the integer box."""
    h, w = img.shape[:2]
    x1, y1, x2, y2 = (int(round(v)) for v in box_xyxy)
    x1, x2 = min(max(x1, 0), w - 1), min(max(x2, 1), w)
    y1, y2 = min(max(y1, 0), h - 1), min(max(y2, 1), h)
    x2, y2 = max(x2, x1 + 1), max(y2, y1 + 1)
    t = max(1, min(style.line_thick, (x2 - x1 + 1) // 2, (y2 - y1 + 1) // 2))
    # Not cv2.rectangle: it centres a thick line on the edge, half of it outside the box.
    # Paint the box, then put its inside back.
    frame = img[y1:y2, x1:x2].copy()
    img[y1:y2, x1:x2] = bgr
    if x2 - x1 > 2 * t and y2 - y1 > 2 * t:
        img[y1 + t:y2 - t, x1 + t:x2 - t] = frame[t:-t, t:-t]
    return x1, y1, x2, y2


def put_label(img: np.ndarray, text: str, box_xyxy: tuple[int, int, int, int], bgr,
              style: Style) -> None:
    """``text`` on a tag in ``bgr`` above the box, or just inside its top edge where there is
    no room above, moved left where it would leave the canvas on the right."""
    h, w = img.shape[:2]
    tw, th = style.text_wh(text)
    pad = max(2, style.pad // 2)
    lw, lh = tw + 2 * pad, th + 2 * pad
    x1, y1 = box_xyxy[:2]
    top = y1 - lh if y1 - lh >= 0 else y1
    top = min(max(top, 0), max(0, h - lh))
    left = min(max(x1, 0), max(0, w - lw))
    cv2.rectangle(img, (left, top), (left + lw - 1, top + lh - 1), bgr, cv2.FILLED)
    style.put(img, text, (left + pad, top + pad), (0, 0, 0))
