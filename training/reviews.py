"""Operators' decisions become a COCO data set: the loop from the station back to training.

Per scan, decisions are replayed in order: ``confirm`` sets the positives to the boxes the
operator kept (none given: the model's alarm boxes), ``clear`` empties them (a hard
negative), ``missed`` adds the boxes the operator drew. Scans that could not be read, and
scans whose decisions leave nothing to learn, are listed as skipped, never guessed.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from detector.station.db import Decision, ScanRow, open_database, utc_now
from detector.station.store import ScanStore


@dataclass(frozen=True)
class Labels:
    """What one scan's decisions say: positive boxes (xyxy) and whether it was cleared."""

    boxes_xyxy: tuple[tuple[float, float, float, float], ...]
    cleared: bool
    sources: tuple[str, ...] = field(default_factory=tuple)  # kinds of boxes: confirm/missed


def replay(row: ScanRow, decisions: list[Decision]) -> Labels | None:
    """The labels for ``row``, or None when its decisions say nothing usable."""
    confirmed: list = []
    missed: list = []
    cleared = False
    for d in decisions:
        if d.decision == "confirm":
            confirmed = list(d.boxes_xyxy) or [tuple(det["box"]) for det in
                                               row.result.get("detections", []) if det["alarm"]]
            cleared = False
        elif d.decision == "clear":
            confirmed, cleared = [], True
        elif d.decision == "missed":
            missed.extend(d.boxes_xyxy)
        else:
            raise ValueError(f"decision {d.id}: unknown kind {d.decision!r}")
    boxes = tuple(tuple(float(v) for v in b) for b in confirmed + missed)
    if not boxes and not cleared:
        return None  # e.g. "confirm" on a scan with no alarm box and none drawn
    sources = ("confirm",) * len(confirmed) + ("missed",) * len(missed)
    return Labels(boxes_xyxy=boxes, cleared=cleared and not boxes, sources=sources)


def export_reviews(data_dir: Path, out: Path, class_name: str = "concealed_organic") -> dict:
    """Write ``out/annotations.json`` (COCO) plus copies of the reviewed scans; return counts."""
    data_dir, out = Path(data_dir), Path(out)
    db_path = data_dir / "station.sqlite"
    if not db_path.is_file():
        raise FileNotFoundError(f"{db_path}: no station database (is --data the folder given "
                                "to 'concealscan serve'?)")
    if (out / "annotations.json").exists():
        raise FileExistsError(f"{out}/annotations.json exists; data sets are not overwritten")
    db = open_database(db_path)
    store = ScanStore(data_dir)
    by_scan: dict[str, list[Decision]] = {}
    for d in db.decisions():
        by_scan.setdefault(d.scan_id, []).append(d)
    images, anns, skipped = [], [], []
    for scan_id in sorted(by_scan):
        row = db.get_scan(scan_id)
        if row.kind == "ct":  # operator boxes on a CT slice carry no slice: not labels yet
            skipped.append({"scan_id": scan_id, "why": "CT reviews are not exported yet"})
            continue
        labels = replay(row, by_scan[scan_id]) if row.status == "ok" else None
        if labels is None:
            skipped.append({"scan_id": scan_id, "why": "unreadable scan" if row.status != "ok"
                            else "decisions leave no box and no clear"})
            continue
        files = _copy_inputs(store, scan_id, out)
        h, w = row.result["size_hw"]
        image_id = len(images) + 1
        images.append({"id": image_id, "file_name": files[0], "width": w, "height": h,
                       "scan_id": scan_id, "positive": bool(labels.boxes_xyxy),
                       "files": {row.kind: files if len(files) > 1 else files[0]},
                       "review": {"cleared": labels.cleared, "model": row.model_version,
                                  "decisions": [d.id for d in by_scan[scan_id]]}})
        for (x1, y1, x2, y2), source in zip(labels.boxes_xyxy, labels.sources, strict=True):
            anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": 1,
                         "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1),
                         "iscrowd": 0, "source": source})
    coco = {"info": {"description": "operator reviews", "source": str(data_dir),
                     "created": utc_now(), "skipped": skipped},
            "images": images, "annotations": anns,
            "categories": [{"id": 1, "name": class_name}]}
    out.mkdir(parents=True, exist_ok=True)
    (out / "annotations.json").write_text(json.dumps(coco, indent=1))
    return {"scans": len(images), "positives": sum(i["positive"] for i in images),
            "hard_negatives": sum(i["review"]["cleared"] for i in images),
            "boxes": len(anns), "skipped": len(skipped)}


def _copy_inputs(store: ScanStore, scan_id: str, out: Path) -> list[str]:
    """Copy the stored inputs to ``out/scans/ID/``; names keep the ``_high``/``_low`` pairing."""
    folder = out / "scans" / scan_id
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for src in store.input_files(scan_id):  # file.*, or high.* then low.*
        name = f"{scan_id}{'' if src.stem == 'file' else '_' + src.stem}{src.suffix}"
        shutil.copyfile(src, folder / name)
        names.append(f"scans/{scan_id}/{name}")
    return names
