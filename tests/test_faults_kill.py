"""SIGKILL at random moments: ``concealscan serve`` while a client uploads scans and posts
decisions, and ``concealscan watch`` while scans arrive. Afterwards every acknowledged scan and
decision is there exactly once and the database passes ``PRAGMA integrity_check``.

The kill moments come from a seeded generator; where each kill lands depends on timing, so the
tests also check that some kills did land mid-request (or mid-scan), else they proved nothing.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from serve_process import ServeProcess
from station_helpers import colour_bytes, tiny_model

from detector.station import auth
from detector.station.db import open_database
from detector.station.store import STAGING, ScanStore

KILLS = int(os.environ.get("CONCEALSCAN_KILLS", "5"))


def integrity(db_path: Path) -> str:
    with sqlite3.connect(db_path) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


class Client(threading.Thread):
    """Uploads scans and decides on them as fast as the server answers; records what was
    acknowledged with a 2xx, and counts requests that died with the server."""

    def __init__(self, url: str, token: str, scan: bytes, seed: int) -> None:
        super().__init__(daemon=True)
        self.url, self.scan = url, scan
        self.headers = {"Authorization": f"Bearer {token}"}
        self.rng = random.Random(seed)
        self.scans: list[str] = []  # acknowledged scan ids
        self.decisions: dict[int, tuple[str, str]] = {}  # decision id -> (scan id, decision)
        self.broken = 0  # requests in flight when the server died (reset, no answer)
        self.refused = 0  # connection attempts while it was down
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, headers=self.headers, timeout=30) as http:
            while not self.stop.is_set():
                try:
                    self._one(http)
                except httpx.ConnectError:
                    self.refused += 1
                    self.stop.wait(0.02)  # the server is down: pace the retries
                except httpx.TransportError:
                    self.broken += 1

    def _one(self, http: httpx.Client) -> None:
        if self.scans and self.rng.random() < 0.5:
            sid = self.rng.choice(self.scans)
            decision = self.rng.choice(["confirm", "clear"])
            r = http.post(f"/api/scans/{sid}/decision", json={"decision": decision})
            if r.status_code == 201:
                self.decisions[r.json()["id"]] = (sid, decision)
            else:
                assert r.status_code >= 500, r.text  # never a 4xx for a valid request
            return
        r = http.post("/api/scans", files={"file": ("c.png", self.scan)})
        if r.status_code == 201:
            self.scans.append(r.json()["id"])
        else:
            assert r.status_code >= 500, r.text


@pytest.mark.slow
def test_serve_killed_at_random_moments_loses_no_acknowledged_scan_or_decision(tmp_path):
    data = tmp_path / "data"
    token = auth.add_operator(open_database(data / "station.sqlite"), "alice")
    model = tiny_model("color")[0]
    rng = random.Random(8)
    srv = ServeProcess(data, [model], token, tmp_path / "serve.log").start()
    client = Client(srv.url, token, colour_bytes((384, 512)), seed=8)
    client.start()
    try:
        for _ in range(KILLS):
            deadline = time.monotonic() + rng.uniform(0.3, 1.5)
            while time.monotonic() < deadline:  # let requests flow, then kill mid-stream
                client.stop.wait(0.01)
            srv.kill()
            srv.start()
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            client.stop.wait(0.05)
    finally:
        client.stop.set()
        client.join(timeout=60)
        srv.stop()
    assert client.broken > 0, "no kill landed mid-request: the test proved nothing"
    assert len(client.scans) >= KILLS and client.decisions, (len(client.scans),
                                                             len(client.decisions))
    assert integrity(data / "station.sqlite") == "ok"
    db = open_database(data / "station.sqlite")
    rows = {r.id: r for r in db.list_scans(limit=100_000)}
    assert len(rows) < 100_000  # all of them: a faster server acknowledged over 500
    assert len(set(client.scans)) == len(client.scans)
    for sid in client.scans:  # acknowledged: present, once (the id is the primary key), ok
        assert sid in rows and rows[sid].status == "ok", sid
    with sqlite3.connect(data / "station.sqlite") as conn:
        sources = [s for (s,) in conn.execute("SELECT source FROM scans")]
        decided = {i: (s, d) for i, s, d in conn.execute(
            "SELECT id, scan_id, decision FROM decisions")}
    assert len(sources) == len(set(sources)) == len(rows)
    for did, want in client.decisions.items():
        assert decided.get(did) == want, did
    folders = {p.name for p in (data / "scans").iterdir() if p.name != STAGING}
    assert folders == set(rows), "every stored scan folder has its row, and no half-made one"
    ScanStore(data).remove_stale_staging()  # every server is gone: none of its staging stays
    assert list((data / "scans" / STAGING).iterdir()) == []
    print(f"serve kills: {KILLS} kills, {len(client.scans)} scans and {len(client.decisions)} "
          f"decisions acknowledged, {len(rows)} scans stored, {client.broken} requests cut "
          f"mid-flight, {client.refused} connections refused while down")


def drop_scan(inbox: Path, name: str, data: bytes) -> None:
    """As a scanner should: write under a temporary name, then rename into place."""
    part = inbox / f"{name}.part"
    part.write_bytes(data)
    os.replace(part, inbox / name)


@pytest.mark.slow
def test_watch_killed_at_random_moments_processes_each_scan_exactly_once(tmp_path):
    inbox, out, data = tmp_path / "inbox", tmp_path / "out", tmp_path / "data"
    inbox.mkdir()
    model = str(tiny_model("color")[0])
    cmd = [sys.executable, "-W", "ignore", "-m", "detector.cli", "watch", str(inbox),
           "--out", str(out), "--data", str(data), "--model", model, "--settle", "0",
           "--threads", "1"]
    rng = random.Random(9)
    scan = colour_bytes((768, 1024))
    names: list[str] = []
    cut = 0  # rounds killed before the inbox was drained
    log = open(tmp_path / "watch.log", "ab")  # noqa: SIM115
    try:
        for round_ in range(KILLS):
            for i in range(25):  # scans keep arriving while the watcher runs and dies; enough
                # that a kill lands mid-work even now that ingest draws no views
                names.append(f"r{round_}_{i}.png")
                drop_scan(inbox, names[-1], scan)
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + rng.uniform(0.8, 3.0)  # startup takes ~1 s
            while time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.01)
            proc.kill()
            proc.wait(timeout=30)
            jsonl = out / "results.jsonl"
            cut += (jsonl.read_bytes().count(b"\n") if jsonl.exists() else 0) < len(names)
    finally:
        log.close()
    assert cut >= KILLS // 2, f"only {cut} of {KILLS} kills landed before the inbox was drained"
    subprocess.run([*cmd, "--once"], check=True, timeout=300, capture_output=True)
    lines = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    ids = [ln["id"] for ln in lines]
    assert sorted(ids) == sorted(n[:-4] for n in names), "each scan reported exactly once"
    assert all(ln["status"] == "ok" for ln in lines), [ln["error"] for ln in lines]
    assert sorted(p.name for p in (inbox / "processed").iterdir()) == sorted(ids)
    assert list((inbox / "work").iterdir()) == [] and list((inbox / "failed").iterdir()) == []
    assert integrity(data / "station.sqlite") == "ok"
    with sqlite3.connect(data / "station.sqlite") as conn:
        sources = [s for (s,) in conn.execute("SELECT source FROM scans")]
    assert sorted(sources) == sorted(f"watch:{i}" for i in ids)
    print(f"watch kills: {KILLS} kills, {cut} before the inbox was drained, {len(ids)} scans "
          "each reported once")
