"""Choosing the model for a scan, and the one ``results.jsonl`` line per scan."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from detector.errors import ScanError, UsageError
from detector.inference import Detection, Detector
from detector.readers import ScanRef
from detector.scan import KINDS, Scan


def bundled_models() -> dict[str, Path]:
    """kind -> path of the model shipped inside the package (``detector/models/KIND.onnx``)."""
    folder = Path(str(resources.files("detector") / "models"))
    kinds = (*KINDS, "ct")  # ct: CT volumes (issue 7)
    return {k: folder / f"{k}.onnx" for k in kinds if (folder / f"{k}.onnx").is_file()}


class ModelChooser:
    """Loads the models once and picks the one whose input kind matches each scan."""

    def __init__(self, model_paths: list[str] | None = None, threads: int = 1,
                 min_score: float = 0.05) -> None:
        paths = [Path(p) for p in model_paths] if model_paths else list(bundled_models().values())
        if not paths:
            raise UsageError("no model given and none bundled in detector/models/")
        self.detectors: dict[str, Detector] = {}
        for path in paths:
            det = Detector(path, threads=threads, min_score=min_score)
            if det.info.kind in self.detectors:
                raise UsageError(f"two models for {det.info.kind!r} scans: "
                                 f"{self.detectors[det.info.kind].model.path} and {path}")
            self.detectors[det.info.kind] = det

    def for_scan(self, scan: Scan) -> Detector:
        det = self.detectors.get(scan.kind)
        if det is None:
            raise ScanError(scan.sources[0], f"no model for {scan.kind!r} scans (models loaded "
                                             f"for: {', '.join(sorted(self.detectors))})")
        return det


def ok_line(ref: ScanRef, det: Detection, min_score: float = 0.0) -> dict:
    alarms = det.alarms
    detections = [{"label": det.class_names[int(lab)], "score": round(float(s), 4),
                   "box": [round(float(v), 1) for v in box], "alarm": bool(a)}
                  for box, s, lab, a in zip(det.boxes_xyxy, det.scores, det.labels, alarms,
                                            strict=True) if s >= min_score]
    return {"id": ref.id, "scan": ref.path, "kind": det.kind, "status": "ok", "error": None,
            "alarm": det.alarm, "size_hw": list(det.size_hw), "detections": detections,
            "model": dict(det.model), "time_ms": round(det.time_ms, 1)}


def error_line(ref: ScanRef, reason: str, scan: Scan | None = None,
               model: dict | None = None, time_ms: float = 0.0) -> dict:
    """A scan that could not be processed alarms: it goes to manual check."""
    return {"id": ref.id, "scan": ref.path, "kind": scan.kind if scan else None,
            "status": "error", "error": reason, "alarm": True,
            "size_hw": list(scan.size_hw) if scan else None, "detections": [],
            "model": model, "time_ms": round(time_ms, 1)}
