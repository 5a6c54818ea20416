"""Can this process write the station's folders? A clear `OutputError` (exit 74) naming the
path, its owner and what to do, instead of a traceback on the first scan."""

from __future__ import annotations

import errno
import os
import pwd
import stat
from pathlib import Path

from detector.outputs import OutputError


def check_writable(path: str | Path, listed: bool = False) -> None:
    """`OutputError` unless this process may create files in folder ``path`` (or write file
    ``path``), and list it too if ``listed`` (a watch folder): a service started as another
    user than the one who made its folders (root ran ``users add`` first) must stop at once
    saying so, not fail on each scan."""
    path = Path(path)
    is_dir = path.is_dir()
    if os.access(path, os.W_OK | (os.X_OK if is_dir else 0) | (os.R_OK if listed else 0)):
        return
    try:
        readonly = bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        readonly = False  # cannot tell: the owner hint still says what to check
    if readonly:
        raise OutputError(path, OSError(errno.EROFS, "Read-only file system"))
    need = " (it must be listed and written: rwx)" if listed and is_dir else ""
    raise OutputError(path, PermissionError(errno.EACCES, f"Permission denied{need}; "
                                                          f"{who_owns(path)}"))


#: Free space under which health reports a problem (or under the upload limit, if larger):
#: SQLite and a scan's files need room, and an upload that fails half-written helps no one.
MIN_FREE_BYTES = 100 * 1024 * 1024


def free_space_problem(path: str | Path, min_free_bytes: int) -> str | None:
    """``"PATH: only N MB free ..."`` when the file system holding ``path`` has less than
    ``min_free_bytes`` free for this process (unprivileged), else None."""
    st = os.statvfs(path)
    free = st.f_bavail * st.f_frsize
    if free >= min_free_bytes:
        return None
    return (f"{path}: only {free / 2**20:.0f} MB free, under the {min_free_bytes / 2**20:.0f} MB "
            f"a scan may need: free some space")


def who_owns(path: str | Path) -> str:
    """``owned by root (drwxr-xr-x), this process runs as scanop: ...`` for ``path``."""
    try:
        st = os.stat(path)
    except OSError as exc:
        return f"cannot stat it: {exc.strerror}"
    return (f"owned by {_user(st.st_uid)} ({stat.filemode(st.st_mode)}) while this process "
            f"runs as {_user(os.geteuid())}: run as the station's user, or chown/chmod it")


def as_output_error(exc: OSError, path: str | Path | None = None) -> OutputError:
    """``exc`` (from making a folder or opening a file) as an `OutputError` naming its path,
    with the owner of the nearest existing folder when it is a permission problem."""
    if isinstance(exc, OutputError):
        return exc
    where = Path(path if path is not None else exc.filename or "?")
    if exc.errno not in (errno.EACCES, errno.EPERM):
        return OutputError(where, exc)
    near = where
    while not near.exists() and near.parent != near:  # what could not be made: its parent
        near = near.parent
    owner = who_owns(near) if near == where else f"{near} is {who_owns(near)}"
    return OutputError(where, PermissionError(exc.errno, f"{exc.strerror}; {owner}"))


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"
