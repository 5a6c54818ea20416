"""Display renderings of a scan for the viewer: the image, a gray view, the heat-map layer.

These are for eyes only: detection never reads them. Contrast windowing happens in the
browser on the gray view, so the server renders each scan once.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from detector.outputs import write_atomic
from detector.scan import Scan


def gray_view(scan: Scan) -> np.ndarray:
    """``(H, W)`` uint8, air white and dense black, from the scan's own attenuation scale."""
    if scan.kind == "color":
        rgb = scan.image.transpose(1, 2, 0)
        return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    from detector.render import gray_view as render_gray

    return render_gray(scan.image[0])


def colour_view(scan: Scan) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB: the scanner's colours, or pseudo-colour for dual energy."""
    if scan.kind == "color":
        return np.ascontiguousarray(scan.image.transpose(1, 2, 0))
    if scan.kind == "dual":
        from detector.render import pseudo_colour

        return pseudo_colour(scan.image[0], scan.image[1])
    return np.repeat(gray_view(scan)[:, :, None], 3, axis=2)


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
    ok, buf = cv2.imencode(".png", pixels)
    if not ok:
        raise ValueError(f"cannot encode a PNG from shape {pixels.shape} {pixels.dtype}")
    return buf.tobytes()


def write_views(folder: Path, scan: Scan, heat: np.ndarray | None,
                overlay_rgb: np.ndarray | None) -> None:
    """Write ``image.png``, ``gray.png`` and, when given, ``heat.png`` and ``overlay.png``."""
    folder = Path(folder)
    write_atomic(folder / "image.png", png_bytes(colour_view(scan)))
    write_atomic(folder / "gray.png", png_bytes(gray_view(scan)))
    if heat is not None:
        h, w = scan.size_hw
        full = cv2.resize(heat, (w, h), interpolation=cv2.INTER_LINEAR)
        write_atomic(folder / "heat.png", png_bytes(heat_rgba(full)))
    if overlay_rgb is not None:
        write_atomic(folder / "overlay.png", png_bytes(overlay_rgb))


def write_volume_views(folder: Path, volume, line: dict, overlay_rgb: np.ndarray | None) -> None:
    """A CT scan's ``slices/NNNN.png`` (display window of `detector.ct_overlay`), and as
    ``image.png``/``gray.png`` the slice the viewer opens on: the one through the centre of
    the strongest detection, else the middle one."""
    from detector.ct_overlay import WINDOW_HU

    folder = Path(folder)
    lo, hi = WINDOW_HU
    gray = np.clip((volume.hu - lo) * np.float32(255.0 / (hi - lo)), 0, 255).astype(np.uint8)
    (folder / "slices").mkdir(exist_ok=True)
    for z in range(gray.shape[0]):
        write_atomic(folder / "slices" / f"{z:04d}.png", png_bytes(gray[z]))
    detections = line.get("detections") or []
    z0 = (int((detections[0]["box3d"][2] + detections[0]["box3d"][5]) / 2) if detections
          else gray.shape[0] // 2)
    first = png_bytes(gray[min(max(z0, 0), gray.shape[0] - 1)])
    write_atomic(folder / "image.png", first)
    write_atomic(folder / "gray.png", first)
    if overlay_rgb is not None:
        write_atomic(folder / "overlay.png", png_bytes(overlay_rgb))
