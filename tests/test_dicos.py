"""DICOS TDRs: write a report for each kind of result line, read it back, check every field."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pydicom
import pytest
from conftest import write_pair
from ct_data import STUDY_DATE, STUDY_ID, STUDY_TIME, phantom_hu, write_ct_series
from test_readers import write_dicom

from detector import ScanError
from detector.dicom import DICOS_TDR
from detector.dicos import (
    ImageRef,
    StudyRef,
    Threat,
    ThreatReport,
    read_tdr,
    report_from_line,
    write_tdr,
)

MODEL = {"name": "concealscan-ct", "version": "1.2.0", "sha256": "ab" * 32}
WHEN = datetime(2026, 11, 28, 14, 30, 5, 123456, tzinfo=timezone.utc)


def ok_line(kind, detections, alarm):
    return {"id": "bag-001", "scan": "x", "kind": kind, "status": "ok", "error": None,
            "alarm": alarm, "detections": detections, "model": MODEL, "time_ms": 41.5}


def det2d(score, alarm, box):
    return {"label": "concealed_organic", "score": score, "box": box, "alarm": alarm}


def det3d(score, alarm, box3d):
    return {"label": "concealed_organic", "score": score, "box3d": box3d, "alarm": alarm}


def roundtrip(tmp_path, line, sources):
    report = report_from_line(line, sources, when=WHEN)
    path = write_tdr(report, tmp_path / "out" / "r.dcs", when=WHEN)
    back = read_tdr(path)
    assert back == report, "every field must survive the round trip"
    return report, pydicom.dcmread(path)


def test_ct_volume_report_references_each_slice_and_keeps_3d_boxes(tmp_path):
    slices = write_ct_series(tmp_path / "ct", phantom_hu())
    line = ok_line("ct", [det3d(0.93, True, [14.0, 12.0, 4.0, 30.0, 22.0, 8.0]),
                          det3d(0.2, False, [1.5, 2.5, 0.0, 3.5, 4.5, 2.0])], True)
    report, ds = roundtrip(tmp_path, line, slices)
    assert len(report.images) == len(slices)
    source = pydicom.dcmread(slices[0])
    assert report.images[0] == ImageRef(source.SOPClassUID, source.SOPInstanceUID)
    assert ds.StudyInstanceUID == source.StudyInstanceUID
    assert (ds.StudyDate, ds.StudyTime, ds.StudyID) == (STUDY_DATE, STUDY_TIME, STUDY_ID)
    assert ds.SeriesNumber == 1 and ds.SeriesInstanceUID != source.SeriesInstanceUID
    assert ds.SOPClassUID == DICOS_TDR and ds.file_meta.MediaStorageSOPClassUID == DICOS_TDR
    assert ds.Modality == "TDR" and ds.TDRType == "MACHINE" and ds.PatientID == "bag-001"
    assert ds.AlarmDecision == "ALARM" and ds.AbortFlag == "SUCCESS" and "AbortReason" not in ds
    assert (ds.NumberOfTotalObjects, ds.NumberOfAlarmObjects) == (2, 1)
    assert list(ds.ThreatDetectionAlgorithmAndVersion) == [MODEL["name"], MODEL["version"]]
    assert ds.AlarmDecisionTime.startswith("20261128143005")
    pto = ds.ThreatSequence[0]
    roi = pto.PTORepresentationSequence[0].ThreatROIVoxelSequence[0]
    assert list(roi.ThreatROIBase) == [14.0, 12.0, 4.0]
    assert list(roi.ThreatROIExtents) == [16.0, 10.0, 4.0]
    assessment = pto.ATDAssessmentSequence[0]
    assert assessment.ATDAssessmentFlag == "THREAT" and assessment.ThreatCategory == "CONTRABAND"
    assert ds.ThreatSequence[1].ATDAssessmentSequence[0].ATDAssessmentFlag == "NO_THREAT"


@pytest.mark.parametrize("positions", [True, False])
def test_ct_references_follow_the_volumes_z_order(tmp_path, positions):
    """A box's z (Threat ROI Base) counts the volume's slices, stacked by ascending position
    (or InstanceNumber): reference k must be volume slice k, whatever the file names say."""
    from detector.dicos import input_sources
    from detector.volume_inputs import discover_inputs
    from detector.volume_readers import read_volume

    hu = phantom_hu()
    # name order descends in z: slice_000 is the highest slice, volume slice 11
    write_ct_series(tmp_path / "ct", hu, order=reversed(range(hu.shape[0])), positions=positions)
    volume = read_volume(tmp_path / "ct")
    sources = input_sources(discover_inputs([tmp_path / "ct"])[0])
    assert [str(p) for p in sources] == list(volume.sources)
    assert sources[0].name == "slice_011.dcm"
    report = report_from_line(ok_line("ct", [det3d(0.9, True, [1, 2, 0, 3, 4, 1])], True),
                              sources, when=WHEN)
    uids = [str(pydicom.dcmread(p).SOPInstanceUID) for p in volume.sources]
    assert [image.sop_instance_uid for image in report.images] == uids


def test_2d_dicos_dx_report(tmp_path):
    dx = write_dicom(tmp_path / "dx.dcs", np.full((20, 30), 1000, np.uint16))
    line = ok_line("gray", [det2d(0.81, True, [3.0, 4.5, 20.0, 18.2])], True)
    report, ds = roundtrip(tmp_path, line, [dx])
    assert report.threats[0].box == (3.0, 4.5, 20.0, 18.2)
    roi = ds.ThreatSequence[0].PTORepresentationSequence[0].ThreatROIVoxelSequence[0]
    assert list(roi.ThreatROIBase)[2] == 0.0 and list(roi.ThreatROIExtents)[2] == 1.0


def test_clear_png_pair_gets_stable_derived_references(tmp_path):
    (high, low), *_ = write_pair(tmp_path, "p")
    line = ok_line("dual", [], False)
    report, ds = roundtrip(tmp_path, line, [high, low])
    assert ds.AlarmDecision == "CLEAR" and ds.NumberOfTotalObjects == 0
    # PNGs carry no study: the one made for the report is dated when the report was made
    assert (ds.StudyDate, ds.StudyTime, ds.StudyID) == ("20261128", "143005",
                                                         ds.StudyInstanceUID[-16:])
    assert len(report.images) == 2 and report.sources == (str(high), str(low))
    assert report_from_line(line, [high, low]).images == report.images  # same bytes, same UIDs


def test_unassessed_scan_says_so_and_alarms(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    line = {"id": "broken", "scan": str(bad), "kind": None, "status": "error",
            "error": "truncated PNG: no IHDR header", "alarm": True, "detections": [],
            "model": None, "time_ms": 0.3}
    report, ds = roundtrip(tmp_path, line, [bad])
    assert not report.assessed and report.alarm and report.reason == line["error"]
    assert ds.AbortFlag == "ABORT" and ds.AbortReason == "NOT_REVIEWED"
    assert ds.AlarmDecision == "UNKNOWN" and "ThreatDetectionAlgorithmAndVersion" not in ds


def test_processing_time_is_never_zero(tmp_path):
    """DICOS toolkits refuse a Total Processing Time of 0: a scan refused at once (0.0 ms
    in the results line) is reported as the line's 0.1 ms step."""
    bad = tmp_path / "empty.png"
    bad.write_bytes(b"")
    line = {"id": "empty", "scan": str(bad), "kind": None, "status": "error",
            "error": "empty file", "alarm": True, "detections": [], "model": None,
            "time_ms": 0.0}
    report, ds = roundtrip(tmp_path, line, [bad])
    assert report.time_ms == 0.1 and ds.TotalProcessingTime == pytest.approx(0.1)
    assert ThreatReport(**{**BASE, "time_ms": 0}).time_ms == 0.1  # built by hand, too


def test_long_scan_id_is_kept_whole(tmp_path):
    dx = write_dicom(tmp_path / "dx.dcs", np.full((20, 30), 1000, np.uint16))
    line = {**ok_line("gray", [], False), "id": "x" * 100}
    report, ds = roundtrip(tmp_path, line, [dx])
    assert len(ds.PatientID) == 64 and report.scan_id == "x" * 100


def test_tdrs_go_into_a_dicomdir(tmp_path):
    """A DICOMDIR study record needs Study Date, Time and ID, its series record Series Number:
    pydicom's File-set builds one from our TDRs (one from a DICOS CT series, whose study they
    join, one from PNGs and one for a scan that could not be read) and lists them back."""
    from pydicom.fileset import FileSet

    slices = write_ct_series(tmp_path / "ct", phantom_hu())
    (high, low), *_ = write_pair(tmp_path, "p")
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"")
    lines = [(ok_line("ct", [det3d(0.9, True, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0])], True), slices),
             ({**ok_line("dual", [], False), "id": "pair"}, [high, low]),
             ({"id": "broken", "scan": str(bad), "kind": None, "status": "error",
               "error": "empty file", "alarm": True, "detections": [], "model": None,
               "time_ms": 0.2}, [bad])]
    files = FileSet()
    for n, (line, sources) in enumerate(lines):
        files.add(write_tdr(report_from_line(line, sources), tmp_path / "tdr" / f"{n}.dcs"))
    files.write(tmp_path / "set")
    back = FileSet(pydicom.dcmread(tmp_path / "set" / "DICOMDIR"))
    found = {i.PatientID: i.load() for i in back}
    assert set(found) == {"bag-001", "pair", "broken"}
    assert found["bag-001"].StudyID == STUDY_ID
    assert found["bag-001"].StudyInstanceUID == pydicom.dcmread(slices[0]).StudyInstanceUID
    assert {str(ds.AlarmDecision) for ds in found.values()} == {"ALARM", "CLEAR", "UNKNOWN"}


IMG = (ImageRef("1.2", "1.2.3"),)
BASE = dict(scan_id="s", kind="gray", assessed=True, alarm=False, reason=None, threats=(),
            model=("m", "1", "h"), images=IMG, study=StudyRef("1.2.4", "20261128", "143005"),
            sources=("a",), time_ms=1.0)


@pytest.mark.parametrize("change, words", [
    ({"scan_id": ""}, "scan_id"),
    ({"kind": "xray"}, "kind"),
    ({"images": ()}, "referenced image"),
    ({"alarm": True}, "alarm"),
    ({"reason": "oops"}, "no reason"),
    ({"model": None}, "model"),
    ({"model": ("m", "1")}, "(name, version, sha256)"),
    ({"threats": (Threat(0, "p", 0.5, False, (0, 0, 1, 1, 1, 1)),)}, "need 4 numbers"),
    ({"threats": (Threat(0, "p", 0.5, False, (0, 0, 1, 1)),) * 2}, "distinct"),
    ({"assessed": False, "reason": None, "alarm": True, "model": None}, "needs a reason"),
    ({"assessed": False, "reason": "x", "alarm": False, "model": None}, "alarm=True"),
    ({"time_ms": -1.0}, "time_ms"),
    ({"time_ms": float("nan")}, "time_ms"),
])
def test_invalid_report(change, words):
    with pytest.raises(ValueError) as err:
        ThreatReport(**{**BASE, **change})
    assert words in str(err.value)


@pytest.mark.parametrize("kwargs, words", [
    (dict(id=70000), "0..65535"), (dict(score=1.5), "0..1"), (dict(box=(0, 0, 1)), "4 or 6"),
    (dict(box=(5, 0, 1, 1)), "low corner"), (dict(box=(0, 0, float("nan"), 1)), "finite"),
])
def test_invalid_threat(kwargs, words):
    with pytest.raises(ValueError, match=None) as err:
        Threat(**{**dict(id=0, label="p", score=0.5, alarm=False, box=(0, 0, 1, 1)), **kwargs})
    assert words in str(err.value)


def test_reading_something_else_is_a_scan_error(tmp_path):
    dx = write_dicom(tmp_path / "dx.dcs", np.full((20, 30), 1000, np.uint16))
    with pytest.raises(ScanError, match="not a DICOS TDR"):
        read_tdr(dx)
    junk = tmp_path / "junk.dcs"
    junk.write_bytes(b"nothing")
    with pytest.raises(ScanError, match="unreadable TDR"):
        read_tdr(junk)


def test_a_report_given_as_a_scan_says_what_it_is(tmp_path):
    """A TDR in a scanned folder (--dicos-out inside it) is named, not 'zero size'."""
    from detector import read_scan

    dx = write_dicom(tmp_path / "dx.dcs", np.full((20, 30), 1000, np.uint16))
    path = write_tdr(report_from_line(ok_line("gray", [], False), [dx]), tmp_path / "r.dcs")
    with pytest.raises(ScanError, match="Threat Detection Report .* not a scan"):
        read_scan(path)


def test_write_result_tdr_for_discovered_inputs(tmp_path):
    from detector.dicos import write_result_tdr
    from detector.volume_inputs import discover_inputs

    write_ct_series(tmp_path / "in" / "bag 7", phantom_hu())
    write_pair(tmp_path / "in", "p")
    refs = {r.id: r for r in discover_inputs([tmp_path / "in", tmp_path / "in" / "bag 7"])}
    ct_line = {**ok_line("ct", [], False), "id": "bag 7"}
    path = write_result_tdr(ct_line, refs["bag 7"], tmp_path / "tdr")
    assert path.name == "bag_7.dcs" and len(read_tdr(path).images) == phantom_hu().shape[0]
    path = write_result_tdr({**ok_line("dual", [], False), "id": "p"}, refs["p"], tmp_path / "tdr")
    assert len(read_tdr(path).sources) == 2
