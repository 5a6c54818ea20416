"""The second look (detector.second_look, training.second_look, concealscan second-look):
trees walked with numpy as scikit-learn walks them, malformed ones refused, and a dual model
given one rescored the same way on the workstation and in evaluate."""

from __future__ import annotations

import json

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


def test_only_a_dual_model_carries_one():
    from detector.model import ModelInfo
    from detector.preprocess import InputSpec

    clf, _ = _fitted()
    d = {"format": "concealscan-onnx-1", "name": "g", "version": "1", "classes": ["c"],
         "input": InputSpec.for_kind("gray").to_dict(), "stride": 4, "alarm_threshold": 0.5,
         "precision": "fp32", "provenance": {}, "second_look": _entry(clf)}
    with pytest.raises(ValueError, match="only a dual model"):
        ModelInfo.from_dict(d)
    d["input"] = InputSpec.for_kind("dual").to_dict()
    info = ModelInfo.from_dict(d)
    assert info.second_look.min_cnn_score == 0.02 and FORMAT == d["second_look"]["format"]
    assert ModelInfo.from_dict(json.loads(json.dumps(info.to_dict()))) == info


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
    gray = tiny_models()["gray"]
    assert main(["second-look", str(gray), "--data", str(ann), "--out",
                 str(tmp_path / "g.onnx"), "--version", "1"]) == 64
    assert "needs a 'dual' model" in capsys.readouterr().err
    dual = tiny_models()["dual"]
    assert main(["second-look", str(dual), "--data", str(ann), "--out", str(dual),
                 "--version", "1"]) == 64
    assert "is the input model" in capsys.readouterr().err
    assert not (tmp_path / "g.onnx").exists()
