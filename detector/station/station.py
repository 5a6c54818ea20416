"""The station: receive a scan, store it, detect, record it in the database; draw its views
when they are first asked for (`detector.station.views`).

Files are committed before the database row, and a scan folder without a row is finished at
the next start (`Station.recover`), so a crash loses no scan and never shows a half-made one.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from detector.outputs import write_atomic
from detector.readers import ScanRef
from detector.scan import Scan
from detector.station import analysis as an
from detector.station import views
from detector.station.db import Database, NotFoundError, ScanRow, open_database, utc_now
from detector.station.storage import (
    MIN_FREE_BYTES,
    as_output_error,
    check_writable,
    free_space_problem,
)
from detector.station.store import (
    ROLES_DUAL,
    ROLES_SINGLE,
    ROLES_VOLUME,
    ROLES_VOLUME_DUAL,
    STAGING,
    VIEW_FILES,
    ScanStore,
    Upload,
    check_scan_id,
    image_suffix,
    new_scan_id,
    process_owner,
)

log = logging.getLogger("concealscan.station")


@dataclass(frozen=True)
class DetectorHandle:
    """The analyzer in use and what the viewer shows about its model (version, sha256)."""

    analyze: an.Analyzer
    model: dict = field(default_factory=dict)


def check_same_kinds(old: DetectorHandle, new: DetectorHandle) -> None:
    """`ValueError` unless ``new`` has models for the same kinds of scans as ``old``: a
    promotion must not change which scans get a model (a dual model promoted in a registry
    that served gray left every gray scan without one). ``serve``'s reload and ``watch``'s
    following of a registry both refuse such a switch."""
    before, after = _kinds(old), _kinds(new)
    if before is not None and after != before:
        raise ValueError(f"the promoted models are for {', '.join(after or ['no'])} scans, "
                         f"the ones in use for {', '.join(before)}: not switched (promote a "
                         f"model of the kind the registry served, or restart with the models "
                         f"wanted)")


def _kinds(handle: DetectorHandle) -> list[str] | None:
    """The kinds of scans ``handle`` has models for; None: it does not say."""
    models = handle.model.get("models")
    return None if models is None else sorted(str(m.get("kind")) for m in models)


class RecentScans:
    """The last scans decoded at ingest, up to ``max_bytes`` of pixels, newest kept.

    The viewer opens a scan soon after it arrives, and decoding its files again costs as much
    CPU as detecting it; a scan pushed out is simply read from its files again."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._scans: OrderedDict[str, Scan] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def put(self, scan_id: str, scan: Scan) -> None:
        size = scan.image.nbytes
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._scans.pop(scan_id, None)
            self._bytes += size - (0 if old is None else old.image.nbytes)
            self._scans[scan_id] = scan
            while self._bytes > self.max_bytes:
                _, dropped = self._scans.popitem(last=False)
                self._bytes -= dropped.image.nbytes

    def get(self, scan_id: str) -> Scan | None:
        with self._lock:
            return self._scans.get(scan_id)


#: Decoded scans the station keeps for their views (~10 dual-energy 1024 x 768 scans).
RECENT_SCAN_BYTES = 64 * 1024 * 1024


class BadUploadError(ValueError):
    """The uploaded parts are not one ``file`` or a ``high`` + ``low`` pair."""


def check_roles(roles: Sequence[str]) -> tuple[str, ...]:
    got = tuple(sorted(roles))
    for allowed in (ROLES_SINGLE, ROLES_DUAL, ROLES_VOLUME, ROLES_VOLUME_DUAL):
        if got == tuple(sorted(allowed)):
            return allowed
    raise BadUploadError(f"expected one part 'file' (gray or colour), two parts 'high' and "
                         f"'low' (dual energy), 'volume' (.npy) and 'sidecar' (its JSON) for CT, "
                         f"plus 'volume_low' and 'sidecar_low' for dual-energy CT, got "
                         f"{list(roles)}")


class Station:
    """Everything under one data folder; at most ``jobs`` scans analysed at once (the CPU and
    the memory of decoded scans are the limit; one per core is the sweet spot)."""

    def __init__(self, data_dir: Path, detector: DetectorHandle, jobs: int = 1) -> None:
        if jobs < 1:
            raise ValueError(f"jobs: expected >= 1, got {jobs}")
        self.data_dir = Path(data_dir)
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self.db: Database = open_database(self.data_dir / "station.sqlite")  # checks it
            self.store = ScanStore(self.data_dir)
            for path in self._staging_paths():
                check_writable(path)
        except OSError as exc:  # wrong owner, read-only mount: stop now, naming the path
            raise as_output_error(exc) from exc
        self._detector = detector
        self._slots = threading.BoundedSemaphore(jobs)
        self._recent = RecentScans(RECENT_SCAN_BYTES)

    @property
    def model(self) -> dict:
        return dict(self._detector.model)

    def switch_detector(self, detector: DetectorHandle) -> None:
        """Use a new model for scans received from now on; the queue and decisions stay. A scan
        already being analysed finishes with the model it started with. `ValueError` if it
        covers other kinds of scans (`check_same_kinds`): the old model stays."""
        check_same_kinds(self._detector, detector)
        self._detector = detector  # one reference swap: each analysis takes the handle once

    def _staging_paths(self) -> list[Path]:
        """``scans/``, then ``scans/.staging`` and this process's folder in it, where they exist
        (another user's process may have made them: each upload is built there)."""
        staging = self.store.root / STAGING
        return [self.store.root, *(p for p in (staging, staging / process_owner()) if p.is_dir())]

    def storage_problems(self, min_free_bytes: int = MIN_FREE_BYTES) -> list[str]:
        """Why scans could not be stored now (empty: they can): the data folder, the scans
        folder, its staging folders and the database files must stay writable while the
        service runs, with at least ``min_free_bytes`` free."""
        db = self.db.path
        paths = [self.data_dir, *self._staging_paths(), db,
                 *(p for p in (db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm"))
                   if p.exists())]
        problems = []
        for path in paths:
            try:
                check_writable(path)
            except OSError as exc:
                problems.append(str(exc))
        try:
            full = free_space_problem(self.data_dir, min_free_bytes)
        except OSError as exc:
            full = f"{self.data_dir}: free space unknown: {exc.strerror or exc}"
        return problems + ([full] if full else [])

    # -- receiving ---------------------------------------------------------------------------
    def receive(self, uploads: Sequence[Upload]) -> ScanRow:
        """Store uploaded files, detect, record; a scan that fails detection is still kept."""
        received_at = utc_now()
        roles = check_roles([u.role for u in uploads])
        for up in uploads:
            image_suffix(up.data, up.role)  # refuse non-images before anything is stored
        scan_id = self._unused_id()
        staging = self.store.staging_dir(scan_id)
        try:
            self.store.write_uploads(staging, sorted(uploads, key=lambda u: roles.index(u.role)))
            (staging / "source.txt").write_text(f"upload:{scan_id}")
            self.store.commit(staging, scan_id)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return self._finish_or_discard(scan_id, f"upload:{scan_id}", None, received_at)

    def take_source(self, source: str, owner: str = "") -> bool:
        """Reserve ``source`` (``watch:KEY``) for a new scan; False if it is taken (the watch
        folder then picks another key, so that results.jsonl and the station agree).
        ``owner``: the watch folder asking (`detector.station.db.Database.take_source`)."""
        return self.db.take_source(source, owner)

    def receive_analysed(self, source: str, files: Sequence[Path],
                         analysis: an.Analysis | None) -> ScanRow:
        """Record a scan the watch folder analysed (None: analyse it here); idempotent, so
        ``source`` must be new to this station for each new scan (`take_source`)."""
        if self.db.has_source(source):
            return self._row_for_source(source)
        received_at = utc_now()
        scan_id = self._unused_id()
        staging = self.store.staging_dir(scan_id)
        try:
            if analysis is not None and an.line_kind(analysis.line) == "ct":
                # a volume (a DICOM series, TIFF, .npy) is kept as the station keeps uploaded
                # ones, volume.npy + volume.json, as it was read; one that could not be read
                # keeps no input (its line says why)
                self.store.write_volume(staging, analysis.volume)
            elif files := [f for f in files  # a folder or a link: its line says why it was
                           if Path(f).is_file() and not Path(f).is_symlink()]:  # refused
                roles = ROLES_SINGLE if len(files) == 1 else ROLES_DUAL
                self.store.adopt_files(staging, files, roles)
            (staging / "source.txt").write_text(source)
            self.store.commit(staging, scan_id)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return self._finish_or_discard(scan_id, source, analysis, received_at)

    def recover(self) -> int:
        """Finish scans whose files were committed but whose row was not; return how many."""
        try:
            self.store.remove_stale_staging()
        except OSError as exc:  # another user's leftovers: exit 74 naming them, no traceback
            raise as_output_error(exc) from exc
        done = 0
        for folder in sorted(self.store.root.iterdir()):
            if folder.name.startswith("."):
                continue
            if not _is_scan_folder(folder):  # a README, lost+found, a copy someone made
                log.warning("%s: not a scan folder of this station; left as it is", folder)
                continue
            try:
                self.db.get_scan(folder.name)
                continue
            except NotFoundError:
                pass
            source = (folder / "source.txt").read_text().strip()
            log.warning("finishing scan %s (%s) left unrecorded by a crash", folder.name, source)
            self._finish(folder.name, source, None, utc_now())
            done += 1
        return done

    # -- views -------------------------------------------------------------------------------
    def view_names(self, row: ScanRow) -> list[str]:
        """The views ``row``'s scan has: drawn already, or drawable on request."""
        drawable = views.renderable(self.store.scan_dir(row.id), row.result)
        return [n for n in VIEW_FILES
                if n in drawable or self.store.view_path(row.id, n).is_file()]

    def view_png(self, row: ScanRow, name: str) -> bytes | None:
        """View ``name`` (one of `VIEW_FILES`) of ``row``'s scan, drawn and cached on its first
        request; None if the scan has none (unreadable, or not detected)."""
        self.store.view_path(row.id, name)  # refuses any other name
        return views.view_png(self.store.scan_dir(row.id), name, row.result, self._ref(row.id),
                              scan=self._recent.get(row.id))

    # -- internals ---------------------------------------------------------------------------
    def _unused_id(self) -> str:
        """A new id no scan folder or row has (ids are random: a clash is unlikely, but one
        would have put two scans under one id)."""
        while True:
            scan_id = new_scan_id()
            if not self.store.scan_dir(scan_id).exists() and not self.db.has_scan(scan_id):
                return scan_id

    def _finish_or_discard(self, scan_id: str, source: str, analysis: an.Analysis | None,
                           received_at: str) -> ScanRow:
        """`_finish`; if it fails before the row is stored, remove the scan folder: the
        client was refused (507) and may retry, and `recover` would have added it a second
        time. A kill still leaves the folder to `recover` (then no one was answered)."""
        try:
            return self._finish(scan_id, source, analysis, received_at)
        except BaseException:
            try:
                recorded = self.db.has_scan(scan_id)
            except (sqlite3.Error, OSError):  # cannot tell: keep it for recover()
                recorded = True
            if not recorded:
                self.store.discard(scan_id)
            raise

    def _ref(self, scan_id: str) -> ScanRef:
        # Stored as file.* or high.* + low.*: sorted, a pair is (high, low) as ScanRef wants.
        return ScanRef(id=scan_id, files=tuple(self.store.input_files(scan_id)))

    def _analyse(self, scan_id: str) -> an.Analysis:
        ref = self._ref(scan_id)
        with self._slots:
            detector = self._detector
            try:
                return detector.analyze(ref)
            except Exception as exc:  # a bug must still leave the scan for manual check
                log.exception("analysis of %s crashed", scan_id)
                return an.Analysis(line=an.error_line(ref, f"internal error: "
                                                           f"{type(exc).__name__}: {exc}",
                                                      detector.model))

    def _finish(self, scan_id: str, source: str, analysis: an.Analysis | None,
                received_at: str) -> ScanRow:
        if analysis is None:
            analysis = self._analyse(scan_id)
        folder = self.store.scan_dir(scan_id)
        line = dict(analysis.line)
        scan = str(line.get("scan") or "")
        data = os.path.abspath(self.data_dir)
        if scan and os.path.abspath(scan).startswith(data + os.sep):  # operators see no
            line["scan"] = os.path.relpath(os.path.abspath(scan), data)  # server paths
        elif scan:  # read by watch in its inbox's work/ (given absolute or relative), gone
            inputs = self.store.input_files(scan_id)  # since: the copy kept here, or
            line["scan"] = os.path.relpath(inputs[0], data) if inputs else source  # its source
        if analysis.detection is not None:  # what the heat map and overlay are drawn from
            write_atomic(folder / views.DETECTION_FILE, views.detection_bytes(analysis.detection))
            if analysis.scan is not None:
                self._recent.put(scan_id, analysis.scan)
        if analysis.overlay_png is not None:
            write_atomic(folder / views.OVERLAY_VIEW, analysis.overlay_png)
        if analysis.volume is not None:
            views.write_volume_views(folder, analysis.volume, line)
        write_atomic(folder / "result.json", json.dumps(line).encode())
        row = ScanRow(id=scan_id, source=source, received_at=received_at,
                      kind=an.line_kind(line),
                      files=tuple(p.name for p in self.store.input_files(scan_id)),
                      status=an.line_status(line), alarm=an.line_alarm(line),
                      error=an.line_error(line), model_version=an.line_model_version(line),
                      result=line)
        if not self.db.insert_scan(row):  # recorded meanwhile (from another folder): one row
            self.store.discard(scan_id)  # per source, and this copy would be redone each start
            return self._row_for_source(source)
        return self.db.get_scan(scan_id)

    def _row_for_source(self, source: str) -> ScanRow:
        with self.db.connect() as conn:
            found = conn.execute("SELECT id FROM scans WHERE source = ?", (source,)).fetchone()
        if found is None:
            raise NotFoundError(f"no scan from source {source!r}")
        return self.db.get_scan(found[0])


def _is_scan_folder(path: Path) -> bool:
    """A folder the station wrote: named by `new_scan_id`, with its ``source.txt``."""
    try:
        check_scan_id(path.name)
    except ValueError:
        return False
    return path.is_dir() and (path / "source.txt").is_file()
