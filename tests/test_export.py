"""Export: parity of the real ONNX artefact with torch, empty scans, INT8, self-description."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from model_fixtures import tiny_checkpoint, tiny_models
from toy_data import write_toy_set

from detector.inference import Detector
from detector.model import ModelError, OnnxModel, manifest_path
from detector.scan import Scan
from training.export import export_onnx, parity, quantize_int8

# Stated tolerances: fp32 onnxruntime vs torch eager on the same float32 input.
HEAT_ATOL = 1e-5  # probabilities
BOX_ATOL = 1e-3  # pixels (exp of logits around 3-5 amplifies float error)


@pytest.mark.parametrize("kind", ["dual", "gray", "color"])
def test_onnx_matches_torch_on_a_new_input(tmp_path, kind):
    ckpt = tiny_checkpoint(tmp_path, kind, seed=3)
    out = tmp_path / f"{kind}.onnx"
    info = export_onnx(ckpt, out, trace_hw=(256, 320))
    # A different size and content from the tracing input (dynamic height and width).
    x = np.random.default_rng(7).random((1, info.input_spec.num_channels, 152, 408),
                                        dtype=np.float32)
    d_heat, d_box = parity(ckpt, out, x)
    assert d_heat < HEAT_ATOL and d_box < BOX_ATOL, (d_heat, d_box)


def _air_scan(kind: str, size=(96, 128)) -> Scan:
    if kind == "color":
        return Scan("air", kind, np.full((3, *size), 255, np.uint8), ("air.png",), 8)
    return Scan("air", kind, np.zeros((2 if kind == "dual" else 1, *size), np.float32),
                ("air.png",), 16)


@pytest.mark.parametrize("kind", ["dual", "gray", "color"])
def test_every_graph_runs_on_air_and_with_no_candidate(kind):
    det = Detector(tiny_models()[kind], min_score=0.05)
    result = det.detect(_air_scan(kind))  # a scan with nothing in it
    assert result.boxes_xyxy.shape[1] == 4 and result.heat.ndim == 2
    strict = Detector(tiny_models()[kind], min_score=1.0)  # no candidate passes
    result = strict.detect(_air_scan(kind, (64, 64)))
    assert len(result.scores) == 0 and not result.alarm


def test_int8_runs_and_reports_change_against_fp32(tmp_path):
    calib = write_toy_set(tmp_path / "calib", 6, 4).parent
    fp32 = tiny_models()["dual"]
    int8 = tmp_path / "dual_int8.onnx"
    info = quantize_int8(fp32, int8, calib, limit=6)
    assert info.precision == "int8-qdq" and OnnxModel(int8).info.precision == "int8-qdq"
    x = np.random.default_rng(2).random((1, 6, 128, 160), dtype=np.float32)
    h32, b32 = OnnxModel(fp32).predict(x)
    h8, b8 = OnnxModel(int8).predict(x)
    assert h8.shape == h32.shape and np.isfinite(h8).all()
    print(f"int8 vs fp32: max |d heat| {np.abs(h8 - h32).max():.3g}, "
          f"max |d box| {np.abs(b8 - b32).max():.3g} px")
    Detector(int8).detect(_air_scan("dual"))  # empty scan on the quantized graph too


@pytest.mark.parametrize("calibration, reason", [
    ("missing", "missing: not a folder"),
    ("colour_only", "colour_only: no 'gray' scans for INT8 calibration (only ['color'] scans "
                    "there)"),
    ("empty", "empty: no 'gray' scans for INT8 calibration (no scans there)"),
])
def test_int8_calibration_is_checked_before_anything_is_written(tmp_path, capsys, calibration,
                                                                reason):
    import cv2

    from detector.cli import EXIT_USAGE, main

    (tmp_path / "empty").mkdir()
    (tmp_path / "colour_only").mkdir()
    cv2.imwrite(str(tmp_path / "colour_only" / "a.png"), np.full((40, 50, 3), (0, 90, 200),
                                                                 np.uint8))
    ckpt = tiny_checkpoint(tmp_path, "gray")
    out = tmp_path / "m" / "gray.onnx"
    assert main(["export", str(ckpt), "--out", str(out), "--int8", "--calibration",
                 str(tmp_path / calibration)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"--calibration: {tmp_path / reason}" in err and "Traceback" not in err, err
    assert not (tmp_path / "m").exists()


def test_export_refuses_a_version_the_registry_would_refuse(tmp_path, capsys):
    from detector.cli import EXIT_USAGE, main

    ckpt = tiny_checkpoint(tmp_path, "gray", threshold=0.01)
    out = tmp_path / "gray.onnx"
    assert main(["export", str(ckpt), "--out", str(out), "--version", "not a version"]) == \
        EXIT_USAGE
    assert "model version: expected letters, digits and ._+-" in capsys.readouterr().err
    assert not out.exists()
    assert main(["export", str(ckpt), "--out", str(out), "--version", "2.1.0+r5"]) == 0
    assert "its alarm threshold 0.0100 is below the 0.05" in capsys.readouterr().err


def test_export_warns_of_a_threshold_that_next_to_never_alarms(tmp_path, capsys):
    from detector.cli import main

    ckpt = tiny_checkpoint(tmp_path, "gray", threshold=1.0)
    assert main(["export", str(ckpt), "--out", str(tmp_path / "gray.onnx")]) == 0
    assert "warning: its alarm threshold 1.0000 is the highest a model can carry" in \
        capsys.readouterr().err


def test_metadata_describes_the_model_and_info_prints_it():
    path = tiny_models()["dual"]
    info = OnnxModel(path).info
    assert info.classes == ("concealed_organic",) and info.kind == "dual"
    assert info.input_spec.channels == ("high", "low", "ratio", "r", "g", "b")
    assert info.input_spec.palette == "classic" and info.stride == 4
    assert info.alarm_threshold == 0.5 and info.provenance["commit"] == "test"
    manifest = json.loads(manifest_path(path).read_text())
    assert manifest["sha256"] == OnnxModel(path).sha256
    proc = subprocess.run([sys.executable, "-m", "detector.cli", "info", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    for word in ("concealed_organic", "att_scale", "stride", "alarm thresh", "sha256", "commit"):
        assert word in proc.stdout


def test_export_names_the_model_as_told(tmp_path):
    """``export --name``: a run called e.g. color_hn can become the bundled 'color'; the name
    lands in the metadata and the manifest, and a bad name is a usage error."""
    from detector.cli import EXIT_USAGE, main

    ckpt = tiny_checkpoint(tmp_path, "color", seed=4)
    out = tmp_path / "color.onnx"
    assert main(["export", str(ckpt), "--out", str(out), "--version", "2.2.0",
                 "--name", "color"]) == 0
    assert OnnxModel(out).info.name == "color"
    assert json.loads(manifest_path(out).read_text())["name"] == "color"
    plain = tmp_path / "plain.onnx"
    export_onnx(ckpt, plain, trace_hw=(64, 96))
    assert OnnxModel(plain).info.name != "color"  # the run's own name by default
    assert main(["export", str(ckpt), "--out", str(out), "--name", "../x"]) == EXIT_USAGE


def test_bad_checkpoints_are_usage_errors_that_name_the_file(tmp_path, capsys):
    """export, evaluate (and train --resume, retrain) load checkpoints through
    checkpoint.load: a missing, truncated, foreign or pickled file is exit 64 with the file
    and the reason, never a traceback, and never torch's advice to unpickle it."""
    import pickle

    import torch

    from detector.cli import EXIT_USAGE, main

    good = tiny_checkpoint(tmp_path, "gray", seed=5)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:2000])
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint")
    pickled = tmp_path / "pickled.pt"
    pickled.write_bytes(pickle.dumps({"format": "concealscan-checkpoint-1"}))
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    cases = {tmp_path / "gone.pt": "checkpoint not found", truncated: "truncated or damaged",
             text: "never unpickled", pickled: "never unpickled",
             foreign: "not a concealscan checkpoint (expected format"}
    for path, reason in cases.items():
        for argv in (["export", str(path), "--out", str(tmp_path / "x.onnx")],
                     ["evaluate", "--model", str(path), "--data", str(tmp_path / "a.json")]):
            assert main(argv) == EXIT_USAGE, argv
            err = capsys.readouterr().err
            assert f"{path}: " in err and reason in err, err
            assert "Traceback" not in err and "weights_only" not in err, err
    assert not (tmp_path / "x.onnx").exists()


def test_sessions_do_not_spin_idle_threads():
    # serve runs 2 onnxruntime threads beside its requests on 2 shared cores (see OnnxModel)
    options = OnnxModel(tiny_models()["dual"], threads=2).session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.intra_op_num_threads == 2


def test_altered_or_non_onnx_models_are_refused(tmp_path):
    src = tiny_models()["color"]
    copy = tmp_path / "m.onnx"
    data = bytearray(src.read_bytes())
    copy.write_bytes(bytes(data))
    manifest_path(copy).write_text(manifest_path(src).read_text())
    OnnxModel(copy)  # an exact copy with its manifest loads
    data[-1] ^= 0xFF
    copy.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="does not match its manifest"):
        OnnxModel(copy)
    manifest_path(copy).unlink()
    with pytest.raises(ModelError, match="manifest"):
        OnnxModel(copy)
    pt = tmp_path / "model.pt"
    pt.write_bytes(b"not allowed")
    with pytest.raises(ModelError, match="only .onnx"):
        OnnxModel(pt)
