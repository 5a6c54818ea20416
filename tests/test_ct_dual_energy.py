"""Dual-energy CT: a volume with its low-energy volume beside it (``NAME_<kVp>kvp.npy``), the
six-channel slabs a dual-energy CT model reads, and train -> evaluate -> export -> detect."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ct_data import phantom_hu, synth_small_ct_sets, tiny_ct_recipe
from ct_model_fixture import CT_SPEC, tiny_ct_model

from detector.ct_preprocess import model_grids, slabs
from detector.errors import ScanError
from detector.preprocess import CT_DUAL_ENERGY, InputSpec
from detector.volume import Volume
from detector.volume_inputs import VolumeRef, discover_inputs, read_input
from detector.volume_readers import write_sidecar

SPEC1 = InputSpec(**CT_SPEC)
SPEC2 = InputSpec(**{**CT_SPEC, "channels": CT_DUAL_ENERGY})


def _write(folder, name, hu, voxel=(4.0, 4.0, 4.0)):
    path = folder / f"{name}.npy"
    np.save(path, hu.astype(np.int16))
    write_sidecar(path, voxel)
    return path


def test_spec_counts_energies():
    assert (SPEC1.ct_energies, SPEC2.ct_energies, InputSpec.for_kind("dual").ct_energies) == (
        1, 2, 0)
    assert InputSpec.from_dict(SPEC2.to_dict()) == SPEC2
    with pytest.raises(ValueError, match="channels"):
        InputSpec(**{**CT_SPEC, "channels": CT_DUAL_ENERGY[:5]})


def test_volume_low_is_checked():
    hu = phantom_hu()
    vol = Volume("v", hu, (4, 4, 4), ("a",), low=hu - 40, low_kvp=80.0)
    assert vol.low.shape == hu.shape
    with pytest.raises(ValueError, match="Volume.low: expected the shape"):
        Volume("v", hu, (4, 4, 4), ("a",), low=hu[1:])
    with pytest.raises(ValueError, match="Volume.low: contains NaN"):
        Volume("v", hu, (4, 4, 4), ("a",), low=np.full_like(hu, np.nan))
    with pytest.raises(ValueError, match="low_kvp: given without"):
        Volume("v", hu, (4, 4, 4), ("a",), low_kvp=80.0)


def test_folder_pairs_each_volume_with_its_low_energy_file(tmp_path):
    hu = phantom_hu()
    _write(tmp_path, "bag1", hu)
    _write(tmp_path, "bag1_80kvp", hu - 40)
    _write(tmp_path, "bag2", hu)  # single energy
    _write(tmp_path, "bag3", hu)  # two second energies: ambiguous, each its own input
    _write(tmp_path, "bag3_80kvp", hu)
    _write(tmp_path, "bag3_100kvp", hu)
    _write(tmp_path, "lone_80kvp", hu)  # no main volume: an input of its own
    refs = discover_inputs([tmp_path])
    assert [r.id for r in refs] == ["bag1", "bag2", "bag3", "bag3_100kvp", "bag3_80kvp",
                                    "lone_80kvp"]
    assert refs[0] == VolumeRef("bag1", tmp_path / "bag1.npy", tmp_path / "bag1_80kvp.npy", 80.0)
    assert all(r.low is None for r in refs[1:])
    # a file named on the command line finds its low-energy file too
    assert discover_inputs([tmp_path / "bag1.npy"]) == refs[:1]
    vol = read_input(refs[0])
    np.testing.assert_allclose(vol.low, (hu - 40).astype(np.int16))
    assert vol.low_kvp == 80.0 and vol.sources == (str(tmp_path / "bag1.npy"),
                                                   str(tmp_path / "bag1_80kvp.npy"))


def test_low_energy_file_that_does_not_match_is_a_scan_error(tmp_path):
    hu = phantom_hu()
    _write(tmp_path, "bag", hu)
    _write(tmp_path, "bag_80kvp", hu[:-1])
    with pytest.raises(ScanError, match="bag_80kvp.npy.*does not match its main volume"):
        read_input(discover_inputs([tmp_path])[0])


def test_dual_energy_slabs_are_both_volumes_in_one_window():
    hu = phantom_hu()
    vol = Volume("v", hu, (4, 4, 4), ("a",), low=hu - 300)
    grid, low = model_grids(vol, SPEC2)
    x = slabs(grid, SPEC2, 0, None, low)
    assert x.shape == (hu.shape[0], 6, *hu.shape[1:])
    np.testing.assert_allclose(x[:, :3], slabs(grid, SPEC1), atol=1e-6)
    np.testing.assert_allclose(x[5, 4], np.clip((hu[5] - 300 + 1000) / 3000, 0, 1), atol=1e-5)
    assert model_grids(vol, SPEC1)[1] is None
    with pytest.raises(ValueError, match="dual-energy volumes, and the scan has one energy"):
        model_grids(Volume("v", hu, (4, 4, 4), ("a",)), SPEC2)
    with pytest.raises(ValueError, match="reads 2 energies, got 1"):
        slabs(grid, SPEC2)
    with pytest.raises(ValueError, match="reads 1 energies, got 2"):
        slabs(grid, SPEC1, low=low)


@pytest.fixture(scope="module")
def dual_sets(tmp_path_factory):
    return synth_small_ct_sets(tmp_path_factory.mktemp("dualct"), {"train": 4, "val": 3},
                               kvp=(140, 80))


def test_slab_set_flips_slice_order_in_each_energy(dual_sets):
    from training.ct_data import CtDataConfig, CtSlabSet, CtVolumes, spec_for

    spec = spec_for(CtDataConfig(voxel_mm=8.0), CT_DUAL_ENERGY)
    volumes = CtVolumes(dual_sets / "train" / "annotations.json", ["concealed_organic"], 2)
    assert volumes[0].volume.low is not None and volumes[0].volume.low_kvp == 80.0
    plain, flipped = CtSlabSet(volumes, spec, flip=False), CtSlabSet(volumes, spec, seed=3)
    reordered = 0
    for i in range(len(plain)):
        a, b = plain[i][0].numpy(), flipped[i][0].numpy()
        for x in (b, b[:, :, ::-1]):
            if np.array_equal(x, a[[2, 1, 0, 5, 4, 3]]) and not np.array_equal(x, a):
                reordered += 1
    assert reordered > 0
    with pytest.raises(ValueError, match="exactly one second-energy volume"):
        from training.ct_data import low_energy_file

        low_energy_file(dual_sets, {"id": 7, "file_name": "x.npy", "files": {"ct": "x.npy"}})


def test_dual_energy_ct_train_evaluate_detect(dual_sets, tmp_path):
    import torch

    from detector.cli import main
    from detector.model import OnnxModel, manifest_path

    cfg = tmp_path / "ct2.yaml"
    cfg.write_text(tiny_ct_recipe("t_ct2", dual_sets, tmp_path / "runs", CT_DUAL_ENERGY))
    assert main(["train", "--config", str(cfg)]) == 0
    ckpt = torch.load(tmp_path / "runs" / "t_ct2" / "last.pt", weights_only=True)
    assert ckpt["input_spec"]["channels"] == list(CT_DUAL_ENERGY)
    assert "ap3d_25" in ckpt["metrics"]

    # An untrained dual-energy model that fires: evaluate on the dual set, then detect.
    _, onnx_path = tiny_ct_model(energies=2)
    models = tmp_path / "models"
    models.mkdir()
    model = models / "ct.onnx"
    model.write_bytes(onnx_path.read_bytes())
    manifest_path(model).write_text(manifest_path(onnx_path).read_text())
    assert OnnxModel(model).info.input_spec == InputSpec(**{**CT_SPEC,
                                                           "channels": CT_DUAL_ENERGY})
    assert main(["evaluate", "--model", str(model), "--data",
                 str(dual_sets / "val" / "annotations.json")]) == 0
    # one result per scene (the 80 kVp files are read with their volumes), plus a volume
    # without its low-energy file: manual check, saying why
    scans = tmp_path / "scans"
    scans.mkdir()
    for f in sorted((dual_sets / "val").glob("ct_00000[01]*")):
        (scans / f.name).write_bytes(f.read_bytes())
    (scans / "single.npy").write_bytes((dual_sets / "val" / "ct_000002.npy").read_bytes())
    (scans / "single.json").write_bytes((dual_sets / "val" / "ct_000002.json").read_bytes())
    out = tmp_path / "out"
    main(["detect", str(scans), "--model", str(model), "--out", str(out), "--dicos-out",
          str(tmp_path / "tdr")])
    lines = {r["id"]: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}
    assert sorted(lines) == ["ct_000000", "ct_000001", "single"]
    assert lines["ct_000000"]["status"] == "ok" and lines["ct_000001"]["status"] == "ok"
    assert lines["single"]["status"] == "error" and lines["single"]["alarm"] is True
    assert "dual-energy" in lines["single"]["error"] and "single_<kVp>kvp.npy" in \
        lines["single"]["error"]
    # the TDR references both files of a dual-energy scan
    from detector.dicos import read_tdr

    report = read_tdr(tmp_path / "tdr" / "ct_000000.dcs")
    assert [Path(s).name for s in report.sources] == ["ct_000000.npy", "ct_000000_80kvp.npy"]
    assert len(report.images) == 2
