"""The watch folder: each scan exactly once, across restarts and a kill at every step."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import pytest
from station_helpers import colour_bytes, dual_pair_bytes, tiny_model

from detector.station.detectors import make_handle
from detector.station.station import Station
from detector.station.watch import WatchConfig, Watcher, WatchLockedError

STEPS = ("claim-file", "before-result", "after-result", "after-report")


class Killed(BaseException):
    """Stands for SIGKILL: nothing after the step runs, no handler cleans up."""


@pytest.fixture(scope="module")
def handle():
    return make_handle([tiny_model("dual")[0], tiny_model("color")[0]])


def drop(inbox: Path, age_s: float = 10.0) -> set[str]:
    """A dual pair, a colour scan, a lone _high and a text file, all settled."""
    high, low = dual_pair_bytes()
    files = {"bag1_high.png": high, "bag1_low.png": low, "bag2.png": colour_bytes(),
             "lonely_high.png": high, "notes.txt": b"operator shift notes"}
    then = time.time() - age_s
    for name, data in files.items():
        (inbox / name).write_bytes(data)
        os.utime(inbox / name, (then, then))
    return {"bag1", "bag2", "lonely", "notes"}


def watcher(tmp_path, handle, step=None, record=None) -> Watcher:
    cfg = WatchConfig(inbox=tmp_path / "inbox", out=tmp_path / "out", settle_s=1.0,
                      pair_timeout_s=5.0)
    return Watcher(cfg, handle.analyze, record=record, step=step or (lambda name: None))


def lines(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]


def check_exactly_once(tmp_path, expected: set[str]) -> None:
    got = [ln["id"] for ln in lines(tmp_path / "out")]
    assert sorted(got) == sorted(expected), got
    inbox = tmp_path / "inbox"
    processed = {p.name for p in (inbox / "processed").iterdir()}
    failed = {p.name for p in (inbox / "failed").iterdir()}
    assert processed == {"bag1", "bag2"} and failed == {"lonely", "notes"}
    assert list((inbox / "work").iterdir()) == []
    assert sorted(p.name for p in inbox.iterdir() if p.is_file()) == [".watch.lock"]
    assert sorted(p.name for p in (inbox / "processed" / "bag1").iterdir()) == \
        [".claim.json", "bag1_high.png", "bag1_low.png"]
    assert {p.stem for p in (tmp_path / "out" / "results").iterdir()} == expected


def test_each_scan_processed_once(tmp_path, handle):
    (tmp_path / "inbox").mkdir()
    expected = drop(tmp_path / "inbox")
    w = watcher(tmp_path, handle)
    assert w.poll_once() == 4
    assert w.poll_once() == 0
    w.close()
    check_exactly_once(tmp_path, expected)
    by_id = {ln["id"]: ln for ln in lines(tmp_path / "out")}
    assert by_id["bag1"]["kind"] == "dual" and by_id["bag1"]["status"] == "ok"
    assert "partner" in by_id["lonely"]["error"] and by_id["lonely"]["alarm"] is True
    assert by_id["notes"]["status"] == "error"
    assert (tmp_path / "out" / "overlays" / "bag1.png").is_file()


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("nth", [1, 2])
def test_a_kill_at_any_step_loses_nothing_and_repeats_nothing(tmp_path, handle, step, nth):
    (tmp_path / "inbox").mkdir()
    expected = drop(tmp_path / "inbox")
    seen = []

    def kill_at(name):
        seen.append(name)
        if name == step and seen.count(step) == nth:
            raise Killed(step)

    w = watcher(tmp_path, handle, step=kill_at)
    with pytest.raises(Killed):
        w.poll_once()
    w.close()  # the kernel drops the lock of a killed process
    w = watcher(tmp_path, handle)
    w.recover()
    w.poll_once()
    w.close()
    check_exactly_once(tmp_path, expected)


def test_station_records_each_scan_once_across_a_kill(tmp_path, handle):
    (tmp_path / "inbox").mkdir()
    drop(tmp_path / "inbox")
    station = Station(tmp_path / "data", handle)

    def kill_after_first_record(name, count=[]):  # noqa: B006 (counts calls)
        if name == "after-report":
            count.append(1)
            if len(count) == 1:
                raise Killed(name)

    w = watcher(tmp_path, handle, step=kill_after_first_record,
                record=station.receive_analysed)
    with pytest.raises(Killed):
        w.poll_once()
    w.close()
    w = watcher(tmp_path, handle, record=station.receive_analysed)
    w.recover()
    w.poll_once()
    w.close()
    rows = station.db.list_scans()
    assert sorted(r.source for r in rows) == ["watch:bag1", "watch:bag2", "watch:lonely",
                                              "watch:notes"]
    by_source = {r.source: r for r in rows}
    assert by_source["watch:bag1"].status == "ok" and by_source["watch:notes"].status == "error"
    bag1 = by_source["watch:bag1"]
    assert station.view_names(bag1) == ["image.png", "gray.png", "heat.png", "overlay.png"]
    assert station.view_png(bag1, "heat.png").startswith(b"\x89PNG")
    # the watcher's overlay was handed over with the analysis, not drawn a second time
    overlay = station.store.view_path(bag1.id, "overlay.png")
    assert overlay.read_bytes() == (tmp_path / "out" / "overlays" / "bag1.png").read_bytes()


def test_waits_for_writes_to_settle_and_for_the_other_half(tmp_path, handle):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    high, low = dual_pair_bytes()
    (inbox / "bag_high.png").write_bytes(high)
    (inbox / "bag_low.png.part").write_bytes(low[:100])  # still being copied
    w = watcher(tmp_path, handle)
    now = time.time()
    assert w.poll_once(now) == 0  # too fresh
    assert w.poll_once(now + 2) == 0  # settled, but its low half is not there yet
    os.replace(inbox / "bag_low.png.part", inbox / "bag_low.png")
    (inbox / "bag_low.png").write_bytes(low)
    assert w.poll_once(time.time() + 2) == 1
    w.close()
    assert [ln["kind"] for ln in lines(tmp_path / "out")] == ["dual"]


def test_second_watcher_on_one_inbox_is_refused(tmp_path, handle):
    (tmp_path / "inbox").mkdir()
    w = watcher(tmp_path, handle)
    with pytest.raises(WatchLockedError):
        watcher(tmp_path, handle)
    w.close()


def test_a_scan_that_keeps_killing_the_watcher_goes_to_failed(tmp_path, handle):
    (tmp_path / "inbox").mkdir()
    (tmp_path / "inbox" / "bag2.png").write_bytes(colour_bytes())
    os.utime(tmp_path / "inbox" / "bag2.png", (1, 1))

    def crash(name):
        if name == "before-result":
            raise Killed(name)

    for attempt in range(3):
        w = watcher(tmp_path, handle, step=crash)
        with pytest.raises(Killed):
            w.recover() if attempt else w.poll_once()
        w.close()
    w = watcher(tmp_path, handle)
    w.recover()
    w.close()
    (line,) = lines(tmp_path / "out")
    assert line["status"] == "error" and "interrupted 3 times" in line["error"]
    assert (tmp_path / "inbox" / "failed" / "bag2" / "bag2.png").is_file()


def test_a_kill_while_the_claim_is_written_leaves_nothing_behind(tmp_path, handle):
    """Killed inside write_atomic of claim.json: its temporary file is there, the claim is
    not, and no scan file was moved yet (found by the SIGKILL test below: ENOTEMPTY)."""
    (tmp_path / "inbox").mkdir()
    expected = drop(tmp_path / "inbox")
    folder = tmp_path / "inbox" / "work" / "bag1"
    folder.mkdir(parents=True)
    (folder / "..claim.json.4242.0123abcd.tmp").write_bytes(b'{"id": "ba')
    w = watcher(tmp_path, handle)
    assert w.recover() == 1
    assert not folder.exists()
    w.poll_once()
    w.close()
    check_exactly_once(tmp_path, expected)


@pytest.mark.slow
def test_real_sigkill_and_restart_of_the_command(tmp_path):
    """The command itself, killed with SIGKILL while scans arrive, then restarted."""
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    model = str(tiny_model("color")[0])
    cmd = [sys.executable, "-m", "detector.cli", "watch", str(inbox), "--out", str(out),
           "--model", model, "--settle", "0.2", "--threads", "1"]
    for i in range(12):
        (inbox / f"c{i:02d}.png").write_bytes(colour_bytes())
    proc = subprocess.Popen(cmd)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # kill it once it is part-way through
        jsonl = out / "results.jsonl"
        if jsonl.exists() and jsonl.read_text().count("\n") >= 3:
            break
        time.sleep(0.02)
    proc.kill()
    proc.wait(timeout=10)
    reported = (out / "results.jsonl").read_text().count("\n")
    assert reported < 12, "the watcher finished before the kill; the test proved nothing"
    subprocess.run([*cmd, "--once"], check=True, timeout=120)
    got = sorted(ln["id"] for ln in lines(out))
    assert got == [f"c{i:02d}" for i in range(12)]
    assert len(list((inbox / "processed").iterdir())) == 12


def _settled(*paths: Path, age_s: float = 10.0) -> None:
    then = time.time() - age_s
    for p in paths:
        for q in [p, *p.rglob("*")] if p.is_dir() else [p]:
            os.utime(q, (then, then), follow_symlinks=False)


def _volume_file(path: Path, hu) -> Path:
    import numpy as np

    from detector.volume_readers import write_sidecar

    np.save(path, hu)
    write_sidecar(path, (4.0, 4.0, 4.0))
    return path


def test_ct_volumes_and_series_folders_are_taken_in_with_their_parts(tmp_path):
    """A .npy volume moves with its sidecar, a dual-energy one with its NAME_80kvp volume, a
    dropped folder of DICOM CT slices is one volume; a folder of other scans fails (manual
    check) instead of lying unseen; a .npy waits for its sidecar, then fails without it. With
    --data the station keeps each volume read (volume.npy) and its slices."""
    from ct_data import phantom_hu, write_ct_series
    from ct_model_fixture import tiny_ct_model

    handle = make_handle([tiny_model("dual")[0], tiny_ct_model()[1]])
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    hu = phantom_hu((12, 40, 48))
    _volume_file(inbox / "vol1.npy", hu)
    _volume_file(inbox / "vol2.npy", hu)
    _volume_file(inbox / "vol2_80kvp.npy", hu)
    write_ct_series(inbox / "series3", hu, voxel_mm=(2.0, 2.0, 2.0))
    (inbox / "pics").mkdir()
    (inbox / "pics" / "bag.png").write_bytes(colour_bytes())
    import numpy as np

    np.save(inbox / "lonely.npy", hu)  # its sidecar has not come
    _settled(*inbox.iterdir())
    _settled(inbox / "lonely.npy", age_s=3.0)  # settled, younger than the 5 s pair timeout
    station = Station(tmp_path / "data", handle)
    w = watcher(tmp_path, handle, record=station.receive_analysed)
    assert w.poll_once() == 4
    got = {ln["id"]: ln for ln in lines(tmp_path / "out")}
    assert {k: v["status"] for k, v in got.items()} == {
        "vol1": "ok", "vol2": "ok", "series3": "ok", "pics": "error"}
    assert all(got[k]["kind"] == "ct" for k in ("vol1", "vol2", "series3"))
    assert "holds no DICOM/DICOS CT series" in got["pics"]["error"]
    processed = inbox / "processed"
    assert sorted(p.name for p in (processed / "vol2").iterdir()) == [
        ".claim.json", "vol2.json", "vol2.npy", "vol2_80kvp.json", "vol2_80kvp.npy"]
    assert got["vol1"]["scan"] == str(processed / "vol1" / "vol1.npy")  # where it now lies
    assert (processed / "series3" / "series3").is_dir()
    assert sorted(p.name for p in inbox.iterdir()) == [
        ".watch.lock", "failed", "lonely.npy", "processed", "work"]
    stored = sorted(p.parent.parent.name for p in (tmp_path / "data" / "scans").glob(
        "*/input/volume.npy"))
    assert len(stored) == 3  # vol1, vol2, series3: as read, for the viewer and retraining
    w.cfg = WatchConfig(inbox=inbox, out=tmp_path / "out", settle_s=1.0, pair_timeout_s=0.0)
    assert w.poll_once() == 1  # the sidecar never came: read alone, it fails
    assert lines(tmp_path / "out")[-1]["status"] == "error"
    assert (inbox / "failed" / "lonely" / "lonely.npy").exists()


def test_an_id_already_reported_in_out_still_gets_its_own_line(tmp_path, handle):
    """OUT may already hold results.jsonl lines (an earlier `detect` or watcher) with the id of
    a new scan: the new scan gets a new key and its own line, never none."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.jsonl").write_text(json.dumps({"id": "bag2", "status": "ok"}) + "\n")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "bag2.png").write_bytes(b"")  # unreadable: fails, and must still be reported
    _settled(inbox / "bag2.png")
    assert watcher(tmp_path, handle).poll_once() == 1
    new = lines(out)[1:]
    assert len(new) == 1 and new[0]["id"] == "bag2~2" and new[0]["status"] == "error"


def test_watch_once_exits_2_when_an_input_failed(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "good.png").write_bytes(colour_bytes())
    (inbox / "bad.png").write_bytes(b"not an image")
    _settled(*inbox.iterdir())
    cmd = [sys.executable, "-m", "detector.cli", "watch", str(inbox), "--out",
           str(tmp_path / "out"), "--model", str(tiny_model("color")[0]), "--once",
           "--settle", "0"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "1 input(s) could not be assessed" in proc.stderr
    assert len(lines(tmp_path / "out")) == 2


def test_watch_once_says_what_is_still_being_written(tmp_path):
    """A scan that changed within --settle is left for the next run, and --once says so
    (it used to exit 0 without a word, the scan unprocessed)."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "fresh.png").write_bytes(colour_bytes())
    (inbox / "half.png.part").write_bytes(b"")
    cmd = [sys.executable, "-m", "detector.cli", "watch", str(inbox), "--out",
           str(tmp_path / "out"), "--model", str(tiny_model("color")[0]), "--once",
           "--settle", "600"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "2 input(s) still being written" in proc.stderr
    assert (inbox / "fresh.png").exists()


def test_links_in_the_inbox_are_refused_never_followed(tmp_path, handle):
    """A link dropped into INBOX (to a file or a folder anywhere on the machine) fails for
    manual check; nothing is read or copied through it, and the station keeps no copy."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "private.png").write_bytes(colour_bytes())
    (inbox / "bag1.png").symlink_to(outside / "private.png")
    (inbox / "tree").symlink_to(outside)
    _settled(outside / "private.png")
    for link in (inbox / "bag1.png", inbox / "tree"):
        then = time.time() - 10
        os.utime(link, (then, then), follow_symlinks=False)
    station = Station(tmp_path / "data", handle)
    w = watcher(tmp_path, handle, record=station.receive_analysed)
    assert w.poll_once() == 2
    got = {ln["id"]: ln for ln in lines(tmp_path / "out")}
    assert set(got) == {"bag1", "tree"}
    assert all(ln["status"] == "error" and "symbolic link" in ln["error"]
               for ln in got.values())
    assert not list((tmp_path / "data" / "scans").glob("*/input/*"))  # nothing copied in
    assert (outside / "private.png").exists() and (outside / "private.png").stat().st_size


def test_a_volume_decided_before_a_kill_reaches_the_station_as_read(tmp_path):
    """Killed after a CT volume's result was written, before the station recorded it: the
    restart records it with the volume read again and the line that was decided."""
    from ct_data import phantom_hu
    from ct_model_fixture import tiny_ct_model

    handle = make_handle([tiny_ct_model()[1]])
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    _volume_file(inbox / "vol1.npy", phantom_hu((12, 40, 48)))
    _settled(*inbox.iterdir())
    station = Station(tmp_path / "data", handle)

    def kill(name):
        if name == "after-result":
            raise Killed(name)

    w = watcher(tmp_path, handle, step=kill, record=station.receive_analysed)
    with pytest.raises(Killed):
        w.poll_once()
    w.close()
    decided = json.loads((tmp_path / "out" / "results" / "vol1.json").read_text())
    w = watcher(tmp_path, handle, record=station.receive_analysed)
    assert w.recover() == 1
    (row,) = station.db.list_scans()
    assert row.source == "watch:vol1" and row.kind == "ct"
    assert row.result["detections"] == decided["detections"]
    assert station.store.slice_count(row.id) == 12
    assert (station.store.scan_dir(row.id) / "input" / "volume.npy").exists()


def test_names_and_arrival_orders_a_scanner_may_use(tmp_path):
    """An input called claim (its sidecar claim.json) is an input like any other (it once
    replaced the watcher's record and stopped it for good); a sidecar that settles before its
    volume waits for it; an empty folder waits to be filled; a series folder holding links
    fails without reading through them."""
    from ct_data import phantom_hu, write_ct_series
    from ct_model_fixture import tiny_ct_model

    handle = make_handle([tiny_ct_model()[1]])
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    hu = phantom_hu((12, 40, 48))
    _volume_file(inbox / "claim.npy", hu)
    _volume_file(inbox / "late.npy", hu)
    (inbox / "late.npy").rename(inbox / "late.npy.part")  # still being written
    (inbox / "empty").mkdir()
    write_ct_series(inbox / "linked", hu, voxel_mm=(2.0, 2.0, 2.0))
    outside = tmp_path / "outside.dcm"
    first = sorted((inbox / "linked").iterdir())[0]
    first.rename(outside)
    first.symlink_to(outside)
    _settled(*inbox.iterdir())
    _settled(inbox / "late.json", inbox / "empty", age_s=3.0)  # younger than the 5 s timeout
    w = watcher(tmp_path, handle)
    assert w.poll_once() == 2  # claim, and linked (refused); late.json and empty wait
    assert w.waiting == 3  # and late.npy.part, still being written
    got = {ln["id"]: ln for ln in lines(tmp_path / "out")}
    assert got["claim"]["status"] == "ok" and got["claim"]["kind"] == "ct"
    assert got["linked"]["status"] == "error" and "symbolic links" in got["linked"]["error"]
    assert (inbox / "late.json").exists() and (inbox / "empty").exists()
    (inbox / "late.npy.part").rename(inbox / "late.npy")
    _settled(inbox / "late.npy", inbox / "late.json")
    assert w.poll_once() == 1
    assert lines(tmp_path / "out")[-1]["id"] == "late"
    assert lines(tmp_path / "out")[-1]["status"] == "ok"
    w.close()
    assert watcher(tmp_path, handle).recover() == 0  # nothing left half-done


def _drop_colour(inbox: Path, name: str) -> None:
    inbox.mkdir(parents=True, exist_ok=True)
    (inbox / name).write_bytes(colour_bytes())
    _settled(inbox / name)


def _watch_once(inbox: Path, out: Path, handle, station: Station) -> list[dict]:
    cfg = WatchConfig(inbox=inbox, out=out, settle_s=1.0, pair_timeout_s=5.0)
    w = Watcher(cfg, handle.analyze, record=station.receive_analysed,
                take_source=station.take_source)
    w.poll_once()
    w.close()
    return lines(out)


def test_two_inboxes_with_one_file_name_both_reach_the_station(tmp_path, handle):
    """Two scanners feeding one station may both write bag5.png: the second scan gets its
    own key (bag5~2) in its results.jsonl and in the station, never the first one's row."""
    station = Station(tmp_path / "data", handle)
    _drop_colour(tmp_path / "inbox1", "bag5.png")
    _drop_colour(tmp_path / "inbox2", "bag5.png")
    first = _watch_once(tmp_path / "inbox1", tmp_path / "out1", handle, station)
    second = _watch_once(tmp_path / "inbox2", tmp_path / "out2", handle, station)
    assert [ln["id"] for ln in first] == ["bag5"] and [ln["id"] for ln in second] == ["bag5~2"]
    assert sorted(r.source for r in station.db.list_scans()) == ["watch:bag5", "watch:bag5~2"]
    assert (tmp_path / "inbox2" / "processed" / "bag5~2" / "bag5.png").is_file()
    for row in station.db.list_scans():  # the station's own copy, never a server path
        assert row.result["scan"] == f"scans/{row.id}/input/file.png"


def test_a_name_seen_before_archiving_still_reaches_the_station(tmp_path, handle):
    """processed/ and results/ archived (or a scanner's counter restarted): the station still
    knows watch:bag5, so the new bag5.png is bag5~2 everywhere, and both are in the queue."""
    station = Station(tmp_path / "data", handle)
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    _drop_colour(inbox, "bag5.png")
    _watch_once(inbox, out, handle, station)
    archive = tmp_path / "archive"
    archive.mkdir()
    os.rename(inbox / "processed", archive / "processed")
    os.rename(out, archive / "out")
    _drop_colour(inbox, "bag5.png")
    assert [ln["id"] for ln in _watch_once(inbox, out, handle, station)] == ["bag5~2"]
    rows = station.db.list_scans()
    assert sorted(r.source for r in rows) == ["watch:bag5", "watch:bag5~2"]
    assert len({r.id for r in rows}) == 2


def test_a_key_taken_by_another_watcher_in_flight_is_not_reused(tmp_path, handle):
    """Another inbox's watcher has claimed bag5 but not yet recorded it: the reservation,
    not only the recorded rows, keeps this watcher off that key."""
    station = Station(tmp_path / "data", handle)
    assert station.take_source("watch:bag5")  # the other watcher, between claim and record
    _drop_colour(tmp_path / "inbox", "bag5.png")
    got = _watch_once(tmp_path / "inbox", tmp_path / "out", handle, station)
    assert [ln["id"] for ln in got] == ["bag5~2"]
    assert not station.take_source("watch:bag5~2")


def test_a_watcher_killed_after_reserving_a_key_takes_it_again(tmp_path, handle):
    """Killed after the station reserved watch:bag5 for this inbox but before the claim was
    written: the restart claims bag5.png as bag5 again (not bag5~2); another inbox still may
    not have it."""
    station = Station(tmp_path / "data", handle)
    inbox = tmp_path / "inbox"
    owner = str(inbox.resolve())
    assert station.take_source("watch:bag5", owner=owner)  # the killed run's reservation
    _drop_colour(inbox, "bag5.png")
    cfg = WatchConfig(inbox=inbox, out=tmp_path / "out", settle_s=1.0, pair_timeout_s=5.0)
    w = Watcher(cfg, handle.analyze, record=station.receive_analysed,
                take_source=partial(station.take_source, owner=owner))
    w.poll_once()
    w.close()
    assert [ln["id"] for ln in lines(tmp_path / "out")] == ["bag5"]
    assert [r.source for r in station.db.list_scans()] == ["watch:bag5"]
    assert not station.take_source("watch:bag5", owner=owner)  # recorded: never again


def test_a_stop_request_ends_the_run_after_the_scan_in_hand(tmp_path, handle, caplog):
    """SIGTERM sets the stop flag: the watcher finishes the scan it is processing and
    stops, instead of first draining the whole backlog (after an outage, thousands)."""
    inbox = tmp_path / "inbox"
    for i in range(5):
        _drop_colour(inbox, f"bag{i}.png")
    stop = []

    def stop_after_first(name):
        if name == "after-report":
            stop.append(True)  # what the SIGTERM handler does, mid-scan

    w = watcher(tmp_path, handle, step=stop_after_first)
    with caplog.at_level("INFO", logger="concealscan.watch"):
        w.run(lambda: bool(stop))
    w.close()
    assert [ln["id"] for ln in lines(tmp_path / "out")] == ["bag0"]
    assert sorted(p.name for p in inbox.glob("*.png")) == [f"bag{i}.png" for i in range(1, 5)]
    assert list((inbox / "work").iterdir()) == []
    assert [r.message for r in caplog.records if "stopping" in r.message] != []


def test_watch_switches_to_a_newly_promoted_model_between_scans(tmp_path, caplog):
    """watch has no reload endpoint: it looks at its registry before each scan, switches to
    a promoted model (logged, the station's model too) and refuses a broken one, keeping
    the old model."""
    from detector.station.detectors import FollowPromoted
    from training import registry as reg_write

    reg = tmp_path / "reg"
    for version in ("1.0.0", "1.1.0", "1.2.0"):
        model, ckpt = tiny_model("color", version)
        reg_write.add_version(reg, version, model, ckpt, metrics={}, data=[])
    reg_write.promote(reg, "1.0.0", "first")
    station = Station(tmp_path / "data", make_handle([tiny_model("color")[0]]))
    analyze = FollowPromoted([reg], on_switch=station.switch_detector)
    inbox = tmp_path / "inbox"
    cfg = WatchConfig(inbox=inbox, out=tmp_path / "out", settle_s=1.0, pair_timeout_s=5.0)
    w = Watcher(cfg, analyze, record=station.receive_analysed)

    def scan_with(name: str) -> str:
        _drop_colour(inbox, name)
        assert w.poll_once() == 1
        return lines(tmp_path / "out")[-1]["model"]["version"]

    assert scan_with("a.png") == "1.0.0"
    reg_write.promote(reg, "1.1.0", "better")
    with caplog.at_level("INFO", logger="concealscan.watch"):
        assert scan_with("b.png") == "1.1.0"
    assert any("switched to the promoted model" in r.message for r in caplog.records)
    assert "1.1.0" in station.model["version"]
    reg_write.promote(reg, "1.2.0", "next")
    broken = reg / "versions" / "1.2.0" / "model.onnx"
    broken.write_bytes(broken.read_bytes()[:-10])  # altered after promotion: sha256 differs
    with caplog.at_level("INFO", logger="concealscan.watch"):
        assert scan_with("c.png") == "1.1.0"
        assert scan_with("d.png") == "1.1.0"
    refused = [r for r in caplog.records if "promoted model not loaded" in r.message]
    assert len(refused) == 1  # said once, not at every scan
    w.close()


def test_a_relative_inbox_still_stores_the_station_copy_as_the_scan(tmp_path, handle,
                                                                    monkeypatch):
    """``watch inbox --data data`` (relative paths): the stored result named
    inbox/work/bag1~2/bag1.png, a path gone once the scan is processed."""
    monkeypatch.chdir(tmp_path)
    station = Station(Path("data"), handle)
    _drop_colour(Path("inbox"), "bag1.png")
    _watch_once(Path("inbox"), Path("out"), handle, station)
    [row] = station.db.list_scans()
    assert row.result["scan"] == f"scans/{row.id}/input/file.png"


def test_a_promoted_model_of_another_kind_is_refused_by_watch_and_serve(tmp_path, caplog):
    """A dual model promoted in a registry that served colour: watch switched to it and every
    colour scan failed ("no model for 'color' scans"). Both watch and serve's reload keep the
    old model and say why; watch says it once."""
    from detector.station.detectors import FollowPromoted, detector_loader
    from training import registry as reg_write

    reg = tmp_path / "reg"
    reg_write.add_version(reg, "1.0.0", *tiny_model("color", "1.0.0"), metrics={}, data=[])
    reg_write.add_version(reg, "2.0.0", *tiny_model("dual", "2.0.0"), metrics={}, data=[])
    reg_write.promote(reg, "1.0.0", "first")
    load, _ = detector_loader([reg])
    station = Station(tmp_path / "data", load())
    analyze = FollowPromoted([reg])
    inbox = tmp_path / "inbox"
    cfg = WatchConfig(inbox=inbox, out=tmp_path / "out", settle_s=1.0, pair_timeout_s=5.0)
    w = Watcher(cfg, analyze)
    reg_write.promote(reg, "2.0.0", "another kind")
    with caplog.at_level("INFO", logger="concealscan.watch"):
        for name in ("a.png", "b.png"):
            _drop_colour(inbox, name)
            assert w.poll_once() == 1
            assert lines(tmp_path / "out")[-1]["status"] == "ok"
            assert lines(tmp_path / "out")[-1]["model"]["version"] == "1.0.0"
    w.close()
    refused = [r.message for r in caplog.records if "not switched" in r.message]
    assert len(refused) == 1 and "dual" in refused[0] and "color" in refused[0]
    with pytest.raises(ValueError, match="not switched"):  # serve's POST /api/model/reload
        station.switch_detector(load())
    assert "color" in station.model["version"] and "dual" not in station.model["version"]


def test_a_refused_promotion_is_tried_again_once_its_cause_is_fixed(tmp_path, caplog,
                                                                     monkeypatch):
    """A promoted model refused (here: altered, then restored; as nobody, unreadable then
    chmod-ed) was never tried again: watch kept the old model until a restart. It is tried
    when its files change, and every RETRY_REFUSED_S; each distinct failure is logged once."""
    from detector.station import detectors
    from training import registry as reg_write

    reg = tmp_path / "reg"
    for version in ("1.0.0", "1.1.0"):
        reg_write.add_version(reg, version, *tiny_model("color", version), metrics={}, data=[])
    reg_write.promote(reg, "1.0.0", "first")
    analyze = detectors.FollowPromoted([reg])
    inbox = tmp_path / "inbox"
    cfg = WatchConfig(inbox=inbox, out=tmp_path / "out", settle_s=1.0, pair_timeout_s=5.0)
    w = Watcher(cfg, analyze)

    def scan_with(name: str) -> str:
        _drop_colour(inbox, name)
        assert w.poll_once() == 1
        return lines(tmp_path / "out")[-1]["model"]["version"]

    model = reg / "versions" / "1.1.0" / "model.onnx"
    good = model.read_bytes()
    reg_write.promote(reg, "1.1.0", "next")
    model.write_bytes(good[:-10])  # a copy cut short: sha256 differs
    with caplog.at_level("INFO", logger="concealscan.watch"):
        assert scan_with("a.png") == "1.0.0"
        assert scan_with("b.png") == "1.0.0"
        model.write_bytes(good)  # fixed
        assert scan_with("c.png") == "1.1.0"
    refused = [r for r in caplog.records if "promoted model not loaded" in r.message]
    assert len(refused) == 1

    reg_write.add_version(reg, "1.2.0", *tiny_model("color", "1.2.0"), metrics={}, data=[])
    broken = reg / "versions" / "1.2.0" / "model.onnx"
    reg_write.promote(reg, "1.2.0", "later")
    broken.write_bytes(b"\0" * broken.stat().st_size)
    tried = []
    real_make = detectors.make_handle
    monkeypatch.setattr(detectors, "make_handle",
                        lambda *a, **kw: tried.append(1) or real_make(*a, **kw))
    clock = [1000.0]
    monkeypatch.setattr(detectors.time, "monotonic", lambda: clock[0])
    assert scan_with("d.png") == "1.1.0" and scan_with("e.png") == "1.1.0"
    assert len(tried) == 1  # unchanged files: not reloaded at each scan
    clock[0] += detectors.RETRY_REFUSED_S
    assert scan_with("f.png") == "1.1.0" and len(tried) == 2  # but again after a while
    w.close()
