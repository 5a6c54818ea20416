"""The station's HTTP API with the real detector (a tiny exported model): auth, upload, queue,
views, decisions, limits."""

from __future__ import annotations

import errno
import json
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402
from station_helpers import colour_bytes, dual_pair_bytes, png_bytes, tiny_model  # noqa: E402

from detector.outputs import OutputError  # noqa: E402
from detector.overlay import base_view, render_overlay  # noqa: E402
from detector.readers import ScanRef, read_scan  # noqa: E402
from detector.results import ModelChooser  # noqa: E402
from detector.scan import Scan  # noqa: E402
from detector.station import auth, views  # noqa: E402
from detector.station.app import create_app  # noqa: E402
from detector.station.detectors import make_handle  # noqa: E402
from detector.station.station import DetectorHandle, RecentScans, Station  # noqa: E402
from detector.station.store import Upload  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def station(tmp_path):
    handle = make_handle([tiny_model("dual")[0], tiny_model("color")[0]])
    return Station(tmp_path / "data", handle)


@pytest.fixture
def client(station):
    token = auth.add_operator(station.db, "alice")
    with TestClient(create_app(station, max_upload_bytes=2_000_000)) as c:
        c.headers["Authorization"] = f"Bearer {token}"
        yield c


def upload_dual(client) -> dict:
    high, low = dual_pair_bytes()
    r = client.post("/api/scans", files={"high": ("a.png", high), "low": ("b.png", low)})
    assert r.status_code == 201, r.text
    return r.json()


@pytest.mark.parametrize("method,path", [
    ("get", "/api/health"), ("get", "/api/scans"), ("post", "/api/scans"),
    ("get", "/api/scans/20261128T000000-00000000"),
    ("get", "/api/scans/20261128T000000-00000000/image.png"),
    ("post", "/api/scans/20261128T000000-00000000/decision"), ("post", "/api/model/reload"),
])
@pytest.mark.parametrize("header", [None, "Bearer wrong-token-wrong-token-wrong", "Basic abc",
                                    "Bearer"])
def test_every_api_route_needs_a_valid_token(client, method, path, header):
    client.headers.pop("Authorization")
    headers = {} if header is None else {"Authorization": header}
    r = getattr(client, method)(path, headers=headers)
    assert r.status_code == 401, (path, header, r.status_code)


def test_dual_upload_answers_with_a_results_line_and_is_queued(client):
    line = upload_dual(client)
    assert line["status"] == "ok" and line["kind"] == "dual" and line["alarm"] is True
    assert line["scan"].startswith("scans/")  # relative to the data folder: no server paths
    assert line["model"]["name"] == "tiny-dual" and len(line["model"]["sha256"]) == 64
    assert line["detections"] and {"box", "score", "alarm", "label"} <= set(line["detections"][0])
    queue = client.get("/api/scans").json()["scans"]
    assert [s["id"] for s in queue] == [line["id"]]
    assert queue[0]["review"] == "unreviewed" and queue[0]["model_version"] == "tiny-dual-1.0.0"
    detail = client.get(f"/api/scans/{line['id']}").json()
    assert detail["result"] == line
    assert set(detail["views"]) == {"image.png", "gray.png", "heat.png", "overlay.png"}
    for view in detail["views"]:
        r = client.get(f"/api/scans/{line['id']}/{view}")
        assert r.status_code == 200 and r.content.startswith(PNG_MAGIC)
        assert r.headers["content-type"] == "image/png"


def test_colour_upload_and_newest_first(client):
    first = upload_dual(client)
    r = client.post("/api/scans", files={"file": ("x.bin", colour_bytes())})
    assert r.status_code == 201 and r.json()["kind"] == "color"
    ids = [s["id"] for s in client.get("/api/scans").json()["scans"]]
    assert ids == [r.json()["id"], first["id"]]


def test_non_images_are_refused_by_content_and_not_stored(client, station):
    r = client.post("/api/scans", files={"file": ("scan.png", b"#!/bin/sh\nrm -rf /\n" * 10)})
    assert r.status_code == 415 and "not a PNG" in r.json()["detail"]
    assert client.get("/api/scans").json()["scans"] == []
    assert [p for p in station.store.root.iterdir()] == []


def test_unreadable_image_is_stored_as_error_for_manual_check(client):
    blank = png_bytes(np.full((40, 50), 65535, np.uint16))  # all air: nothing to inspect
    r = client.post("/api/scans", files={"file": ("blank.png", blank)})
    assert r.status_code == 201
    line = r.json()
    assert line["status"] == "error" and line["alarm"] is True and "uniform" in line["error"]
    errors = client.get("/api/scans", params={"status": "error"}).json()["scans"]
    assert [s["id"] for s in errors] == [line["id"]] and errors[0]["alarm"] is True
    assert client.get(f"/api/scans/{line['id']}/image.png").status_code == 404


@pytest.mark.parametrize("files", [
    {"file": ("a.png", "colour"), "high": ("b.png", "high")},
    {"high": ("b.png", "high")},
    {"low": ("b.png", "low")},
])
def test_wrong_part_combinations_are_refused(client, files):
    high, low = dual_pair_bytes()
    data = {"colour": colour_bytes(), "high": high, "low": low}
    r = client.post("/api/scans", files={k: (n, data[v]) for k, (n, v) in files.items()})
    assert r.status_code == 422, r.text
    assert client.get("/api/scans").json()["scans"] == []


def test_upload_size_limit(client):
    r = client.post("/api/scans", files={"file": ("big.png", PNG_MAGIC + b"\0" * 2_100_000)})
    assert r.status_code == 413


@pytest.mark.parametrize("scan_id", ["../station.sqlite", "..%2F..%2Fetc%2Fpasswd",
                                     "20261128T000000-0000000g", "x" * 300,
                                     "20261128T000000-00000000"])
def test_scan_ids_never_become_paths(client, scan_id):
    upload_dual(client)
    for suffix in ("", "/image.png", "/overlay.png"):
        assert client.get(f"/api/scans/{scan_id}{suffix}").status_code == 404


def test_decisions_are_appended_with_operator_time_and_model(client, station):
    sid = upload_dual(client)["id"]
    url = f"/api/scans/{sid}/decision"
    r = client.post(url, json={"decision": "confirm", "note": "packet in shoe"})
    assert r.status_code == 201
    assert client.post(url, json={"decision": "clear"}).status_code == 201
    r = client.post(url, json={"decision": "missed", "boxes": [[10, 12, 40, 30.5]]})
    assert r.status_code == 201 and r.json()["operator"] == "alice"
    decisions = client.get(f"/api/scans/{sid}").json()["decisions"]
    assert [d["decision"] for d in decisions] == ["confirm", "clear", "missed"]
    assert all(d["operator"] == "alice" and d["model_version"] == "tiny-dual-1.0.0"
               and d["decided_at"] for d in decisions)
    assert decisions[2]["boxes_xyxy"] == [[10, 12, 40, 30.5]] and decisions[0]["note"]
    assert client.get("/api/scans", params={"review": "missed"}).json()["scans"][0]["id"] == sid
    with sqlite3.connect(station.db.path) as conn, pytest.raises(sqlite3.IntegrityError):
        conn.execute("UPDATE decisions SET decision = 'clear'")
    with sqlite3.connect(station.db.path) as conn, pytest.raises(sqlite3.IntegrityError):
        conn.execute("DELETE FROM decisions")


@pytest.mark.parametrize("body", [
    {"decision": "missed"},  # a missed item needs its box
    {"decision": "clear", "boxes": [[0, 0, 5, 5]]},
    {"decision": "confirm", "boxes": [[5, 5, 1, 9]]},  # x2 < x1
    {"decision": "confirm", "boxes": [[0, 0, 5]]},
    {"decision": "missed", "boxes": [[100, 0, 129, 10]]},  # x2 beyond the 128-pixel width
    {"decision": "missed", "boxes": [[0, 90, 10, 97]]},  # y2 beyond the 96-pixel height
    {"decision": "maybe"},
    {"decision": "confirm", "note": "x" * 2001},
])
def test_bad_decisions_are_refused(client, body):
    sid = upload_dual(client)["id"]
    assert client.post(f"/api/scans/{sid}/decision", json=body).status_code == 422
    assert client.get(f"/api/scans/{sid}").json()["decisions"] == []


def test_queue_filters(client):
    a = upload_dual(client)["id"]
    b = upload_dual(client)["id"]
    client.post(f"/api/scans/{a}/decision", json={"decision": "clear"})

    def ids(**params):
        return [s["id"] for s in client.get("/api/scans", params=params).json()["scans"]]

    assert ids(review="unreviewed") == [b] and ids(review="reviewed") == [a]
    assert ids(review="clear") == [a] and ids(alarm="true") == [b, a] and ids(alarm="false") == []
    assert client.get("/api/scans", params={"review": "bogus"}).status_code == 422


def test_queue_summaries_match_each_scans_own_summary(client, station):
    """The queue counts boxes in SQLite; it must say what the scan's own route says, for
    scans with and without detections and for an error scan (boxes None)."""
    upload_dual(client)
    r = client.post("/api/scans", files={"file": ("c.png", colour_bytes())})
    assert r.status_code == 201, r.text
    blank = png_bytes(np.full((40, 50), 65535, np.uint16))  # all air: an error scan
    bad = client.post("/api/scans", files={"file": ("blank.png", blank)})
    assert bad.status_code == 201 and bad.json()["status"] == "error", bad.text
    with station.db.connect() as conn:  # a scan whose line holds three detections
        row = conn.execute("SELECT * FROM scans LIMIT 1").fetchone()
        line = {"detections": [{"box": [1, 2, 3, 4], "score": 0.9, "alarm": True}] * 3}
        conn.execute("INSERT INTO scans (id, source, received_at, kind, files, status, alarm, "
                     "error, model_version, result) VALUES (?, ?, ?, ?, ?, 'ok', 1, NULL, ?, ?)",
                     ("20261129T000000-0000abcd", "three", "2026-11-29T00:00:00Z", row["kind"],
                      row["files"], row["model_version"], json.dumps(line)))
    queue = client.get("/api/scans", params={"limit": 500}).json()["scans"]
    assert len(queue) >= 3 and any(s["boxes"] == 3 for s in queue)
    for summary in queue:
        own = client.get(f"/api/scans/{summary['id']}").json()
        assert summary == {k: own[k] for k in summary}, summary["id"]
        assert set(summary) == {"id", "received_at", "kind", "status", "alarm", "error",
                                "review", "model_version", "boxes"}
    assert any(s["status"] == "error" and s["boxes"] is None for s in queue)


def test_health_openapi_viewer_and_headers(client):
    health = client.get("/api/health").json()
    assert health["operator"] == "alice" and "tiny-dual-1.0.0" in health["model"]["version"]
    paths = client.get("/openapi.json").json()["paths"]
    for p in ("/api/scans", "/api/scans/{scan_id}", "/api/scans/{scan_id}/decision",
              "/api/scans/{scan_id}/overlay.png", "/api/scans/{scan_id}/image.png",
              "/api/health"):
        assert p in paths
    page = client.get("/", headers={"Authorization": ""})
    assert page.status_code == 200 and "concealscan" in page.text
    assert page.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "cache-control" not in page.headers  # the viewer's files may be cached
    api = client.get("/api/health")
    assert api.headers["cache-control"] == "no-store" and api.headers["referrer-policy"]
    assert client.get("/api/nowhere").headers["x-content-type-options"] == "nosniff"  # 404 too
    assert client.get("/app.js").status_code == 200
    head = client.head("/", headers={"Authorization": ""})  # an uptime probe's request
    assert head.status_code == 200 and head.content == b""


def test_the_wal_is_not_checkpointed_away_after_every_request(client, station):
    # With only short connections, the last one to close checkpoints the WAL and deletes it
    # on each request; a connection held open for the station's life avoids that work.
    upload_dual(client)
    wal = station.db.path.with_name(station.db.path.name + "-wal")
    assert wal.is_file() and wal.stat().st_size > 0
    station.db.close()
    with sqlite3.connect(station.db.path) as conn:  # held or not, the data is all there
        assert conn.execute("SELECT COUNT(*) FROM scans").fetchone()[0] == 1


# -- views: drawn on first request, then cached beside the scan --------------------------------
def stored_scan(station, sid: str):
    return read_scan(ScanRef(id=sid, files=tuple(station.store.input_files(sid))))


def scan_pngs(station, sid: str) -> list[str]:
    return sorted(p.name for p in station.store.scan_dir(sid).glob("*.png"))


def test_views_are_drawn_on_first_request_and_then_served_from_the_cache(client, station,
                                                                          monkeypatch):
    sid = upload_dual(client)["id"]
    assert scan_pngs(station, sid) == []  # an upload draws nothing
    first = client.get(f"/api/scans/{sid}/image.png").content
    assert scan_pngs(station, sid) == ["gray.png", "image.png"]  # one decode, both views
    assert client.get(f"/api/scans/{sid}/heat.png").status_code == 200
    assert client.get(f"/api/scans/{sid}/overlay.png").status_code == 200
    assert scan_pngs(station, sid) == ["gray.png", "heat.png", "image.png", "overlay.png"]

    def no_reading(*args, **kwargs):
        raise AssertionError("a cached view was drawn again")

    monkeypatch.setattr("detector.station.views.read_scan", no_reading)
    monkeypatch.setattr("detector.station.views.read_detection", no_reading)
    for view in ("image.png", "gray.png", "heat.png", "overlay.png"):
        assert client.get(f"/api/scans/{sid}/{view}").status_code == 200
    assert client.get(f"/api/scans/{sid}/image.png").content == first


def test_lazy_views_are_what_the_scan_and_its_detection_give(client, station):
    sid = upload_dual(client)["id"]
    folder = station.store.scan_dir(sid)
    scan = stored_scan(station, sid)
    det = views.read_detection(folder / views.DETECTION_FILE)
    assert det.size_hw == scan.size_hw and det.model["name"] == "tiny-dual"
    assert len(det.scores) == len(client.get(f"/api/scans/{sid}").json()["result"]
                                  ["detections"])

    def png(view):
        data = np.frombuffer(client.get(f"/api/scans/{sid}/{view}").content, np.uint8)
        return cv2.imdecode(data, cv2.IMREAD_UNCHANGED)

    assert np.array_equal(png("overlay.png"), render_overlay(scan, det))
    assert np.array_equal(png("image.png")[:, :, ::-1], base_view(scan))
    assert np.array_equal(png("gray.png"), views.gray_view(scan))
    assert png("heat.png").shape == (*scan.size_hw, 4)


def test_detection_round_trip_keeps_every_field(client, station):
    sid = upload_dual(client)["id"]
    scan = stored_scan(station, sid)
    det = ModelChooser([str(tiny_model("dual")[0])]).for_scan(scan).detect(scan)
    path = station.data_dir / "d.npz"
    path.write_bytes(views.detection_bytes(det))
    back = views.read_detection(path)
    for f in fields(det):
        a, b = getattr(det, f.name), getattr(back, f.name)
        if isinstance(a, np.ndarray):
            assert a.dtype == b.dtype and np.array_equal(a, b), f.name
        else:
            assert a == b and type(a) is type(b), f.name


def test_a_readable_scan_without_detection_has_only_its_own_views(tmp_path):
    # a colour scan on a station with only a dual model: error (manual check), but readable
    station = Station(tmp_path / "data", make_handle([tiny_model("dual")[0]]))
    token = auth.add_operator(station.db, "bob")
    with TestClient(create_app(station)) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        line = client.post("/api/scans", files={"file": ("c.png", colour_bytes())}).json()
        assert line["status"] == "error" and line["alarm"] is True and line["kind"] == "color"
        assert client.get(f"/api/scans/{line['id']}").json()["views"] == ["image.png",
                                                                          "gray.png"]
        assert client.get(f"/api/scans/{line['id']}/image.png").status_code == 200
        for view in ("heat.png", "overlay.png"):
            assert client.get(f"/api/scans/{line['id']}/{view}").status_code == 404


def test_a_view_is_served_when_its_cache_cannot_be_written(client, station, monkeypatch):
    sid = upload_dual(client)["id"]

    def full_disk(path, data):
        raise OutputError(path, OSError(errno.ENOSPC, "No space left on device"))

    monkeypatch.setattr("detector.station.views.write_atomic", full_disk)
    r = client.get(f"/api/scans/{sid}/overlay.png")
    assert r.status_code == 200 and r.content.startswith(PNG_MAGIC)
    assert scan_pngs(station, sid) == []


def test_views_drawn_from_the_scan_kept_at_ingest_equal_views_drawn_from_its_files(
        client, station):
    sid = upload_dual(client)["id"]
    assert station._recent.get(sid) is not None
    kept = {name: client.get(f"/api/scans/{sid}/{name}").content
            for name in ("overlay.png", "image.png", "gray.png")}
    for name in kept:
        (station.store.scan_dir(sid) / name).unlink()  # the cached files: draw them again
    station._recent = RecentScans(0)  # as after a restart: nothing decoded is held
    for name, png in kept.items():
        assert client.get(f"/api/scans/{sid}/{name}").content == png, name


def test_recent_scans_keep_the_newest_within_their_byte_limit():
    def make(name: str, side: int = 10) -> Scan:  # float32: 400 bytes at side 10
        return Scan(id=name, kind="gray", image=np.zeros((1, side, side), np.float32),
                    sources=("<test>",), bit_depth=8)

    recent = RecentScans(max_bytes=2 * 400)
    for name in "abc":
        recent.put(name, make(name))
    assert recent.get("a") is None and recent.get("b") is not None and recent.get("c")
    recent.put("big", make("big", side=30))
    assert recent.get("big") is None and recent.get("c") is not None  # too big: not kept


def test_a_stored_scan_damaged_after_ingest_is_a_clear_500(client, station):
    sid = upload_dual(client)["id"]
    (station.store.scan_dir(sid) / "input" / "low.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    station._recent = RecentScans(0)  # as after a restart: the views need the files
    r = client.get(f"/api/scans/{sid}/image.png")
    assert r.status_code == 500 and "cannot draw image.png" in r.json()["detail"]
    assert client.get(f"/api/scans/{sid}/heat.png").status_code == 200  # no scan needed


def _counting_handle(real, before=None):
    """``real`` with its analyses counted: (handle, state); ``before`` runs inside each one."""
    lock, state = threading.Lock(), {"now": 0, "most": 0}

    def analyze(ref):
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        try:
            if before is not None:
                before()
            return real.analyze(ref)
        finally:
            with lock:
                state["now"] -= 1

    return DetectorHandle(analyze=analyze, model=real.model), state


def _receive_in_parallel(station, n: int) -> list:
    high, low = dual_pair_bytes()
    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(
            lambda _: station.receive([Upload("high", high), Upload("low", low)]), range(n)))


def test_two_jobs_analyse_two_scans_at_once(tmp_path):
    both_inside = threading.Barrier(2, timeout=30)  # broken (an error line) unless 2 overlap
    handle, state = _counting_handle(make_handle([tiny_model("dual")[0]]),
                                     before=lambda: both_inside.wait())
    station = Station(tmp_path / "data", handle, jobs=2)
    rows = _receive_in_parallel(station, 2)
    assert [r.status for r in rows] == ["ok", "ok"], [r.error for r in rows]
    assert state["most"] == 2


def test_one_job_analyses_one_scan_at_a_time(tmp_path):
    handle, state = _counting_handle(make_handle([tiny_model("dual")[0]]),
                                     before=lambda: time.sleep(0.05))
    station = Station(tmp_path / "data", handle, jobs=1)
    rows = _receive_in_parallel(station, 4)
    assert [r.status for r in rows] == ["ok"] * 4 and state["most"] == 1
    with pytest.raises(ValueError, match="jobs"):
        Station(tmp_path / "other", handle, jobs=0)


@pytest.mark.parametrize("files", [
    [("file", ("a.png", "colour")), ("file", ("b.png", "colour"))],
    [("high", ("a.png", "high")), ("low", ("b.png", "low")), ("high", ("c.png", "high"))],
    [("file", ("a.png", "colour")), ("note", ("n.txt", "colour"))],
])
def test_a_part_named_twice_or_unknown_is_refused_not_half_stored(client, files):
    """FastAPI keeps only the last of a repeated part: two images under 'file' would have
    stored and judged one, the other never inspected."""
    high, low = dual_pair_bytes()
    data = {"colour": colour_bytes(), "high": high, "low": low}
    r = client.post("/api/scans", files=[(k, (n, data[v])) for k, (n, v) in files])
    assert r.status_code == 422, r.text
    assert "at most once" in r.text
    assert client.get("/api/scans").json()["scans"] == []


def test_an_upload_without_a_valid_token_is_refused_before_its_body_is_read(station):
    """The 401 comes from the headers alone: the body (here a stream that fails if read) is
    never read, so an unauthenticated client cannot make the station spool uploads."""
    import asyncio

    from detector.station.app import create_app

    app = create_app(station)
    sent, read = [], []

    async def receive():
        read.append(True)
        raise AssertionError("the body was read")

    async def send(message):
        sent.append(message)

    for auth_header in ([], [(b"authorization", b"Bearer not-a-valid-token-at-all-xx")]):
        sent.clear()
        scope = {"type": "http", "method": "POST", "path": "/api/scans", "query_string": b"",
                 "headers": [(b"content-type", b"multipart/form-data; boundary=x"),
                             (b"content-length", b"1000000"), *auth_header]}
        asyncio.run(app(scope, receive, send))
        assert sent[0]["status"] == 401 and not read


def test_the_station_starts_beside_files_it_did_not_write(tmp_path, station):
    """DATA/scans/ may hold a README, lost+found or a stray copy: the station starts, warns and
    leaves them alone (it stopped with a traceback)."""
    (station.store.root / "README.txt").write_text("station data, do not edit")
    (station.store.root / "lost+found").mkdir()
    (station.store.root / "20261128T000000-0000000a").mkdir()  # no source.txt
    assert station.recover() == 0
    again = Station(station.data_dir, make_handle([tiny_model("color")[0]]))
    assert again.recover() == 0


def test_no_api_docs_page_that_the_security_policy_would_leave_blank(client):
    assert client.get("/docs").status_code == 404
    assert client.get("/openapi.json").status_code == 200


def test_a_decision_body_gets_no_uploads_room(client):
    """JSON is parsed whole in memory: a decision body over 1 MB is refused (413), though
    uploads may be far larger."""
    line = upload_dual(client)
    body = b'{"decision": "clear", "boxes": [], "note": "' + b" " * 1_100_000 + b'"}'
    r = client.post(f"/api/scans/{line['id']}/decision", content=body,
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 413


def test_confirm_needs_an_alarm_or_the_boxes_confirmed(client, station, monkeypatch):
    """'confirm' with no boxes on a scan that did not alarm confirms nothing: 422 (it once
    recorded a confirm that replay then skipped); naming a candidate box is a confirm. (The
    tiny model alarms on every scan, so the row is read back as not alarming.)"""
    from dataclasses import replace

    line = upload_dual(client)
    get_scan = station.db.get_scan
    monkeypatch.setattr(station.db, "get_scan", lambda sid: replace(get_scan(sid), alarm=False))
    url = f"/api/scans/{line['id']}/decision"
    r = client.post(url, json={"decision": "confirm"})
    assert r.status_code == 422 and "did not alarm" in r.text
    named = client.post(url, json={"decision": "confirm", "boxes": [[1, 1, 9, 9]]})
    assert named.status_code == 201


def test_an_upload_whose_random_id_is_taken_gets_another_and_both_stay(client, station,
                                                                      monkeypatch):
    """Ids are random; if one repeats, the new scan must get its own id, never share (or be
    hidden behind) the stored one."""
    from detector.station import station as station_module

    first = upload_dual(client)
    fresh = "20261128T000000-0000beef"
    ids = iter([first["id"], fresh])
    monkeypatch.setattr(station_module, "new_scan_id", lambda: next(ids))
    second = upload_dual(client)
    assert second["id"] == fresh
    assert {s["id"] for s in client.get("/api/scans").json()["scans"]} == {first["id"], fresh}


def test_a_row_id_already_used_by_another_source_is_an_error_not_ignored(station):
    from detector.station.db import DatabaseError, ScanRow

    base = dict(id="20261128T000000-0000abcd", received_at="t", kind="dual", files=(),
                status="ok", alarm=False, error=None, model_version="m", result={})
    assert station.db.insert_scan(ScanRow(source="upload:a", **base))
    assert not station.db.insert_scan(ScanRow(source="upload:a", **base))  # idempotent
    with pytest.raises(DatabaseError, match="already used by another scan"):
        station.db.insert_scan(ScanRow(source="watch:b", **base))


def test_a_refused_upload_leaves_nothing_that_a_restart_would_add(client, station,
                                                                   monkeypatch):
    """507 (the database cannot be written: a root-owned station.sqlite) must leave no scan
    folder: recover() used to add it at the next start, so a client that retried got its
    scan twice."""
    def readonly(row):
        raise sqlite3.OperationalError("attempt to write a readonly database")

    with monkeypatch.context() as m:
        m.setattr(station.db, "insert_scan", readonly)
        r = client.post("/api/scans", files={"file": ("c.png", colour_bytes())})
        assert r.status_code == 507, r.text
    assert [p.name for p in station.store.root.iterdir() if not p.name.startswith(".")] == []
    assert Station(station.data_dir, DetectorHandle(analyze=None)).recover() == 0
    retried = client.post("/api/scans", files={"file": ("c.png", colour_bytes())})
    assert retried.status_code == 201
    assert [s["id"] for s in client.get("/api/scans").json()["scans"]] == [retried.json()["id"]]


@pytest.mark.parametrize("unwritable", ["station.sqlite", "scans", "."])
def test_health_is_503_when_scans_cannot_be_stored(client, station, monkeypatch, unwritable):
    """A station.sqlite (or data folder) another user owns: every upload would be 507, so
    health must not say ok. os.access is what the check asks; as root nothing else can take
    write permission away in-process (tests/test_station_permissions.py runs as nobody)."""
    import os

    assert client.get("/api/health").json()["status"] == "ok"
    target = (station.data_dir / unwritable).resolve()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: Path(p).resolve() != target
                        and real_access(p, mode, **kw))
    r = client.get("/api/health")
    assert r.status_code == 503, r.text
    body = r.json()
    assert body["status"] == "error" and str(target) in body["problems"][0]
    assert "Permission denied" in body["problems"][0]


@pytest.mark.parametrize("unwritable", ["scans/.staging", "own staging"])
def test_health_is_503_when_the_staging_folder_cannot_be_written(client, station, monkeypatch,
                                                                 unwritable):
    """Each upload is built in scans/.staging/OWNER/ first: one that root made (a root
    ``watch --data`` run) failed every upload with 500 while health said ok."""
    import os

    from detector.station.store import STAGING, process_owner

    upload_dual(client)  # makes scans/.staging and this process's folder in it
    staging = station.store.root / STAGING
    target = (staging if unwritable == "scans/.staging" else staging / process_owner()).resolve()
    assert target.is_dir() and client.get("/api/health").json()["status"] == "ok"
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: Path(p).resolve() != target
                        and real_access(p, mode, **kw))
    r = client.get("/api/health")
    assert r.status_code == 503, r.text
    assert any(str(target) in p and "Permission denied" in p for p in r.json()["problems"])


def test_health_is_503_when_the_disk_is_nearly_full(client, station, monkeypatch):
    """A full disk fails uploads (507) and was not in health: under the larger of 100 MB and
    the upload limit free, health says so."""
    import os

    real_statvfs = os.statvfs

    def nearly_full(path):
        st = real_statvfs(path)
        return os.statvfs_result((st.f_bsize, 4096, st.f_blocks, 10, 10, *st[5:]))

    monkeypatch.setattr(os, "statvfs", nearly_full)  # 40 KB free
    r = client.get("/api/health")
    assert r.status_code == 503, r.text
    assert any("MB free" in p and str(station.data_dir) in p for p in r.json()["problems"])
