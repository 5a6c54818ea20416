"""The service under hostile requests: wrong tokens, traversal in ids and file names, oversized
and non-image uploads, malformed JSON. Each gets the right 4xx and writes nothing; tokens
never reach the logs. (tests/test_station_api.py covers the plain 401/413/415/422 cases.)"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import numpy as np
import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402
from serve_process import ServeProcess  # noqa: E402
from station_helpers import LiveServer, dual_pair_bytes, png_bytes, tiny_model  # noqa: E402

from detector.station import auth  # noqa: E402
from detector.station.app import create_app  # noqa: E402
from detector.station.detectors import make_handle  # noqa: E402
from detector.station.station import Station  # noqa: E402
from detector.station.store import check_scan_id  # noqa: E402

MAX_UPLOAD = 1_000_000


@pytest.fixture(scope="module")
def handle():
    return make_handle([tiny_model("dual")[0], tiny_model("color")[0]])


@pytest.fixture
def station(tmp_path, handle):
    return Station(tmp_path / "data", handle)


@pytest.fixture
def token(station):
    return auth.add_operator(station.db, "alice")


@pytest.fixture
def client(station, token):
    with TestClient(create_app(station, max_upload_bytes=MAX_UPLOAD)) as c:
        c.headers["Authorization"] = f"Bearer {token}"
        yield c


def snapshot(station: Station) -> tuple:
    """Every file under the data folder (but the database) and the rows of every table."""
    data = station.data_dir
    files = sorted((str(p.relative_to(data)), p.stat().st_size) for p in data.rglob("*")
                   if p.is_file() and not p.name.startswith("station.sqlite"))
    with sqlite3.connect(station.db.path) as conn:
        rows = tuple(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # noqa: S608
                     for t in ("scans", "decisions", "operators"))
    return files, rows


def upload_dual(client, names=("h.png", "l.png")) -> dict:
    high, low = dual_pair_bytes()
    r = client.post("/api/scans", files={"high": (names[0], high), "low": (names[1], low)})
    assert r.status_code == 201, r.text
    return r.json()


BAD_AUTH = [None, "Bearer wrong-token-wrong-token-wrong", "Basic YWxpY2U6c2VjcmV0", "Bearer",
            "Token {token}", "{token}", "Bearer {token}x", "Bearer  {token} extra",
            "Bearer ../../station.sqlite", "Bearer " + "A" * 5000]


@pytest.mark.parametrize("header", BAD_AUTH)
def test_writes_without_a_valid_token_are_401_and_write_nothing(client, station, token, header):
    sid = upload_dual(client)["id"]
    before = snapshot(station)
    headers = {} if header is None else {"Authorization": header.format(token=token)}
    client.headers.pop("Authorization")
    high, low = dual_pair_bytes()
    for method, url, kwargs in [
        ("post", "/api/scans", {"files": {"high": ("h.png", high), "low": ("l.png", low)}}),
        ("post", f"/api/scans/{sid}/decision", {"json": {"decision": "clear"}}),
        ("post", "/api/model/reload", {}),
        ("get", f"/api/scans/{sid}/image.png", {}),
    ]:
        r = getattr(client, method)(url, headers=headers, **kwargs)
        assert r.status_code == 401, (url, header, r.status_code)
        assert r.headers["www-authenticate"] == "Bearer"
        assert token not in r.text
    assert snapshot(station) == before


HOSTILE_NAMES = ["../../../../tmp/evil.png", "..\\..\\evil.png", "/etc/passwd",
                 "a/../../station.sqlite", "%2e%2e%2fevil.png", "evil\x00.png",
                 "scans/../station.sqlite", "." * 300, "CON", "résumé ☢.png"]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_upload_file_names_never_become_paths(client, station, tmp_path, name):
    line = upload_dual(client, names=(name, name))
    assert line["status"] == "ok"
    stored = sorted(str(p.relative_to(station.data_dir)) for p in station.data_dir.rglob("*")
                    if p.is_file() and not p.name.startswith("station.sqlite"))
    folder = f"scans/{line['id']}"
    assert stored == sorted(f"{folder}/{n}" for n in (
        "input/high.png", "input/low.png", "source.txt", "result.json", "detection.npz"))
    for view in ("image.png", "heat.png", "overlay.png"):  # drawn on request, kept beside it
        assert client.get(f"/api/scans/{line['id']}/{view}").status_code == 200
    stored_after = sorted(str(p.relative_to(station.data_dir)) for p in
                          station.data_dir.rglob("*")
                          if p.is_file() and not p.name.startswith("station.sqlite"))
    assert stored_after == sorted([*stored, *(f"{folder}/{n}" for n in (
        "image.png", "gray.png", "heat.png", "overlay.png"))])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # nothing beside the data


TRAVERSAL_IDS = ["..", "../station.sqlite", "%2e%2e", "..%2f..%2fstation.sqlite",
                 "%2e%2e%2f%2e%2e%2fstation.sqlite", "20261128T000000-0000abcd%0a",
                 "20261128T000000-0000abcd%2f..", "２０２６１１２８T000000-0000abcd",
                 ".staging-20261128T000000-0000abcd", "20261128T000000-0000ABCD"]


@pytest.mark.parametrize("scan_id", TRAVERSAL_IDS)
def test_traversal_in_scan_ids_is_404_everywhere_and_writes_nothing(client, station, scan_id):
    upload_dual(client)
    before = snapshot(station)
    for suffix in ("", "/image.png", "/gray.png", "/heat.png", "/overlay.png"):
        r = client.get(f"/api/scans/{scan_id}{suffix}")
        assert r.status_code == 404, (scan_id, suffix, r.status_code)
    r = client.post(f"/api/scans/{scan_id}/decision", json={"decision": "clear"})
    assert r.status_code in (404, 405), r.status_code  # 405: the path no longer ends in /decision
    assert snapshot(station) == before


@pytest.mark.parametrize("scan_id", ["20261128T000000-0000abcd\n", "20261128T000000-0000abcd\r",
                                     " 20261128T000000-0000abcd"])
def test_scan_id_check_is_a_full_match(scan_id):
    with pytest.raises(ValueError, match="scan id"):
        check_scan_id(scan_id)  # "$" let a trailing newline through before fullmatch


def test_operator_names_and_model_versions_are_full_matches():
    from detector.registry import RegistryError, check_version

    with pytest.raises(ValueError, match="operator name"):
        auth.check_operator_name("alice\n")  # would forge lines in anything that logs names
    with pytest.raises(RegistryError, match="model version"):
        check_version("1.0.0\n")  # would become a folder name with a newline


NON_IMAGES = [b"", b"#!/bin/sh\nrm -rf /\n", b"<html><script>alert(1)</script></html>",
              b"PK\x03\x04" + b"\0" * 200, b"\x7fELF" + b"\0" * 200, b"GIF89a" + b"\0" * 64,
              b"BM" + b"\0" * 64, b"\x00\x00\x01\x00" + b"\0" * 64]


@pytest.mark.parametrize("data", NON_IMAGES, ids=lambda d: repr(d[:6]))
def test_non_images_are_415_and_write_nothing(client, station, data):
    before = snapshot(station)
    for files in ({"file": ("scan.png", data)},
                  {"high": ("h.png", dual_pair_bytes()[0]), "low": ("l.png", data)}):
        r = client.post("/api/scans", files=files)
        assert r.status_code == 415, r.text
    assert snapshot(station) == before


MALFORMED = [b"{", b"", b"null", b"[]", b'"confirm"', b'{"decision": "confirm", "boxes": "x"}',
             b'{"decision": "confirm", "boxes": [[1, 2, 3, "a"]]}',
             b'{"decision": "missed", "boxes": [[NaN, 0, 5, 5]]}',
             b'{"decision": "missed", "boxes": [[0, 0, Infinity, 5]]}',
             b'{"decision": "missed", "boxes": [[0, 0, 1e400, 5]]}',
             b'{"decision": "confirm", "note": 5}', b'{"decision": ["confirm"]}',
             b'{"decision": "confirm"' + b" " * 10 + b"\xff\xfe}",
             b'{"decision": "missed", "boxes": ' + b"[" * 20000 + b"]" * 20000 + b"}",
             b'{"decision": "confirm", "boxes": [' + b"[0, 0, 1, 1], " * 150 + b"[0, 0, 1, 1]]}"]


@pytest.mark.parametrize("body", MALFORMED, ids=lambda b: repr(b[:24]))
def test_malformed_decision_json_is_4xx_and_writes_nothing(client, station, body):
    """422 for JSON that does not validate (NaN and 1e400 once gave a 500: the error echo
    could not be encoded); 400 where FastAPI cannot parse the body at all (bad UTF-8, nesting
    deeper than the parser's recursion limit)."""
    sid = upload_dual(client)["id"]
    before = snapshot(station)
    r = client.post(f"/api/scans/{sid}/decision", content=body,
                    headers={"Content-Type": "application/json"})
    assert r.status_code in (400, 422), (r.status_code, r.text[:300])
    assert r.json()["detail"]
    assert snapshot(station) == before


def _chunks(total: int, size: int = 64 * 1024):
    sent = 0
    while sent < total:
        yield b"\0" * min(size, total - sent)
        sent += size


def test_oversized_bodies_are_413_with_or_without_content_length(station, token):
    app = create_app(station, max_upload_bytes=MAX_UPLOAD)
    before = snapshot(station)
    boundary = b"x-boundary"
    head = (b"--" + boundary + b'\r\nContent-Disposition: form-data; name="file"; '
            b'filename="a.png"\r\nContent-Type: image/png\r\n\r\n\x89PNG\r\n\x1a\n')

    def chunked_body():  # no Content-Length: counted while it streams in
        yield head
        yield from _chunks(3 * MAX_UPLOAD)

    headers = {"Authorization": f"Bearer {token}",
               "Content-Type": "multipart/form-data; boundary=x-boundary"}
    with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        r = http.post("/api/scans", content=chunked_body(), headers=headers)
        assert r.status_code == 413, r.text
        r = http.post("/api/scans", content=head + b"\0" * (2 * MAX_UPLOAD), headers=headers)
        assert r.status_code == 413, r.text
        assert r.headers["x-content-type-options"] == "nosniff"  # refused answers carry them
        assert r.headers["cache-control"] == "no-store"
        sid = "20261128T000000-0000abcd"
        r = http.post(f"/api/scans/{sid}/decision", headers=headers,
                      json={"decision": "clear", "note": "x" * (2 * MAX_UPLOAD)})
        assert r.status_code == 413, r.text
        assert http.get("/api/health", headers=headers).status_code == 200  # still serving
    assert snapshot(station) == before
    assert list(station.store.root.iterdir()) == []  # no staging folder left behind


@pytest.mark.slow
def test_tokens_never_appear_in_the_service_log(tmp_path):
    data = tmp_path / "data"
    station = Station(data, make_handle([tiny_model("dual")[0]]))
    token = auth.add_operator(station.db, "alice")
    other = auth.add_operator(station.db, "bob")
    guesses = [token[:-1] + ("A" if token[-1] != "A" else "B"), "x" * 43, token.upper()]
    log = tmp_path / "serve.log"
    with ServeProcess(data, [tiny_model("dual")[0]], token, log) as srv:
        with httpx.Client(base_url=srv.url, timeout=30) as http:
            ok = {"Authorization": f"Bearer {token}"}
            sid = http.post("/api/scans", headers=ok, files=dict(zip(
                ("high", "low"), (("h.png", b) for b in dual_pair_bytes()),
                strict=True))).json()["id"]
            http.post(f"/api/scans/{sid}/decision", headers=ok, json={"decision": "clear"})
            http.post("/api/scans", headers=ok,
                      files={"file": ("x.png", png_bytes(np.zeros((20, 20), np.uint8)))})
            http.get("/api/scans", headers={"Authorization": f"Bearer {other}"})
            for guess in guesses:
                assert http.get("/api/scans", headers={"Authorization": f"Bearer {guess}"}) \
                    .status_code == 401
            http.get("/api/scans", headers={"Authorization": token})  # scheme forgotten
            http.post(f"/api/scans/{sid}/decision", headers=ok, content=b"{")
    text = log.read_text(errors="replace")
    assert "POST /api/scans" in text and "401" in text, "the log must hold the requests"
    for secret in (token, other, *guesses):
        assert secret not in text
    db_bytes = b"".join(p.read_bytes() for p in Path(data).glob("station.sqlite*"))
    assert token.encode() not in db_bytes and other.encode() not in db_bytes
