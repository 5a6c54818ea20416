"""Station commands as a user runs them, the torch-free boundary, tokens at rest, recovery."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from station_helpers import colour_bytes, dual_pair_bytes, tiny_model

from detector.cli import main
from detector.station.db import open_database
from detector.station.detectors import make_handle
from detector.station.station import Station
from detector.station.store import ScanStore, Upload

#: Another process sharing the data folder, staging one scan: prints the staging folder,
#: then waits for stdin to close ("wait") or exits at once, leaving it behind ("exit").
STAGER = """
import sys
from detector.station.store import ScanStore
path = ScanStore(sys.argv[1]).staging_dir(sys.argv[2])
(path / "input" / "file.png").write_bytes(b"half written")
print(path, flush=True)
if sys.argv[3] == "wait":
    sys.stdin.read()
"""


def staged_by_a_dead_process(data, scan_id: str) -> Path:
    r = subprocess.run([sys.executable, "-c", STAGER, str(data), scan_id, "exit"],
                       capture_output=True, text=True, timeout=60, check=True)
    return Path(r.stdout.strip())


def test_users_add_prints_only_the_token_last_and_stores_only_its_hash(tmp_path, capsys):
    assert main(["users", "add", "carol", "--data", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    token = out[-1]
    assert len(out) == 1 and len(token) >= 40
    assert token.encode() not in (tmp_path / "station.sqlite").read_bytes()
    for wal in tmp_path.glob("station.sqlite-*"):
        assert token.encode() not in wal.read_bytes()
    assert main(["users", "add", "carol", "--data", str(tmp_path)]) == 64
    assert main(["users", "add", "../bad name", "--data", str(tmp_path)]) == 64
    assert main(["users", "list", "--data", str(tmp_path)]) == 0
    assert capsys.readouterr().out.split() == ["carol"]


def test_users_list_marks_revoked_operators(tmp_path, capsys):
    for name in ("alice", "bob"):
        assert main(["users", "add", name, "--data", str(tmp_path)]) == 0
    assert main(["users", "revoke", "bob", "--data", str(tmp_path)]) == 0
    capsys.readouterr()
    assert main(["users", "list", "--data", str(tmp_path)]) == 0
    assert capsys.readouterr().out.splitlines() == ["alice", "bob (revoked)"]
    assert main(["users", "token", "bob", "--data", str(tmp_path)]) == 0  # active again
    capsys.readouterr()
    assert main(["users", "list", "--data", str(tmp_path)]) == 0
    assert capsys.readouterr().out.splitlines() == ["alice", "bob"]


def test_a_token_is_reissued_or_revoked_and_the_old_one_stops_at_once(tmp_path, capsys):
    """An operator leaves or a token leaks: `users token` gives a new one, `users revoke`
    none; the old token is refused from the next request; decisions keep the name."""
    import pytest

    from detector.station import auth

    assert main(["users", "add", "dan", "--data", str(tmp_path)]) == 0
    old = capsys.readouterr().out.split()[-1]
    db = open_database(tmp_path / "station.sqlite")
    assert auth.authenticate(db, f"Bearer {old}").name == "dan"
    assert main(["users", "token", "dan", "--data", str(tmp_path)]) == 0
    new = capsys.readouterr().out.split()[-1]
    with pytest.raises(auth.AuthError):
        auth.authenticate(db, f"Bearer {old}")
    assert auth.authenticate(db, f"Bearer {new}").name == "dan"
    assert main(["users", "revoke", "dan", "--data", str(tmp_path)]) == 0
    with pytest.raises(auth.AuthError):
        auth.authenticate(db, f"Bearer {new}")
    assert main(["users", "list", "--data", str(tmp_path)]) == 0
    assert "dan" in capsys.readouterr().out  # still there: their decisions name them
    assert main(["users", "revoke", "nobody", "--data", str(tmp_path)]) == 64


def test_serve_without_the_extra_names_the_install(tmp_path):
    code = ("import sys; sys.modules['fastapi'] = None; from detector.cli import main; "
            f"sys.exit(main(['serve', '--data', {str(tmp_path)!r}]))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 64 and "pip install 'concealscan[serve]'" in r.stderr


def test_watch_and_station_run_without_torch(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "p1.png").write_bytes(colour_bytes())
    code = ("import sys; sys.modules['torch'] = None; from detector.cli import main; "
            f"sys.exit(main(['watch', {str(inbox)!r}, '--out', {str(tmp_path / 'out')!r}, "
            f"'--data', {str(tmp_path / 'data')!r}, '--model', "
            f"{str(tiny_model('color')[0])!r}, '--settle', '0', '--once']))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert '"status": "ok"' in (tmp_path / "out" / "results.jsonl").read_text()
    rows = open_database(tmp_path / "data" / "station.sqlite").list_scans()
    assert [(r.source, r.status) for r in rows] == [("watch:p1", "ok")]


def test_a_scan_stored_but_not_recorded_before_a_crash_is_finished_at_start(tmp_path):
    handle = make_handle([tiny_model("dual")[0]])
    station = Station(tmp_path, handle)
    high, low = dual_pair_bytes()
    staging = station.store.staging_dir("20261128T000000-0000abcd")  # what a kill leaves
    station.store.write_uploads(staging, [Upload("high", high), Upload("low", low)])
    (staging / "source.txt").write_text("upload:20261128T000000-0000abcd")
    station.store.commit(staging, "20261128T000000-0000abcd")
    half = staged_by_a_dead_process(tmp_path, "20261128T000000-0000ffff")  # never committed
    restarted = Station(tmp_path, handle)
    assert restarted.recover() == 1
    row = restarted.db.get_scan("20261128T000000-0000abcd")
    assert row.status == "ok" and row.kind == "dual"
    assert not half.exists() and restarted.recover() == 0


def test_the_access_log_keeps_no_query_string():
    """A token put in the URL (refused) must not land in the station's log."""
    import logging

    from detector.commands.serve import QueryRedacted

    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1,
                               '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5", "GET", "/api/health?token=abc123", "1.1", 401),
                               None)
    assert QueryRedacted().filter(record)
    assert "abc123" not in record.getMessage() and "/api/health" in record.getMessage()


def test_start_up_cleanup_leaves_the_staging_of_a_live_process_alone(tmp_path):
    """serve and watch --data share the data folder, and each start cleans up staging: only
    what a dead process left may go, never the upload another process is writing now."""
    live = subprocess.Popen([sys.executable, "-c", STAGER, str(tmp_path),
                             "20261128T000000-0000aaaa", "wait"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        live_path = Path(live.stdout.readline().strip())
        dead_path = staged_by_a_dead_process(tmp_path, "20261128T000000-0000bbbb")
        own = ScanStore(tmp_path).staging_dir("20261128T000000-0000cccc")  # this process's
        assert ScanStore(tmp_path).remove_stale_staging() == 1
        assert (live_path / "input" / "file.png").read_bytes() == b"half written"
        assert own.is_dir() and not dead_path.exists()
    finally:
        live.kill()
        live.wait()  # reaped: a zombie still counts as running
    assert ScanStore(tmp_path).remove_stale_staging() == 1
    assert not live_path.exists() and own.is_dir()


def test_start_up_cleanup_leaves_a_plain_file_named_like_staging_alone(tmp_path):
    """A file in scans/.staging named like a dead process's folder crashed every start with
    NotADirectoryError; it is not the station's to delete."""
    owner = staged_by_a_dead_process(tmp_path, "20261128T000000-0000bbbb").parent
    shutil.rmtree(owner)
    owner.write_text("not a folder")
    assert Station(tmp_path, make_handle([tiny_model("dual")[0]])).recover() == 0
    assert owner.read_text() == "not a folder"


def test_a_database_made_before_sources_taken_had_its_owner_column_opens(tmp_path):
    """A station made by the code between c0946e7 and 877dd9b has sources_taken without
    owner: watch then failed with 'no such column: owner'. Opening it adds the column, and
    what it had taken stays taken."""
    import sqlite3

    path = tmp_path / "station.sqlite"
    open_database(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE sources_taken")
        conn.execute("CREATE TABLE sources_taken (source TEXT PRIMARY KEY, "
                     "taken_at TEXT NOT NULL)")
        conn.execute("INSERT INTO sources_taken VALUES ('watch:bag1', '2026-12-01T00:00:00')")
    conn.close()
    db = open_database(path)
    assert not db.take_source("watch:bag1", owner="/srv/inbox")
    assert db.take_source("watch:bag2", owner="/srv/inbox")
    db.close()
