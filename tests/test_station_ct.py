"""CT scans in the station: upload a volume with its sidecar, detect with a real (tiny) CT
model, page its slices through the API and in the browser viewer."""

from __future__ import annotations

import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("fastapi")
from ct_data import phantom_hu  # noqa: E402
from ct_model_fixture import tiny_ct_model  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from station_helpers import drag_box, png_bytes, tiny_model  # noqa: E402

from detector.station import auth  # noqa: E402
from detector.station.app import create_app  # noqa: E402
from detector.station.detectors import make_handle  # noqa: E402
from detector.station.station import Station  # noqa: E402
from detector.station.store import Upload  # noqa: E402

SIDECAR = json.dumps({"voxel_mm": [4.0, 4.0, 4.0]}).encode()
CHROMIUM = Path("/usr/bin/chromium")


def npy_bytes(hu: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, hu)
    return buf.getvalue()


def ct_station(folder: Path, with_ct_model: bool = True) -> Station:
    models = [tiny_ct_model()[1]] if with_ct_model else [tiny_model("dual")[0]]
    return Station(folder, make_handle(models))


@pytest.fixture
def client(tmp_path):
    station = ct_station(tmp_path / "data")
    token = auth.add_operator(station.db, "alice")
    with TestClient(create_app(station)) as c:
        c.headers["Authorization"] = f"Bearer {token}"
        yield c


def test_volume_upload_is_detected_and_its_slices_are_served(client):
    hu = phantom_hu()  # (12, 40, 48)
    r = client.post("/api/scans", files={"volume": ("v.npy", npy_bytes(hu)),
                                         "sidecar": ("v.json", SIDECAR)})
    assert r.status_code == 201, r.text
    line = r.json()
    assert line["kind"] == "ct" and line["status"] == "ok" and line["size_dhw"] == [12, 40, 48]
    scan_id = line["id"]
    detail = client.get(f"/api/scans/{scan_id}").json()
    assert detail["slices"] == 12 and {"image.png", "overlay.png"} <= set(detail["views"])
    for z in (0, 11):
        png = client.get(f"/api/scans/{scan_id}/slices/{z}")
        assert png.status_code == 200 and png.headers["content-type"] == "image/png"
        image = cv2.imdecode(np.frombuffer(png.content, np.uint8), cv2.IMREAD_UNCHANGED)
        assert image.shape == (40, 48)
    packet = cv2.imdecode(np.frombuffer(client.get(f"/api/scans/{scan_id}/slices/5").content,
                                        np.uint8), cv2.IMREAD_UNCHANGED)
    assert packet[15, 20] > packet[1, 1]  # the 300 HU packet is brighter than air
    assert client.get(f"/api/scans/{scan_id}/slices/12").status_code == 404
    assert client.get(f"/api/scans/{scan_id}/slices/-1").status_code == 422


@pytest.mark.parametrize("files, status", [
    ({"volume": ("v.npy", b"not an array"), "sidecar": ("v.json", SIDECAR)}, 415),
    ({"volume": ("v.npy", npy_bytes(phantom_hu())), "sidecar": ("v.json", b"[1, 2]")}, 415),
    ({"sidecar": ("v.json", SIDECAR)}, 422),
    ({"volume": ("v.npy", npy_bytes(phantom_hu()))}, 422),
])
def test_bad_volume_uploads_are_refused(client, files, status):
    assert client.post("/api/scans", files=files).status_code == status


def test_volume_without_a_ct_model_goes_to_manual_check(tmp_path):
    station = ct_station(tmp_path / "data", with_ct_model=False)
    row = station.receive([Upload("volume", npy_bytes(phantom_hu())),
                           Upload("sidecar", SIDECAR)])
    assert row.status == "error" and row.alarm and "no model for 'ct'" in row.error
    assert row.kind == "ct"
    # read but not assessed: the operator doing the manual check can still page its slices
    assert station.store.slice_count(row.id) == phantom_hu().shape[0]
    assert "image.png" in station.view_names(station.db.get_scan(row.id))


def test_dual_energy_volume_upload(tmp_path):
    station = Station(tmp_path / "data", make_handle([tiny_ct_model(energies=2)[1]]))
    token = auth.add_operator(station.db, "dora")
    hu = phantom_hu()
    with TestClient(create_app(station)) as c:
        c.headers["Authorization"] = f"Bearer {token}"
        both = {"volume": ("v.npy", npy_bytes(hu)), "sidecar": ("v.json", SIDECAR),
                "volume_low": ("w.npy", npy_bytes(hu - 50)), "sidecar_low": ("w.json", SIDECAR)}
        r = c.post("/api/scans", files=both)
        assert r.status_code == 201, r.text
        assert r.json()["status"] == "ok" and r.json()["size_dhw"] == [12, 40, 48]
        stored = station.store.input_files(r.json()["id"])
        assert [p.name for p in stored] == ["volume.json", "volume.npy", "volume_low.json",
                                            "volume_low.npy"]
        # one energy under a dual-energy model: stored, sent to manual check, saying why
        r = c.post("/api/scans", files={k: both[k] for k in ("volume", "sidecar")})
        assert r.status_code == 201 and r.json()["status"] == "error" and r.json()["alarm"]
        assert "dual-energy" in r.json()["error"]
        # a low-energy volume without its sidecar, or not an array, is refused
        assert c.post("/api/scans", files={k: both[k] for k in ("volume", "sidecar", "volume_low")}
                      ).status_code == 422
        bad = {**both, "volume_low": ("w.npy", b"not an array")}
        assert c.post("/api/scans", files=bad).status_code == 415
        # a low-energy volume of another shape: manual check naming the file's problem
        r = c.post("/api/scans", files={**both, "volume_low": ("w.npy", npy_bytes(hu[1:]))})
        assert r.json()["status"] == "error" and "does not match its main volume" in \
            r.json()["error"]


def test_ct_decisions_take_3d_boxes_inside_the_volume(client):
    hu = phantom_hu()  # (12, 40, 48): x < 48, y < 40, z < 12
    ct_id = client.post("/api/scans", files={"volume": ("v.npy", npy_bytes(hu)),
                                             "sidecar": ("v.json", SIDECAR)}).json()["id"]
    flat_id = client.post("/api/scans", files={"file": ("a.png", png_bytes(
        np.full((30, 30), 200, np.uint8)))}).json()["id"]

    def decide(scan_id, boxes):
        return client.post(f"/api/scans/{scan_id}/decision",
                           json={"decision": "missed", "boxes": boxes})

    r = decide(ct_id, [[14, 12, 4, 30, 22, 8]])
    assert r.status_code == 201, r.text
    stored = client.get(f"/api/scans/{ct_id}").json()["decisions"][-1]["boxes_xyxy"]
    assert stored == [[14, 12, 4, 30, 22, 8]]
    for boxes, says in [([[14, 12, 30, 22]], "a CT volume"),  # no slices
                        ([[14, 12, 4, 30, 22, 13]], "outside the scan"),  # z2 > 12 slices
                        ([[14, 12, 0, 49, 22, 2]], "outside the scan"),  # x2 > 48
                        ([[14, 12, 5, 30, 22, 5]], "z1 < z2"),
                        ([[1, 2, 3, 4, 5]], "got 5 numbers")]:
        r = decide(ct_id, boxes)
        assert r.status_code == 422 and says in r.text, (boxes, r.text)
    r = decide(flat_id, [[1, 1, 0, 9, 9, 1]])  # a 2-D scan's box has no z
    assert r.status_code == 422 and "2-D" in r.text
    assert decide(flat_id, [[1, 1, 9, 9]]).status_code == 201


def test_replay_confirms_a_ct_scans_alarm_boxes_in_3d():
    from detector.station.db import Decision, ScanRow
    from training.reviews import replay

    dets = [{"box": [1, 2, 5, 6], "box3d": [1, 2, 3, 5, 6, 7], "score": 0.9, "alarm": True},
            {"box": [9, 9, 12, 12], "box3d": [9, 9, 0, 12, 12, 2], "score": 0.2, "alarm": False}]
    row = ScanRow(id="20261130T000000-00000000", source="s", received_at="t", kind="ct",
                  files=(), status="ok", alarm=True, error=None, model_version="1",
                  result={"detections": dets})
    confirm = Decision(1, row.id, "ann", "confirm", (), "", "1", "t")
    missed = Decision(2, row.id, "ann", "missed", ((20, 20, 1, 30, 30, 4),), "", "1", "t")
    labels = replay(row, [confirm, missed])
    assert labels.boxes_xyxy == ((1, 2, 3, 5, 6, 7), (20, 20, 1, 30, 30, 4))
    assert labels.sources == ("confirm", "missed") and not labels.cleared


def ct_reviewed_station(folder: Path, energies: int = 1) -> dict:
    """A station with the tiny CT model and reviewed scans; their ids by what happened: a
    missed packet marked in 3-D, a cleared volume, a legacy slice-less box, a 2-D error scan."""
    station = Station(folder, make_handle([tiny_ct_model(energies)[1]]))
    op_id = station.db.add_operator("carol", "0" * 64)
    hu = phantom_hu()
    parts = [Upload("volume", npy_bytes(hu)), Upload("sidecar", SIDECAR)]
    if energies == 2:
        parts += [Upload("volume_low", npy_bytes(hu - 50)), Upload("sidecar_low", SIDECAR)]
    missed, cleared, legacy = (station.receive(parts) for _ in range(3))
    flat = station.receive([Upload("file", png_bytes(np.full((30, 30), 200, np.uint8)))])
    db = station.db
    db.add_decision(missed.id, op_id, "clear", [], "")
    db.add_decision(missed.id, op_id, "missed", [[14, 12, 4, 30, 22, 8]], "under the clothes")
    db.add_decision(cleared.id, op_id, "clear", [], "opened: socks")
    db.add_decision(legacy.id, op_id, "missed", [[14.0, 12.0, 30.0, 22.0]], "")  # no slices
    db.add_decision(flat.id, op_id, "clear", [], "")  # an error scan: skipped
    return {"missed": missed.id, "cleared": cleared.id, "legacy": legacy.id, "flat": flat.id}


@pytest.mark.parametrize("energies", [1, 2])
def test_ct_reviews_become_a_ct_data_set_the_trainer_reads(tmp_path, capsys, energies):
    from detector.cli import main
    from detector.preprocess import CT_DUAL_ENERGY, InputSpec
    from training.ct_data import CtSlabSet, CtVolumes

    ids = ct_reviewed_station(tmp_path / "data", energies)
    missed, cleared, legacy, flat = (ids[k] for k in ("missed", "cleared", "legacy", "flat"))
    hu = phantom_hu()
    out = tmp_path / "reviews"
    assert main(["dataset", "from-reviews", "--data", str(tmp_path / "data"),
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "0 reviewed scans" in printed and "2 reviewed CT volumes (1 with objects, 1 " \
        "cleared by an operator), 1 boxes" in printed
    coco = json.loads((out / "ct" / "annotations.json").read_text())
    by_scan = {i["scan_id"]: i for i in coco["images"]}
    assert set(by_scan) == {missed, cleared}
    skipped = {s["scan_id"]: s["why"] for s in coco["info"]["skipped"]}
    assert "without its slices" in skipped[legacy] and skipped[flat] == "unreadable scan"
    entry = by_scan[missed]
    assert entry["kind"] == "ct" and entry["size_dhw"] == [12, 40, 48]
    assert (set(entry["files"]) == {"ct", "ct_low"}) == (energies == 2)
    [ann] = coco["annotations"]
    assert ann["bbox3d"] == [14, 12, 4, 30, 22, 8] and ann["source"] == "missed"
    assert json.loads((out / "annotations.json").read_text())["images"] == []

    volumes = CtVolumes(out / "ct" / "annotations.json", ["concealed_organic"], energies)
    item = volumes[[e["scan_id"] for e, _, _ in volumes.items].index(missed)]
    assert item.volume.size_dhw == (12, 40, 48) and np.allclose(item.volume.hu, hu)
    assert (item.volume.low is not None) == (energies == 2)
    # no bbox_slices in reviews: the 3-D box's footprint on each of its slices
    assert item.slice_boxes == [[[z, 14, 12, 30, 22] for z in range(4, 8)]]
    channels = CT_DUAL_ENERGY if energies == 2 else ("slice_below", "slice", "slice_above")
    spec = InputSpec(kind="ct", channels=channels, voxel_mm=4.0, hu_window=(-1000.0, 2000.0))
    slabs = CtSlabSet(volumes, spec, flip=False)
    assert slabs.positives == 4  # model grid = voxel grid here (4 mm): slices 4..7
    assert main(["dataset", "from-reviews", "--data", str(tmp_path / "data"),
                 "--out", str(out)]) == 64  # never overwritten


@pytest.mark.slow
def test_retrain_fine_tunes_a_ct_model_on_ct_reviews_and_gates_per_volume(tmp_path, capsys):
    from ct_data import synth_small_ct_sets

    from detector import registry as reg_read
    from detector.cli import main
    from detector.model import OnnxModel
    from training import registry as reg_write

    ckpt, onnx_path = tiny_ct_model()
    reg = tmp_path / "reg"
    reg_write.add_version(reg, "1.0.0", onnx_path, ckpt, metrics={}, data=[])
    reg_write.promote(reg, "1.0.0", "first")
    ct_reviewed_station(tmp_path / "data")
    assert main(["dataset", "from-reviews", "--data", str(tmp_path / "data"),
                 "--out", str(tmp_path / "reviews")]) == 0
    (tmp_path / "sim").mkdir()
    test = synth_small_ct_sets(tmp_path / "sim", {"test": 6}) / "test"
    def retrain(data, version):
        return main(["retrain", "--data", str(data), "--test", str(test), "--registry",
                     str(reg), "--epochs", "1", "--version", version, "--threads", "1"])

    assert retrain(tmp_path / "reviews", "1.0.0+r1") == 0
    out = capsys.readouterr().out
    entry = reg_read.read_entry(reg, "1.0.0+r1")
    m = entry["metrics"]
    assert m["old"]["scans"] == m["new"]["scans"] == 6  # volumes, judged in 3-D
    assert m["test"]["path"] == str(test / "annotations.json")
    assert m["promoted"] == (m["new"]["pd"] >= m["old"]["pd"] and m["new"]["pfa"] <= 0.05
                             and m["new"]["pd"] > 0)
    assert ("promoted 1.0.0+r1" if m["promoted"] else "NOT promoted") in out
    new_model = OnnxModel(reg / "versions" / "1.0.0+r1" / "model.onnx")
    assert new_model.info.kind == "ct"
    assert new_model.info.alarm_threshold == pytest.approx(m["new"]["threshold"])
    assert new_model.info.provenance["data"] == [str(tmp_path / "reviews" / "ct" /
                                                     "annotations.json")]
    old_weights = OnnxModel(onnx_path).sha256
    assert new_model.sha256 != old_weights  # fine-tuned, not copied

    # reviews that cleared every volume leave nothing to learn a packet from: said, not trained
    cleared_only = tmp_path / "reviews" / "ct" / "cleared.json"  # beside its scans/
    coco = json.loads((tmp_path / "reviews" / "ct" / "annotations.json").read_text())
    coco["annotations"] = []
    cleared_only.write_text(json.dumps(coco))
    assert retrain(cleared_only, "x2") == 64
    assert "only cleared volumes" in capsys.readouterr().err
    flat = tmp_path / "reviews" / "annotations.json"  # the 2-D part of the reviews: empty
    assert retrain(flat, "x3") == 64
    assert f"{flat}: no CT volumes" in capsys.readouterr().err
    (tmp_path / "bare.json").write_text(json.dumps({"images": []}))
    assert retrain(tmp_path / "bare.json", "x4") == 64
    assert "bare.json: not a CT data set (no field 'categories')" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin")
def test_operator_pages_slices_in_the_viewer(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    from station_helpers import LiveServer

    station = ct_station(tmp_path / "data")
    station.receive([Upload("volume", npy_bytes(phantom_hu())), Upload("sidecar", SIDECAR)])
    token = auth.add_operator(station.db, "bob")
    with sync_api.sync_playwright() as pw, LiveServer(create_app(station)) as server:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                     args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(15_000)
            page.goto(server.url + "/")
            page.fill("#token", token)
            page.click("#login")
            page.locator("#filter").select_option("")
            page.locator("#queue li").first.click()
            label = page.locator("#slice-label")
            sync_api.expect(page.locator("#slice-control")).to_be_visible()
            first = label.text_content()
            assert first.endswith("/ 12")
            # the contrast window in HU, and the organic preset (-400..600 HU)
            sync_api.expect(page.locator("#win-hu")).to_have_text("-1000..2000 HU")
            page.click("#win-organic")
            sync_api.expect(page.locator("#win-hu")).to_contain_text("HU")
            lo, hi = (int(v) for v in page.inner_text("#win-hu").split()[0].split(".."))
            assert abs(lo + 400) <= 12 and abs(hi - 600) <= 12  # whole grey levels
            page.keyboard.press(".")
            sync_api.expect(label).not_to_have_text(first)
            page.keyboard.press("PageUp")
            sync_api.expect(label).to_have_text(first)
            page.fill("#slice", "0")
            page.dispatch_event("#slice", "input")
            sync_api.expect(label).to_have_text("1 / 12")

            # a missed packet: drawn on slice 4, extended (E) to slice 7 and back to 3
            page.fill("#slice", "3")
            page.dispatch_event("#slice", "input")
            sync_api.expect(label).to_have_text("4 / 12")
            page.locator("#viewport").focus()
            page.keyboard.press("m")
            sync_api.expect(page.locator("#extend-missed")).to_be_visible()
            drag_box(page, 0.25, 0.4)
            sync_api.expect(page.locator("#boxes rect.drawn")).to_have_count(1)
            for _ in range(3):
                page.keyboard.press(".")
            sync_api.expect(label).to_have_text("7 / 12")
            sync_api.expect(page.locator("#boxes rect.elsewhere")).to_have_count(1)
            page.keyboard.press("e")
            sync_api.expect(page.locator("#action-status")).to_have_text("box covers slices 4-7")
            sync_api.expect(page.locator("#boxes rect.elsewhere")).to_have_count(0)
            page.fill("#slice", "2")
            page.dispatch_event("#slice", "input")
            sync_api.expect(label).to_have_text("3 / 12")
            page.locator("#viewport").focus()
            page.keyboard.press("e")
            sync_api.expect(page.locator("#action-status")).to_have_text("box covers slices 3-7")
            page.keyboard.press("Enter")
            sync_api.expect(page.locator("#decisions li[data-decision=missed]")).to_have_count(1)
        finally:
            browser.close()
    [decision] = station.db.decisions()
    x1, y1, z1, x2, y2, z2 = decision.boxes_xyxy[0]
    assert (z1, z2) == (2, 7) and 0 <= x1 < x2 <= 48 and 0 <= y1 < y2 <= 40 and x2 - x1 > 5

