"""CT training and evaluation: slab data, 3-D AP at IoU 0.25, train/evaluate/export CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ct_data import synth_small_ct_sets, tiny_ct_recipe

from training.ct_data import MIN_BOX_PX, CtDataConfig, CtSlabSet, CtVolumes, _widen, spec_for
from training.ct_eval import ap_3d, object_hits_3d
from training.metrics import ScanRecord

BOX = [2.0, 2.0, 2.0, 10.0, 10.0, 10.0]


def rec(gt, dets=(), scores=()):
    gt = np.asarray(gt, np.float32).reshape(-1, 6)
    boxes = np.asarray(dets, np.float32).reshape(-1, 6)
    return ScanRecord("v", (16, 16), gt, np.zeros(len(gt), np.int64), boxes,
                      np.asarray(scores, np.float32), np.zeros(len(boxes), np.int64),
                      [{}] * len(gt))


@pytest.mark.parametrize("records, expected", [
    ([rec([])], -1.0),  # no ground truth
    ([rec([BOX])], 0.0),  # nothing detected
    ([rec([BOX], [BOX], [0.9])], 1.0),
    ([rec([BOX], [[2, 2, 2, 10, 10, 3]], [0.9])], 0.0),  # IoU 1/8 < 0.25
    ([rec([BOX], [[2, 2, 2, 10, 10, 5]], [0.9])], 1.0),  # IoU 3/8 >= 0.25
    ([rec([BOX], [BOX, BOX], [0.9, 0.8])], 1.0),  # a duplicate after the hit costs nothing
    ([rec([BOX], [[20, 20, 20, 30, 30, 30], BOX], [0.9, 0.8])], 0.5),  # FP ranked first
    ([rec([BOX]), rec([BOX], [BOX], [0.5])], 0.5),  # half the objects found
])
def test_ap_3d_table(records, expected):
    assert ap_3d(records) == pytest.approx(expected, abs=0.01)


def test_object_hits_need_an_alarming_overlap():
    r = rec([BOX, [20, 20, 20, 24, 24, 24]], [BOX, [20, 20, 20, 24, 24, 24]], [0.9, 0.2])
    assert object_hits_3d(r, 0.5).tolist() == [True, False]
    assert object_hits_3d(rec([BOX]), 0.5).tolist() == [False]


@pytest.mark.parametrize("box, expected", [
    ([10, 10, 30, 40], [10, 10, 30, 40]),
    ([10, 20, 30, 22], [10, 21 - MIN_BOX_PX / 2, 30, 21 + MIN_BOX_PX / 2]),
    ([5, 5, 6, 6], [5.5 - MIN_BOX_PX / 2, 5.5 - MIN_BOX_PX / 2, 5.5 + MIN_BOX_PX / 2,
                    5.5 + MIN_BOX_PX / 2]),
])
def test_thin_slab_boxes_are_widened_to_get_a_positive_cell(box, expected):
    assert _widen(np.asarray([box], np.float32))[0].tolist() == pytest.approx(expected)
    assert _widen(np.zeros((0, 4), np.float32)).shape == (0, 4)


@pytest.fixture(scope="module")
def ct_sets(tmp_path_factory):
    return synth_small_ct_sets(tmp_path_factory.mktemp("ctsets"), {"train": 5, "val": 4})


def test_slab_set_puts_packet_slabs_first_with_their_slice_boxes(ct_sets):
    volumes = CtVolumes(ct_sets / "train" / "annotations.json", ["concealed_organic"])
    spec = spec_for(CtDataConfig(voxel_mm=8.0))
    plain = CtSlabSet(volumes, spec, flip=False)
    assert 0 < plain.positives < len(plain)
    x, target = plain[0]
    assert tuple(x.shape) == (3, 48, 48) and 0 <= float(x.min()) and float(x.max()) <= 1
    assert len(target["boxes"]) >= 1
    assert len(plain[len(plain) - 1][1]["boxes"]) == 0
    flipped = CtSlabSet(volumes, spec, flip=True, seed=0)
    for i in range(plain.positives):  # a flip moves image and boxes together
        (a, ta), (b, tb) = plain[i], flipped[i]
        if not np.array_equal(a.numpy(), b.numpy()):
            mirrored = np.array_equal(a.numpy()[:, :, ::-1], b.numpy()) or np.array_equal(
                a.numpy()[::-1, :, ::-1], b.numpy())
            if mirrored:
                ref = ta["boxes"].numpy().copy()
                ref[:, [0, 2]] = 48 - ref[:, [2, 0]]
                np.testing.assert_allclose(tb["boxes"].numpy(), ref)


def test_hard_negatives_carry_the_benign_solids_each_slab_cuts(ct_sets):
    volumes = CtVolumes(ct_sets / "train" / "annotations.json", ["concealed_organic"])
    assert sum(len(volumes[v].others_xyzxyz) for v in range(len(volumes))) > 0
    spec = spec_for(CtDataConfig(voxel_mm=8.0))
    plain = CtSlabSet(volumes, spec, flip=False)
    hard = CtSlabSet(volumes, spec, flip=False, hard_negatives=True)
    assert "decoys" not in plain[0][1]
    cut = [i for i in range(len(hard)) if len(hard[i][1]["decoys"])]
    assert 0 < len(cut) < len(hard)  # some slabs cut a benign solid, some cut none
    # the footprint of each benign 3-D box, on the slices its z-range covers
    k, z, _, _ = hard.items[cut[0]]
    item, grid_d = volumes[k], hard.grids[k].shape[0]
    zf = grid_d / item.volume.size_dhw[0]
    boxes = np.concatenate([volumes[k].lookalikes_xyzxyz, volumes[k].others_xyzxyz])
    assert any(np.floor(b[2] * zf) <= z < np.ceil(b[5] * zf) for b in boxes)
    flipped = CtSlabSet(volumes, spec, flip=True, seed=0, hard_negatives=True)
    for i in cut:  # a flip moves the negatives with the image
        (a, ta), (b, tb) = hard[i], flipped[i]
        if np.array_equal(a.numpy()[:, :, ::-1], b.numpy()):
            ref = ta["decoys"].numpy().copy()
            ref[:, [0, 2]] = 48 - ref[:, [2, 0]]
            np.testing.assert_allclose(tb["decoys"].numpy(), ref)
            break
    else:
        pytest.fail("no slab cutting a benign solid was mirrored")


def test_ct_training_with_hard_negatives_feeds_the_object_term(ct_sets, tmp_path):
    import csv

    from detector.cli import main

    cfg = tmp_path / "ct_hn.yaml"
    cfg.write_text(tiny_ct_recipe("t_ct_hn", ct_sets, tmp_path / "runs")
                   + "augment: {hard_negatives: true}\nloss: {decoy_weight: 0.3}\n")
    assert main(["train", "--config", str(cfg)]) == 0
    with (tmp_path / "runs" / "t_ct_hn" / "metrics.csv").open() as f:
        row = next(csv.DictReader(f))
    assert float(row["obj"]) > 0


def test_several_training_sets_are_drawn_per_set(ct_sets, tmp_path):
    from training.config import load_config
    from training.ct_data import build_ct_data
    from training.fit import Dist

    one = CtSlabSet(CtVolumes(ct_sets / "train" / "annotations.json", ["concealed_organic"]),
                    spec_for(CtDataConfig(voxel_mm=8.0)), flip=False)
    train = ct_sets / "train" / "annotations.json"
    cfg = tmp_path / "two.yaml"
    cfg.write_text(f"""name: two
kind: ct
classes: [concealed_organic]
data:
  train: [{{path: {train}}}, {{path: {train}, weight: 2.0}}]
  ct: {{voxel_mm: 8.0, negative_slabs: 0.5, flip: false}}
""")
    slabs, sampler, _ = build_ct_data(load_config(cfg), spec_for(CtDataConfig(voxel_mm=8.0)),
                                      Dist())
    (p, n) = one.groups[0]
    assert slabs.groups == [(p, n), (p, n)] and len(slabs) == 2 * len(one)
    assert slabs.positives == 2 * p
    for i in (0, p + n):  # each set starts with its packet slabs
        np.testing.assert_array_equal(slabs[i][0].numpy(), one[0][0].numpy())
    drawn = np.array(list(iter(sampler)))
    second = drawn >= p + n  # the second set, at weight 2, is drawn twice as often
    assert (drawn < p).sum() == p and (second & (drawn < 2 * p + n)).sum() == 2 * p
    assert len(drawn) == p + round(0.5 * n) + 2 * p + round(1.0 * n)


def test_ct_train_and_evaluate_cli(ct_sets, tmp_path):
    import torch
    from ct_model_fixture import tiny_ct_model

    from detector.cli import main

    cfg = tmp_path / "ct.yaml"
    cfg.write_text(tiny_ct_recipe("t_ct", ct_sets, tmp_path / "runs"))
    assert main(["train", "--config", str(cfg)]) == 0
    ckpt = torch.load(tmp_path / "runs" / "t_ct" / "last.pt", weights_only=True)
    assert ckpt["input_spec"]["kind"] == "ct" and ckpt["input_spec"]["voxel_mm"] == 8.0
    assert "ap3d_25" in ckpt["metrics"]

    # An untrained model that does fire (prior 0.3): evaluation, report, stored threshold.
    _, onnx_path = tiny_ct_model()
    from detector.model import manifest_path

    model = tmp_path / "ct.onnx"
    model.write_bytes(onnx_path.read_bytes())
    manifest_path(model).write_text(manifest_path(onnx_path).read_text())
    val = str(ct_sets / "val" / "annotations.json")
    # (no packet alarms at its threshold: stored only when told to, --allow-zero-pd)
    assert main(["evaluate", "--model", str(model), "--data", val, "--report",
                 str(tmp_path / "rep"), "--target-pfa", "0.5", "--allow-zero-pd"]) == 0
    report = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert report["volumes"] == 4 and 0 <= report["ap3d_25"] <= 1
    assert set(report) >= {"pd", "pfa", "threshold", "by_strategy", "at_pfa_0.05_on_this_set"}
    negatives = sum(not e["positive"] for e in json.loads(Path(val).read_text())["images"])
    assert report["false_alarms"]["negative_scans"] == negatives
    from detector.model import OnnxModel

    assert OnnxModel(model).info.alarm_threshold == pytest.approx(report["threshold"])

    # Two sets judged as one (thresholds on more negatives); ids keep the sets apart.
    train = str(ct_sets / "train" / "annotations.json")
    assert main(["evaluate", "--model", str(model), "--data", val, train, "--report",
                 str(tmp_path / "both")]) == 0
    both = json.loads((tmp_path / "both" / "metrics.json").read_text())
    n_train = len(json.loads(Path(train).read_text())["images"])
    assert both["volumes"] == 4 + n_train
    ids = [json.loads(line)["id"] for line in (tmp_path / "both" / "per_volume.jsonl").open()]
    assert {i.split("/")[0] for i in ids} == {"val", "train"} and len(set(ids)) == len(ids)


def test_ct_recipe_loads():
    from training.config import load_config

    cfg = load_config("configs/train/ct.yaml")
    assert cfg.kind == "ct" and cfg.data.ct.voxel_mm == 4.0
    assert cfg.data.ct.hu_window == (-1000.0, 2000.0)


def test_ct_recipe_rejects_strategy_oversampling():
    """``oversample`` weights 2-D scans; a CT recipe that sets it is told so, not ignored."""
    from detector.errors import UsageError
    from training.config import DataConfig, TrainConfig
    from training.data import CocoSource
    from training.fit import build_data

    cfg = TrainConfig(name="c", kind="ct", classes=["concealed_organic"], data=DataConfig(
        train=[CocoSource("ct.json", oversample={"in_can": 2})]))
    with pytest.raises(UsageError, match="oversample is for 2-D scans"):
        build_data(cfg, spec_for(cfg.data.ct), None)


def test_ct_volumes_carry_benign_solids_for_false_alarm_causes(ct_sets):
    """The volumes' ``benign_object`` boxes reach the evaluation records, so CT false alarms
    on other benign solids are named as such, not "elsewhere"."""
    from training.metrics import false_alarm_causes

    path = ct_sets / "val" / "annotations.json"
    doc = json.loads(path.read_text())
    volumes = CtVolumes(path, ["concealed_organic"])
    records = []
    for i, image in enumerate(doc["images"]):
        item = volumes[i]
        want = np.array([o["bbox3d"] for o in image["benign_object"]], np.float32).reshape(-1, 6)
        np.testing.assert_array_equal(item.others_xyzxyz, want)
        # a detection exactly on each benign solid, nothing else
        records.append(ScanRecord(image["scan_id"], (1, 1), item.boxes_xyzxyz,
                                  np.zeros(len(item.boxes_xyzxyz), np.int64), want,
                                  np.full(len(want), 0.9, np.float32),
                                  np.zeros(len(want), np.int64), item.objects,
                                  item.lookalikes_xyzxyz, item.others_xyzxyz))
    assert sum(len(r.benign_boxes) for r in records) > 0
    from detector.ct_fuse import iou_3d

    got = false_alarm_causes(records, 0.5, iou=iou_3d)
    assert got["false_detections"]["elsewhere"] == 0
    assert got["false_detections"]["benign_object"] > 0


def test_a_file_that_is_not_a_ct_data_set_is_named_in_the_error(tmp_path):
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps({"images": []}))
    with pytest.raises(ValueError, match=r"bare.json: not a CT data set \(no field 'categories'\)"):
        CtVolumes(bare, ["concealed_organic"])
