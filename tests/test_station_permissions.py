"""Folders and a database the station's user cannot write (root ran ``users add`` first, a
root-owned inbox, a read-only --out): exit 74 and a message naming the path, its owner and
what to do; never a traceback, never "not a usable station database".

Run as root (CI), the commands run as ``nobody`` (setpriv) on root-owned folders, as on a
real station; run as another user, the folders are made read-only instead.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from station_helpers import colour_bytes

import detector
from detector.station.db import open_database

ROOT = os.geteuid() == 0
REPO = Path(detector.__file__).resolve().parents[1]


@pytest.fixture
def base():
    # not under pytest's tmp_path: as root that is private (0700) and nobody cannot enter it
    path = Path(tempfile.mkdtemp(prefix="concealscan-perm-"))
    path.chmod(0o755)
    yield path
    for p in [path, *path.rglob("*")]:
        if p.is_dir() and not p.is_symlink():
            p.chmod(p.stat().st_mode | stat.S_IWUSR | stat.S_IXUSR)
    shutil.rmtree(path)


def as_station_user(*args) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-W", "ignore", "-m", "detector.cli", *map(str, args)]
    if ROOT:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: cannot act as another user")
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
    env = {**os.environ, "PYTHONPATH": str(REPO), "HOME": "/tmp"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd="/")


def only_this_is_not_ours(base: Path, target: Path) -> None:
    """Everything under ``base`` belongs to the station's user except ``target``: as root,
    ``target`` stays root's and the rest goes to nobody; otherwise ``target`` is made
    read-only."""
    if not ROOT:
        target.chmod(0o555 if target.is_dir() else 0o444)
        return
    for p in [base, *base.rglob("*")]:
        if p != target:
            os.chown(p, 65534, 65534)


def check_clear_refusal(proc: subprocess.CompletedProcess, path: Path) -> None:
    assert proc.returncode == 74, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "not a usable station database" not in proc.stderr
    assert str(path) in proc.stderr, proc.stderr
    assert "Permission denied" in proc.stderr
    if ROOT:
        assert "owned by root" in proc.stderr and "run as the station's user" in proc.stderr


def inbox_with_a_scan(base: Path) -> Path:
    inbox = base / "inbox"
    inbox.mkdir()
    (inbox / "bag1.png").write_bytes(colour_bytes())
    return inbox


def station_made_by_root(base: Path) -> Path:
    data = base / "data"
    open_database(data / "station.sqlite").close()  # root ran 'users add' first
    (data / "station.sqlite").chmod(0o644)
    return data


def test_serve_on_a_station_made_by_root_is_a_clear_refusal(base):
    data = station_made_by_root(base)
    only_this_is_not_ours(base, data / "station.sqlite")
    proc = as_station_user("serve", "--data", data, "--port", "1")
    check_clear_refusal(proc, data / "station.sqlite")


def test_serve_in_a_folder_it_cannot_create_is_a_clear_refusal(base):
    parent = base / "srv"
    parent.mkdir()
    only_this_is_not_ours(base, parent)
    proc = as_station_user("serve", "--data", parent / "data", "--port", "1")
    check_clear_refusal(proc, parent / "data")


@pytest.mark.parametrize("what", ["inbox", "out", "data"])
def test_watch_with_a_folder_it_cannot_write_is_a_clear_refusal(base, what):
    inbox = inbox_with_a_scan(base)
    out = base / "out"
    out.mkdir()
    data = station_made_by_root(base)
    target = {"inbox": inbox, "out": out, "data": data / "station.sqlite"}[what]
    only_this_is_not_ours(base, target)
    proc = as_station_user("watch", inbox, "--out", out, "--data", data, "--once",
                           "--settle", "0")
    check_clear_refusal(proc, target)
    assert (inbox / "bag1.png").exists()  # nothing was claimed


def test_serve_with_a_staging_folder_root_made_is_a_clear_refusal(base):
    """scans/.staging made by root (a root ``watch --data`` ran first): every upload would
    fail, so serve refuses to start, naming it."""
    data = station_made_by_root(base)
    staging = data / "scans" / ".staging"
    staging.mkdir(parents=True)
    only_this_is_not_ours(base, staging)
    proc = as_station_user("serve", "--data", data, "--port", "1")
    check_clear_refusal(proc, staging)


def test_serve_with_stale_staging_root_left_is_a_clear_refusal(base):
    """A root process killed while staging left a folder the station's user cannot delete:
    start-up cleanup must say which (exit 74), not end in a traceback (exit 1), which under
    systemd was a restart loop."""
    from detector.station.store import STAGING, _host

    dead = subprocess.Popen(["true"])
    dead.wait()  # reaped: its pid names a dead process
    data = station_made_by_root(base)
    owner = data / "scans" / STAGING / f"{_host()}-{dead.pid}-1"
    (owner / "20261128T000000-0000abcd" / "input").mkdir(parents=True)
    only_this_is_not_ours(base, owner)
    proc = as_station_user("serve", "--data", data, "--port", "1")
    check_clear_refusal(proc, owner)


def test_watch_with_an_inbox_it_cannot_list_is_a_clear_refusal(base):
    """An inbox the station's user may write but not list (mode 0333) passed the start-up
    check; the first poll then stopped with 'Permission denied: inbox' and the wrong hint
    ('restart when it can write again'), without the owner."""
    inbox = inbox_with_a_scan(base)
    out = base / "out"
    out.mkdir()
    if ROOT:
        for p in [base, *base.rglob("*")]:
            os.chown(p, 65534, 65534)
    inbox.chmod(0o333)
    proc = as_station_user("watch", inbox, "--out", out, "--once", "--settle", "0")
    assert proc.returncode == 74, proc.stderr
    assert "Traceback" not in proc.stderr and "can write again" not in proc.stderr
    assert f"{inbox}: Permission denied (it must be listed and written: rwx)" in proc.stderr
    assert "(d-wx-wx-wx)" in proc.stderr
    inbox.chmod(0o755)
    assert (inbox / "bag1.png").exists()  # nothing was claimed
