"""The second look (detector.second_look, training.second_look, concealscan second-look):
trees walked with numpy as scikit-learn walks them, malformed ones refused, and a dual model
given one rescored the same way on the workstation and in evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from detector.second_look import FEATURES, FORMAT, SecondLook, SecondLookError, TreeEnsemble


def _fitted(seed=0):
    sklearn = pytest.importorskip("sklearn.ensemble")
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2000, len(FEATURES)))
    x[rng.random(x.shape) < 0.05] = np.nan  # missing values take the learnt side
    y = (np.nan_to_num(x[:, 0]) + np.nan_to_num(x[:, 3]) > 0.5).astype(int)
    return sklearn.HistGradientBoostingClassifier(max_iter=60, random_state=0).fit(x, y), x


def test_trees_walked_with_numpy_give_scikit_learns_probabilities():
    from training.second_look import ensemble_dict

    clf, x = _fitted()
    ens = TreeEnsemble.from_dict(json.loads(json.dumps(ensemble_dict(clf))), len(FEATURES))
    np.testing.assert_allclose(ens.predict_proba(x), clf.predict_proba(x)[:, 1], atol=1e-12)
    with pytest.raises(ValueError, match="features"):
        ens.predict_proba(x[:, :5])


def _entry(clf):
    from training.second_look import second_look_dict

    return json.loads(json.dumps(second_look_dict(clf, 0.02, {"fitted_on": "test"})))


@pytest.mark.parametrize("spoil, message", [
    (lambda d: d.update(format="other"), "format"),
    (lambda d: d.update(features=d["features"][:-1]), "features"),
    (lambda d: d.update(min_cnn_score=1.5), "min_cnn_score"),
    (lambda d: d["trees"][0]["left"].__setitem__(0, 0), "child"),  # a loop back to the root
    (lambda d: d["trees"][0]["right"].__setitem__(0, 10 ** 6), "child"),
    (lambda d: d["trees"][0]["right"].__setitem__(0, len(d["trees"][0]["leaf"])), "its tree"),
    (lambda d: d["trees"][0]["feature"].__setitem__(0, 99), "feature"),
    (lambda d: d["trees"][0]["value"].__setitem__(-1, float("nan")), "non-finite"),
    (lambda d: d["trees"][0].pop("threshold"), "malformed"),
    (lambda d: d["trees"][0]["leaf"].pop(), "lengths"),
])
def test_a_malformed_second_look_is_refused(spoil, message):
    clf, _ = _fitted()
    entry = _entry(clf)
    SecondLook.from_dict(entry)  # the unspoilt one loads
    spoil(entry)
    with pytest.raises(SecondLookError, match=message):
        SecondLook.from_dict(entry)


def test_a_model_carries_one_for_its_own_kind():
    """A dual second look on a gray model (or any on a colour one) is refused; an entry
    without ``kind`` (dual 3.19.0's) is a dual one; gray ones measure one image."""
    from detector.model import ModelInfo
    from detector.preprocess import InputSpec

    clf, _ = _fitted()
    d = {"format": "concealscan-onnx-1", "name": "g", "version": "1", "classes": ["c"],
         "input": InputSpec.for_kind("gray").to_dict(), "stride": 4, "alarm_threshold": 0.5,
         "precision": "fp32", "provenance": {}, "second_look": _entry(clf)}
    with pytest.raises(ValueError, match="measures dual scans but the model takes gray"):
        ModelInfo.from_dict(d)
    d["input"] = InputSpec.for_kind("dual").to_dict()
    info = ModelInfo.from_dict(d)
    assert info.second_look.min_cnn_score == 0.02 and FORMAT == d["second_look"]["format"]
    assert ModelInfo.from_dict(json.loads(json.dumps(info.to_dict()))) == info
    del d["second_look"]["kind"]
    assert ModelInfo.from_dict(d).second_look.kind == "dual"
    d["second_look"]["kind"] = "color"
    with pytest.raises(ValueError, match="kind"):
        ModelInfo.from_dict(d)
    gray = {**_entry(clf), "kind": "gray"}  # 19 features where gray has 14
    with pytest.raises(SecondLookError, match="for gray scans"):
        SecondLook.from_dict(gray)


def test_gray_boxes_are_measured_on_their_one_image():
    from detector.second_look import KIND_FEATURES, box_features

    rng = np.random.default_rng(1)
    att = rng.uniform(0.2, 2.0, size=(1, 80, 100)).astype(np.float32)
    boxes, scores = np.array([[10, 10, 40, 50], [60, 5, 63, 9]], np.float32), np.array([0.9, 0.3])
    gray = box_features(att, boxes, scores, "gray")
    dual = box_features(np.concatenate([att, att]), boxes, scores, "dual")
    assert gray.shape == (2, len(KIND_FEATURES["gray"])) == (2, 14)
    np.testing.assert_array_equal(
        gray, dual[:, [FEATURES.index(f) for f in KIND_FEATURES["gray"]]])
    assert np.isnan(gray[1, 1:]).all() and gray[1, 0] == 0.3  # 3x4 px: too small to measure
    with pytest.raises(ValueError, match="dual or gray"):
        box_features(att, boxes, scores, "color")


def test_second_look_command_workstation_and_evaluate_agree(tmp_path, capsys):
    """`concealscan second-look` writes a verified copy with the trees; the workstation's
    Detector rescores the CNN's boxes with them (measured in the scan), evaluate does the
    same, and --target-pfa stores the threshold for the rescored boxes."""
    pytest.importorskip("sklearn")
    from model_fixtures import tiny_models
    from toy_data import write_toy_set

    from detector.cli import main
    from detector.inference import Detector, infer
    from detector.model import OnnxModel
    from detector.postprocess import DecodeParams
    from detector.second_look import box_features
    from training.data import CocoScans

    ann = write_toy_set(tmp_path / "toy", 24, seed=3)
    cnn = tiny_models()["dual"]
    out = tmp_path / "sl" / "dual.onnx"
    assert main(["second-look", str(cnn), "--data", str(ann), "--out", str(out),
                 "--version", "0.0.2", "--min-cnn-score", "0.0"]) == 0
    assert "placeholder" in capsys.readouterr().out
    model = OnnxModel(out)  # sha256 checked against the new manifest
    look = model.info.second_look
    assert look is not None and model.info.version == "0.0.2"
    assert look.provenance["cnn"]["sha256"] == OnnxModel(cnn).sha256
    assert look.provenance["fitted_on"][0]["scans"] == 24

    scan = CocoScans(ann, "dual", ["concealed_organic"])[0].scan
    det = Detector(out, min_score=0.0).detect(scan)  # an untrained CNN: low scores
    plain = infer(OnnxModel(cnn).predict, scan, model.info.input_spec,
                  DecodeParams(stride=model.info.stride, score_thresh=0.0))
    want = look.ensemble.predict_proba(box_features(scan.image, plain.boxes_xyxy,
                                                    plain.scores))
    kept = np.sort(want)[::-1]
    np.testing.assert_allclose(det.scores, kept, rtol=1e-6)
    assert len(det.scores) and not np.allclose(det.scores, plain.scores[:len(det.scores)])

    assert main(["evaluate", "--model", str(out), "--data", str(ann), "--target-pfa", "0.25",
                 "--report", str(tmp_path / "rep")]) == 0
    info = OnnxModel(out).info
    assert info.second_look is not None and info.alarm_threshold != 0.5
    first = json.loads((tmp_path / "rep" / "per_scan.jsonl").read_text().splitlines()[0])
    evaluated = [first["max_score"]]
    on_station = Detector(out, min_score=0.01).detect(scan).scores[:1].tolist()
    assert evaluated == pytest.approx(on_station or [0.0])
    assert main(["detect", str(tmp_path / "toy"), "--model", str(out), "--model",
                 str(tiny_models()["color"]), "--out", str(tmp_path / "res"),
                 "--no-overlays"]) == 0
    rows = [json.loads(x) for x in
            (tmp_path / "res" / "results.jsonl").read_text().splitlines()]
    dual = [r for r in rows if r["kind"] == "dual"]
    assert len(dual) == 24 and all(r["model"]["version"] == "0.0.2" for r in dual)


def test_second_look_command_refuses_what_it_cannot_use(tmp_path, capsys):
    pytest.importorskip("sklearn")
    from model_fixtures import tiny_models
    from toy_data import write_toy_set

    from detector.cli import main

    ann = write_toy_set(tmp_path / "toy", 4, seed=4)
    colour = tiny_models()["color"]
    assert main(["second-look", str(colour), "--data", str(ann), "--out",
                 str(tmp_path / "g.onnx"), "--version", "1"]) == 64
    assert "needs a 'dual', 'gray' or 'ct' model" in capsys.readouterr().err
    dual = tiny_models()["dual"]
    assert main(["second-look", str(dual), "--data", str(ann), "--out", str(dual),
                 "--version", "1"]) == 64
    assert "is the input model" in capsys.readouterr().err
    assert not (tmp_path / "g.onnx").exists()
    assert main(["second-look", str(dual), "--data", str(ann), "--out",
                 str(tmp_path / "g.onnx"), "--version", "not a version"]) == 64
    assert "model version: expected letters, digits" in capsys.readouterr().err
    # an untrained CNN scores about its prior, 0.01: nothing at 0.9 to fit on
    assert main(["second-look", str(dual), "--data", str(ann), "--out",
                 str(tmp_path / "g.onnx"), "--version", "1", "--min-cnn-score", "0.9"]) == 64
    err = capsys.readouterr().err
    assert "the CNN scored no box at least 0.9 on these scans" in err
    assert "try a lower --min-cnn-score (e.g. 0.225)" in err and "Traceback" not in err
    assert not (tmp_path / "g.onnx").exists()


def test_ct_boxes_are_measured_in_hounsfield_units():
    """A 300 HU brick in water: its extents (sorted, in mm), HU inside and the contrast to the
    shell around it; a box on the volume's edge is clipped, a flat one widened to a voxel."""
    from detector.second_look import KIND_FEATURES, MEASUREMENTS_3D, box_features_3d

    hu = np.zeros((20, 30, 40), np.float32)
    hu[5:15, 10:20, 10:30] = 300.0  # z 10, y 10, x 20 voxels
    hu[0, 0, 0] = 2500.0  # a metal voxel far from the brick
    m = dict(zip(MEASUREMENTS_3D, box_features_3d(
        hu, (2.0, 1.0, 0.5), np.array([[10, 10, 5, 30, 20, 15]], np.float32),
        np.array([0.7]))[0, 1:], strict=True))
    assert (m["short_mm"], m["mid_mm"], m["long_mm"]) == (10.0, 10.0, 20.0)  # x, y, z
    assert m["hu_mean"] == m["hu_p10"] == m["hu_p90"] == 300.0 and m["hu_std"] == 0.0
    assert m["shell_mean"] == 0.0 and m["hu_contrast"] == 300.0 and m["near_max"] == 300.0
    assert m["border_gradient"] > m["inner_gradient"] == 0.0
    edge = box_features_3d(hu, (1, 1, 1), np.array([[-5, -5, -5, 3, 3, 0.2]], np.float32),
                           np.array([0.1]))
    assert edge.shape == (1, len(KIND_FEATURES["ct"])) and np.isfinite(edge).all()
    assert edge[0, 1] == 1.0 and edge[0, -1] == 2500.0  # one slice thick; the metal is near


def test_ct_second_look_command_station_and_evaluate_agree(tmp_path, capsys):
    """A CT model's second look: fitted on volumes, it rescores the fused 3-D boxes the same
    way on the workstation (VolumeDetector) and in evaluate, whose --target-pfa stores the
    threshold for the rescored boxes; a dual second look on a CT model is refused."""
    pytest.importorskip("sklearn")
    from ct_data import synth_small_ct_sets
    from ct_model_fixture import tiny_ct_model

    from detector.cli import main
    from detector.ct_inference import VolumeDetector, fuse_candidates, slab_candidates
    from detector.model import OnnxModel
    from detector.postprocess import DecodeParams
    from detector.second_look import box_features_3d
    from training.ct_data import CtVolumes

    (tmp_path / "ct").mkdir()
    sets = synth_small_ct_sets(tmp_path / "ct", {"fit": 8, "calib": 4})
    _, cnn = tiny_ct_model()
    out = tmp_path / "sl" / "ct.onnx"
    fit = str(sets / "fit" / "annotations.json")
    _packets_where_it_looks(fit, cnn)
    assert main(["second-look", str(cnn), "--data", fit, "--out", str(out),
                 "--version", "0.0.2", "--min-cnn-score", "0.0"]) == 0
    assert "placeholder" in capsys.readouterr().out
    model = OnnxModel(out)
    look = model.info.second_look
    assert look.kind == "ct" and look.provenance["fitted_on"][0]["scans"] == 8
    assert main(["info", str(out)]) == 0
    assert "annotations.json (8 volumes); CNN tiny_ct 0.0.1" in capsys.readouterr().out

    volume = CtVolumes(sets / "calib" / "annotations.json", ["concealed_organic"])[0].volume
    det = VolumeDetector(model, min_score=0.0).detect(volume)
    params = DecodeParams(stride=model.info.stride, score_thresh=0.0)  # as detect's
    cands = slab_candidates(OnnxModel(cnn).predict, volume, model.info.input_spec, params)
    assert volume.voxel_mm == (8.0, 8.0, 8.0) and cands.grid_voxel_mm == 4.0
    assert cands.grid.shape == tuple(2 * n for n in volume.size_dhw)
    seen = []  # measured on the model's 4 mm grid, not the volume's 8 mm voxels
    boxes, scores = fuse_candidates(cands, 0.0, look=lambda c, b, s: seen.append((b, s)) or (b, s))
    want = look.ensemble.predict_proba(box_features_3d(cands.grid, (4.0,) * 3, *seen[0]))
    assert len(det.scores) == len(scores) > 0
    np.testing.assert_allclose(det.scores, np.sort(want)[::-1], rtol=1e-6)
    assert not np.allclose(det.scores, scores)
    np.testing.assert_allclose(det.boxes_xyzxyz, boxes[np.argsort(-want, kind="stable")])

    calib = str(sets / "calib" / "annotations.json")
    # (the untrained CNN's threshold alarms on no packet: stored only when told to)
    assert main(["evaluate", "--model", str(out), "--data", calib, "--target-pfa", "0.5",
                 "--allow-zero-pd", "--report", str(tmp_path / "rep")]) == 0
    assert OnnxModel(out).info.alarm_threshold != 0.5
    first = json.loads((tmp_path / "rep" / "per_volume.jsonl").read_text().splitlines()[0])
    on_station = VolumeDetector(OnnxModel(out)).detect(volume).scores[:1].tolist()
    assert [first["max_score"]] == pytest.approx(on_station or [0.0])

    with pytest.raises(ValueError, match="looks at volumes"):
        look.rescore(volume.hu[:2], boxes[:, :4], scores, np.zeros(len(scores), np.int64))
    assert main(["second-look", str(out), "--data", fit, "--out", str(tmp_path / "x.onnx"),
                 "--version", "1"]) == 64
    assert "already has a second look" in capsys.readouterr().err


def _packets_where_it_looks(fit: str, cnn) -> None:
    """The untrained CNN hits no packet: move each volume's first packet onto its best box,
    so that the trees see boxes of both classes."""
    from detector.ct_inference import VolumeDetector
    from detector.model import OnnxModel
    from training.ct_data import CtVolumes

    coco = json.loads(Path(fit).read_text())
    found = VolumeDetector(OnnxModel(cnn), min_score=0.0)
    for image, item in zip(coco["images"], CtVolumes(fit, ["concealed_organic"]), strict=True):
        ann = next((a for a in coco["annotations"] if a["image_id"] == image["id"]), None)
        boxes = found.detect(item.volume).boxes_xyzxyz
        if ann is not None and len(boxes):
            ann["bbox3d"] = boxes[0].tolist()
    Path(fit).write_text(json.dumps(coco))


def test_ct_second_look_on_two_energies_measures_the_low_one(tmp_path, capsys):
    """`--energies 2`: each fused box is also measured in the 80 kVp volume on the model's
    grid; the workstation then needs dual-energy volumes and says so for a single one."""
    pytest.importorskip("sklearn")
    from ct_data import synth_small_ct_sets
    from ct_model_fixture import tiny_ct_model

    from detector.cli import main
    from detector.ct_inference import VolumeDetector, fuse_candidates, slab_candidates
    from detector.model import OnnxModel
    from detector.postprocess import DecodeParams
    from detector.second_look import CT_DUAL_FEATURES, box_features_3d
    from detector.volume import Volume
    from training.ct_data import CtVolumes

    (tmp_path / "ct").mkdir()
    sets = synth_small_ct_sets(tmp_path / "ct", {"fit": 8, "calib": 4}, kvp=(140, 80))
    _, cnn = tiny_ct_model()
    fit = str(sets / "fit" / "annotations.json")
    _packets_where_it_looks(fit, cnn)
    out = tmp_path / "sl" / "ct.onnx"
    assert main(["second-look", str(cnn), "--data", fit, "--out", str(out), "--version", "2",
                 "--min-cnn-score", "0.0", "--energies", "2"]) == 0
    model = OnnxModel(out)
    look = model.info.second_look
    assert look.energies == 2 and tuple(look.source["features"]) == CT_DUAL_FEATURES

    calib = sets / "calib" / "annotations.json"
    volume = CtVolumes(calib, ["concealed_organic"], energies=2)[0].volume
    det = VolumeDetector(model, min_score=0.0).detect(volume)
    cands = slab_candidates(OnnxModel(cnn).predict, volume, model.info.input_spec,
                            DecodeParams(stride=model.info.stride, score_thresh=0.0),
                            with_low=True)
    seen = []
    fuse_candidates(cands, 0.0, look=lambda c, b, s: seen.append((b, s)) or (b, s))
    x = box_features_3d(cands.grid, (4.0,) * 3, *seen[0], cands.low_grid)
    assert x.shape[1] == len(CT_DUAL_FEATURES) and (x[:, 15] != x[:, 4]).any()  # 80 vs 140
    np.testing.assert_allclose(det.scores, np.sort(look.ensemble.predict_proba(x))[::-1],
                               rtol=1e-6)
    one = Volume(volume.id, volume.hu, volume.voxel_mm, volume.sources)
    with pytest.raises(ValueError, match="reads dual-energy volumes, and the scan has one"):
        VolumeDetector(model).detect(one)
    assert main(["evaluate", "--model", str(out), "--data", str(calib)]) == 0
    assert "AP3D@0.25=" in capsys.readouterr().out
    assert main(["second-look", str(tiny_models_dual()), "--data", fit, "--out",
                 str(tmp_path / "d.onnx"), "--version", "1", "--energies", "2"]) == 64
    assert "for CT models" in capsys.readouterr().err


def tiny_models_dual():
    from model_fixtures import tiny_models

    return tiny_models()["dual"]
