"""What the station needs from the detector: one scan in, one results.jsonl line out.

The service and the watch folder take an `Analyzer` (a callable), so they are tested and run
with the real detector and nothing in them depends on how detection is done. The accessors
below are the only code that reads fields of a results line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from detector.readers import ScanRef
from detector.scan import Scan
from detector.volume import Volume


@dataclass(frozen=True)
class Analysis:
    """A results line plus what the viewer draws from: the scan and its heat map.

    ``scan`` and ``heat`` are None when the scan could not be read or detected
    (``line["status"] == "error"``); ``heat`` is 2-D float32 in 0..1 covering the whole scan
    (at the network's stride: the viewer stretches it to the scan's size).
    """

    line: dict
    scan: Scan | None = None
    heat: np.ndarray | None = None
    overlay_rgb: np.ndarray | None = None
    volume: Volume | None = None  # a CT scan: the viewer pages its slices

    def __post_init__(self) -> None:
        status = line_status(self.line)
        if status == "ok" and self.scan is None and self.volume is None:
            raise ValueError("Analysis: an ok line needs its scan or volume")
        if self.heat is not None:
            if self.scan is None or self.heat.ndim != 2 or self.heat.size == 0:
                raise ValueError(f"Analysis.heat: expected a non-empty 2-D map with its scan, "
                                 f"got shape {self.heat.shape}")
            if self.heat.dtype != np.float32:
                raise ValueError(f"Analysis.heat: expected float32, got {self.heat.dtype}")
        if self.overlay_rgb is not None and (self.overlay_rgb.ndim != 3
                                             or self.overlay_rgb.shape[2] != 3
                                             or self.overlay_rgb.dtype != np.uint8):
            raise ValueError(f"Analysis.overlay_rgb: expected (H, W, 3) uint8, got "
                             f"{self.overlay_rgb.shape} {self.overlay_rgb.dtype}")


#: Reads one scan (a file or a high/low pair) and detects; never raises for a bad scan:
#: the line says ``"status": "error"`` and why, so the scan goes to manual check.
Analyzer = Callable[[ScanRef], Analysis]


def line_status(line: dict) -> str:
    status = line.get("status")
    if status not in ("ok", "error"):
        raise ValueError(f"results line: expected status 'ok' or 'error', got {status!r}")
    return status


def line_alarm(line: dict) -> bool:
    """The line's alarm; an error line always alarms (manual check), whatever it says."""
    if line_status(line) == "error":
        return True
    alarm = line.get("alarm")
    if not isinstance(alarm, bool):
        raise ValueError(f"results line: expected boolean alarm, got {alarm!r}")
    return alarm


def line_error(line: dict) -> str | None:
    if line_status(line) == "ok":
        return None
    return str(line.get("error") or "unknown error")


def line_model_version(line: dict) -> str | None:
    """``name-version`` of the model that made the line (None if no model ran)."""
    model = line.get("model")
    if not isinstance(model, dict) or not model.get("version"):
        return None
    return f"{model['name']}-{model['version']}" if model.get("name") else str(model["version"])


def line_boxes(line: dict) -> list[dict]:
    """The line's detections, each with ``box`` (x1, y1, x2, y2), ``score``, ``alarm``."""
    boxes = line.get("detections", [])
    if not isinstance(boxes, list):
        raise ValueError(f"results line: expected a list of detections, got {boxes!r}")
    return boxes


def line_kind(line: dict) -> str | None:
    return line.get("kind")



def error_line(ref: ScanRef, reason: str, model: dict | None = None) -> dict:
    """The results line of a scan that could not be processed: it alarms (manual check)."""
    from detector.results import error_line as results_error_line

    return results_error_line(ref, reason, model=model)
