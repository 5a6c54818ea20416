"""Write a simulated data set: per scan the dual pair, colour and gray views and the scene
record, then one COCO ``annotations.json`` and a ``manifest.json``.

Scan ``i`` depends only on (config, seed, i), and the COCO ids follow the scan order, so the
output is byte-identical whatever the number of worker processes.
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass
from pathlib import Path

from detector.outputs import write_atomic
from detector.report import Progress
from training.sim.config import SynthConfig
from training.sim.journal import JOURNAL, render_journaled

CATEGORY = {"id": 1, "name": "concealed_organic"}
#: Written last by a finished run: a folder holds a complete data set once this is there.
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class _Job:
    out_dir: str
    config: SynthConfig
    seed: int
    prefix: str


def write_png(path: Path, image, compression: int) -> None:
    """PNG via OpenCV (RGB images are given RGB); `OSError` naming the file and the reason
    (e.g. ENOSPC) if it cannot be written."""
    import cv2

    pixels = image[..., ::-1] if image.ndim == 3 else image
    # Quantum noise leaves little for zlib to find: run-length matching is as small as the
    # default search on these scans and much faster.
    params = [cv2.IMWRITE_PNG_COMPRESSION, compression,
              cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]
    # Encoded in memory, not cv2.imwrite: that only returns False, without the errno that
    # tells a full disk from a read-only folder. A file cut short is not in the journal, so
    # --resume makes that scan again.
    ok, buf = cv2.imencode(".png", pixels, params)
    if not ok:
        raise ValueError(f"{path}: cannot encode a PNG from {pixels.shape} {pixels.dtype}")
    path.write_bytes(buf.tobytes())


#: The images of one 2-D scan, ``NAME_<view>.png`` (`write_scan`).
VIEWS = ("high", "low", "color", "gray")


def scan_name(prefix: str, index: int) -> str:
    """The name of scan (or CT volume) ``index`` of a data set written with ``prefix``."""
    return f"{prefix}{index:06d}"


def write_scan(out_dir: Path, result, compression: int) -> None:
    """The four images (`VIEWS`) and the scene record of one rendered scan."""
    name = result.name
    images = (result.counts[0], result.counts[1], result.color, result.gray)
    for view, image in zip(VIEWS, images, strict=True):
        write_png(out_dir / f"{name}_{view}.png", image, compression)
    (out_dir / f"{name}_scene.json").write_text(json.dumps(result.record, indent=1) + "\n")


def _make(job: _Job, index: int) -> tuple[dict, list[dict]]:
    from training.sim.generate import generate

    result = generate(job.config, job.seed, index, scan_name(job.prefix, index))
    write_scan(Path(job.out_dir), result, job.config.png_compression)
    return result.image_entry(), result.annotations


def _worker_init() -> None:
    import cv2

    cv2.setNumThreads(1)  # one scan per process: a second thread only competes for the core


def map_scans(make, count: int, workers: int, start: int = 0):
    """``make(i)`` for i in start..count-1, in order, in ``workers`` spawned processes
    (``make`` must pickle: a module-level function or a partial of one)."""
    if workers <= 1:
        _worker_init()
        yield from map(make, range(start, count))
        return
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")  # no forked OpenCV/BLAS thread state
    with ctx.Pool(workers, initializer=_worker_init) as pool:
        yield from pool.imap(make, range(start, count), chunksize=1)


def coco(entries: list[tuple[dict, list[dict]]]) -> dict:
    """The COCO document: ids follow scan order (image i+1, annotations numbered in turn)."""
    images, annotations = [], []
    for image_id, (entry, found) in enumerate(entries, start=1):
        images.append({"id": image_id, **entry})
        for ann in found:
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": CATEGORY["id"], **ann})
    return {"info": {"description": "concealscan simulated parcel scans (concealscan synth)"},
            "categories": [CATEGORY], "images": images, "annotations": annotations}


def manifest(config: SynthConfig, seed: int, count: int, prefix: str) -> dict:
    import cv2
    import numpy as np

    from detector import __version__
    from training.sim.tables import DATA_DIR

    tables = json.loads((DATA_DIR / "tables.json").read_text())
    return {"tool": f"concealscan {__version__} synth", "seed": seed, "count": count,
            "prefix": prefix, "config_sha256": config.digest(), "config": config.to_json(),
            "tables_sha256": tables["sha256"],
            "versions": {"python": platform.python_version(), "numpy": np.__version__,
                         "opencv": cv2.__version__}}


def write_dataset(out_dir: str | Path, config: SynthConfig, count: int, seed: int,
                  workers: int = 1, prefix: str = "synth_", progress: bool = True,
                  resume: bool = False) -> dict:
    """Render ``count`` scans into ``out_dir``; return the COCO document written. ``resume``
    continues an interrupted run from its journal (`training.sim.journal`)."""
    from functools import partial

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    job = _Job(str(out), config, seed, prefix)
    with Progress(count, "simulating scans", "scan", enabled=progress) as bar:
        entries = render_journaled(
            lambda start: map_scans(partial(_make, job), count, workers, start), out, count,
            journal_identity("xray", config, seed, prefix), resume, bar)
    doc = coco(entries)
    finish(out, doc, manifest(config, seed, count, prefix))
    return doc


def journal_identity(kinds: str, config: SynthConfig, seed: int, prefix: str) -> dict:
    """What a journal must match to be resumed: the same scans would be made."""
    return {"kinds": kinds, "seed": seed, "prefix": prefix, "config_sha256": config.digest()}


def finish(out: Path, doc: dict, made: dict) -> None:
    """Write the data set's two documents, each whole or not at all (`write_atomic`): first
    ``annotations.json``, then the manifest, which marks the set complete; the journal goes
    last, so a run stopped at any point here is finished by ``--resume``. `OutputError` when
    a document cannot be written."""
    write_atomic(out / "annotations.json", (json.dumps(doc, indent=1) + "\n").encode())
    write_atomic(out / MANIFEST, (json.dumps(made, indent=1, sort_keys=True) + "\n").encode())
    (out / JOURNAL).unlink(missing_ok=True)


def _scan_files(entry: dict) -> list[str]:
    """The files one COCO image entry (2-D or CT) names: its views or volumes, their
    sidecars and its scene record."""
    names = [f"{entry['scan_id']}_scene.json"]
    for value in entry.get("files", {}).values():
        for name in value if isinstance(value, list) else [value]:
            names += [name, str(Path(name).with_suffix(".json"))] if name.endswith(".npy") \
                else [name]
    return names


def _manifest_files(made: dict) -> list[str]:
    """The files the scans of a manifest's run are named, from its prefix, count and kind."""
    from training.sim_ct.generate import volume_name

    names = []
    kvps = made.get("ct_config", {}).get("kvp", []) if made.get("kinds") == "ct" else None
    for i in range(int(made["count"])):
        name = scan_name(made["prefix"], i)
        names.append(f"{name}_scene.json")
        if kvps is None:
            names += [f"{name}_{view}.png" for view in VIEWS]
        for k, kvp in enumerate(kvps or []):
            volume = volume_name(name, kvp, k == 0)
            names += [volume, volume[:-len(".npy")] + ".json"]
    return names


def data_set_files(out: Path) -> list[str]:
    """The file names a data set in ``out`` wrote, as its annotations, manifest and journal
    list them (each that can be read), then those three documents; only plain names in
    ``out``, whatever the documents say."""
    from training.sim.journal import read_journal

    names = []
    sources = [
        lambda: json.loads((out / "annotations.json").read_text())["images"],
        lambda: [entry for entry, _ in read_journal(out, {})],
    ]
    for images in sources:
        try:
            names += [n for entry in images() for n in _scan_files(entry)]
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass  # a document cut short: the others still list the scans
    try:
        names += _manifest_files(json.loads((out / MANIFEST).read_text()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    names += [MANIFEST, "annotations.json", JOURNAL, Path(JOURNAL).with_suffix(".tmp").name]
    return [n for n in dict.fromkeys(names)
            if isinstance(n, str) and n == Path(n).name and n not in ("", ".", "..")]


def remove_data_set(out: Path) -> tuple[int, list[str]]:
    """Delete the data set in ``out`` (`data_set_files`), its manifest first so that a folder
    left half-cleared is not a finished set, and `write_atomic` leftovers; return (files
    removed, names of the files left, which the set did not write)."""
    from detector.outputs import remove_temporaries

    if not out.is_dir():
        return 0, []
    names = data_set_files(out)
    removed = 0
    for name in [MANIFEST, *(n for n in names if n != MANIFEST)]:
        path = out / name
        if path.is_symlink() or path.is_file():  # a link itself, never what it points to
            path.unlink()
            removed += 1
    removed += len(remove_temporaries(out))
    return removed, sorted(p.name for p in out.iterdir())


def add_benign_objects(folder: str | Path) -> int:
    """Give a data set written before the ``benign_object`` field (2-D: 2026-11-29, CT:
    2026-11-29 20:52 UTC, commit b9e83bd) that field, from each scan's or volume's
    ``NAME_scene.json``; the rest of ``annotations.json`` is kept as is. Returns the number
    of objects recorded. Raises ValueError naming a missing scene record."""
    from training.sim.labels import benign_objects
    from training.sim.scene import Scene
    from training.sim_ct.generate import scene_and_grid
    from training.sim_ct.voxelise import benign_boxes3d

    folder = Path(folder)
    path = folder / "annotations.json"
    doc = json.loads(path.read_text())
    packets: dict[int, list] = {}
    for ann in doc["annotations"]:
        packets.setdefault(ann["image_id"], []).append(ann["bbox3d"] if "bbox3d" in ann
                                                       else ann["bbox"])
    total = 0
    for entry in doc["images"]:
        record_path = folder / f"{entry['scan_id']}_scene.json"
        try:
            record = json.loads(record_path.read_text())
            ct = record.get("kind") == "ct"
            scene, grid = (scene_and_grid(record) if ct
                           else (Scene.from_json(record["scene"]), None))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{record_path}: no usable scene record: {exc}") from exc
        avoid = packets.get(entry["id"], [])
        entry["benign_object"] = (benign_boxes3d(scene, grid, avoid) if ct
                                  else benign_objects(scene, avoid))
        total += len(entry["benign_object"])
    write_atomic(path, (json.dumps(doc, indent=1) + "\n").encode())
    return total
