"""``detect --dicos-out``: one TDR per input, CT volumes included; unassessed inputs say so."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
from conftest import write_pair
from ct_data import phantom_hu, write_ct_series
from model_fixtures import tiny_models

from detector.dicos import read_tdr
from detector.volume_readers import write_sidecar


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
