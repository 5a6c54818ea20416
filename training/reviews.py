"""Operators' decisions become a COCO data set: the loop from the station back to training.

Per scan, decisions are replayed in order: ``confirm`` sets the positives to the boxes the
operator kept (none given: the model's alarm boxes), ``clear`` empties them (a hard
negative), ``missed`` adds the boxes the operator drew. Scans that could not be read, and
scans whose decisions leave nothing to learn, are listed as skipped, never guessed.

2-D scans go to ``OUT/annotations.json`` (``bbox``); CT volumes to ``OUT/ct/annotations.json``
(``bbox3d`` ``[x1, y1, z1, x2, y2, z2]`` in voxels, as ``synth --kinds ct`` writes), each set
with its own copies of the scans, so that each is a data set its kind of model trains on.
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

    boxes_xyxy: tuple[tuple[float, ...], ...]  # CT: x1, y1, z1, x2, y2, z2
    cleared: bool
    sources: tuple[str, ...] = field(default_factory=tuple)  # kinds of boxes: confirm/missed


def replay(row: ScanRow, decisions: list[Decision]) -> Labels | None:
    """The labels for ``row``, or None when its decisions say nothing usable."""
    confirmed: list = []
    missed: list = []
    cleared = False
    key = "box3d" if row.kind == "ct" else "box"
    for d in decisions:
        if d.decision == "confirm":
            confirmed = list(d.boxes_xyxy) or [tuple(det[key]) for det in
                                               row.result.get("detections", []) if det["alarm"]]
            cleared = False
        elif d.decision == "clear":
            confirmed, cleared = [], True
        elif d.decision == "missed":
            missed.extend(d.boxes_xyxy)
        else:
            raise ValueError(f"decision {d.id}: unknown kind {d.decision!r}")
    # A box given twice (the same missed box saved again) is one packet, not two.
    labelled = {tuple(float(v) for v in b): source
                for source, group in (("missed", missed), ("confirm", confirmed))
                for b in reversed(group)}
    ordered = [(b, labelled.pop(b)) for b in (tuple(float(v) for v in b)
                                              for b in confirmed + missed) if b in labelled]
    boxes = tuple(b for b, _ in ordered)
    if not boxes and not cleared:
        return None  # e.g. "confirm" on a scan with no alarm box and none drawn
    return Labels(boxes_xyxy=boxes, cleared=cleared and not boxes,
                  sources=tuple(source for _, source in ordered))


class _CocoSet:
    """One output data set (2-D or CT) being built: its folder, images and annotations."""

    def __init__(self, out: Path) -> None:
        self.out, self.images, self.anns = out, [], []

    def add(self, row: ScanRow, decisions: list[Decision], labels: Labels,
            store: ScanStore) -> None:
        ct = row.kind == "ct"
        files = _copy_inputs(store, row.id, self.out, ct)
        h, w = row.result["size_hw"]
        image_id = len(self.images) + 1
        entry = {"id": image_id, "file_name": files[0], "width": w, "height": h,
                 "scan_id": row.id, "positive": bool(labels.boxes_xyxy)}
        if ct:
            entry |= {"depth": row.result["size_dhw"][0], "kind": "ct",
                      "files": {"ct": files[0], **({"ct_low": files[1]} if len(files) > 1
                                                   else {})},
                      "size_dhw": row.result["size_dhw"], "voxel_mm": row.result["voxel_mm"]}
        else:
            entry["files"] = {row.kind: files if len(files) > 1 else files[0]}
        entry["review"] = {"cleared": labels.cleared, "model": row.model_version,
                           "decisions": [d.id for d in decisions]}
        self.images.append(entry)
        for box, source in zip(labels.boxes_xyxy, labels.sources, strict=True):
            if ct:
                x1, y1, z1, x2, y2, z2 = box
                geometry = {"bbox3d": list(box), "area": (x2 - x1) * (y2 - y1) * (z2 - z1)}
            else:
                x1, y1, x2, y2 = box
                geometry = {"bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1)}
            self.anns.append({"id": len(self.anns) + 1, "image_id": image_id,
                              "category_id": 1, **geometry, "iscrowd": 0, "source": source})

    def write(self, info: dict, class_name: str) -> None:
        coco = {"info": info, "images": self.images, "annotations": self.anns,
                "categories": [{"id": 1, "name": class_name}]}
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "annotations.json").write_text(json.dumps(coco, indent=1))

    def counts(self) -> dict:
        return {"scans": len(self.images), "positives": sum(i["positive"] for i in self.images),
                "hard_negatives": sum(i["review"]["cleared"] for i in self.images),
                "boxes": len(self.anns)}


def export_reviews(data_dir: Path, out: Path, class_name: str = "concealed_organic") -> dict:
    """Write ``out/annotations.json`` (2-D scans, COCO) and, when CT scans were reviewed,
    ``out/ct/annotations.json`` (volumes, ``bbox3d``), each beside copies of its scans; return
    counts (``ct``: the CT set's, or None)."""
    data_dir, out = Path(data_dir), Path(out)
    db_path = data_dir / "station.sqlite"
    if not db_path.is_file():
        raise FileNotFoundError(f"{db_path}: no station database (is --data the folder given "
                                "to 'concealscan serve'?)")
    if out.resolve() == data_dir.resolve():
        raise FileExistsError(f"{out}: is the station's own data folder; give another --out "
                              "(the data set copies scans into OUT/scans/)")
    for path in (out / "annotations.json", out / "ct" / "annotations.json"):
        if path.exists():
            raise FileExistsError(f"{path} exists; data sets are not overwritten")
    db = open_database(db_path)
    store = ScanStore(data_dir)
    by_scan: dict[str, list[Decision]] = {}
    for d in db.decisions():
        by_scan.setdefault(d.scan_id, []).append(d)
    flat, volumes = _CocoSet(out), _CocoSet(out / "ct")
    skipped = []
    for scan_id in sorted(by_scan):
        row, decisions = db.get_scan(scan_id), by_scan[scan_id]
        why = _unusable(row, decisions)
        labels = replay(row, decisions) if why is None else None
        if labels is None:
            skipped.append({"scan_id": scan_id, "why": why or "decisions leave no box and "
                                                               "no clear"})
            continue
        try:
            (volumes if row.kind == "ct" else flat).add(row, decisions, labels, store)
        except MissingInputs as exc:  # deleted from the station by hand: listed, not fatal
            skipped.append({"scan_id": scan_id, "why": str(exc)})
    info = {"description": "operator reviews", "source": str(data_dir), "created": utc_now(),
            "skipped": skipped}
    flat.write(info, class_name)
    if volumes.images:
        volumes.write({**info, "description": "operator reviews of CT volumes; bbox3d is "
                       "[x1, y1, z1, x2, y2, z2] in voxels, end-exclusive (x columns, y rows, "
                       "z slices)"}, class_name)
    return {**flat.counts(), "skipped": len(skipped),
            "ct": volumes.counts() if volumes.images else None}


def _unusable(row: ScanRow, decisions: list[Decision]) -> str | None:
    """Why a reviewed scan cannot become labels, or None."""
    if row.status != "ok":
        return "unreadable scan"
    for d in decisions:
        if any(len(b) != row.box_numbers for b in d.boxes_xyxy):
            return (f"decision {d.id} has a box without its slices (drawn on a CT slice before "
                    "the station recorded them)" if row.kind == "ct" else
                    f"decision {d.id} has a box that is not [x1, y1, x2, y2]")
    return None


class MissingInputs(Exception):
    """A reviewed scan's stored files are gone from the station's data folder."""


def _copy_inputs(store: ScanStore, scan_id: str, out: Path, ct: bool = False) -> list[str]:
    """Copy the stored inputs to ``out/scans/ID/``; names keep the ``_high``/``_low`` pairing.

    2-D: the image files (file.*, or high.* then low.*). CT: ``ID.npy`` (and ``ID_low.npy``)
    with each one's sidecar ``.json`` beside it, as the volume reader pairs them; the volumes
    are returned, the main one first.
    """
    try:
        sources = store.input_files(scan_id)
    except FileNotFoundError:
        sources = []
    stems = {s.stem for s in sources if s.suffix != ".json"}
    if not ({"volume"} <= stems if ct else "file" in stems or {"high", "low"} <= stems):
        raise MissingInputs(f"its stored files are missing from {store.scan_dir(scan_id)}/input")
    folder = out / "scans" / scan_id
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for src in sources:
        role = {"file": "", "volume": "", "volume_low": "_low"}.get(src.stem, "_" + src.stem)
        name = f"{scan_id}{role}{src.suffix}"
        shutil.copyfile(src, folder / name)
        if not ct or src.suffix == ".npy":
            names.append(f"scans/{scan_id}/{name}")
    return names
