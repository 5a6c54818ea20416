"""Typed errors at the workstation's public entry points."""

from __future__ import annotations

from pathlib import Path


class ScanError(Exception):
    """A scan could not be read or used. It names the file and the reason.

    A scan that raises this is never treated as "clear": callers report it and
    send the scan to manual check.
    """

    def __init__(self, path: str | Path | None, reason: str) -> None:
        self.path = None if path is None else str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}" if self.path else reason)


class UsageError(Exception):
    """The command line or a configuration asked for something impossible (exit status 64)."""
