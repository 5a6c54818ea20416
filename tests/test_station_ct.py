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
from station_helpers import tiny_model  # noqa: E402

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


def test_reviews_of_ct_scans_are_skipped_not_exported_as_2d_boxes(tmp_path):
    from training.reviews import export_reviews

    station = ct_station(tmp_path / "data")
    row = station.receive([Upload("volume", npy_bytes(phantom_hu())), Upload("sidecar", SIDECAR)])
    op_id = station.db.add_operator("carol", "0" * 64)
    station.db.add_decision(row.id, op_id, "missed", [[1.0, 1.0, 9.0, 9.0]], "")
    counts = export_reviews(tmp_path / "data", tmp_path / "reviews")
    assert counts["scans"] == 0 and counts["skipped"] == 1


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
            page.keyboard.press(".")
            sync_api.expect(label).not_to_have_text(first)
            page.keyboard.press("PageUp")
            sync_api.expect(label).to_have_text(first)
            page.fill("#slice", "0")
            page.dispatch_event("#slice", "input")
            sync_api.expect(label).to_have_text("1 / 12")
        finally:
            browser.close()
