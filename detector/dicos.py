"""DICOS Threat Detection Reports (NEMA IIC 1, SOP class ...501.3): write one per scan, read back.

A `ThreatReport` is the validated content of one TDR: which scan and image it is about, every
potential threat object (PTO) with its box, score and label, the model that found them, and
whether the scan could be assessed at all. `report_from_line` builds it from a ``results.jsonl``
line; `write_tdr`/`read_tdr` turn it into a DICOS file and back. ``docs/dicos.md`` lists what
of the standard is covered.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from detector.dicom import DICOS_CT, DICOS_DX_PRESENTATION, DICOS_DX_PROCESSING

#: Values of the enumerated DICOS attributes we write (IIC 1 v03, as in Stratovan's toolkit).
OOI_TYPE = "BAGGAGE"  # parcels are screened like baggage; the only other fit is "CARGO"
THREAT_CATEGORY = "CONTRABAND"  # a concealed drug packet is contraband, not a prohibited item
ABORT_REASON = "NOT_REVIEWED"  # the ATR could not assess the scan; the detail is in REASON_TAG
#: The least Total Processing Time written (ms): toolkits refuse 0; the results line's step.
MIN_PROCESSING_MS = 0.1
#: Our private block for what DICOS has no attribute for (the scan kind, the error text...).
PRIVATE_GROUP, PRIVATE_CREATOR = 0x0013, "CONCEALSCAN 1"
KIND_TAG, REASON_TAG, SOURCES_TAG, SCAN_ID_TAG, MODEL_SHA_TAG = 0x10, 0x11, 0x12, 0x13, 0x14
_KINDS = ("dual", "gray", "color", "ct")


@dataclass(frozen=True)
class Threat:
    """One potential threat object: box in image pixels (2-D ``x1, y1, x2, y2``) or voxels
    (CT ``x1, y1, z1, x2, y2, z2``), score 0..1, and whether it reached the alarm threshold."""

    id: int
    label: str
    score: float
    alarm: bool
    box: tuple[float, ...]

    def __post_init__(self) -> None:
        if not 0 <= self.id <= 65535:
            raise ValueError(f"Threat.id: expected 0..65535 (US), got {self.id}")
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(f"Threat.score: expected 0..1, got {self.score}")
        box = tuple(float(v) for v in self.box)
        half = len(box) // 2
        if len(box) not in (4, 6) or not all(math.isfinite(v) for v in box):
            raise ValueError(f"Threat.box: expected 4 or 6 finite numbers, got {self.box}")
        if any(box[i] > box[i + half] for i in range(half)):
            raise ValueError(f"Threat.box: expected low corner before high corner, got {box}")
        object.__setattr__(self, "box", box)


@dataclass(frozen=True)
class ImageRef:
    """The scanned image a TDR is about (SOP class and instance UIDs)."""

    sop_class_uid: str
    sop_instance_uid: str


@dataclass(frozen=True)
class StudyRef:
    """The study a TDR belongs to: the scanned object's own, from its DICOM/DICOS header, or,
    for files that carry none, one made for the report (UID derived from the images, dated
    when the report was made). DICOMDIR study records need the date, time and id."""

    uid: str
    date: str  # DA: YYYYMMDD, or "" where the source study leaves it empty
    time: str  # TM: HHMMSS[.ffffff], or ""
    study_id: str = ""  # SH: up to 16 characters

    def __post_init__(self) -> None:
        if not self.uid:
            raise ValueError("StudyRef.uid: expected a UID, got ''")
        if len(self.study_id) > 16:
            raise ValueError(f"StudyRef.study_id: expected at most 16 characters (SH), got "
                             f"{self.study_id!r}")


@dataclass(frozen=True)
class ThreatReport:
    """The content of one TDR. ``assessed`` False means the scan could not be analysed:
    then ``reason`` says why, there are no threats and the report alarms (manual check)."""

    scan_id: str
    kind: str | None
    assessed: bool
    alarm: bool
    reason: str | None
    threats: tuple[Threat, ...]
    model: tuple[str, str, str] | None  # (name, version, sha256)
    images: tuple[ImageRef, ...]
    study: StudyRef
    sources: tuple[str, ...]
    time_ms: float

    def __post_init__(self) -> None:
        if not self.scan_id:
            raise ValueError("ThreatReport.scan_id: expected a non-empty id")
        if self.kind not in (*_KINDS, None):
            raise ValueError(f"ThreatReport.kind: expected one of {_KINDS} or None, got "
                             f"{self.kind!r}")
        if not self.images:
            raise ValueError("ThreatReport.images: expected at least one referenced image")
        if self.assessed:
            if self.reason is not None or self.model is None or self.kind is None:
                raise ValueError("ThreatReport: an assessed scan needs a kind and a model and "
                                 f"no reason, got kind={self.kind!r} model={self.model!r} "
                                 f"reason={self.reason!r}")
            if self.alarm != any(t.alarm for t in self.threats):
                raise ValueError(f"ThreatReport.alarm: expected {not self.alarm} from the "
                                 f"threats' alarms, got {self.alarm}")
            want = 6 if self.kind == "ct" else 4
            bad = [t.box for t in self.threats if len(t.box) != want]
            if bad:
                raise ValueError(f"ThreatReport: {self.kind!r} boxes need {want} numbers, "
                                 f"got {bad[0]}")
        elif not self.reason or self.threats or not self.alarm:
            raise ValueError("ThreatReport: a scan that could not be assessed needs a reason, "
                             f"no threats and alarm=True, got reason={self.reason!r}, "
                             f"{len(self.threats)} threats, alarm={self.alarm}")
        if self.model is not None and (len(self.model) != 3 or not all(self.model)):
            raise ValueError(f"ThreatReport.model: expected (name, version, sha256), got "
                             f"{self.model!r}")
        ids = [t.id for t in self.threats]
        if len(set(ids)) != len(ids):
            raise ValueError(f"ThreatReport.threats: ids must be distinct, got {ids}")
        if not (math.isfinite(self.time_ms) and self.time_ms >= 0):
            raise ValueError(f"ThreatReport.time_ms: expected a finite time >= 0, got "
                             f"{self.time_ms}")
        # DICOS toolkits refuse a Total Processing Time of 0; a scan refused at once rounds to
        # 0.0 ms in its results line (0.1 ms steps), so it is reported as that step
        object.__setattr__(self, "time_ms", max(float(self.time_ms), MIN_PROCESSING_MS))


def _derived_uid(*parts: str) -> str:
    from pydicom.uid import generate_uid

    return generate_uid(entropy_srcs=list(parts))


def file_image_ref(path: Path, kind: str | None) -> tuple[ImageRef, StudyRef | None]:
    """(the image reference, its study or None) for one source file.

    DICOM/DICOS files are referenced by their own UIDs. Other files (PNG, TIFF, .npy) have
    none, so a UID derived from the file's sha256 stands in: the same bytes always get the
    same UID, and the path is kept in the report's private block. So does a damaged DICOM
    file (a slice that failed its volume) whose header does not give its UIDs: the report
    of the scan it failed must still be written.
    """
    path = Path(path)
    found = _dicom_refs(path)
    if found is not None:
        return found
    digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else str(path)
    sop = {"ct": DICOS_CT, "color": DICOS_DX_PRESENTATION}.get(kind or "", DICOS_DX_PROCESSING)
    return ImageRef(sop, _derived_uid("concealscan-image", digest)), None


def _dicom_refs(path: Path) -> tuple[ImageRef, StudyRef | None] | None:
    """(image, study) from the DICOM header of ``path``; None if it is not DICOM or its header
    does not give its SOP class and instance UIDs."""
    from detector.dicom_ct import is_dicom_file, read_header

    if not is_dicom_file(path):
        return None
    try:
        header = read_header(path)
        if "SOPClassUID" not in header or "SOPInstanceUID" not in header:
            return None
        image = ImageRef(str(header.SOPClassUID), str(header.SOPInstanceUID))
        uid = str(header.get("StudyInstanceUID", ""))
        study = StudyRef(uid, str(header.get("StudyDate", "")), str(header.get("StudyTime", "")),
                         str(header.get("StudyID", ""))[:16]) if uid else None
    except Exception:  # noqa: BLE001 -- a ScanError, or whatever pydicom raises where it
        return None  # decodes a damaged element: the file is then referenced by its bytes
    return image, study


def _made_study(images: tuple[ImageRef, ...], when: datetime) -> StudyRef:
    """The study of sources that carry none: its UID derived from theirs (the same images, the
    same study), its Study ID the UID's last 16 digits (DICOMDIR study records need one)."""
    uid = _derived_uid("concealscan-study", *(i.sop_instance_uid for i in images))
    return StudyRef(uid, when.strftime("%Y%m%d"), when.strftime("%H%M%S"), uid[-16:])


def report_from_line(line: dict, sources: list[str | Path],
                     when: datetime | None = None) -> ThreatReport:
    """The TDR content of one ``results.jsonl`` line; ``sources`` are the files it came from;
    ``when`` (default: now) dates a study made for sources that carry none."""
    refs = [file_image_ref(Path(s), line.get("kind")) for s in sources]
    images = tuple(dict.fromkeys(ref for ref, _ in refs))
    when = when or datetime.now(timezone.utc)
    study = next((s for _, s in refs if s), None) or _made_study(images, when)
    assessed = line["status"] == "ok"
    threats = tuple(
        Threat(id=i, label=d["label"], score=float(d["score"]), alarm=bool(d["alarm"]),
               box=tuple(d["box3d"] if line.get("kind") == "ct" else d["box"]))
        for i, d in enumerate(line["detections"]))
    model = line.get("model") or None
    return ThreatReport(
        scan_id=line["id"], kind=line.get("kind"), assessed=assessed, alarm=bool(line["alarm"]),
        reason=None if assessed else str(line["error"]), threats=threats,
        model=(str(model["name"]), str(model["version"]), str(model["sha256"]))
        if model else None,
        images=images, study=study, sources=tuple(str(s) for s in sources),
        time_ms=float(line.get("time_ms") or 0.0))


def write_tdr(report: ThreatReport, path: str | Path, when: datetime | None = None) -> Path:
    """Write ``report`` as a DICOS TDR file at ``path``."""
    from detector.dicos_io import build_dataset

    when = when or datetime.now(timezone.utc)
    dataset = build_dataset(report, when)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    dataset.save_as(path, enforce_file_format=True)
    return path


def read_tdr(path: str | Path) -> ThreatReport:
    """Read a TDR written by `write_tdr` (or any TDR with the same attributes) back."""
    from detector.dicos_io import parse_dataset

    return parse_dataset(Path(path))


def input_sources(ref) -> list[Path]:
    """The files behind one discovered input (a `ScanRef` or a `VolumeRef`). A folder of CT
    slices lists them in the volume's z order, as the reader stacks them, since a box's z
    (Threat ROI Base) counts slices in that order."""
    from detector.dicom_ct import series_order, sort_dicom_folder
    from detector.errors import ScanError

    files = getattr(ref, "files", None)
    if files:
        return [Path(f) for f in files]
    path = Path(ref.path)
    if path.is_dir():
        ct, damaged = sort_dicom_folder(path)
        if ct and not damaged:
            try:
                ct = series_order(ct)
            except ScanError:  # the volume could not be read either: no box counts its slices
                pass
        return ct + damaged or [path]
    low = getattr(ref, "low", None)  # a dual-energy volume's second file
    return [path] if low is None else [path, Path(low)]


def write_result_tdr(line: dict, ref, folder: str | Path) -> Path:
    """Write the TDR of one ``results.jsonl`` line as ``folder/ID.dcs``; returns its path."""
    report = report_from_line(line, input_sources(ref))
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in report.scan_id)
    return write_tdr(report, Path(folder) / f"{safe}.dcs")
