"""``detect --dicos-out``: one TDR per input, CT volumes included; unassessed inputs say so."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import write_pair
from ct_data import phantom_hu, write_ct_series
from model_fixtures import tiny_models

from detector.dicos import read_tdr
from detector.volume_readers import write_sidecar

SAMPLES = Path(__file__).resolve().parents[1] / "sample_scans"


def test_detect_writes_a_tdr_per_input_and_volumes_without_a_ct_model_alarm(tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    write_pair(inputs, "parcel")
    write_ct_series(inputs / "bag7", phantom_hu())
    np.save(inputs / "vol.npy", phantom_hu())
    write_sidecar(inputs / "vol.npy", (4, 4, 4))
    out, tdr = tmp_path / "out", tmp_path / "tdr"
    proc = subprocess.run(
        [sys.executable, "-m", "detector.cli", "detect", str(inputs), str(inputs / "bag7"),
         "--out", str(out), "--model", str(tiny_models()["dual"]), "--dicos-out", str(tdr)],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr  # the volumes could not be assessed
    lines = {ln["id"]: ln for ln in map(json.loads, (out / "results.jsonl").read_text()
                                        .splitlines())}
    assert set(lines) == {"parcel", "bag7", "vol"}
    assert lines["parcel"]["status"] == "ok"
    for vid in ("bag7", "vol"):
        line = lines[vid]
        assert line["kind"] == "ct" and line["status"] == "error" and line["alarm"]
        assert "no model for 'ct'" in line["error"]
        assert line["size_dhw"] == list(phantom_hu().shape)
    assert sorted(p.name for p in tdr.iterdir()) == ["bag7.dcs", "parcel.dcs", "vol.dcs"]
    parcel = read_tdr(tdr / "parcel.dcs")
    assert parcel.assessed and parcel.kind == "dual" and len(parcel.images) == 2
    bag = read_tdr(tdr / "bag7.dcs")
    assert not bag.assessed and bag.alarm and "no model" in bag.reason
    assert len(bag.images) == phantom_hu().shape[0]


def test_a_series_with_a_damaged_slice_gets_an_unassessed_tdr_and_later_inputs_go_on(tmp_path):
    """A slice of garbage after a DICM preamble, or one cut to 300 bytes, crashed detect
    --dicos-out with a traceback (its header has no SOPClassUID) and later inputs were never
    processed."""
    from ct_model_fixture import tiny_ct_model

    from detector.cli import main

    _, onnx_path = tiny_ct_model()
    garbage = write_ct_series(tmp_path / "garbage", phantom_hu())[5]
    garbage.write_bytes(b"\0" * 128 + b"DICM" + np.random.default_rng(0).bytes(400))
    cut = write_ct_series(tmp_path / "cut", phantom_hu())[6]
    cut.write_bytes(cut.read_bytes()[:300])
    (tmp_path / "cut" / "DICOMDIR").write_bytes(b"\0" * 128 + b"DICM")  # an index, no slice
    np.save(tmp_path / "vol.npy", phantom_hu())
    write_sidecar(tmp_path / "vol.npy", (4, 4, 4))
    out, tdr = tmp_path / "out", tmp_path / "tdr"
    assert main(["detect", str(tmp_path / "garbage"), str(tmp_path / "cut"),
                 str(tmp_path / "vol.npy"), "--out", str(out), "--model", str(onnx_path),
                 "--no-overlays", "--dicos-out", str(tdr)]) == 2
    lines = [json.loads(s) for s in (out / "results.jsonl").read_text().splitlines()]
    assert [(ln["id"], ln["status"]) for ln in lines] == [
        ("garbage", "error"), ("cut", "error"), ("vol", "ok")]
    for name, bad in (("garbage", garbage), ("cut", cut)):
        report = read_tdr(tdr / f"{name}.dcs")
        assert not report.assessed and report.alarm and report.reason.startswith(bad.name)
        assert len(report.images) == phantom_hu().shape[0]  # the damaged slice too
        assert str(bad) in report.sources and not any("DICOMDIR" in p for p in report.sources)
    assert read_tdr(tdr / "vol.dcs").assessed


DCIODVFY = shutil.which("dciodvfy")
#: What dicom3tools' dciodvfy may say of our TDRs: it does not know the DICOS TDR IOD, so it
#: checks value representations only; our private block is unknown to it; a DICOMDIR would
#: need study and series attributes that a TDR of ours leaves out (docs/dicos.md).
DCIODVFY_EXPECTED = ("Error - Information Object Not found", "Unrecognized tag",
                     "needed to build DICOMDIR")


@pytest.mark.skipif(DCIODVFY is None, reason="needs dicom3tools' dciodvfy (Debian dicom3tools)")
def test_tdrs_pass_dciodvfy_value_checks(tmp_path):
    """Every kind of TDR we write (2-D with threats, CT, unassessed) has valid DICOM values
    (lengths, characters, multiplicities) by dicom3tools' verifier; the bundled models run."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("synth_000000_high.png", "synth_000000_low.png", "synth_000001_color.png"):
        shutil.copy(SAMPLES / name, inputs / name)
    (inputs / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    np.save(inputs / "vol.npy", phantom_hu())
    write_sidecar(inputs / "vol.npy", (4, 4, 4))
    tdr = tmp_path / "tdr"
    proc = subprocess.run([sys.executable, "-m", "detector.cli", "detect", str(inputs),
                           "--out", str(tmp_path / "out"), "--dicos-out", str(tdr),
                           "--min-score", "0"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr  # broken.png went to manual check
    reports = sorted(tdr.iterdir())
    assert [p.name for p in reports] == ["broken.dcs", "synth_000000.dcs",
                                         "synth_000001_color.dcs", "vol.dcs"]
    assert read_tdr(tdr / "synth_000000.dcs").threats, "no threat object was checked"
    for path in reports:
        said = subprocess.run([DCIODVFY, str(path)], capture_output=True, text=True,
                              timeout=60)
        problems = sorted({ln for ln in (said.stdout + said.stderr).splitlines()
                           if ln.strip() and not any(e in ln for e in DCIODVFY_EXPECTED)})
        assert not problems, f"{path.name}: {problems[:5]}"
