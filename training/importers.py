"""Convert labelled scans from YOLO-txt or Pascal VOC into the COCO JSON that training reads."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET  # noqa: S405 -- parses local label files the user names
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath

from detector.errors import ScanError
from detector.imagefiles import load
from detector.readers import DEFAULT_MAX_PIXELS, SCAN_SUFFIXES

#: What labelImg and other YOLO tools write beside the label files: not a label file.
YOLO_CLASS_LIST = "classes"


@dataclass
class Imported:
    """A converted set: the COCO object, and the label files left out of it, with why."""

    coco: dict
    not_imported: list[tuple[Path, str]] = field(default_factory=list)


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


def _walk(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """Files under ``folder`` and its subfolders whose suffix, in any case, is one of
    ``suffixes`` (Windows tools write ``IMG0.PNG`` and ``IMG0.TXT``); hidden files and folders
    (``.git``, macOS's ``._IMG0.PNG``) are not looked at."""
    return sorted(p for p in folder.rglob("*")
                  if p.suffix.lower() in suffixes and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def _key(folder: Path, path: Path) -> str:
    """A file's path under ``folder`` without its suffix: ``train/img0`` for
    ``images/train/img0.png`` and ``labels/train/img0.txt`` alike."""
    return path.relative_to(folder).with_suffix("").as_posix()


def _by_key(folder: Path, files: list[Path], what: str) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for path in files:
        key = _key(folder, path)
        if key in out:
            raise ValueError(f"{path} and {out[key]}: two {what} of the same name; which one "
                             f"belongs to which is ambiguous")
        out[key] = path
    return out


def _read_text(path: Path) -> str:
    """A label file's text; UTF-8 with or without a byte-order mark (Notepad and Excel write
    one), anything else a ValueError naming the file."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it "
                         f"as UTF-8") from None
    except OSError as exc:
        raise ValueError(f"{path}: cannot be read ({exc.strerror})") from None


def _coco(images: list[dict], anns: list[dict], classes: list[str]) -> dict:
    return {"images": images, "annotations": anns,
            "categories": [{"id": i + 1, "name": n} for i, n in enumerate(classes)]}


def _add_image(images: list[dict], img: Path, root: Path) -> tuple[int, int, int]:
    """Add ``img`` (file name relative to ``root``); returns (id, height, width)."""
    h, w = _image_size(img)
    images.append({"id": len(images) + 1, "file_name": img.relative_to(root).as_posix(),
                   "width": w, "height": h})
    return len(images), h, w


def _add_box(anns: list, image_id: int, cat: int, x1, y1, x2, y2, where: str,
             **extra) -> None:
    if not (x2 > x1 and y2 > y1):
        raise ValueError(f"{where}: empty or inverted box {[x1, y1, x2, y2]}")
    w, h = x2 - x1, y2 - y1
    anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": cat,
                 "bbox": [x1, y1, w, h], "area": w * h, "iscrowd": 0, **extra})


def _no_match(labels_dir: Path, images_dir: Path, count: int, what: str) -> ValueError:
    return ValueError(f"none of the {count} {what} in {labels_dir} (and its subfolders) "
                      f"belongs to an image in {images_dir}; nothing would be labelled")


def from_yolo(images_dir: Path, labels_dir: Path, classes: list[str], root: Path) -> Imported:
    """YOLO: one ``NAME.txt`` per image with ``class cx cy w h`` (0..1); no file = no object.
    Subfolders are searched; a label file mirrors its image's path (``labels/train/a.txt``
    for ``images/train/a.png``); suffixes match in any case."""
    found = _walk(images_dir, SCAN_SUFFIXES)
    if not found:
        raise ValueError(f"{images_dir}: no images ({', '.join(SCAN_SUFFIXES)}) in it or its "
                         f"subfolders")
    labels = _by_key(labels_dir, _walk(labels_dir, (".txt",)), "label files")
    image_keys: dict[str, Path] = {}
    for img in found:
        key = _key(images_dir, img)
        if key in image_keys and key in labels:
            raise ValueError(f"{labels[key]}: images {image_keys[key]} and {img} share its "
                             f"name; which one it labels is ambiguous")
        image_keys[key] = img
    images, anns = [], []
    for img in found:
        image_id, h, w = _add_image(images, img, root)
        label = labels.get(_key(images_dir, img))
        if label is not None:
            _yolo_boxes(label, image_id, h, w, classes, anns)
    orphans = [p for k, p in sorted(labels.items())
               if k not in image_keys and k != YOLO_CLASS_LIST]
    if orphans and len(orphans) == len(labels) - (YOLO_CLASS_LIST in labels):
        raise _no_match(labels_dir, images_dir, len(orphans), "label files")
    return Imported(_coco(images, anns, classes),
                    [(p, "no image of its name") for p in orphans])


#: How far outside 0..1 a YOLO coordinate may stray and still be read as the image's edge.
YOLO_SLACK = 1e-3


def _yolo_boxes(label: Path, image_id: int, h: int, w: int, classes: list[str],
                anns: list[dict]) -> None:
    for n, line in enumerate(_read_text(label).splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        where = f"{label}:{n}"
        if len(parts) != 5:
            raise ValueError(f"{where}: expected 'class cx cy w h', got {line!r}")
        if not parts[0].isdigit():
            raise ValueError(f"{where}: class index must be a whole number, got {parts[0]!r}")
        cls = int(parts[0])
        if not 0 <= cls < len(classes):
            raise ValueError(f"{where}: class {cls} not in 0..{len(classes) - 1}")
        # exporters' rounding leaves values a hair outside 0..1 (1.0000001, -0.0001): taken as
        # the edge; anything further out is a mistake (pixels, or another image's labels)
        cx, cy, bw, bh = (min(1.0, v) if 1.0 < v <= 1.0 + YOLO_SLACK else
                          max(0.0, v) if -YOLO_SLACK <= v < 0.0 else v
                          for v in _numbers(parts[1:], where))
        if any(v > 1.0 for v in (cx, cy, bw, bh)):
            raise ValueError(f"{where}: coordinates are not normalised (0..1), got "
                             f"{parts[1:]} (pixels? YOLO divides them by the image's width "
                             f"and height)")
        if any(v < 0.0 for v in (cx, cy, bw, bh)):
            raise ValueError(f"{where}: expected cx, cy, w, h in 0..1, got {parts[1:]}")
        # boxes that overshoot the image a little (common in YOLO sets) are cut to it
        _add_box(anns, image_id, cls + 1, max(0.0, (cx - bw / 2) * w),
                 max(0.0, (cy - bh / 2) * h), min(w, (cx + bw / 2) * w),
                 min(h, (cy + bh / 2) * h), where)


def from_voc(images_dir: Path, annotations_dir: Path, classes: list[str],
             root: Path) -> Imported:
    """Pascal VOC: one XML per image with ``object/name`` and ``bndbox`` (1-based pixels).

    Like YOLO: subfolders are searched, an image without an XML has no object, an XML whose
    image is missing is listed as not imported, a box past the image edge is cut to it (one
    entirely outside stops the import). ``<difficult>1`` objects are kept as targets and
    marked ``"difficult": 1`` (a hard-to-see packet is still one to find)."""
    xmls = _walk(annotations_dir, (".xml",))
    if not xmls:
        raise ValueError(f"{annotations_dir}: no .xml files in it or its subfolders")
    found = _walk(images_dir, SCAN_SUFFIXES)
    labelled: dict[Path, tuple[Path, ET.ElementTree]] = {}  # image -> (its XML, parsed)
    missing: list[tuple[Path, str]] = []
    for xml in xmls:
        tree = _parse_xml(xml)
        img = _voc_image(xml, tree, images_dir, annotations_dir, found)
        if not img.is_file():
            key = _key(annotations_dir, xml)
            if namesake := [p for p in found if _key(images_dir, p) == key]:
                # imported without its boxes, its objects would train as background
                raise ValueError(f"{xml}: its <filename> {img.name!r} is not there, but "
                                 f"{namesake[0]} (the XML's own name) is; correct <filename>")
            missing.append((xml, f"its image {img} is not there"))
        elif img in labelled:
            raise ValueError(f"{xml}: labels {img}, which {labelled[img][0]} labels too")
        else:
            labelled[img] = (xml, tree)
    if not labelled:
        raise _no_match(annotations_dir, images_dir, len(xmls), "XML files")
    images, anns = [], []
    for img in sorted(set(found) | set(labelled)):
        image_id, h, w = _add_image(images, img, root)
        if img in labelled:
            _voc_boxes(*labelled[img], image_id, h, w, classes, anns)
    return Imported(_coco(images, anns, classes), missing)


def _check_voc_size(xml: Path, tree: ET.ElementTree, h: int, w: int) -> None:
    """An XML whose ``<size>`` is not its image's was drawn on another version of the image
    (resized, cropped, another export): its pixel boxes would land in the wrong places. A
    missing or zero size (some tools write 0 when they do not know) is not checked."""
    size = tree.getroot().find("size")
    if size is None:
        return
    try:
        width, height = (int(float((size.findtext(k) or "0").strip())) for k in ("width", "height"))
    except ValueError as exc:
        raise ValueError(f"{xml}: <size> width/height are not numbers ({exc})") from exc
    if width > 0 and height > 0 and (width, height) != (w, h):
        how = ("turned by 90 degrees: a labelling tool that applied the JPEG's EXIF "
               "orientation?" if (width, height) == (h, w) else "resized?")
        raise ValueError(f"{xml}: <size> says {width}x{height} but its image is {w}x{h}: the "
                         f"boxes were drawn on another version of the image ({how}); label "
                         "this image itself")


def _parse_xml(xml: Path) -> ET.ElementTree:
    try:  # expat >= 2.4 (Python's own) refuses entity expansion bombs; no external entities
        return ET.parse(xml)  # noqa: S314
    except ET.ParseError as exc:
        raise ValueError(f"{xml}: not valid XML ({exc})") from exc


def _voc_image(xml: Path, tree: ET.ElementTree, images_dir: Path, annotations_dir: Path,
               found: list[Path]) -> Path:
    """The image an XML labels: its ``<filename>`` under ``images_dir`` (or under the
    subfolder the XML itself is in, mirrored there); without one, the image of the XML's own
    name. A ``<filename>`` that would reach outside ``images_dir`` is a ValueError."""
    sub = xml.relative_to(annotations_dir).parent
    name = (tree.findtext("filename") or "").strip()
    if not name:
        key = _key(annotations_dir, xml)
        same = [p for p in found if _key(images_dir, p) == key]
        if len(same) > 1:
            raise ValueError(f"{xml}: no <filename>, and images {same} share its name")
        return same[0] if same else images_dir / f"{key}.png"
    if PureWindowsPath(name).is_absolute() or PureWindowsPath(name).drive or \
            name.startswith(("/", "\\")):
        raise ValueError(f"{xml}: <filename> {name!r} is an absolute path; expected the "
                         f"image's path in --images {images_dir}")
    rel = PurePosixPath(name.replace("\\", "/"))
    if ".." in rel.parts:
        raise ValueError(f"{xml}: <filename> {name!r} leads outside --images {images_dir}")
    candidates = [images_dir / rel, images_dir / sub / rel]
    return next((p for p in candidates if p.is_file()), candidates[0])


def _voc_boxes(xml: Path, tree: ET.ElementTree, image_id: int, h: int, w: int,
               classes: list[str], anns: list[dict]) -> None:
    _check_voc_size(xml, tree, h, w)
    for obj in tree.getroot().findall("object"):
        label = (obj.findtext("name") or "").strip()
        if label not in classes:
            raise ValueError(f"{xml}: class {label!r} not in {classes}")
        box = obj.find("bndbox")
        if box is None:
            raise ValueError(f"{xml}: object {label!r} has no bndbox")
        x1, y1, x2, y2 = _numbers([box.findtext(k) for k in ("xmin", "ymin", "xmax", "ymax")],
                                  f"{xml}: object {label!r} bndbox xmin, ymin, xmax, ymax")
        x1, y1 = x1 - 1, y1 - 1  # 1-based pixel indices to pixel edges
        if x2 > x1 and y2 > y1 and (x1 >= w or y1 >= h or x2 <= 0 or y2 <= 0):
            raise ValueError(f"{xml}: object {label!r} box {[x1 + 1, y1 + 1, x2, y2]} lies "
                             f"entirely outside the {w}x{h} image (the XML of another image?)")
        difficult = (obj.findtext("difficult") or "").strip() == "1"
        _add_box(anns, image_id, classes.index(label) + 1, max(0.0, x1), max(0.0, y1),
                 min(float(w), x2), min(float(h), y2), str(xml),
                 **({"difficult": 1} if difficult else {}))
