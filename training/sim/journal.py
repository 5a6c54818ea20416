"""Resumable `synth` runs: each finished scan's COCO entry is appended to a journal in the
output folder, so that ``synth --resume`` continues an interrupted run where it stopped and
writes the same bytes as a run that was never interrupted."""

from __future__ import annotations

import json
import sys
from pathlib import Path

JOURNAL = "synth_progress.jsonl"


class JournalError(ValueError):
    """A journal that cannot be resumed; the message names it and why."""


def read_journal(out: Path, identity: dict) -> list[tuple[dict, list[dict]]]:
    """The entries an interrupted run in ``out`` finished, in scan order ([] when it holds no
    journal). A last line cut off mid-write is dropped (that scan is made again). Raises
    `JournalError` naming the journal when it is unreadable or was written by another run (other
    seed, prefix, config or kind)."""
    path = out / JOURNAL
    if not path.exists():
        return []
    try:
        lines = path.read_text().splitlines(keepends=True)
        header = json.loads(lines[0]) if lines else None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise JournalError(f"{path}: unreadable journal: {exc}") from exc
    if not isinstance(header, dict):
        raise JournalError(f"{path}: no journal header on its first line")
    for key, ours in identity.items():
        if header.get(key) != ours:
            raise JournalError(f"{path}: written by another run ({key}: {header.get(key)!r}, "
                               f"this run: {ours!r}); --overwrite starts again")
    entries = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.endswith("\n"):
            break
        try:
            entry, annotations = json.loads(line)
        except ValueError as exc:
            raise JournalError(f"{path}: line {number}: {exc}") from exc
        entries.append((entry, annotations))
    return entries


def render_journaled(make_all, out: Path, count: int, identity: dict, resume: bool,
                     bar, unit: str = "scans") -> list[tuple[dict, list[dict]]]:
    """Entries for scans 0..count-1: those a journal in ``out`` holds (``resume``), then
    ``make_all(start)`` (an iterator of the entries from scan ``start`` on, in order), each
    appended to the journal once its files are written. The caller removes the journal after
    writing the data set."""
    identity = json.loads(json.dumps(identity))  # as a journal reads back: lists, not tuples
    entries = read_journal(out, identity) if resume else []
    if len(entries) > count:
        raise JournalError(f"{out / JOURNAL}: holds {len(entries)} finished {unit}, more "
                           f"than --count {count}")
    if entries:
        print(f"resuming: {len(entries)} of {count} {unit} were made by an earlier run",
              file=sys.stderr)
    bar.update(len(entries))
    path = out / JOURNAL
    # Rewritten whole first: a line cut off by the interruption must not be appended to.
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(x) + "\n" for x in [identity, *entries]))
    tmp.replace(path)
    with path.open("a") as journal:
        for entry in make_all(len(entries)):
            journal.write(json.dumps(entry) + "\n")
            journal.flush()
            entries.append(entry)
            bar.update(1)
    return entries
