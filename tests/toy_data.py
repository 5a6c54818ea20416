"""A tiny synth-like data set for detector tests: dual pairs, colour, COCO with ``files``.

Parcels hold metal clutter (dual-energy ratio ~2.5) and, in positive scans, an organic packet
(ratio ~1.35): the same contrast the real simulator produces, at a size tests can train on.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np


def _rect(rng, h, w, lo, hi):
    bh, bw = rng.integers(lo, hi, 2)
    y, x = rng.integers(8, h - bh - 8), rng.integers(8, w - bw - 8)
    return int(y), int(x), int(bh), int(bw)


def toy_scan(rng, size_hw=(160, 224), positive=True):
    """(att_high, att_low, box_xywh or None)."""
    h, w = size_hw
    high = np.zeros((h, w), np.float32)
    high[6:-6, 6:-6] = 0.15  # cardboard
    for _ in range(rng.integers(1, 4)):  # metal clutter
        y, x, bh, bw = _rect(rng, h, w, 6, 30)
        high[y:y + bh, x:x + bw] += rng.uniform(0.3, 0.8)
    low = high * 2.5
    box = None
    if positive:
        y, x, bh, bw = _rect(rng, h, w, 18, 44)
        t = rng.uniform(0.4, 0.9)
        high[y:y + bh, x:x + bw] += t
        low[y:y + bh, x:x + bw] += 1.35 * t
        box = [float(x), float(y), float(bw), float(bh)]
    noise = rng.normal(0, 0.01, (2, h, w)).astype(np.float32)
    return np.clip(high + noise[0], 0, None), np.clip(low + noise[1], 0, None), box


def toy_colour(high, low):
    ratio = (low + 0.1) / (high + 0.1)
    shade = np.exp(-high)[..., None]
    organic = np.array([230, 150, 60], np.float32)
    metal = np.array([60, 110, 220], np.float32)
    mix = np.clip((ratio - 1.3) / 1.0, 0, 1)[..., None]
    rgb = (organic * (1 - mix) + metal * mix) * shade + 255 * (1 - shade) * 0.0
    rgb = np.where(high[..., None] < 0.02, 255, rgb)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def write_toy_set(folder: Path, count: int, seed: int, size_hw=(160, 224)) -> Path:
    """Write ``count`` scans (every other one positive); returns annotations.json."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    images, anns = [], []
    for i in range(count):
        name = f"toy{seed}_{i:04d}"
        high, low, box = toy_scan(rng, size_hw, positive=i % 2 == 0)
        for part, att in (("high", high), ("low", low)):
            counts = np.clip(np.rint(65535 * np.exp(-att)), 1, 65535).astype(np.uint16)
            cv2.imwrite(str(folder / f"{name}_{part}.png"), counts)
        cv2.imwrite(str(folder / f"{name}_color.png"), toy_colour(high, low)[:, :, ::-1])
        images.append({"id": i + 1, "file_name": f"{name}_high.png", "width": size_hw[1],
                       "height": size_hw[0], "scan_id": name, "positive": box is not None,
                       "files": {"dual": [f"{name}_high.png", f"{name}_low.png"],
                                 "color": f"{name}_color.png"}})
        if box is not None:
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": 1, "bbox": box,
                         "area": box[2] * box[3], "iscrowd": 0,
                         "host": "box" if i % 4 == 0 else "shoe",
                         "difficulty": "easy" if box[2] * box[3] > 900 else "hard"})
    path = folder / "annotations.json"
    path.write_text(json.dumps({"images": images, "annotations": anns,
                                "categories": [{"id": 1, "name": "concealed_organic"}]}))
    return path


def write_mixed_kind_set(folder: Path) -> Path:
    """4 colour scans and 2 gray ones in one COCO file (``file_name`` only, as real sets are)."""
    path = write_toy_set(folder, 4, 5)
    coco = json.loads(path.read_text())
    for entry in coco["images"]:
        entry["file_name"] = entry.pop("files")["color"]
    for i in (5, 6):
        gray = np.full((60, 80), 200, np.uint8)
        gray[20:40, 20:50] = 60 + i  # something to inspect: a uniform image is refused
        cv2.imwrite(str(folder / f"gray{i}.png"), gray)
        coco["images"].append({"id": i, "file_name": f"gray{i}.png", "width": 80,
                               "height": 60})
    path.write_text(json.dumps(coco))
    return path

