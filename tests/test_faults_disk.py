"""A full disk or a read-only output folder: a clear error, never a half-written result.

The real conditions come from small tmpfs mounts (CI runs as root); where mounting is not
allowed those tests skip, and the in-process tests at the end still prove the write layer
(a short write cut back, the temporary file removed) everywhere.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from station_helpers import colour_bytes, tiny_model

from detector.outputs import OutputError, append_line, write_atomic

MIB = 1024 * 1024


@contextlib.contextmanager
def tmpfs(path: Path, size_kb: int, readonly: bool = False):
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size_kb}k" + (",ro" if readonly else "")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip()}); the in-process tests "
                    "below cover the write layer")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(fs: Path, leave_bytes: int) -> Path:
    """Fill ``fs`` until about ``leave_bytes`` are free; return the filler (delete to free)."""
    st = os.statvfs(fs)
    free = st.f_bavail * st.f_frsize
    filler = fs / "filler"
    with open(filler, "wb") as fh:
        fh.write(b"\0" * max(0, free - leave_bytes))
    return filler


def scans(folder: Path, count: int, shape=(300, 400)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (folder / f"c{i}.png").write_bytes(colour_bytes(shape))
    return folder


def run_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-W", "ignore", "-m", "detector.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def check_no_partial_results(out: Path) -> int:
    """Every results line is whole JSON, every overlay decodes, no temporary file is left."""
    text = (out / "results.jsonl").read_text() if (out / "results.jsonl").exists() else ""
    assert text == "" or text.endswith("\n"), f"half-written last line: {text[-80:]!r}"
    for line in text.splitlines():
        json.loads(line)
    for png in (out / "overlays").glob("*") if (out / "overlays").exists() else []:
        assert not png.name.startswith("."), f"temporary file left: {png.name}"
        assert cv2.imread(str(png)) is not None, f"truncated overlay {png.name}"
    return len(text.splitlines())


@pytest.mark.slow
def test_detect_on_a_full_disk_stops_clearly_with_only_whole_results(tmp_path):
    model = tiny_model("color")[0]
    with tmpfs(tmp_path / "fs", 512) as fs:
        fill(fs, 120_000)  # room for a few overlays, not for all twelve
        proc = run_cli("detect", scans(tmp_path / "in", 12), "--out", fs / "out",
                       "--model", model)
        assert proc.returncode == 74, proc.stderr
        assert "No space left on device" in proc.stderr and "Traceback" not in proc.stderr
        written = check_no_partial_results(fs / "out")
        assert written < 12
        assert f"holds the {written} complete line(s)" in proc.stderr


@pytest.mark.slow
def test_detect_into_a_read_only_folder_is_a_clear_error(tmp_path):
    with tmpfs(tmp_path / "ro", 64, readonly=True) as ro:
        proc = run_cli("detect", scans(tmp_path / "in", 1), "--out", ro / "out",
                       "--model", tiny_model("color")[0])
        assert proc.returncode == 74, proc.stderr
        assert "Read-only file system" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_watch_on_a_full_disk_stops_clearly_and_resumes_without_loss(tmp_path):
    inbox = scans(tmp_path / "inbox", 8)
    cmd = ("watch", inbox, "--model", tiny_model("color")[0], "--settle", "0", "--once")
    # 8 overlays of ~80 KB (300x400 scans are drawn 960 px wide since 080a349) need ~700 KB
    with tmpfs(tmp_path / "fs", 1024) as fs:
        filler = fill(fs, 120_000)
        proc = run_cli(*cmd, "--out", fs / "out")
        assert proc.returncode == 74, proc.stderr
        assert "No space left on device" in proc.stderr and "Traceback" not in proc.stderr
        assert check_no_partial_results(fs / "out") < 8
        assert not [p for p in (fs / "out" / "results").iterdir() if p.name.startswith(".")]
        filler.unlink()  # space again: the restart resumes what was cut
        proc = run_cli(*cmd, "--out", fs / "out")
        assert proc.returncode == 0, proc.stderr
        ids = sorted(json.loads(x)["id"] for x in (fs / "out" / "results.jsonl").read_text()
                     .splitlines())
        assert ids == [f"c{i}" for i in range(8)]


@pytest.mark.slow
def test_station_upload_on_a_full_disk_is_507_and_leaves_nothing_half_made(tmp_path):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from detector.station import auth
    from detector.station.app import create_app
    from detector.station.detectors import make_handle
    from detector.station.station import Station

    with tmpfs(tmp_path / "fs", 2048) as fs:
        station = Station(fs / "data", make_handle([tiny_model("color")[0]]))
        token = auth.add_operator(station.db, "alice")
        files = {"file": ("c.png", colour_bytes((300, 400)))}
        with TestClient(create_app(station), raise_server_exceptions=False) as client:
            client.headers["Authorization"] = f"Bearer {token}"
            first = client.post("/api/scans", files=files)
            assert first.status_code == 201
            filler = fill(fs, 40_000)
            answers = [client.post("/api/scans", files=files) for _ in range(3)]
            assert [r.status_code for r in answers] == [507] * 3, [r.text for r in answers]
            assert "cannot store" in answers[0].json()["detail"]
            r = client.post(f"/api/scans/{first.json()['id']}/decision",
                            json={"decision": "clear"})
            assert r.status_code in (201, 507), r.text  # SQLite may still have a free page
            assert not list((fs / "data" / "scans").glob(".staging/*/*"))
            filler.unlink()
            assert client.post("/api/scans", files=files).status_code == 201
        with sqlite3.connect(station.db.path) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        restarted = Station(fs / "data", make_handle([tiny_model("color")[0]]))
        restarted.recover()  # a scan folder committed before its row failed is finished now
        rows = {row.id for row in restarted.db.list_scans()}
        assert first.json()["id"] in rows
        assert rows == {p.name for p in (fs / "data" / "scans").iterdir()
                        if not p.name.startswith(".")}  # .staging: per-process, empty


class ShortWriter:
    """A file whose disk fills after ``room`` bytes: writes that much, then ENOSPC."""

    def __init__(self, path: Path, room: int) -> None:
        self.fh = open(path, "ab", buffering=0)  # noqa: SIM115
        self.name, self.room = str(path), room

    def seek(self, *args):
        return self.fh.seek(*args)

    def write(self, data: bytes) -> int:
        if self.room <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        n = self.fh.write(data[: self.room])
        self.room -= n
        return n

    def fileno(self):
        return self.fh.fileno()

    def truncate(self, size):
        return self.fh.truncate(size)


def test_a_line_cut_by_a_full_disk_is_cut_back(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_bytes(b'{"id": "a"}\n')
    writer = ShortWriter(path, room=7)
    with pytest.raises(OutputError, match="No space left") as info:
        append_line(writer, b'{"id": "b", "status": "ok"}\n')
    assert info.value.errno == errno.ENOSPC
    assert path.read_bytes() == b'{"id": "a"}\n'


def test_write_atomic_on_a_full_disk_keeps_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "result.json"
    target.write_bytes(b"old")
    real_fsync = os.fsync

    def full(fd):
        real_fsync(fd)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OutputError, match="No space left"):
        write_atomic(target, b"new" * MIB)
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]
    assert np.array_equal(np.frombuffer(target.read_bytes(), np.uint8),
                          np.frombuffer(b"old", np.uint8))
