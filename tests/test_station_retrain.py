"""Back to training: reviews to COCO, the model registry, retrain's promotion gate, and a
running service switching to a promoted model without losing its queue."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from station_helpers import dual_pair_bytes, png_bytes, tiny_model

from detector import registry as reg_read
from detector.cli import main
from detector.model import ModelError
from detector.registry import RegistryError
from detector.station import auth
from detector.station.detectors import detector_loader, make_handle
from detector.station.station import Station
from detector.station.store import Upload
from training import registry as reg_write


@pytest.fixture
def reg(tmp_path):
    """A registry holding tiny-dual 1.0.0 (promoted) and 1.1.0 (not yet)."""
    reg = tmp_path / "reg"
    model, ckpt = tiny_model("dual", "1.0.0")
    reg_write.add_version(reg, "1.0.0", model, ckpt, metrics={}, data=[])
    reg_write.promote(reg, "1.0.0", "first")
    model2, ckpt2 = tiny_model("dual", "1.1.0")
    reg_write.add_version(reg, "1.1.0", model2, ckpt2, metrics={}, data=[], parent="1.0.0")
    return reg


def reviewed_station(tmp_path) -> tuple[Station, dict[str, str]]:
    station = Station(tmp_path / "data", make_handle([tiny_model("dual")[0]]))
    op = auth.authenticate(station.db, "Bearer " + auth.add_operator(station.db, "eve"))
    high, low = dual_pair_bytes()
    ids = {}
    for name in ("confirmed", "cleared", "missed", "confirm_then_missed", "unreviewed"):
        ids[name] = station.receive([Upload("high", high), Upload("low", low)]).id
    ids["error"] = station.receive([Upload("file", png_bytes(np.zeros((30, 30), np.uint8)))]).id
    db = station.db
    db.add_decision(ids["confirmed"], op.id, "confirm", [], "")
    db.add_decision(ids["cleared"], op.id, "confirm", [], "")
    db.add_decision(ids["cleared"], op.id, "clear", [], "second look: a shoe heel")
    db.add_decision(ids["missed"], op.id, "clear", [], "")
    db.add_decision(ids["missed"], op.id, "missed", [[5, 6, 25, 30]], "")
    db.add_decision(ids["confirm_then_missed"], op.id, "confirm", [[1, 2, 11, 12]], "")
    db.add_decision(ids["confirm_then_missed"], op.id, "missed", [[40, 40, 60, 70]], "")
    db.add_decision(ids["error"], op.id, "confirm", [], "opened: nothing")
    return station, ids


def test_reviews_become_a_coco_set_the_trainer_reads(tmp_path, capsys):
    station, ids = reviewed_station(tmp_path)
    out = tmp_path / "reviews"
    assert main(["dataset", "from-reviews", "--data", str(tmp_path / "data"),
                 "--out", str(out)]) == 0
    assert "4 reviewed scans" in capsys.readouterr().out
    coco = json.loads((out / "annotations.json").read_text())
    by_scan = {i["scan_id"]: i for i in coco["images"]}
    assert set(by_scan) == {ids[k] for k in ("confirmed", "cleared", "missed",
                                             "confirm_then_missed")}
    boxes = {sid: [a["bbox"] for a in coco["annotations"] if a["image_id"] == img["id"]]
             for sid, img in by_scan.items()}
    alarm_boxes = [d["box"] for d in station.db.get_scan(ids["confirmed"]).result["detections"]
                   if d["alarm"]]
    assert len(boxes[ids["confirmed"]]) == len(alarm_boxes) > 0
    assert boxes[ids["cleared"]] == [] and by_scan[ids["cleared"]]["review"]["cleared"]
    assert boxes[ids["missed"]] == [[5, 6, 20, 24]]
    assert boxes[ids["confirm_then_missed"]] == [[1, 2, 10, 10], [40, 40, 20, 30]]
    assert {s["scan_id"] for s in coco["info"]["skipped"]} == {ids["error"]}

    from training.data import CocoScans

    data = CocoScans(out / "annotations.json", "dual", ["concealed_organic"])
    assert len(data) == 4
    item = data[0]
    assert item.scan.kind == "dual" and item.scan.size_hw == (96, 128)
    assert main(["dataset", "from-reviews", "--data", str(tmp_path / "data"),
                 "--out", str(out)]) == 64  # never overwritten


def test_reviews_of_scans_whose_files_are_gone_are_skipped_and_a_box_saved_twice_is_one(
        tmp_path, capsys):
    """A scan deleted from the station by hand is listed as skipped (the export crashed); the
    same missed box saved twice is one annotation; --out may not be the station's folder."""
    station, ids = reviewed_station(tmp_path)
    fay = auth.authenticate(station.db, "Bearer " + auth.add_operator(station.db, "fay"))
    station.db.add_decision(ids["missed"], fay.id, "missed", [[5, 6, 25, 30]], "saved again")
    for f in (station.store.scan_dir(ids["confirmed"]) / "input").iterdir():
        f.unlink()
    shutil.rmtree(station.store.scan_dir(ids["cleared"]) / "input")
    out = tmp_path / "reviews"
    assert main(["dataset", "from-reviews", "--data", str(tmp_path / "data"),
                 "--out", str(out)]) == 0
    coco = json.loads((out / "annotations.json").read_text())
    skipped = {s["scan_id"]: s["why"] for s in coco["info"]["skipped"]}
    assert set(skipped) == {ids["error"], ids["confirmed"], ids["cleared"]}
    assert "stored files are missing" in skipped[ids["confirmed"]]
    assert not (out / "scans" / ids["confirmed"]).exists()
    image = next(i for i in coco["images"] if i["scan_id"] == ids["missed"])
    assert [a["bbox"] for a in coco["annotations"] if a["image_id"] == image["id"]] == [
        [5, 6, 20, 24]]
    assert main(["dataset", "from-reviews", "--data", str(tmp_path / "data"),
                 "--out", str(tmp_path / "data")]) == 64
    assert "station's own data folder" in capsys.readouterr().err


def test_registry_add_promote_rollback_and_list(reg, capsys):
    assert reg_read.current_version(reg) == "1.0.0"
    assert main(["models", "promote", "1.1.0", "--registry", str(reg)]) == 0
    assert reg_read.current_version(reg) == "1.1.0"
    assert reg_read.promoted_model(reg) == reg / "versions" / "1.1.0" / "model.onnx"
    assert main(["models", "list", "--registry", str(reg)]) == 0
    listing = capsys.readouterr().out
    assert "* 1.1.0" in listing and "  1.0.0" in listing
    assert main(["models", "rollback", "--registry", str(reg)]) == 0
    assert reg_read.current_version(reg) == "1.0.0"
    assert main(["models", "rollback", "--registry", str(reg)]) == 64  # nothing earlier
    history = [json.loads(x) for x in (reg / "history.jsonl").read_text().splitlines()]
    assert all(h["by"] for h in history)  # which account did it
    events = [h["event"] for h in history]
    assert events == ["add", "promote", "add", "promote", "rollback"]


def test_registry_lists_versions_in_the_order_added_even_within_one_second(tmp_path,
                                                                          monkeypatch):
    monkeypatch.setattr(reg_write, "_now", lambda: "2026-01-01T00:00:00+00:00")
    reg = tmp_path / "reg"
    for version in ["1.1.0", "1.0.0+r1", "1.0.0"]:  # string order would put these the other way
        model, ckpt = tiny_model("dual", version)
        reg_write.add_version(reg, version, model, ckpt, metrics={}, data=[])
    assert [e["version"] for e in reg_read.versions(reg)] == ["1.1.0", "1.0.0+r1", "1.0.0"]


def test_registry_refuses_overwrites_altered_models_and_bad_versions(reg, tmp_path):
    model, ckpt = tiny_model("dual", "1.0.0")
    with pytest.raises(RegistryError, match="already exists"):
        reg_write.add_version(reg, "1.0.0", model, ckpt, metrics={}, data=[])
    altered = tmp_path / "altered.onnx"
    shutil.copyfile(model, altered)
    shutil.copyfile(model.with_name(model.stem + ".manifest.json"),
                    tmp_path / "altered.manifest.json")
    with open(altered, "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ModelError, match="sha256"):
        reg_write.add_version(reg, "2.0.0", altered, None, metrics={}, data=[])
    with pytest.raises(RegistryError, match="version"):
        reg_write.add_version(reg, "../evil", model, None, metrics={}, data=[])
    with pytest.raises(RegistryError, match="no model version"):
        reg_write.promote(reg, "9.9.9", "typo")
    assert reg_read.current_version(reg) == "1.0.0"
    # a checkpoint must be the model's own: retrain fine-tunes it as the model's heir
    import torch

    from training import checkpoint

    # Another run of the same network, here: other biases (two untrained tiny nets of
    # different seeds compute nearly the same constant, so a second seed would not do).
    other = checkpoint.load(ckpt)
    other["model"] = {k: v + 0.5 if k.endswith("bias") else v for k, v in other["model"].items()}
    other_ckpt = tmp_path / "other.pt"
    torch.save(other, other_ckpt)
    with pytest.raises(RegistryError, match="outputs differ"):
        reg_write.add_version(reg, "3.0.0", model, other_ckpt, metrics={}, data=[])
    _, gray_ckpt = tiny_model("gray", "1.0.0")
    with pytest.raises(RegistryError, match="kind gray"):
        reg_write.add_version(reg, "3.0.0", model, gray_ckpt, metrics={}, data=[])
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(ValueError, match="junk.pt: unreadable checkpoint"):
        reg_write.add_version(reg, "3.0.0", model, junk, metrics={}, data=[])
    assert not reg_read.version_dir(reg, "3.0.0").exists()


def test_service_switches_to_a_promoted_model_and_keeps_its_queue(reg, tmp_path):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from detector.station.app import create_app

    load, switchable = detector_loader([reg], threads=1)
    assert switchable
    station = Station(tmp_path / "data", load())
    token = auth.add_operator(station.db, "ann")
    high, low = dual_pair_bytes()
    files = {"high": ("h.png", high), "low": ("l.png", low)}
    with TestClient(create_app(station, load_detector=load)) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        first = client.post("/api/scans", files=files).json()
        client.post(f"/api/scans/{first['id']}/decision", json={"decision": "confirm"})
        assert first["model"]["version"] == "1.0.0"
        reg_write.promote(reg, "1.1.0", "test")
        r = client.post("/api/model/reload")
        assert r.status_code == 200 and "tiny-dual-1.1.0" in r.json()["model"]["version"]
        second = client.post("/api/scans", files=files).json()
        assert second["model"]["version"] == "1.1.0"
        queue = client.get("/api/scans").json()["scans"]
        assert [(s["id"], s["model_version"]) for s in queue] == [
            (second["id"], "tiny-dual-1.1.0"), (first["id"], "tiny-dual-1.0.0")]
        assert queue[1]["review"] == "confirm"
        (reg / "versions" / "1.0.0" / "model.onnx").write_bytes(b"tampered")
        (reg / "current.json").write_text(json.dumps({"version": "1.0.0"}))
        r = client.post("/api/model/reload")
        assert r.status_code == 409 and "sha256" in r.json()["detail"]
        assert "1.1.0" in client.get("/api/health").json()["model"]["version"]


@pytest.mark.slow
def test_retrain_fine_tunes_compares_on_the_frozen_test_set_and_gates(reg, tmp_path, capsys):
    from toy_data import write_toy_set

    reviewed_station(tmp_path)
    assert main(["dataset", "from-reviews", "--data", str(tmp_path / "data"),
                 "--out", str(tmp_path / "reviews")]) == 0
    test = write_toy_set(tmp_path / "test", count=8, seed=5)
    def retrain_args(data, test_set, version):
        return ["retrain", "--base", "1.0.0", "--data", str(data), "--test", str(test_set),
                "--registry", str(reg), "--epochs", "1", "--version", version, "--threads", "1"]

    args = retrain_args(tmp_path / "reviews", test, "1.0.0+r1")
    assert main(args) == 0
    out = capsys.readouterr().out
    entry = reg_read.read_entry(reg, "1.0.0+r1")
    m = entry["metrics"]
    assert entry["parent"] == "1.0.0" and entry["has_checkpoint"]
    assert m["test"]["sha256"] == json.loads((reg / "testset.json").read_text())["sha256"]
    assert m["old"]["scans"] == m["new"]["scans"] == 8
    assert m["promoted"] == (m["new"]["pd"] >= m["old"]["pd"] and m["new"]["pfa"] <= 0.05
                             and m["new"]["pd"] > 0)
    assert 0 < m["new"]["threshold"] <= 1
    assert reg_read.current_version(reg) == ("1.0.0+r1" if m["promoted"] else "1.0.0")
    assert ("promoted 1.0.0+r1" if m["promoted"] else "NOT promoted") in out
    from detector.model import OnnxModel

    new_model = OnnxModel(reg / "versions" / "1.0.0+r1" / "model.onnx")
    assert new_model.info.alarm_threshold == pytest.approx(m["new"]["threshold"])
    # picked on the frozen test set, and the model says so (it said "validation")
    assert "target_pfa=0.05 on" in new_model.info.provenance["threshold_source"]
    assert new_model.info.provenance["data"] == [str(tmp_path / "reviews" / "annotations.json")]

    other = write_toy_set(tmp_path / "other", count=8, seed=6)  # not the frozen test set
    assert main(retrain_args(tmp_path / "reviews", other, "x2")) == 64
    assert "frozen test set" in capsys.readouterr().err
    write_toy_set(tmp_path / "test2", count=8, seed=5)  # the test scans again, as training
    assert main(retrain_args(tmp_path / "test2", test, "x3")) == 64
    assert "scan file(s) with the test set" in capsys.readouterr().err
    assert [e["version"] for e in reg_read.versions(reg)] == ["1.0.0", "1.1.0", "1.0.0+r1"]
    assert not (reg / ".work" / "1.0.0+r1").exists()  # scratch removed once registered


@pytest.mark.parametrize("old_pd,new_pd,new_pfa,promoted", [
    (0.8, 0.8, 0.05, True), (0.8, 0.9, 0.05, True), (0.8, 0.79, 0.05, False),
    (0.8, float("nan"), 0.05, False),
    (0.8, 0.9, 0.2, False),  # saturated: no threshold in (0, 1] reaches the Pfa
    (0.0, 0.0, 0.05, False),  # never alarms: not promoted even over a model as bad
])
def test_promotion_gate(reg, tmp_path, monkeypatch, old_pd, new_pd, new_pfa, promoted):
    from training import retrain as rt

    def fake_fine_tune(base, data, out, cfg, progress):
        shutil.copyfile(base, out)
        return out

    def fake_point(model_path, test, target_pfa, progress):
        pd = old_pd if "versions" in str(model_path) else new_pd
        pfa = 0.05 if "versions" in str(model_path) else new_pfa
        return {"threshold": 0.3, "pd": pd, "pfa": pfa, "target_pfa": target_pfa, "scans": 8,
                "sha256": "x"}

    monkeypatch.setattr(rt, "fine_tune", fake_fine_tune)
    monkeypatch.setattr(rt, "operating_point", fake_point)
    monkeypatch.setattr(rt, "check_no_leak", lambda data, test: None)
    monkeypatch.setattr(rt, "check_readable", lambda path, kind, classes: None)
    coco = tmp_path / "c.json"
    coco.write_text(json.dumps({"images": [], "annotations": [], "categories": []}))
    result = rt.retrain(reg, "current", [coco], coco, "2.0.0", tmp_path / "work",
                        rt.RetrainConfig(epochs=1))
    assert result["promoted"] is promoted
    assert reg_read.current_version(reg) == ("2.0.0" if promoted else "1.0.0")
    assert "2.0.0" in [e["version"] for e in reg_read.versions(reg)]  # kept either way


def _fake_gate(monkeypatch, pds: dict, new_pd: float, during_training=lambda: None):
    """retrain with its fine-tuning and evaluation replaced: ``pds`` is each registry
    version's Pd on the test set, ``new_pd`` the successor's."""
    from training import retrain as rt

    def fake_fine_tune(base, data, out, cfg, progress):
        during_training()
        shutil.copyfile(base, out)
        return out

    def fake_point(model_path, test, target_pfa, progress):
        version = model_path.parent.name
        pd = pds.get(version, new_pd)
        return {"threshold": 0.3, "pd": pd, "pfa": 0.05, "target_pfa": target_pfa,
                "scans": 8, "sha256": "x"}

    monkeypatch.setattr(rt, "fine_tune", fake_fine_tune)
    monkeypatch.setattr(rt, "operating_point", fake_point)
    monkeypatch.setattr(rt, "check_no_leak", lambda data, test: None)
    monkeypatch.setattr(rt, "check_readable", lambda path, kind, classes: None)
    return rt


@pytest.mark.parametrize("new_pd,promoted", [(0.9, False), (0.97, True)])
def test_a_version_promoted_while_a_retrain_ran_is_what_it_must_beat(reg, tmp_path, monkeypatch,
                                                                      new_pd, promoted):
    """Two retrains at once: the second to finish must beat the model the first promoted, not
    only the base both started from (it replaced a better model before)."""
    rt = _fake_gate(monkeypatch, {"1.0.0": 0.8, "1.1.0": 0.95}, new_pd,
                    during_training=lambda: reg_write.promote(reg, "1.1.0", "the other run"))
    coco = tmp_path / "c.json"
    coco.write_text(json.dumps({"images": [], "annotations": [], "categories": []}))
    result = rt.retrain(reg, "1.0.0", [coco], coco, "2.0.0", tmp_path / "work",
                        rt.RetrainConfig(epochs=1))
    assert result["judged_against"] == "1.1.0" and result["old"]["pd"] == 0.95
    assert result["promoted"] is promoted
    assert reg_read.current_version(reg) == ("2.0.0" if promoted else "1.1.0")


def test_the_registry_promotes_only_over_the_version_it_was_judged_against(reg):
    """The last check is made under the registry's lock, as the version is added: if another
    was promoted after the judging, this one is added unpromoted and says why."""
    reg_write.promote(reg, "1.1.0", "someone else")
    model, ckpt = tiny_model("dual", "1.2.0")
    entry = reg_write.add_version(reg, "1.2.0", model, ckpt, metrics={"promoted": True},
                                  data=[], promote_over=("1.0.0", "beat 1.0.0"))
    assert entry["metrics"] == {"promoted": False, "superseded_by": "1.1.0"}
    assert reg_read.current_version(reg) == "1.1.0"
    model, ckpt = tiny_model("dual", "1.3.0")
    reg_write.add_version(reg, "1.3.0", model, ckpt, metrics={"promoted": True}, data=[],
                          promote_over=("1.1.0", "beat 1.1.0"))
    assert reg_read.current_version(reg) == "1.3.0"


def test_retrain_refuses_a_missing_scan_before_training_or_freezing(reg, tmp_path, capsys):
    from toy_data import write_toy_set

    data = write_toy_set(tmp_path / "reviews", count=4, seed=7)
    test = write_toy_set(tmp_path / "test", count=4, seed=8)
    gone = sorted((tmp_path / "reviews").glob("*_high.png"))[1]
    gone.unlink()
    assert main(["retrain", "--data", str(data), "--test", str(test), "--registry", str(reg),
                 "--epochs", "1", "--threads", "1"]) == 64
    err = capsys.readouterr().err
    assert gone.name in err and "missing" in err
    assert not (reg / "testset.json").exists()  # nothing frozen by a run that could not run


def test_a_work_folder_in_use_is_refused(reg, tmp_path, monkeypatch):
    import fcntl

    rt = _fake_gate(monkeypatch, {"1.0.0": 0.8}, 0.9)
    coco = tmp_path / "c.json"
    coco.write_text(json.dumps({"images": [], "annotations": [], "categories": []}))
    work = tmp_path / "work"
    work.mkdir()
    with open(work / ".lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(Exception, match="another retrain is using this work folder"):
            rt.retrain(reg, "1.0.0", [coco], coco, "2.0.0", work, rt.RetrainConfig(epochs=1))


def test_promoting_the_current_version_again_changes_nothing(reg, capsys):
    """Promoting the current version again writes no history, so a later rollback still goes
    back to the version before it (it "rolled back" to the same one)."""
    reg_write.promote(reg, "1.1.0", "next")
    assert main(["models", "promote", "1.1.0", "--registry", str(reg)]) == 0
    assert "already" in capsys.readouterr().out
    assert main(["models", "rollback", "--registry", str(reg)]) == 0
    assert reg_read.current_version(reg) == "1.0.0"


def test_a_damaged_registry_file_is_a_clear_error(reg, capsys):
    (reg / "current.json").write_text('{"vers')
    with pytest.raises(RegistryError, match="damaged registry file"):
        reg_read.current_version(reg)
    assert main(["models", "list", "--registry", str(reg)]) == 0  # lists what is there
    assert "current.json: damaged registry file" in capsys.readouterr().err
    assert main(["retrain", "--data", str(reg), "--test", str(reg), "--registry",
                 str(reg)]) == 64
    assert "current.json: damaged registry file" in capsys.readouterr().err


def test_retrain_on_a_folder_that_is_no_registry_says_so(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    assert main(["retrain", "--data", str(tmp_path / "data"), "--test", str(tmp_path / "data"),
                 "--registry", str(tmp_path / "typo")]) == 64
    err = capsys.readouterr().err
    assert f"{tmp_path / 'typo'}: not a model registry" in err and "models add" in err


@pytest.mark.slow
def test_retrain_passes_a_second_look_on(tmp_path, capsys):
    """A base with a second look: its successor carries the trees over (provenance says so;
    the threshold is the rescored boxes', the checkpoint still the model's own), refits them on
    sets the new CNN never saw (never the test set), or drops them."""
    pytest.importorskip("sklearn")
    from toy_data import write_toy_set

    from detector.model import OnnxModel

    model, ckpt = tiny_model("dual", "1.0.0")
    fit = write_toy_set(tmp_path / "fit", count=16, seed=7)
    looked = tmp_path / "looked" / "dual.onnx"
    assert main(["second-look", str(model), "--data", str(fit), "--out", str(looked),
                 "--version", "1.0.1", "--min-cnn-score", "0.0"]) == 0
    reg = tmp_path / "reg"
    reg_write.add_version(reg, "1.0.1", looked, ckpt, metrics={}, data=[])
    reg_write.promote(reg, "1.0.1", "first")
    train = write_toy_set(tmp_path / "train", count=6, seed=8)
    test = write_toy_set(tmp_path / "test", count=8, seed=5)
    base_look = OnnxModel(looked).info.second_look

    def retrain(version, *extra):
        return main(["retrain", "--base", "1.0.1", "--data", str(train), "--test", str(test),
                     "--registry", str(reg), "--epochs", "1", "--version", version,
                     "--threads", "1", *extra])

    assert retrain("c") == 0
    assert "second look carried over from 1.0.1" in capsys.readouterr().out
    info = OnnxModel(reg / "versions" / "c" / "model.onnx").info
    entry = reg_read.read_entry(reg, "c")
    assert info.second_look.source["trees"] == base_look.source["trees"]
    assert "carried_over" in info.second_look.provenance
    assert info.alarm_threshold == pytest.approx(entry["metrics"]["new"]["threshold"])
    assert entry["metrics"]["new"]["second_look"] == "carried over from 1.0.1"
    # the gate judges a model as it runs, second look included
    from training import retrain as rt
    from training.data import CocoScans
    from training.engine import evaluate

    base = OnnxModel(looked)
    scans = CocoScans(fit, "dual", ["concealed_organic"])
    gate = [r.scores.tolist() for r in rt._records(base, fit, progress=False)]
    looked_scores = [r.scores.tolist() for r in evaluate(
        base.predict, scans, base.info.input_spec, base.info.stride, progress=False,
        second_look=base_look)]
    cnn_scores = [r.scores.tolist() for r in evaluate(
        base.predict, scans, base.info.input_spec, base.info.stride, progress=False)]
    assert gate == looked_scores != cnn_scores
    assert main(["info", str(reg / "versions" / "c" / "model.onnx")]) == 0
    assert "(16 scans); CNN tiny-dual 1.0.0; carried over from" in capsys.readouterr().out

    assert retrain("r", "--second-look-data", str(fit)) == 0
    assert "second look fitted on" in capsys.readouterr().out
    info = OnnxModel(reg / "versions" / "r" / "model.onnx").info
    assert info.second_look.provenance["cnn"]["version"] == "r"
    assert info.second_look.source["trees"] != base_look.source["trees"]
    # a base without one gets one when asked; a colour model cannot
    reg_write.add_version(reg, "1.0.0", model, ckpt, metrics={}, data=[])
    assert main(["retrain", "--base", "1.0.0", "--data", str(train), "--test", str(test),
                 "--registry", str(reg), "--epochs", "1", "--version", "p", "--threads", "1",
                 "--second-look-data", str(fit)]) == 0
    assert OnnxModel(reg / "versions" / "p" / "model.onnx").info.second_look is not None
    colour, colour_ckpt = tiny_model("color", "1.0.0")
    reg_write.add_version(reg, "c1", colour, colour_ckpt, metrics={}, data=[])
    assert main(["retrain", "--base", "c1", "--data", str(train), "--test", str(test),
                 "--registry", str(reg), "--epochs", "1", "--version", "c2", "--threads", "1",
                 "--second-look-data", str(fit)]) == 64
    assert "a color model has no second look" in capsys.readouterr().err

    assert retrain("d", "--no-second-look") == 0
    assert OnnxModel(reg / "versions" / "d" / "model.onnx").info.second_look is None
    assert retrain("x", "--second-look-data", str(test)) == 64
    assert "scan file(s) with the test set" in capsys.readouterr().err
