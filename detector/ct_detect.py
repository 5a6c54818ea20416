"""``detect`` for CT volumes: read, run the CT model, write the result line and overlay.

Result lines have the 2-D keys (``size_hw`` is one slice's) plus ``size_dhw`` and
``voxel_mm``; detections carry ``box3d`` ``[x1, y1, z1, x2, y2, z2]`` in voxels. A volume that
cannot be read or assessed alarms, like every 2-D scan.
"""

from __future__ import annotations

import time
from pathlib import Path

from detector.errors import ScanError
from detector.outputs import OutputError
from detector.volume import Volume


def volume_error_line(ref, reason: str, volume: Volume | None = None,
                      model: dict | None = None, time_ms: float = 0.0) -> dict:
    """A volume that could not be processed alarms: it goes to manual check."""
    return {"id": ref.id, "scan": ref.path, "kind": "ct", "status": "error", "error": reason,
            "alarm": True, "size_hw": list(volume.size_dhw[1:]) if volume else None,
            "size_dhw": list(volume.size_dhw) if volume else None,
            "voxel_mm": list(volume.voxel_mm) if volume else None, "detections": [],
            "model": model, "time_ms": round(time_ms, 1)}


def volume_ok_line(ref, det, min_score: float = 0.0) -> dict:
    """The line of one assessed volume (``det`` is a `detector.ct_inference.VolumeDetection`)."""
    detections = [{"label": det.class_names[int(lab)], "score": round(float(s), 4),
                   "box3d": [round(float(v), 1) for v in box], "alarm": bool(a)}
                  for box, s, lab, a in zip(det.boxes_xyzxyz, det.scores, det.labels,
                                            det.alarms, strict=True) if s >= min_score]
    d, h, w = det.size_dhw
    return {"id": ref.id, "scan": ref.path, "kind": "ct", "status": "ok", "error": None,
            "alarm": det.alarm, "size_hw": [h, w], "size_dhw": [d, h, w],
            "voxel_mm": list(det.voxel_mm), "detections": detections, "model": dict(det.model),
            "time_ms": round(det.time_ms, 1)}


def scan_error_reason(ref, exc: ScanError) -> str:
    """``exc``'s reason, led by the file it is about when that is not the input itself: one
    slice of a series (relative to the series folder), a sidecar, a low-energy volume."""
    if exc.path is None or Path(exc.path) == ref.path_:
        return exc.reason
    base = ref.path_ if ref.path_.is_dir() else ref.path_.parent
    try:
        name = str(Path(exc.path).relative_to(base))
    except ValueError:  # outside the input's folder: the whole path
        name = exc.path
    return f"{name}: {exc.reason}"


def assess_volume(ref, chooser, min_score: float, voxel_mm=None, render=None):
    """(results line, volume, detection) of one `VolumeRef`; never raises for a bad volume.

    ``render(volume, det)`` (an overlay) runs inside, so its failure is the volume's error
    line too. The volume and the detection are None where reading or detection failed.
    """
    from detector.volume_inputs import read_input

    t0 = time.perf_counter()
    volume = det = None
    try:
        volume = read_input(ref, voxel_mm=voxel_mm)
        loaded = chooser.detectors.get("ct")
        if loaded is None:
            raise ScanError(ref.path, "no model for 'ct' volumes (models loaded for: "
                                      f"{', '.join(sorted(chooser.detectors))})")
        if loaded.model.info.input_spec.ct_energies == 2 and volume.low is None:
            raise ScanError(ref.path, "the CT model reads dual-energy volumes and this scan has "
                                      "one energy: put its low-energy volume beside it as "
                                      f"{ref.path_.stem}_<kVp>kvp{ref.path_.suffix or '.npy'}")
        from detector.ct_inference import VolumeDetector

        det = VolumeDetector(loaded.model, min_score=min_score).detect(volume)
        if render is not None:
            render(volume, det)
    except OutputError:
        raise  # the disk, not the volume: detect stops and says why
    except ScanError as exc:
        return volume_error_line(ref, scan_error_reason(ref, exc), volume,
                                 time_ms=(time.perf_counter() - t0) * 1e3), volume, None
    except Exception as exc:  # noqa: BLE001 -- any failure sends the volume to manual check
        return volume_error_line(ref, f"detection failed: {type(exc).__name__}: {exc}", volume,
                                 time_ms=(time.perf_counter() - t0) * 1e3), volume, None
    return volume_ok_line(ref, det, min_score), volume, det


def process_volume(ref, chooser, args, overlays: Path | None) -> dict:
    """One `VolumeRef` through reading, detection and overlay; never raises for a bad volume."""
    render = None
    if overlays is not None:
        def render(volume, det) -> None:
            from detector.ct_overlay import render_volume_overlay
            from detector.outputs import write_png_atomic

            write_png_atomic(overlays / f"{ref.id}.png", render_volume_overlay(volume, det))
    return assess_volume(ref, chooser, args.min_score, getattr(args, "voxel_mm", None),
                         render)[0]
