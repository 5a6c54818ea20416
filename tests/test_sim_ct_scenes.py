"""CT simulation of the 2-D simulator's scenes: voxelisation, labels, `synth --kinds ct`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from training.sim.geometry import volume_factor
from training.sim.scene import Primitive
from training.sim_ct.voxelise import CtGrid, box3d, fill, label_mask

GRID = CtGrid((40, 48, 48), voxel_mm=4.0, belt_mm=16.0, supersample=2)
SMALL_CT = ("ct: {voxel_mm: 8.0, size: 48, slices: [32, 34], margin: [1, 2], angles: 48, "
            "kvp: [140, 80]}\nscene: {positive_fraction: 1.0, items: [1, 3]}\n")


def _prim(shape, size=(40.0, 24.0, 16.0), angle=0.0, density=1.0):
    return Primitive(shape=shape, material="water", density=density, size=size,
                     center=(80.0, 90.0, 30.0), angle=angle)


@pytest.mark.parametrize("shape", ["box", "pillow", "ellipsoid", "cylinder", "rod"])
@pytest.mark.parametrize("angle", [0.0, 30.0])
def test_voxel_fill_holds_the_solid_volume(shape, angle):
    prim = _prim(shape, angle=angle)
    window, occ, dens = fill(prim, GRID)
    expected = volume_factor(shape, prim.roundness) * math.prod(prim.size)
    assert occ.sum() * GRID.voxel_mm ** 3 == pytest.approx(expected, rel=0.04)
    assert occ.min() >= 0 and occ.max() <= 1 + 1e-6 and np.array_equal(occ, dens)


def test_height_maps_to_rows_from_the_top():
    window, occ, _ = fill(_prim("box", size=(8.0, 8.0, 8.0)), GRID)
    rows = np.arange(window[1].start, window[1].stop)[occ.sum(axis=(0, 2)) > 0]
    # the box spans 26..34 mm above the belt; the belt is 16 mm above the bottom row edge
    top = GRID.size_dhw[1] * 4.0 - 16.0
    assert rows.min() == math.floor((top - 34) / 4) and rows.max() == math.ceil((top - 26) / 4) - 1


def test_cavity_removes_its_host_exactly():
    from training.sim.scene import Scene
    from training.sim_ct.voxelise import voxelise

    host = _prim("pillow", size=(60.0, 40.0, 20.0))
    cavity = _prim("pillow", size=(60.0, 40.0, 20.0), density=-1.0)
    scene = Scene((48, 40), 4.0, 1e6, [host, cavity], {}, [], [], [], 0.0)
    vox = voxelise(scene, GRID)
    belt_rows = slice(GRID.size_dhw[1] - 5, None)
    assert np.abs(vox.basis[:, : belt_rows.start]).max() < 1e-5


def test_outside_the_grid_is_skipped():
    far = Primitive(shape="box", material="water", density=1.0, size=(10.0, 10.0, 10.0),
                    center=(-100.0, 50.0, 20.0))
    assert fill(far, GRID) is None


@pytest.mark.parametrize("voxels, expected", [
    ([], None),
    ([(3, 4, 5)], ([5, 4, 3, 6, 5, 4], [[3, 5, 4, 6, 5]])),
    ([(1, 2, 3), (2, 6, 7)], ([3, 2, 1, 8, 7, 3], [[1, 3, 2, 4, 3], [2, 7, 6, 8, 7]])),
])
def test_box3d_is_end_exclusive_x_y_z(voxels, expected):
    mask = np.zeros((8, 10, 12), bool)
    for z, y, x in voxels:
        mask[z, y, x] = True
    found = box3d(mask)
    assert (found is None) if expected is None else (list(found[0]), found[1]) == expected


def test_label_mask_keeps_thin_packets():
    thin = np.zeros((4, 4, 4), np.float32)
    thin[1, 1, 1:3] = 0.2  # a packet less than a quarter voxel thick
    assert label_mask(thin).sum() == 2
    assert not label_mask(np.zeros((2, 2, 2), np.float32)).any()


@pytest.fixture(scope="module")
def ct_set(tmp_path_factory):
    from detector.cli import main

    root = tmp_path_factory.mktemp("ct")
    (root / "small.yaml").write_text(SMALL_CT)
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        assert main(["synth", "--kinds", "ct", "--out", str(root / name), "--count", "2",
                     "--seed", str(seed), "--config", str(root / "small.yaml")]) == 0
    return root


def test_synth_ct_writes_readable_volumes_and_3d_labels(ct_set):
    from detector.volume_readers import read_volume

    doc = json.loads((ct_set / "a" / "annotations.json").read_text())
    assert len(doc["images"]) == 2 and doc["annotations"]
    for image in doc["images"]:
        for name in image["files"].values():
            volume = read_volume(ct_set / "a" / name)
            assert volume.voxel_mm == (8.0, 8.0, 8.0)
            assert list(volume.size_dhw) == image["size_dhw"]
            assert np.percentile(volume.hu, 5) == pytest.approx(-1000, abs=60)  # air
    for ann in doc["annotations"]:
        d, h, w = doc["images"][ann["image_id"] - 1]["size_dhw"]
        x1, y1, z1, x2, y2, z2 = ann["bbox3d"]
        assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h and 0 <= z1 < z2 <= d
        assert [s[0] for s in ann["bbox_slices"]][0] == z1


def test_ct_benign_objects_are_block_like_solids_clear_of_every_packet(ct_set, tmp_path,
                                                                      capsys):
    """``benign_object`` in CT, as in 2-D: 3-D boxes of the scene's other block-like benign
    solids, inside the volume and clear of every packet; ``synth --add-benign-objects`` gives
    a CT set written without the field the same field from its scene records."""
    import shutil

    from detector.cli import main
    from training.sim.labels import BENIGN_DENSITY

    total = 0
    for name in "ac":
        doc = json.loads((ct_set / name / "annotations.json").read_text())
        for image in doc["images"]:
            d, h, w = image["size_dhw"]
            packets = [a["bbox3d"] for a in doc["annotations"] if a["image_id"] == image["id"]]
            for obj in image["benign_object"]:
                x1, y1, z1, x2, y2, z2 = obj["bbox3d"]
                assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h and 0 <= z1 < z2 <= d
                assert BENIGN_DENSITY[0] <= obj["density"] <= BENIGN_DENSITY[1]
                for p in packets:  # apart by at least one voxel along some axis
                    assert any(obj["bbox3d"][k + 3] < p[k] or p[k + 3] < obj["bbox3d"][k]
                               for k in range(3)), (obj, p)
            total += len(image["benign_object"])
    assert total > 0

    old = tmp_path / "old"
    shutil.copytree(ct_set / "a", old)
    doc = json.loads((old / "annotations.json").read_text())
    for image in doc["images"]:
        del image["benign_object"]
    (old / "annotations.json").write_text(json.dumps(doc))
    assert main(["synth", "--out", str(old), "--add-benign-objects"]) == 0
    assert "benign objects" in capsys.readouterr().out
    assert json.loads((old / "annotations.json").read_text()) == \
        json.loads((ct_set / "a" / "annotations.json").read_text())


def test_synth_ct_is_deterministic_per_seed_and_replays(ct_set, tmp_path):
    from detector.cli import main

    a, b, c = (ct_set / n for n in "abc")
    assert (a / "annotations.json").read_bytes() == (b / "annotations.json").read_bytes()
    for name in ("ct_000000.npy", "ct_000001_80kvp.npy"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    assert (a / "ct_000000.npy").read_bytes() != (c / "ct_000000.npy").read_bytes()
    assert main(["synth", "--out", str(tmp_path), "--replay",
                 str(a / "ct_000001_scene.json")]) == 0
    assert (tmp_path / "ct_000001.npy").read_bytes() == (a / "ct_000001.npy").read_bytes()


def test_synth_ct_resume_after_an_interruption_gives_the_same_volumes(ct_set, tmp_path,
                                                                     monkeypatch, capsys):
    import training.sim_ct.writer as writer
    from detector.cli import main

    real, made = writer._make, []

    def make(job, index):  # the run is killed after its first volume
        if made:
            raise KeyboardInterrupt
        made.append(index)
        return real(job, index)

    argv = ["synth", "--kinds", "ct", "--out", str(tmp_path), "--count", "2", "--seed", "3",
            "--config", str(ct_set / "small.yaml")]
    monkeypatch.setattr(writer, "_make", make)
    assert main(argv) == 130  # what Ctrl-C gives
    monkeypatch.undo()
    assert not (tmp_path / "annotations.json").exists()
    assert "the volumes finished so far are kept: the same command with --resume" in \
        capsys.readouterr().err
    assert main([*argv, "--resume"]) == 0
    assert "resuming: 1 of 2 volumes were made by an earlier run" in capsys.readouterr().err
    a = ct_set / "a"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in a.iterdir())
    for path in a.iterdir():
        assert (tmp_path / path.name).read_bytes() == path.read_bytes(), path.name


def test_an_explicit_prefix_is_kept_for_ct(ct_set, tmp_path):
    from detector.cli import main

    assert main(["synth", "--kinds", "ct", "--out", str(tmp_path), "--count", "1", "--seed", "3",
                 "--config", str(ct_set / "small.yaml"), "--prefix", "synth_"]) == 0
    assert (tmp_path / "synth_000000.npy").read_bytes() == \
        (ct_set / "a" / "ct_000000.npy").read_bytes()


def test_overwrite_replaces_a_ct_set_listed_only_by_its_manifest(ct_set, tmp_path):
    """A CT set whose annotations.json was cut short (as a full disk left it before writes
    were atomic): its manifest still names every volume, sidecar and scene record."""
    import shutil

    from detector.cli import main

    out = tmp_path / "set"
    shutil.copytree(ct_set / "a", out)
    (out / "annotations.json").write_text('{"images": [{"id": 1, "scan_')
    assert main(["synth", "--kinds", "ct", "--out", str(out), "--count", "1", "--seed", "3",
                 "--config", str(ct_set / "small.yaml"), "--overwrite"]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(["annotations.json", "manifest.json", "ct_000000.npy",
                            "ct_000000.json", "ct_000000_80kvp.npy", "ct_000000_80kvp.json",
                            "ct_000000_scene.json"])


@pytest.mark.parametrize("text, message", [
    ("ct: {voxels: 4}\n", "unknown key"),
    ("ct: {kvp: [999]}\n", "ct.kvp"),
    ("ct: {slices: [40, 20]}\n", "ct.slices"),
    ("ct: {size: 0}\n", "ct.size"),
    ("ct: {voxel_mm: [4]}\n", r"ct\.voxel_mm: expected a positive number, got \[4\]"),
    ("ct: {voxel_mm: .inf}\n", "ct.voxel_mm: expected a positive number"),
    ("ct: {voxel_mm: 0.1}\n", "ct: the grid"),
    ("ct: {kvp: 140}\n", "ct.kvp: expected a list of kVps"),
    ("ct: {kvp: [140, 140]}\n", "ct.kvp: expected each energy once"),
    ("ct: {slices: [40.5, 50.5]}\n", r"ct\.slices: expected \[low, high\] integers"),
    ("ct: {margin: [1.5, 2]}\n", r"ct\.margin: expected \[low, high\] integers"),
    ("ct: {photons_per_ray: [1e5, .nan]}\n", "ct.photons_per_ray: expected"),
    ("scene: {packets_per_positive: [0, 0]}\n", "scene.packets_per_positive"),
    ("scanner: {kvp: [80]}\nsensor: {dose_ugy: [1, 1]}\n",
     "scanner, sensor: not used by --kinds ct, which takes only scene: and ct:; the CT scanner"),
    ("colour: {jitter: 0.1}\n", "colour: not used by --kinds ct"),
    ("png_compression: 3\n", "png_compression: not used by --kinds ct"),
])
def test_bad_ct_config_names_the_key(tmp_path, text, message):
    from training.sim.config import ConfigError
    from training.sim_ct.config import load_ct_config

    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_ct_config(path)


def test_ct_numbers_written_as_text_are_numbers(tmp_path):
    from training.sim_ct.config import CtConfig, load_ct_config

    path = tmp_path / "text.yaml"
    path.write_text("ct: {photons_per_ray: [1e5, 4e5]}\n")  # YAML 1.1: two strings
    assert load_ct_config(path)[1] == CtConfig()


@pytest.mark.parametrize("path", sorted(Path("configs/synth_ct").glob("*.yaml")))
def test_shipped_ct_configs_load(path):
    from training.sim_ct.config import CtConfig, load_ct_config

    assert isinstance(load_ct_config(path)[1], CtConfig)
