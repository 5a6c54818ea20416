"""Writing results so that a full disk or a read-only folder never leaves half of one.

A results line is appended whole or not at all (a failed write is cut back); a file is written
under a temporary name and renamed into place, and the temporary file is removed on failure.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path
from typing import BinaryIO

#: Exit status of a command that could not write its results (sysexits.h EX_IOERR).
EXIT_OUTPUT = 74
#: `write_atomic`'s temporary name: ``.NAME.PID.HEX8.tmp``.
_TEMPORARY_RE = re.compile(r"\..+\.[0-9]+\.[0-9a-f]{8}\.tmp")


class OutputError(OSError):
    """Results could not be written (full disk, read-only folder); names the path and why.
    An `OSError` with the original errno, so callers may tell ENOSPC from EROFS."""

    def __init__(self, path: str | Path, exc: OSError) -> None:
        self.path = str(path)
        self.reason = exc.strerror or str(exc)
        super().__init__(exc.errno, f"cannot write {self.path}: {self.reason}")

    def __str__(self) -> str:
        return self.strerror


def append_line(fh: BinaryIO, data: bytes) -> None:
    """Append ``data`` (one line, with its newline) to ``fh`` whole, or cut it back and raise
    `OutputError`. ``fh`` is an unbuffered binary file (``open(path, "ab", buffering=0)``)."""
    start = fh.seek(0, os.SEEK_END)
    try:
        done = 0
        while done < len(data):
            written = fh.write(data[done:])
            if not written:
                raise OSError(28, "short write")
            done += written
        os.fsync(fh.fileno())
    except OSError as exc:
        try:
            fh.truncate(start)  # a partial line would read as a corrupt result
        except OSError:
            pass  # the reader drops an unterminated last line; nothing more can be done here
        raise OutputError(getattr(fh, "name", "?"), exc) from exc


def write_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` so that readers see the old file or the new one, never a partial one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass  # a read-only folder: the temporary file was never created
        raise OutputError(path, exc) from exc


def remove_temporaries(folder: str | Path) -> list[str]:
    """Delete the temporary files a `write_atomic` killed before its rename left in
    ``folder``; return their names. Nothing else is touched."""
    removed = []
    for path in Path(folder).iterdir():
        if _TEMPORARY_RE.fullmatch(path.name) and path.is_file():
            path.unlink()
            removed.append(path.name)
    return removed


def encode_png(pixels) -> bytes:
    """PNG of OpenCV-ordered pixels: gray ``(H, W)``, BGR or BGRA. OpenCV's default (zlib
    level 1, run-length strategy) is kept: measured on 1024x768 views, no other level or
    filter was faster except level 0, whose files are three times larger."""
    import cv2

    ok, buf = cv2.imencode(".png", pixels)
    if not ok:
        raise ValueError(f"cannot encode a PNG from shape {pixels.shape} {pixels.dtype}")
    return buf.tobytes()


def write_png_atomic(path: str | Path, bgr) -> None:
    """Encode an OpenCV (BGR) image in memory, then `write_atomic`: a full disk leaves the
    old file or none, never a truncated PNG (``cv2.imwrite`` only returns False)."""
    write_atomic(path, encode_png(bgr))
