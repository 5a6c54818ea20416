"""Altered models are refused with a clear message, wherever they are loaded (detect, serve,
the service's reload), and a running service keeps the model it had."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from station_helpers import colour_bytes, tiny_model

from detector.model import ModelError, OnnxModel, manifest_path, sha256_of

onnx = pytest.importorskip("onnx")


def copy_model(src: Path, dst: Path) -> Path:
    shutil.copyfile(src, dst)
    shutil.copyfile(manifest_path(src), manifest_path(dst))
    return dst


def remanifest(path: Path) -> None:
    """What a careless re-packager does: make the manifest match whatever the bytes are now."""
    manifest = json.loads(manifest_path(path).read_text())
    manifest["sha256"] = sha256_of(path.read_bytes())
    manifest_path(path).write_text(json.dumps(manifest))


def edit_metadata(path: Path, change) -> None:
    model = onnx.load(str(path))
    prop = next(p for p in model.metadata_props if p.key == "concealscan")
    meta = json.loads(prop.value)
    change(meta)
    prop.value = json.dumps(meta)
    onnx.save(model, str(path))


def flip_weight_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit inside the weights: the graph still loads
    path.write_bytes(bytes(data))


def _set(key, value):
    return lambda meta: meta.__setitem__(key, value)


def _delete(key):
    return lambda meta: meta.pop(key)


def _input(key, value):
    return lambda meta: meta["input"].__setitem__(key, value)


def case_one_weight_bit_flipped(p):
    flip_weight_byte(p)
    return "does not match its manifest"


def case_metadata_threshold_lowered(p):  # valid metadata, but not what was exported
    edit_metadata(p, _set("alarm_threshold", 0.99))
    return "does not match its manifest"


def case_manifest_sha_of_another_model(p):
    manifest = json.loads(manifest_path(p).read_text())
    manifest["sha256"] = sha256_of(b"another model")
    manifest_path(p).write_text(json.dumps(manifest))
    return "does not match its manifest"


def case_manifest_missing(p):
    manifest_path(p).unlink()
    return "manifest .* is missing"


def case_manifest_not_json(p):
    manifest_path(p).write_text("{sha256: ")
    return "unreadable manifest"


def case_truncated_file(p):
    p.write_bytes(p.read_bytes()[:1000])
    remanifest(p)
    return "onnxruntime cannot load it"


def case_metadata_wrong_format(p):
    edit_metadata(p, _set("format", "concealscan-onnx-0"))
    remanifest(p)
    return "invalid model metadata: metadata format"


def case_metadata_threshold_out_of_range(p):
    edit_metadata(p, _set("alarm_threshold", 5.0))
    remanifest(p)
    return "invalid model metadata: alarm_threshold"


def case_metadata_without_classes(p):
    edit_metadata(p, _delete("classes"))
    remanifest(p)
    return "invalid model metadata"


def case_metadata_channels_disagree_with_graph(p):
    edit_metadata(p, _input("kind", "gray"))
    remanifest(p)
    return "invalid model metadata|channels"


def case_metadata_removed(p):
    model = onnx.load(str(p))
    del model.metadata_props[:]
    onnx.save(model, str(p))
    remanifest(p)
    return "no 'concealscan' metadata"


def case_manifest_names_another_model(p):  # the right sha256 beside another model's identity
    manifest = json.loads(manifest_path(p).read_text())
    manifest["version"] = "9.9.9"
    manifest_path(p).write_text(json.dumps(manifest))
    return "manifest says"


CASES = [case_one_weight_bit_flipped, case_metadata_threshold_lowered,
         case_manifest_sha_of_another_model, case_manifest_missing, case_manifest_not_json,
         case_truncated_file, case_metadata_wrong_format, case_metadata_threshold_out_of_range,
         case_metadata_without_classes, case_metadata_channels_disagree_with_graph,
         case_metadata_removed, case_manifest_names_another_model]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__[5:] for c in CASES])
def test_altered_model_is_refused_with_a_clear_message(tmp_path, case):
    model = copy_model(tiny_model("color")[0], tmp_path / "m.onnx")
    OnnxModel(model)  # the untouched copy loads
    words = case(model)
    with pytest.raises(ModelError, match=words) as info:
        OnnxModel(model)
    assert str(model.with_suffix("")) in str(info.value)  # names the model or its manifest


@pytest.mark.parametrize("command", ["detect", "serve"])
def test_commands_refuse_to_start_on_an_altered_model(tmp_path, command):
    model = copy_model(tiny_model("color")[0], tmp_path / "m.onnx")
    flip_weight_byte(model)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "c.png").write_bytes(colour_bytes())
    args = {"detect": [str(tmp_path / "in"), "--out", str(tmp_path / "out")],
            "serve": ["--data", str(tmp_path / "data"), "--port", "1"]}[command]
    proc = subprocess.run([sys.executable, "-W", "ignore", "-m", "detector.cli", command, *args,
                           "--model", str(model)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 64, proc.stderr
    assert "does not match its manifest" in proc.stderr
    assert not (tmp_path / "out" / "results.jsonl").exists()


@pytest.mark.parametrize("damage", [case_one_weight_bit_flipped, case_metadata_removed,
                                    case_manifest_missing, case_truncated_file])
def test_service_reload_with_a_bad_promoted_model_keeps_the_old_one(tmp_path, damage):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from detector.station import auth
    from detector.station.app import create_app
    from detector.station.detectors import detector_loader
    from detector.station.station import Station
    from training import registry as reg_write

    reg = tmp_path / "reg"
    model, ckpt = tiny_model("color", "1.0.0")
    reg_write.add_version(reg, "1.0.0", model, ckpt, metrics={}, data=[])
    reg_write.promote(reg, "1.0.0", "first")
    bad = reg / "versions" / "2.0.0"  # copied in by hand, as an attacker or a bad sync would
    bad.mkdir()
    copy_model(tiny_model("color", "2.0.0")[0], bad / "model.onnx")
    load, _ = detector_loader([reg], threads=1)
    station = Station(tmp_path / "data", load())
    token = auth.add_operator(station.db, "ann")
    with TestClient(create_app(station, load_detector=load)) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        words = damage(bad / "model.onnx")
        (reg / "current.json").write_text(json.dumps({"version": "2.0.0"}))
        r = client.post("/api/model/reload")
        assert r.status_code == 409, r.text
        detail = r.json()["detail"]
        assert "still using the old one" in detail and re.search(words, detail), detail
        assert "tiny-color-1.0.0" in client.get("/api/health").json()["model"]["version"]
        line = client.post("/api/scans", files={"file": ("c.png", colour_bytes())}).json()
        assert line["status"] == "ok" and line["model"]["version"] == "1.0.0"
