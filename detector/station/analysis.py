"""What the station needs from the detector: one scan in, one results.jsonl line out.

The service and the watch folder take an `Analyzer` (a callable), so they are tested and run
with the real detector and nothing in them depends on how detection is done. The accessors
below are the only code that reads fields of a results line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from detector.imagefiles import sniff_format
from detector.inference import Detection
from detector.readers import ScanRef
from detector.scan import Scan
from detector.volume import Volume


@dataclass(frozen=True)
class Analysis:
    """A results line plus what the viewer draws from: the scan and its detection.

    ``scan`` and ``detection`` are None when the scan could not be read or detected
    (``line["status"] == "error"``). The station keeps ``detection`` (boxes, scores, heat map)
    and draws its views from it when they are first asked for, not here.
    ``overlay_png`` is an overlay already encoded (a CT scan's, or one the watch folder made
    for its own ``overlays/``); the station stores it as it is.
    """

    line: dict
    scan: Scan | None = None
    detection: Detection | None = None
    overlay_png: bytes | None = None
    volume: Volume | None = None  # a CT scan: the viewer pages its slices

    def __post_init__(self) -> None:
        status = line_status(self.line)
        if status == "ok" and self.scan is None and self.volume is None:
            raise ValueError("Analysis: an ok line needs its scan or volume")
        if self.detection is not None and (
                self.scan is None or tuple(self.detection.size_hw) != self.scan.size_hw):
            got = None if self.scan is None else self.scan.size_hw
            raise ValueError(f"Analysis.detection: expected a detection of its scan's size, "
                             f"got {tuple(self.detection.size_hw)} for scan {got}")
        if self.overlay_png is not None and sniff_format(self.overlay_png[:132]) != "png":
            raise ValueError(f"Analysis.overlay_png: expected PNG bytes, got "
                             f"{self.overlay_png[:8]!r}")


#: Reads one scan (a file or a high/low pair, or a CT volume's `VolumeRef`) and detects; never
#: raises for a bad scan: the line says ``"status": "error"`` and why, so the scan goes to
#: manual check.
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
