"""CT detection end to end with a tiny untrained model: preprocessing, ONNX/torch parity,
the validated result type, ``detect`` lines with ``box3d``, overlays and TDRs."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from ct_data import phantom_hu
from ct_model_fixture import CT_SPEC, tiny_ct_model

from detector.ct_inference import VolumeDetection, VolumeDetector, infer_volume
from detector.ct_preprocess import resample, slabs
from detector.model import OnnxModel
from detector.postprocess import DecodeParams
from detector.preprocess import InputSpec
from detector.volume import Volume
from detector.volume_readers import write_sidecar

SPEC = InputSpec(**CT_SPEC)


def volume(voxel=(4.0, 4.0, 4.0), shape=(12, 40, 48)):
    return Volume("v", phantom_hu(shape), voxel, ("mem",))


@pytest.mark.parametrize("voxel, expected", [
    ((4.0, 4.0, 4.0), (12, 40, 48)), ((2.0, 2.0, 2.0), (6, 20, 24)),
    ((8.0, 4.0, 2.0), (24, 40, 24)),
])
def test_resample_to_model_voxels(voxel, expected):
    grid = resample(volume(voxel), SPEC)
    assert grid.shape == expected and grid.dtype == np.float32
    assert grid.min() > -1100 and grid.max() < 400


def test_a_volume_of_many_thin_slices_resamples_slice_by_slice_alike():
    """Hundreds of slices (more than OpenCV takes as channels in one call) resample as each
    slice alone would."""
    hu = np.random.default_rng(0).uniform(-1000, 1000, (300, 24, 20)).astype(np.float32)
    grid = resample(Volume("v", hu, (4.0, 2.0, 2.0), ("mem",)), SPEC)
    assert grid.shape == (300, 12, 10)
    np.testing.assert_allclose(grid[0], hu[0].reshape(12, 2, 10, 2).mean(axis=(1, 3)),
                               rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(grid[299], hu[299].reshape(12, 2, 10, 2).mean(axis=(1, 3)),
                               rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("voxel, shape, expected", [
    ((4.0, 3.0, 3.0), (130, 64, 60), (130, 48, 45)),  # 3 mm pixels: a 4/3 shrink
    ((4.0, 0.9765625, 0.9765625), (130, 128, 128), (130, 31, 31)),  # a 500 mm field of 512
])
def test_a_non_integer_shrink_of_many_slices_averages_each_slice(voxel, shape, expected):
    """OpenCV 5 refuses area averaging on more than 4 channels unless the factor is a whole
    number: ordinary scanners' pixels (3 mm, 0.977 mm) must still resample."""
    hu = np.random.default_rng(1).uniform(-1000, 1000, shape).astype(np.float32)
    grid = resample(Volume("v", hu, voxel, ("mem",)), SPEC)
    assert grid.shape == expected
    # area averaging keeps each slice's mean and never leaves the slice's range
    np.testing.assert_allclose(grid.mean(axis=(1, 2)), hu.mean(axis=(1, 2)), atol=0.5)
    assert (grid.min(axis=(1, 2)) >= hu.min(axis=(1, 2)) - 1e-3).all()
    assert (grid.max(axis=(1, 2)) <= hu.max(axis=(1, 2)) + 1e-3).all()


@pytest.mark.parametrize("voxel", [(0.2, 4.0, 4.0), (4.0, 0.3, 4.0), (4.0, 4.0, 0.1)])
def test_a_grid_too_small_to_assess_is_refused(voxel):
    with pytest.raises(ValueError, match="too small to assess"):
        resample(volume(voxel), SPEC)


def test_slabs_are_three_neighbouring_slices_in_the_window():
    grid = np.stack([np.full((4, 5), v, np.float32) for v in (-1000, 500, 2000, 5000)])
    x = slabs(grid, SPEC)
    assert x.shape == (4, 3, 4, 5)
    np.testing.assert_allclose(x[0, :, 0, 0], [0, 0, 0.5])  # edge slice repeated
    np.testing.assert_allclose(x[3, :, 0, 0], [1, 1, 1])  # 2000 and above clip to 1
    with pytest.raises(ValueError, match="'ct' input spec"):
        slabs(grid, InputSpec.for_kind("gray"))


def test_onnx_and_torch_agree_on_a_volume():
    import torch

    from training import checkpoint

    ckpt, onnx_path = tiny_ct_model()
    net, spec = checkpoint.build_model(checkpoint.load(ckpt))

    def torch_predict(x):
        with torch.inference_mode():
            heat, ltrb = net.predict(torch.from_numpy(x))
        return heat.numpy(), ltrb.numpy()

    vol = volume(shape=(10, 56, 64))  # not the tracing size
    onnx = OnnxModel(onnx_path)
    x = slabs(resample(vol, spec), spec)
    for got, want in zip(onnx.predict(x), torch_predict(x), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)  # heat 0..1, ltrb pixels
    params = DecodeParams(stride=4, score_thresh=0.05)
    tb, ts = infer_volume(torch_predict, vol, spec, params)
    ob, os_ = infer_volume(onnx.predict, vol, spec, params)
    assert len(ts) > 0 and tb.shape == ob.shape
    np.testing.assert_allclose(ts, os_, atol=1e-4)
    # Fused boxes average many weak slab boxes of an untrained net: sub-voxel agreement.
    np.testing.assert_allclose(tb, ob, atol=0.5)


def test_volume_detector_returns_a_valid_result_in_volume_voxels():
    _, onnx_path = tiny_ct_model()
    vol = volume(voxel=(2.0, 2.0, 2.0), shape=(12, 40, 48))
    det = VolumeDetector(OnnxModel(onnx_path), min_score=0.05).detect(vol)
    assert isinstance(det, VolumeDetection) and det.size_dhw == (12, 40, 48)
    assert det.model["name"] == "tiny_ct" and len(det.model["sha256"]) == 64
    assert (det.boxes_xyzxyz[:, 3:] <= [48, 40, 12]).all()


@pytest.mark.parametrize("change, words", [
    (dict(boxes_xyzxyz=np.zeros((1, 4), np.float32)), "float32 (1, 6)"),
    (dict(scores=np.array([1.5], np.float32)), "0..1"),
    (dict(boxes_xyzxyz=np.array([[0, 0, 0, 5, 5, 99]], np.float32)), "high <="),
    (dict(alarm_threshold=0.0), "(0, 1]"),
])
def test_volume_detection_is_validated(change, words):
    base = dict(scan_id="v", size_dhw=(12, 40, 48), voxel_mm=(4.0, 4.0, 4.0),
                boxes_xyzxyz=np.array([[1, 2, 3, 4, 5, 6]], np.float32),
                scores=np.array([0.9], np.float32), labels=np.zeros(1, np.int64),
                class_names=("p",), alarm_threshold=0.5, model={}, time_ms=1.0)
    with pytest.raises(ValueError) as err:
        VolumeDetection(**{**base, **change})
    assert words in str(err.value)


def test_detect_on_a_volume_writes_box3d_lines_overlay_and_tdr(tmp_path):
    from detector.dicos import read_tdr

    _, onnx_path = tiny_ct_model()
    np.save(tmp_path / "bag.npy", phantom_hu((12, 40, 48)))
    write_sidecar(tmp_path / "bag.npy", (4, 4, 4))
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "detector.cli", "detect", str(tmp_path / "bag.npy"), "--out",
         str(out), "--model", str(onnx_path), "--dicos-out", str(tmp_path / "tdr")],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    line = json.loads((out / "results.jsonl").read_text())
    assert line["kind"] == "ct" and line["status"] == "ok" and line["size_dhw"] == [12, 40, 48]
    assert line["voxel_mm"] == [4.0, 4.0, 4.0] and line["detections"]
    assert all(len(d["box3d"]) == 6 for d in line["detections"])
    assert (out / "overlays" / "bag.png").stat().st_size > 0
    report = read_tdr(tmp_path / "tdr" / "bag.dcs")
    assert report.kind == "ct" and len(report.threats) == len(line["detections"])


def test_detect_on_volumes_with_ordinary_scanner_pixels(tmp_path):
    """A .npy at 3 mm pixels and a DICOM series at 0.9765625 mm pixels (both non-integer
    shrinks to the model's 4 mm) are assessed, not errors."""
    from ct_data import write_ct_series

    from detector.cli import main

    _, onnx_path = tiny_ct_model()
    np.save(tmp_path / "px3.npy", phantom_hu((12, 64, 60)))
    write_sidecar(tmp_path / "px3.npy", (4.0, 3.0, 3.0))
    write_ct_series(tmp_path / "px0977", np.rint(phantom_hu((12, 128, 128))),
                    voxel_mm=(4.0, 0.9765625, 0.9765625))
    out = tmp_path / "out"
    assert main(["detect", str(tmp_path / "px3.npy"), str(tmp_path / "px0977"), "--out",
                 str(out), "--model", str(onnx_path), "--no-overlays"]) == 0
    lines = [json.loads(s) for s in (out / "results.jsonl").read_text().splitlines()]
    assert [(ln["id"], ln["status"], ln["error"]) for ln in lines] == [
        ("px3", "ok", None), ("px0977", "ok", None)]
    assert lines[1]["voxel_mm"] == [4.0, 0.9765625, 0.9765625]


def test_a_volume_at_a_wrong_voxel_size_alarms_and_is_never_clear(tmp_path):
    """Voxel sizes in metres, or a volume that resamples to a grid of a voxel or two, are
    error lines that alarm, with TDRs that say the scan was not assessed."""
    from detector.cli import main
    from detector.dicos import read_tdr

    _, onnx_path = tiny_ct_model()
    for name, voxel in (("metres", [0.004, 0.004, 0.004]), ("thin", [0.5, 4, 4])):
        np.save(tmp_path / f"{name}.npy", phantom_hu((12, 40, 48)))
        (tmp_path / f"{name}.json").write_text(json.dumps({"voxel_mm": voxel}))
    out = tmp_path / "out"
    assert main(["detect", str(tmp_path / "metres.npy"), str(tmp_path / "thin.npy"), "--out",
                 str(out), "--model", str(onnx_path), "--no-overlays", "--dicos-out",
                 str(tmp_path / "tdr")]) == 2
    lines = {ln["id"]: ln for ln in map(json.loads, (out / "results.jsonl").open())}
    assert all(ln["status"] == "error" and ln["alarm"] for ln in lines.values())
    assert "metres.json" in lines["metres"]["error"]
    assert "unit mistake" in lines["metres"]["error"]
    assert "too small to assess" in lines["thin"]["error"]
    for name in lines:
        report = read_tdr(tmp_path / "tdr" / f"{name}.dcs")
        assert not report.assessed and report.alarm


def test_an_error_line_names_the_slice_or_sidecar_at_fault(tmp_path):
    """A series of many slices: the error says which one is truncated, relative to the
    series folder; a .npy's bad sidecar is named too."""
    from ct_data import write_ct_series

    from detector.cli import main

    _, onnx_path = tiny_ct_model()
    bad = write_ct_series(tmp_path / "bag", np.rint(phantom_hu()))[7]
    bad.write_bytes(bad.read_bytes()[:-500])
    np.save(tmp_path / "vol.npy", phantom_hu())
    (tmp_path / "vol.json").write_text('{"voxel_mm": [4, 4, 4], "kvp": 140}')
    out = tmp_path / "out"
    assert main(["detect", str(tmp_path / "bag"), str(tmp_path / "vol.npy"), "--out", str(out),
                 "--model", str(onnx_path), "--no-overlays"]) == 2
    lines = {ln["id"]: ln for ln in map(json.loads, (out / "results.jsonl").open())}
    assert lines["bag"]["error"].startswith("slice_007.dcm: truncated: pixel data holds")
    assert lines["vol"]["error"].startswith("vol.json: unknown sidecar keys")
    assert all(ln["alarm"] for ln in lines.values())


def test_info_shows_a_ct_models_voxel_size_and_hu_window(capsys):
    """`concealscan info` on a CT model prints what its input means (voxel size, HU window),
    not the 2-D attenuation scales, which a CT model does not use."""
    from detector.cli import main

    _, onnx_path = tiny_ct_model()
    assert main(["info", str(onnx_path)]) == 0
    line = next(s for s in capsys.readouterr().out.splitlines() if "input" in s)
    assert "voxel_mm=4.0" in line and "hu_window=[-1000.0, 2000.0]" in line
    assert "att_scale" not in line
