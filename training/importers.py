"""Convert labelled scans from YOLO-txt or Pascal VOC into the COCO JSON that training reads."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET  # noqa: S405 -- parses local label files the user names
from pathlib import Path

from detector.errors import ScanError
from detector.imagefiles import load
from detector.readers import DEFAULT_MAX_PIXELS, SCAN_SUFFIXES


def _image_size(path: Path) -> tuple[int, int]:
    try:
        pages = load(path, DEFAULT_MAX_PIXELS).pages
    except ScanError as exc:  # the label set points at it: an unreadable image is an error
        raise ValueError(str(exc)) from exc
    return int(pages[0].shape[0]), int(pages[0].shape[1])  # (height, width)


def _numbers(values: list[str], where: str) -> list[float]:
    try:
        out = [float(v) for v in values]
    except (TypeError, ValueError):
        raise ValueError(f"{where}: expected numbers, got {values}") from None
    if not all(math.isfinite(v) for v in out):
        raise ValueError(f"{where}: expected finite numbers, got {values}")
    return out


def orphan_labels(labels_dir: Path, images_dir: Path) -> list[Path]:
    """YOLO label files with no image of their stem in ``images_dir`` (their boxes would be
    lost without a word)."""
    stems = {p.stem for p in images_dir.iterdir() if p.suffix.lower() in SCAN_SUFFIXES}
    return sorted(p for p in labels_dir.glob("*.txt") if p.stem not in stems)


def _coco(images: list[dict], anns: list[dict], classes: list[str]) -> dict:
    return {"images": images, "annotations": anns,
            "categories": [{"id": i + 1, "name": n} for i, n in enumerate(classes)]}


def _add_box(anns: list, image_id: int, cat: int, x1, y1, x2, y2, where: str) -> None:
    if not (x2 > x1 and y2 > y1):
        raise ValueError(f"{where}: empty or inverted box {[x1, y1, x2, y2]}")
    w, h = x2 - x1, y2 - y1
    anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": cat,
                 "bbox": [x1, y1, w, h], "area": w * h, "iscrowd": 0})


def from_yolo(images_dir: Path, labels_dir: Path, classes: list[str], root: Path) -> dict:
    """YOLO: one ``NAME.txt`` per image with ``class cx cy w h`` (0..1); no file = no object."""
    images, anns = [], []
    for img in sorted(p for p in images_dir.iterdir() if p.suffix.lower() in SCAN_SUFFIXES):
        h, w = _image_size(img)
        image_id = len(images) + 1
        images.append({"id": image_id, "file_name": str(img.relative_to(root)), "width": w,
                       "height": h})
        label = labels_dir / f"{img.stem}.txt"
        if not label.is_file():
            continue
        for n, line in enumerate(label.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            parts = line.split()
            where = f"{label}:{n}"
            if len(parts) != 5:
                raise ValueError(f"{where}: expected 'class cx cy w h', got {line!r}")
            if not parts[0].isdigit():
                raise ValueError(f"{where}: class index must be a whole number, got "
                                 f"{parts[0]!r}")
            cls = int(parts[0])
            if not 0 <= cls < len(classes):
                raise ValueError(f"{where}: class {cls} not in 0..{len(classes) - 1}")
            cx, cy, bw, bh = _numbers(parts[1:], where)
            # boxes that overshoot the image a little (common in YOLO sets) are cut to it
            _add_box(anns, image_id, cls + 1, max(0.0, (cx - bw / 2) * w),
                     max(0.0, (cy - bh / 2) * h), min(w, (cx + bw / 2) * w),
                     min(h, (cy + bh / 2) * h), where)
    return _coco(images, anns, classes)


def from_voc(images_dir: Path, annotations_dir: Path, classes: list[str], root: Path) -> dict:
    """Pascal VOC: one XML per image with ``object/name`` and ``bndbox`` (1-based pixels)."""
    images, anns = [], []
    for xml in sorted(annotations_dir.glob("*.xml")):
        try:  # expat >= 2.4 (Python's own) refuses entity expansion bombs; no external entities
            tree = ET.parse(xml)  # noqa: S314
        except ET.ParseError as exc:
            raise ValueError(f"{xml}: not valid XML ({exc})") from exc
        name = tree.findtext("filename") or f"{xml.stem}.png"
        img = images_dir / name
        if not img.is_file():
            raise ValueError(f"{xml}: image {img} not found")
        h, w = _image_size(img)
        image_id = len(images) + 1
        images.append({"id": image_id, "file_name": str(img.relative_to(root)), "width": w,
                       "height": h})
        for obj in tree.iter("object"):
            label = obj.findtext("name")
            if label not in classes:
                raise ValueError(f"{xml}: class {label!r} not in {classes}")
            box = obj.find("bndbox")
            if box is None:
                raise ValueError(f"{xml}: object {label!r} has no bndbox")
            x1, y1, x2, y2 = _numbers([box.findtext(k) for k in ("xmin", "ymin", "xmax", "ymax")],
                                      f"{xml}: object {label!r} bndbox xmin, ymin, xmax, ymax")
            _add_box(anns, image_id, classes.index(label) + 1, x1 - 1, y1 - 1, x2, y2, str(xml))
    return _coco(images, anns, classes)
