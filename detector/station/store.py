"""Scan files under the station's data folder, addressed only by server-generated ids.

No name or path from a request or from the scanner ever becomes a path here: stored files are
called ``file``/``high``/``low`` plus the suffix of the format sniffed from their content.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import secrets
import shutil
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from detector.imagefiles import sniff_format
from detector.outputs import write_atomic  # noqa: F401 -- moved there; training imports it here
from detector.station.storage import check_writable

log = logging.getLogger("concealscan.station")

_ID_RE = re.compile(r"^[0-9]{8}T[0-9]{6}-[0-9a-f]{8}$")
_SUFFIX = {"png": ".png", "jpeg": ".jpg", "tiff": ".tiff", "dicom": ".dcm"}
ROLES_SINGLE = ("file",)
ROLES_DUAL = ("high", "low")
#: A CT volume: ``.npy`` HU plus its JSON sidecar (voxel size), as ``synth --kinds ct`` and
#: ``detect`` use them; stored as ``volume.npy`` + ``volume.json`` so the reader pairs them.
ROLES_VOLUME = ("sidecar", "volume")
#: A dual-energy CT volume: the same plus its low-energy volume and sidecar, stored as
#: ``volume_low.npy`` + ``volume_low.json``.
ROLES_VOLUME_DUAL = ("sidecar", "sidecar_low", "volume", "volume_low")
_NPY_MAGIC = b"\x93NUMPY"
#: Display renderings kept beside each scan; the API serves only these names.
VIEW_FILES = ("image.png", "gray.png", "heat.png", "overlay.png")


class NotAnImageError(ValueError):
    """Upload content is not PNG, JPEG, TIFF or DICOM (whatever its name says)."""


@dataclass(frozen=True)
class Upload:
    """One received file: its role (``file``, ``high`` or ``low``) and its bytes."""

    role: str
    data: bytes

    def __post_init__(self) -> None:
        if self.role not in (*ROLES_SINGLE, *ROLES_DUAL, *ROLES_VOLUME_DUAL):
            raise ValueError(f"Upload.role: expected file, high, low, volume, sidecar, "
                             f"volume_low or sidecar_low, got {self.role!r}")


def new_scan_id() -> str:
    """Sortable by arrival, unguessable enough that ids are not enumerable by counting."""
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + secrets.token_hex(4)


def check_scan_id(scan_id: str) -> str:
    if not isinstance(scan_id, str) or not _ID_RE.fullmatch(scan_id):
        raise ValueError(f"scan id: expected YYYYMMDDTHHMMSS-xxxxxxxx, got {scan_id!r}")
    return scan_id


def image_suffix(head: bytes, role: str) -> str:
    """The suffix for content starting with ``head``, or `NotAnImageError` naming the role."""
    if role in ("volume", "volume_low"):
        if not head.startswith(_NPY_MAGIC):
            raise NotAnImageError(f"{role}: not a .npy array (checked by content; first bytes "
                                  f"{head[:8]!r})")
        return ".npy"
    if role in ("sidecar", "sidecar_low"):
        if not head.lstrip()[:1] == b"{":
            raise NotAnImageError(f"{role}: not a JSON object (first bytes {head[:8]!r})")
        return ".json"
    fmt = sniff_format(head[:132])
    if fmt is None:
        raise NotAnImageError(f"{role}: not a PNG, JPEG, TIFF or DICOM image (checked by "
                              f"content; first bytes {head[:8]!r})")
    return _SUFFIX[fmt]


class ScanStore:
    """``DATA/scans/ID/`` holds ``input/`` (the received files) and the display renderings."""

    def __init__(self, data_dir: Path) -> None:
        self.root = Path(data_dir) / "scans"
        self.root.mkdir(parents=True, exist_ok=True)

    def scan_dir(self, scan_id: str) -> Path:
        return self.root / check_scan_id(scan_id)

    def view_path(self, scan_id: str, name: str) -> Path:
        if name not in VIEW_FILES:
            raise ValueError(f"view: expected one of {VIEW_FILES}, got {name!r}")
        return self.scan_dir(scan_id) / name

    def slice_path(self, scan_id: str, z: int) -> Path:
        """The display rendering of slice ``z`` of a CT scan."""
        if not isinstance(z, int) or z < 0:
            raise ValueError(f"slice: expected an integer >= 0, got {z!r}")
        return self.scan_dir(scan_id) / "slices" / f"{z:04d}.png"

    def slice_count(self, scan_id: str) -> int:
        folder = self.scan_dir(scan_id) / "slices"
        return len(list(folder.glob("*.png"))) if folder.is_dir() else 0

    def staging_dir(self, scan_id: str) -> Path:
        """A private folder to build a scan in; `commit` moves it into place in one rename.

        It lies in this process's own ``.staging/OWNER/`` (`process_owner`), so that another
        process sharing the data folder (``serve`` and ``watch --data``) can tell it from what
        a dead process left: `remove_stale_staging` removes only the latter."""
        path = self.root / STAGING / process_owner() / check_scan_id(scan_id)
        (path / "input").mkdir(parents=True)
        return path

    def write_uploads(self, staging: Path, uploads: Sequence[Upload]) -> list[Path]:
        """Write uploads into ``staging/input`` under their role names; sniffed, never named."""
        paths = []
        for up in uploads:
            # volume.json beside volume.npy, volume_low.json beside volume_low.npy
            stem = up.role.replace("sidecar", "volume")
            path = staging / "input" / (stem + image_suffix(up.data, up.role))
            path.write_bytes(up.data)
            paths.append(path)
        return paths

    def adopt_files(self, staging: Path, files: Sequence[Path], roles: Sequence[str]) -> list[Path]:
        """Copy files the station did not receive itself (the watch folder) into ``staging``."""
        paths = []
        for src, role in zip(files, roles, strict=True):
            with open(src, "rb") as fh:
                head = fh.read(132)
            suffix = _SUFFIX.get(sniff_format(head) or "", ".bin")  # unreadable: kept for check
            dst = staging / "input" / (role + suffix)
            shutil.copyfile(src, dst)
            paths.append(dst)
        return paths

    def write_volume(self, staging: Path, volume) -> list[Path]:
        """A `detector.volume.Volume` (None: nothing) into ``staging`` as the uploaded volumes
        are stored: ``volume.npy`` (HU, float32) + ``volume.json``, and ``volume_low.*``."""
        import numpy as np

        from detector.volume_readers import write_sidecar

        if volume is None:
            return []
        paths = []
        for stem, hu in (("volume", volume.hu), ("volume_low", volume.low)):
            if hu is not None:
                path = staging / "input" / f"{stem}.npy"
                np.save(path, np.asarray(hu, np.float32), allow_pickle=False)
                paths += [path, write_sidecar(path, volume.voxel_mm)]
        return paths

    def commit(self, staging: Path, scan_id: str) -> Path:
        final = self.scan_dir(scan_id)
        os.replace(staging, final)
        return final

    def input_files(self, scan_id: str) -> list[Path]:
        return sorted((self.scan_dir(scan_id) / "input").iterdir())

    def discard(self, scan_id: str) -> None:
        """Remove a committed scan folder that was never recorded (its client was refused)."""
        shutil.rmtree(self.scan_dir(scan_id), ignore_errors=True)

    def remove_stale_staging(self) -> int:
        """Delete half-built scans left by a process that died (their client never got an
        answer); return how many. Staging of a live process (the ``serve`` or ``watch``
        sharing this data folder) is left alone: deleting it failed their uploads."""
        count = 0
        for path in self.root.glob(".staging-*"):  # before per-process staging: the old
            if _is_folder(path):  # version that wrote it is stopped for the upgrade
                _removable(path)
                shutil.rmtree(path)
                count += 1
        staging = self.root / STAGING
        for owner in sorted(staging.iterdir()) if staging.is_dir() else []:
            if not _is_folder(owner):
                log.warning("%s: not a staging folder of this station; left as it is", owner)
                continue
            if owner_alive(owner.name):
                continue
            _removable(owner)
            count += sum(1 for _ in owner.iterdir())
            shutil.rmtree(owner)
        return count


#: Under ``scans/``: one folder per live process that stages scans (`process_owner`).
STAGING = ".staging"


def process_owner(pid: int | None = None) -> str:
    """``HOST-PID-START``: this process (or ``pid``), START its start time in clock ticks
    since boot, so that a later process given the same pid is not taken for it."""
    if pid is None:
        return _own_owner(os.getpid())
    return f"{_host()}-{pid}-{_start_ticks(pid)}"


@functools.lru_cache(maxsize=1)  # each upload stages under it: /proc read once (per pid: a
def _own_owner(pid: int) -> str:  # forked child is another process)
    return process_owner(pid)


def owner_alive(owner: str) -> bool:
    """Whether the process named by a `process_owner` string may still be running. One of
    another host (a data folder on a network share), of an unknown form, or whose start time
    cannot be read counts as alive: its staging is left, never deleted under a writer."""
    parts = owner.rsplit("-", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return True
    host, pid, start = parts
    if host != _host():
        return True
    if not _pid_running(int(pid)):
        return False
    now = _start_ticks(int(pid))
    return now in ("0", start)  # "0": cannot tell (no /proc, or hidden): assume it lives


def _is_folder(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


def _removable(folder: Path) -> None:
    """`detector.outputs.OutputError` (exit 74) naming the first folder in the way, and who
    owns it, unless this process may delete ``folder`` and everything in it: half-deleted
    staging and a traceback helped no one (a root process killed while staging)."""
    check_writable(folder.parent)
    for path in [folder, *sorted(folder.rglob("*"))]:
        if _is_folder(path):
            check_writable(path)


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "_", socket.gethostname())[:64] or "host"


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    return True


def _start_ticks(pid: int) -> str:
    """Field 22 of ``/proc/PID/stat``; "0" where there is no /proc (then only whether the
    pid runs is known, and a reused pid keeps a dead process's staging: safe, not lost)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "0"
    return stat.rpartition(")")[2].split()[19]
