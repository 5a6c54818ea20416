"""The station database (SQLite, WAL): scans, operators and their append-only decisions.

Decisions are never updated or deleted (triggers refuse it), so the review history that feeds
retraining and audits is exactly what operators did, in order.
"""

from __future__ import annotations

import errno
import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from detector.outputs import OutputError
from detector.station.storage import as_output_error, check_writable, who_owns

SCHEMA_VERSION = 1
DECISIONS = ("confirm", "clear", "missed")
REVIEW_FILTERS = ("unreviewed", "reviewed", *DECISIONS)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS operators (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    token_sha256 TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS scans (
    id TEXT PRIMARY KEY,
    source TEXT NOT NULL UNIQUE,
    received_at TEXT NOT NULL,
    kind TEXT,
    files TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'error')),
    alarm INTEGER NOT NULL CHECK (alarm IN (0, 1)),
    error TEXT,
    model_version TEXT,
    result TEXT NOT NULL,
    CHECK (status = 'ok' OR alarm = 1)
);
CREATE INDEX IF NOT EXISTS scans_received ON scans (received_at);
CREATE TABLE IF NOT EXISTS sources_taken (
    source TEXT PRIMARY KEY,
    taken_at TEXT NOT NULL,
    owner TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY,
    scan_id TEXT NOT NULL REFERENCES scans (id),
    operator_id INTEGER NOT NULL REFERENCES operators (id),
    decision TEXT NOT NULL CHECK (decision IN ('confirm', 'clear', 'missed')),
    boxes TEXT NOT NULL,
    note TEXT NOT NULL,
    model_version TEXT,
    decided_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS decisions_scan ON decisions (scan_id, id);
CREATE TRIGGER IF NOT EXISTS decisions_no_update BEFORE UPDATE ON decisions
BEGIN SELECT RAISE(ABORT, 'decisions are append-only'); END;
CREATE TRIGGER IF NOT EXISTS decisions_no_delete BEFORE DELETE ON decisions
BEGIN SELECT RAISE(ABORT, 'decisions are append-only'); END;
"""


class DatabaseError(Exception):
    """The station database is unusable (corrupt, newer schema) or refused a write."""


class NotFoundError(LookupError):
    """No row with that id; the message names the id."""


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class ScanRow:
    """One received scan. An error scan always alarms: it needs a manual check."""

    id: str
    source: str
    received_at: str
    kind: str | None
    files: tuple[str, ...]
    status: str
    alarm: bool
    error: str | None
    model_version: str | None
    result: dict
    review: str = "unreviewed"  # the latest decision, or "unreviewed"

    def __post_init__(self) -> None:
        if self.status not in ("ok", "error"):
            raise ValueError(f"ScanRow.status: expected 'ok' or 'error', got {self.status!r}")
        if not isinstance(self.alarm, bool) or (self.status == "error" and not self.alarm):
            raise ValueError(f"ScanRow.alarm: expected a bool, True for an error scan; got "
                             f"{self.alarm!r} with status {self.status!r}")
        if self.review not in ("unreviewed", *DECISIONS):
            raise ValueError(f"ScanRow.review: expected unreviewed or one of {DECISIONS}, "
                             f"got {self.review!r}")

    @property
    def box_numbers(self) -> int:
        """How many numbers an operator's box on this scan has: a CT volume's
        ``[x1, y1, z1, x2, y2, z2]`` (voxels), a 2-D scan's ``[x1, y1, x2, y2]`` (pixels)."""
        return 6 if self.kind == "ct" else 4


@dataclass(frozen=True)
class Decision:
    id: int
    scan_id: str
    operator: str
    decision: str
    boxes_xyxy: tuple[tuple[float, ...], ...]  # [x1, y1, x2, y2]; CT: [x1, y1, z1, x2, y2, z2]
    note: str
    model_version: str | None
    decided_at: str


class Database:
    """Open with `open_database`; every method uses its own short connection (thread-safe).

    One more connection stays open while the object lives, doing nothing: in WAL mode the
    last connection to close checkpoints the WAL and deletes it, which every request paid
    (measured: an insert, a read and a lookup took 23 ms, 11 ms with this one held).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._held: sqlite3.Connection | None = None

    def hold_open(self) -> None:
        """Keep one idle connection (a reader of the WAL) open until `close`."""
        if self._held is None:
            conn = sqlite3.connect(self.path, check_same_thread=False)
            conn.execute("SELECT 1 FROM meta LIMIT 1").fetchall()  # joins the WAL
            self._held = conn

    def close(self) -> None:
        if self._held is not None:
            self._held.close()
            self._held = None

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA busy_timeout = 30000")
        try:
            yield conn
        finally:
            conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self.connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # -- operators ---------------------------------------------------------------------------
    def add_operator(self, name: str, token_sha256: str) -> int:
        try:
            with self.transaction() as conn:
                cur = conn.execute(
                    "INSERT INTO operators (name, token_sha256, created_at) VALUES (?, ?, ?)",
                    (name, token_sha256, utc_now()))
                return int(cur.lastrowid)
        except sqlite3.IntegrityError as exc:
            raise DatabaseError(f"operator {name!r} already exists") from exc

    def set_operator_token(self, name: str, token_sha256: str) -> None:
        """Replace operator ``name``'s token hash (a new token, or none that any token hashes
        to: revoked); the operator and their decisions stay."""
        with self.transaction() as conn:
            cur = conn.execute("UPDATE operators SET token_sha256 = ? WHERE name = ?",
                               (token_sha256, name))
            if cur.rowcount != 1:
                raise DatabaseError(f"no operator {name!r}")

    def operator_by_token_hash(self, token_sha256: str) -> tuple[int, str, str] | None:
        """(id, name, stored hash) of the operator whose token hashes to ``token_sha256``."""
        with self.connect() as conn:
            row = conn.execute("SELECT id, name, token_sha256 FROM operators "
                               "WHERE token_sha256 = ?", (token_sha256,)).fetchone()
        return None if row is None else (row["id"], row["name"], row["token_sha256"])

    def operator_names(self) -> list[str]:
        with self.connect() as conn:
            return [r[0] for r in conn.execute("SELECT name FROM operators ORDER BY id")]

    def operator_tokens(self) -> list[tuple[str, str]]:
        """(name, stored token hash) of every operator, in the order they were added."""
        with self.connect() as conn:
            return [(r[0], r[1]) for r in
                    conn.execute("SELECT name, token_sha256 FROM operators ORDER BY id")]

    # -- scans -------------------------------------------------------------------------------
    def insert_scan(self, row: ScanRow) -> bool:
        """Insert ``row``; False (and nothing written) if its ``source`` is already stored.
        An ``id`` already used by another source is an error, never ignored: it would hide
        the new scan."""
        try:
            with self.transaction() as conn:
                cur = conn.execute(
                    "INSERT INTO scans (id, source, received_at, kind, files, status, alarm, "
                    "error, model_version, result) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (source) DO NOTHING",
                    (row.id, row.source, row.received_at, row.kind, json.dumps(list(row.files)),
                     row.status, int(row.alarm), row.error,
                     row.model_version, json.dumps(row.result)))
                return cur.rowcount == 1
        except sqlite3.IntegrityError as exc:
            raise DatabaseError(f"scan id {row.id!r} is already used by another scan "
                                f"(source {row.source!r} not recorded): {exc}") from exc

    def has_source(self, source: str) -> bool:
        with self.connect() as conn:
            return conn.execute("SELECT 1 FROM scans WHERE source = ?",
                                (source,)).fetchone() is not None

    def has_scan(self, scan_id: str) -> bool:
        with self.connect() as conn:
            return conn.execute("SELECT 1 FROM scans WHERE id = ?",
                                (scan_id,)).fetchone() is not None

    def take_source(self, source: str, owner: str = "") -> bool:
        """Reserve ``source`` for one new scan: False if a scan was recorded with it or another
        ``owner`` reserved it. Two watch folders feeding one station, or a watch folder whose
        processed/ and results/ were archived, reuse names; each scan needs its own. The same
        ``owner`` (a watch folder) gets its own unrecorded reservation back: a watcher killed
        between reserving a key and claiming the scan takes the scan again under that key."""
        with self.transaction() as conn:
            if conn.execute("SELECT 1 FROM scans WHERE source = ?", (source,)).fetchone():
                return False
            taken = conn.execute("SELECT owner FROM sources_taken WHERE source = ?",
                                 (source,)).fetchone()
            if taken is not None:
                return bool(owner) and taken[0] == owner
            conn.execute("INSERT INTO sources_taken (source, taken_at, owner) VALUES (?, ?, ?)",
                         (source, utc_now(), owner))
            return True

    def get_scan(self, scan_id: str) -> ScanRow:
        with self.connect() as conn:
            row = conn.execute(_SCAN_SELECT + " WHERE s.id = ?", (scan_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no scan with id {scan_id!r}")
        return _scan_row(row)

    def list_scans(self, alarm: bool | None = None, review: str | None = None,
                   status: str | None = None, limit: int = 100, offset: int = 0) -> list[ScanRow]:
        """The queue, newest first, optionally filtered by alarm, review state and status."""
        sql, params = self._queue_sql(_SCAN_SELECT, alarm, review, status)
        with self.connect() as conn:
            rows = conn.execute(sql, (*params, int(limit), int(offset))).fetchall()
        return [_scan_row(r) for r in rows]

    def queue_summaries(self, alarm: bool | None = None, review: str | None = None,
                        status: str | None = None, limit: int = 100,
                        offset: int = 0) -> list[dict]:
        """`list_scans` as the queue shows it: the row's fields without files and result, and
        ``boxes``, the number of detections (None for an error scan), counted by SQLite
        instead of decoding every results line."""
        sql, params = self._queue_sql(_SUMMARY_SELECT, alarm, review, status)
        with self.connect() as conn:
            rows = conn.execute(sql, (*params, int(limit), int(offset))).fetchall()
        return [{"id": r["id"], "received_at": r["received_at"], "kind": r["kind"],
                 "status": r["status"], "alarm": bool(r["alarm"]), "error": r["error"],
                 "review": r["review"] or "unreviewed", "model_version": r["model_version"],
                 "boxes": r["boxes"] if r["status"] == "ok" else None} for r in rows]

    @staticmethod
    def _queue_sql(select: str, alarm: bool | None, review: str | None,
                   status: str | None) -> tuple[str, list]:
        where, params = [], []
        if alarm is not None:
            where.append("s.alarm = ?")
            params.append(int(alarm))
        if status is not None:
            if status not in ("ok", "error"):
                raise ValueError(f"status: expected 'ok' or 'error', got {status!r}")
            where.append("s.status = ?")
            params.append(status)
        if review is not None:
            if review not in REVIEW_FILTERS:
                raise ValueError(f"review: expected one of {REVIEW_FILTERS}, got {review!r}")
            where.append({"unreviewed": "review IS NULL", "reviewed": "review IS NOT NULL"}
                         .get(review, "review = ?"))
            if review in DECISIONS:
                params.append(review)
        sql = select + (" WHERE " + " AND ".join(where) if where else "")
        return sql + " ORDER BY s.received_at DESC, s.id DESC LIMIT ? OFFSET ?", params

    # -- decisions ---------------------------------------------------------------------------
    def add_decision(self, scan_id: str, operator_id: int, decision: str,
                     boxes_xyxy: list[list[float]], note: str) -> int:
        if decision not in DECISIONS:
            raise ValueError(f"decision: expected one of {DECISIONS}, got {decision!r}")
        with self.transaction() as conn:
            scan = conn.execute("SELECT model_version FROM scans WHERE id = ?",
                                (scan_id,)).fetchone()
            if scan is None:
                raise NotFoundError(f"no scan with id {scan_id!r}")
            cur = conn.execute(
                "INSERT INTO decisions (scan_id, operator_id, decision, boxes, note, "
                "model_version, decided_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (scan_id, operator_id, decision, json.dumps(boxes_xyxy), note,
                 scan["model_version"], utc_now()))
            return int(cur.lastrowid)

    def decisions(self, scan_id: str | None = None) -> list[Decision]:
        """Decisions in the order they were made, for one scan or all."""
        sql = ("SELECT d.*, o.name AS operator FROM decisions d "
               "JOIN operators o ON o.id = d.operator_id")
        params: tuple = ()
        if scan_id is not None:
            sql, params = sql + " WHERE d.scan_id = ?", (scan_id,)
        with self.connect() as conn:
            rows = conn.execute(sql + " ORDER BY d.id", params).fetchall()
        return [Decision(id=r["id"], scan_id=r["scan_id"], operator=r["operator"],
                         decision=r["decision"],
                         boxes_xyxy=tuple(tuple(b) for b in json.loads(r["boxes"])),
                         note=r["note"], model_version=r["model_version"],
                         decided_at=r["decided_at"]) for r in rows]


_REVIEW = ("(SELECT d.decision FROM decisions d WHERE d.scan_id = s.id "
           "ORDER BY d.id DESC LIMIT 1) AS review")
_SCAN_SELECT = f"SELECT s.*, {_REVIEW} FROM scans s"
_SUMMARY_SELECT = (
    "SELECT s.id, s.received_at, s.kind, s.status, s.alarm, s.error, s.model_version, "
    f"COALESCE(json_array_length(s.result, '$.detections'), 0) AS boxes, {_REVIEW} "
    "FROM scans s")


def _scan_row(r: sqlite3.Row) -> ScanRow:
    return ScanRow(id=r["id"], source=r["source"], received_at=r["received_at"], kind=r["kind"],
                   files=tuple(json.loads(r["files"])), status=r["status"],
                   alarm=bool(r["alarm"]), error=r["error"],
                   model_version=r["model_version"], result=json.loads(r["result"]),
                   review=r["review"] or "unreviewed")


def open_database(path: Path) -> Database:
    """Create or open the database at ``path``: WAL mode, schema, integrity check."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise as_output_error(exc, path.parent) from exc
    check_writable(path.parent)  # SQLite makes its -wal and -shm files beside it
    if path.exists():
        check_writable(path)
    db = Database(path)
    try:
        with db.connect() as conn:
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise DatabaseError(f"{path}: integrity check failed: {check}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.executescript(_SCHEMA)
            _add_missing_columns(conn)
            _check_version(conn, path)
        db.hold_open()
    except sqlite3.DatabaseError as exc:
        if any(w in str(exc) for w in ("readonly", "unable to open", "read-only")):
            # a permission or mount problem (e.g. a -wal file owned by root), not a damaged
            # database: say so, or the admin goes looking for corruption
            raise OutputError(path, PermissionError(errno.EACCES, f"{exc}; {who_owns(path)}")) \
                from exc
        raise DatabaseError(f"{path}: not a usable station database: {exc}") from exc
    return db


def _add_missing_columns(conn: sqlite3.Connection) -> None:
    """Columns added after a station's database was made, within one schema version:
    sources_taken.owner came a few commits after the table (a station made in between
    failed with 'no such column: owner')."""
    have = {row[1] for row in conn.execute("PRAGMA table_info(sources_taken)")}
    if "owner" not in have:
        conn.execute("ALTER TABLE sources_taken ADD COLUMN owner TEXT NOT NULL DEFAULT ''")


def _check_version(conn: sqlite3.Connection, path: Path) -> None:
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if row is None:
        conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?)",
                     (str(SCHEMA_VERSION),))
    elif int(row[0]) != SCHEMA_VERSION:
        raise DatabaseError(f"{path}: schema version {row[0]}, this concealscan reads "
                            f"{SCHEMA_VERSION}")
