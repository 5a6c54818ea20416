"""The pydicom side of DICOS TDRs: a `ThreatReport` to a dataset and back, attribute by attribute.

Boxes are stored as Threat ROI Base (x, y, z) and Extents (width, height, depth) in image
coordinates (pixels / voxels), inside each PTO's representation item that also references the
scanned image. 2-D boxes use z = 0 and a depth of 1 plane.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from detector.dicom import DICOS_TDR
from detector.dicos import (
    ABORT_REASON,
    KIND_TAG,
    MODEL_SHA_TAG,
    OOI_TYPE,
    PRIVATE_CREATOR,
    PRIVATE_GROUP,
    REASON_TAG,
    SCAN_ID_TAG,
    SOURCES_TAG,
    THREAT_CATEGORY,
    ImageRef,
    StudyRef,
    Threat,
    ThreatReport,
)
from detector.errors import ScanError

#: Precision kept when reading FL (float32) values back: what results.jsonl lines carry.
SCORE_DIGITS, BOX_DIGITS = 4, 2


def _seq(items):
    from pydicom.sequence import Sequence

    return Sequence(items)


def _file_meta(instance_uid: str):
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DICOS_TDR
    meta.MediaStorageSOPInstanceUID = instance_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return meta


def _oo_id(scan_id: str) -> str:
    """The OOI ID (LO, 64 characters); a longer id is shortened with a hash of the whole."""
    import hashlib

    if len(scan_id) <= 64:
        return scan_id
    return scan_id[:55] + "~" + hashlib.sha256(scan_id.encode()).hexdigest()[:8]


def _image_refs(images: tuple[ImageRef, ...]):
    from pydicom import Dataset

    out = []
    for image in images:
        item = Dataset()
        item.ReferencedSOPClassUID = image.sop_class_uid
        item.ReferencedSOPInstanceUID = image.sop_instance_uid
        out.append(item)
    return _seq(out)


def _pto(threat: Threat, images: tuple[ImageRef, ...]):
    from pydicom import Dataset

    box = threat.box if len(threat.box) == 6 else (*threat.box[:2], 0.0, *threat.box[2:], 1.0)
    roi = Dataset()
    roi.ThreatROIBase = list(box[:3])  # (x, y, z)
    roi.ThreatROIExtents = [box[3] - box[0], box[4] - box[1], box[5] - box[2]]
    representation = Dataset()
    representation.ReferencedInstanceSequence = _image_refs(images)
    representation.ThreatROIVoxelSequence = _seq([roi])
    assessment = Dataset()
    assessment.ThreatCategory = THREAT_CATEGORY
    assessment.ThreatCategoryDescription = threat.label
    assessment.ATDAbilityAssessment = "NO_INTERFERENCE"
    assessment.ATDAssessmentFlag = "THREAT" if threat.alarm else "NO_THREAT"
    assessment.ATDAssessmentProbability = threat.score
    item = Dataset()
    item.PotentialThreatObjectID = threat.id
    item.PTORepresentationSequence = _seq([representation])
    item.ATDAssessmentSequence = _seq([assessment])
    return item


def build_dataset(report: ThreatReport, when: datetime):
    """The TDR as a pydicom dataset (file meta included), ready for ``save_as``."""
    from pydicom import Dataset
    from pydicom.uid import generate_uid

    ds = Dataset()
    ds.SOPClassUID = DICOS_TDR
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta = _file_meta(ds.SOPInstanceUID)
    ds.Modality = "TDR"
    ds.StudyInstanceUID = report.study.uid
    ds.StudyDate, ds.StudyTime = report.study.date, report.study.time
    ds.StudyID = report.study.study_id
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = 1  # each TDR is a series of its own
    ds.InstanceNumber = 1
    ds.ContentDate, ds.ContentTime = when.strftime("%Y%m%d"), when.strftime("%H%M%S.%f")
    ds.PatientID = _oo_id(report.scan_id)  # OOI ID
    ds.OOIType = OOI_TYPE
    ds.TDRType = "MACHINE"
    ds.ReferencedInstanceSequence = _image_refs(report.images)
    if report.model is not None:  # the sha256 (64 characters) goes in the private block
        ds.ThreatDetectionAlgorithmAndVersion = list(report.model[:2])
    ds.AlarmDecision = ("ALARM" if report.alarm else "CLEAR") if report.assessed else "UNKNOWN"
    ds.AlarmDecisionTime = when.strftime("%Y%m%d%H%M%S.%f%z")
    ds.AbortFlag = "SUCCESS" if report.assessed else "ABORT"
    if not report.assessed:
        ds.AbortReason = ABORT_REASON
    ds.NumberOfTotalObjects = len(report.threats)
    ds.NumberOfAlarmObjects = sum(t.alarm for t in report.threats)
    ds.TotalProcessingTime = report.time_ms
    ds.ThreatSequence = _seq([_pto(t, report.images) for t in report.threats])
    block = ds.private_block(PRIVATE_GROUP, PRIVATE_CREATOR, create=True)
    block.add_new(KIND_TAG, "LO", report.kind or "")
    block.add_new(REASON_TAG, "UT", report.reason or "")
    block.add_new(SOURCES_TAG, "UT", "\n".join(report.sources))
    block.add_new(SCAN_ID_TAG, "UT", report.scan_id)
    if report.model is not None:
        block.add_new(MODEL_SHA_TAG, "UT", report.model[2])
    return ds


def _require(ds, keyword: str, path: Path):
    if keyword not in ds:
        raise ScanError(path, f"TDR lacks {keyword}")
    return ds.get(keyword)


def _threat(item, path: Path) -> Threat:
    representation = _require(item, "PTORepresentationSequence", path)[0]
    roi = _require(representation, "ThreatROIVoxelSequence", path)[0]
    base = [float(v) for v in _require(roi, "ThreatROIBase", path)]
    extent = [float(v) for v in _require(roi, "ThreatROIExtents", path)]
    assessment = _require(item, "ATDAssessmentSequence", path)[0]
    flag = str(_require(assessment, "ATDAssessmentFlag", path))
    corners = [round(v, BOX_DIGITS) for v in (*base, *(b + e for b, e in zip(base, extent,
                                                                            strict=True)))]
    return Threat(id=int(_require(item, "PotentialThreatObjectID", path)),
                  label=str(assessment.get("ThreatCategoryDescription", "")),
                  score=round(float(_require(assessment, "ATDAssessmentProbability", path)),
                              SCORE_DIGITS),
                  alarm=flag in ("THREAT", "HIGH_THREAT"), box=tuple(corners))


def _private(ds, tag: int) -> str:
    try:
        return str(ds.private_block(PRIVATE_GROUP, PRIVATE_CREATOR)[tag].value)
    except KeyError:
        return ""


def parse_dataset(path: Path) -> ThreatReport:
    """A `ThreatReport` from the TDR file at ``path``; a `ScanError` if it is not one."""
    import pydicom

    try:
        ds = pydicom.dcmread(path)
    except Exception as exc:  # not DICOM, truncated...
        raise ScanError(path, f"unreadable TDR ({type(exc).__name__}: {exc})") from exc
    if str(ds.get("SOPClassUID", "")) != DICOS_TDR:
        raise ScanError(path, f"not a DICOS TDR: SOP class {ds.get('SOPClassUID')!r}")
    kind = _private(ds, KIND_TAG) or None
    threats = tuple(_threat(item, path) for item in ds.get("ThreatSequence", []))
    if kind not in ("ct", None):  # 2-D: drop the z of the stored 3-D ROI
        threats = tuple(Threat(t.id, t.label, t.score, t.alarm,
                               (t.box[0], t.box[1], t.box[3], t.box[4])) for t in threats)
    decision = str(_require(ds, "AlarmDecision", path))
    assessed = str(_require(ds, "AbortFlag", path)) == "SUCCESS"
    algorithm = ds.get("ThreatDetectionAlgorithmAndVersion")
    model = (*(str(v) for v in algorithm), _private(ds, MODEL_SHA_TAG)) if algorithm else None
    refs = _require(ds, "ReferencedInstanceSequence", path)
    try:
        return ThreatReport(
            scan_id=_private(ds, SCAN_ID_TAG) or str(ds.PatientID), kind=kind, assessed=assessed,
            alarm=decision != "CLEAR", reason=_private(ds, REASON_TAG) or None,
            threats=threats, model=model,
            images=tuple(ImageRef(str(r.ReferencedSOPClassUID), str(r.ReferencedSOPInstanceUID))
                         for r in refs),
            study=StudyRef(str(_require(ds, "StudyInstanceUID", path)),
                           str(ds.get("StudyDate", "")), str(ds.get("StudyTime", "")),
                           str(ds.get("StudyID", ""))),
            sources=tuple(s for s in _private(ds, SOURCES_TAG).split("\n") if s),
            time_ms=round(float(ds.get("TotalProcessingTime", 0.0)), 1))
    except ValueError as exc:
        raise ScanError(path, f"inconsistent TDR: {exc}") from exc
