"""Display renderings of a scan for the viewer: the image, a gray view, the heat-map layer and
the overlay, drawn when first asked for and then kept beside the scan.

These are for eyes only: detection never reads them. An upload stores the scan and its
`Detection` (``detection.npz``); `view_png` draws a 2-D view from those on its first request
and caches it (written atomically), so scans nobody opens cost no drawing. Contrast windowing
happens in the browser on the gray view. A CT scan's slices are still written at ingest
(`write_volume_views`).
"""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import cv2
import numpy as np

from detector.inference import Detection
from detector.outputs import OutputError, encode_png, write_atomic
from detector.overlay import base_view, render_overlay
from detector.readers import ScanRef, read_scan
from detector.scan import KINDS, Scan
from detector.station import analysis as an

log = logging.getLogger("concealscan.station")

#: The scan's detection as the station keeps it: boxes, scores, labels, heat map and the rest.
DETECTION_FILE = "detection.npz"
#: Views drawn from the scan alone; the viewer opens both, so they are drawn from one decode.
SCAN_VIEWS = ("image.png", "gray.png")
HEAT_VIEW, OVERLAY_VIEW = "heat.png", "overlay.png"
_DETECTION_ARRAYS = ("boxes_xyxy", "scores", "labels", "heat")


def gray_view(scan: Scan) -> np.ndarray:
    """``(H, W)`` uint8, air white and dense black, from the scan's own attenuation scale."""
    if scan.kind == "color":
        rgb = scan.image.transpose(1, 2, 0)
        return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    from detector.render import gray_view as render_gray

    return render_gray(scan.image[0])


def heat_rgba(heat: np.ndarray) -> np.ndarray:
    """Heat map 0..1 as RGBA: red to yellow with alpha = heat, so cold areas stay see-through."""
    h = np.clip(np.nan_to_num(heat, nan=1.0), 0.0, 1.0)  # NaN shows as hot: never hide
    rgba = np.zeros((*h.shape, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[..., 1] = np.rint(255 * h).astype(np.uint8)
    rgba[..., 3] = np.rint(255 * np.sqrt(h)).astype(np.uint8)  # sqrt: weak evidence visible
    return rgba


def png_bytes(pixels: np.ndarray) -> bytes:
    """PNG of gray ``(H, W)``, RGB ``(H, W, 3)`` or RGBA ``(H, W, 4)`` uint8 pixels."""
    if pixels.ndim == 3:
        code = cv2.COLOR_RGB2BGR if pixels.shape[2] == 3 else cv2.COLOR_RGBA2BGRA
        pixels = cv2.cvtColor(pixels, code)
    return encode_png(pixels)


def overlay_png(scan: Scan, det: Detection) -> bytes:
    """``detect``'s overlay (`detector.overlay.render_overlay`) as PNG bytes."""
    return encode_png(render_overlay(scan, det))  # already BGR: no colour conversion


def heat_png(det: Detection) -> bytes:
    """The heat map stretched to the scan's size, as the RGBA layer the viewer lays on top."""
    h, w = det.size_hw
    return png_bytes(heat_rgba(cv2.resize(det.heat, (w, h), interpolation=cv2.INTER_LINEAR)))


# -- the detection kept at ingest ------------------------------------------------------------
def detection_bytes(det: Detection) -> bytes:
    """``det`` as an ``.npz`` (arrays as they are, the rest as JSON; no pickle)."""
    meta = {"scan_id": det.scan_id, "kind": det.kind, "size_hw": [int(v) for v in det.size_hw],
            "class_names": list(det.class_names), "alarm_threshold": float(det.alarm_threshold),
            "heat_stride": float(det.heat_stride), "model": dict(det.model),
            "time_ms": float(det.time_ms)}
    buf = io.BytesIO()
    np.savez(buf, meta=np.array(json.dumps(meta)),
             **{name: getattr(det, name) for name in _DETECTION_ARRAYS})
    return buf.getvalue()


def read_detection(path: Path) -> Detection:
    """The `Detection` `detection_bytes` wrote to ``path``, validated again on the way in."""
    with np.load(path, allow_pickle=False) as npz:
        meta = json.loads(str(npz["meta"]))
        arrays = {name: npz[name] for name in _DETECTION_ARRAYS}
    return Detection(scan_id=meta["scan_id"], kind=meta["kind"], size_hw=tuple(meta["size_hw"]),
                     class_names=tuple(meta["class_names"]),
                     alarm_threshold=meta["alarm_threshold"], heat_stride=meta["heat_stride"],
                     model=meta["model"], time_ms=meta["time_ms"], **arrays)


# -- drawn on first request ------------------------------------------------------------------
def renderable(folder: Path, line: dict) -> tuple[str, ...]:
    """Views of the scan in ``folder`` that `view_png` can draw: the scan's own if it was read
    at ingest (its line names a 2-D kind), heat and overlay too if its detection was kept."""
    if an.line_kind(line) not in KINDS:  # unreadable, or CT (written at ingest)
        return ()
    if (Path(folder) / DETECTION_FILE).is_file():
        return (*SCAN_VIEWS, HEAT_VIEW, OVERLAY_VIEW)
    return SCAN_VIEWS


def view_png(folder: Path, name: str, line: dict, ref: ScanRef,
             scan: Scan | None = None) -> bytes | None:
    """View ``name`` of the scan stored in ``folder`` (``ref``: its input files): the cached
    file, else drawn now and cached; None if the scan has no such view. ``scan``: the scan as
    decoded at ingest, if still held, else it is read from ``ref`` again. A `ScanError` if the
    stored scan can no longer be read."""
    folder = Path(folder)
    path = folder / name
    if path.is_file():
        return path.read_bytes()
    if name not in renderable(folder, line):
        return None
    if name == HEAT_VIEW:
        drawn = {name: heat_png(read_detection(folder / DETECTION_FILE))}
    elif name == OVERLAY_VIEW:
        scan = read_scan(ref) if scan is None else scan
        drawn = {name: overlay_png(scan, read_detection(folder / DETECTION_FILE))}
    else:
        scan = read_scan(ref) if scan is None else scan
        drawn = {"image.png": png_bytes(base_view(scan)), "gray.png": png_bytes(gray_view(scan))}
    for view, data in drawn.items():
        try:
            write_atomic(folder / view, data)
        except OutputError as exc:  # a full disk: the view is right, only its cache is lost
            log.warning("view %s not cached: %s", folder / view, exc)
    return drawn[name]


def write_volume_views(folder: Path, volume, line: dict) -> None:
    """A CT scan's ``slices/NNNN.png`` (display window of `detector.ct_overlay`), and as
    ``image.png``/``gray.png`` the slice the viewer opens on: the one through the centre of
    the strongest detection, else the middle one."""
    from detector.ct_overlay import WINDOW_HU

    folder = Path(folder)
    lo, hi = WINDOW_HU
    gray = np.clip((volume.hu - lo) * np.float32(255.0 / (hi - lo)), 0, 255).astype(np.uint8)
    (folder / "slices").mkdir(exist_ok=True)
    for z in range(gray.shape[0]):
        write_atomic(folder / "slices" / f"{z:04d}.png", encode_png(gray[z]))
    detections = line.get("detections") or []
    z0 = (int((detections[0]["box3d"][2] + detections[0]["box3d"][5]) / 2) if detections
          else gray.shape[0] // 2)
    first = encode_png(gray[min(max(z0, 0), gray.shape[0] - 1)])
    write_atomic(folder / "image.png", first)
    write_atomic(folder / "gray.png", first)
