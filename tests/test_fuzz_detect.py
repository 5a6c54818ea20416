"""``concealscan detect`` on a folder of fuzzed files: every input gets exactly one line, and
every input that cannot be read gets ``"status": "error"`` with ``"alarm": true``.

The end-to-end property of issue 8: an unreadable scan is never "no threat". Readability is
decided independently, in this process, with the same readers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from fuzz_corpus import write_corpus
from model_fixtures import tiny_models

from detector import ScanError
from detector.volume_inputs import discover_inputs, read_input

PER_KIND = int(os.environ.get("CONCEALSCAN_FUZZ_DETECT_PER_KIND", "12"))


@pytest.mark.slow
def test_detect_on_fuzzed_files_alarms_on_every_unreadable_input(tmp_path):
    paths = write_corpus(tmp_path / "in", PER_KIND)
    expected = {}  # scan path -> True if it cannot be read
    for path in paths:
        for ref in discover_inputs([path]):
            try:
                read_input(ref)
                expected[ref.path] = False
            except ScanError:
                expected[ref.path] = True
    models = tiny_models()
    proc = subprocess.run(
        [sys.executable, "-W", "ignore", "-m", "detector.cli", "detect", *map(str, paths),
         "--out", str(tmp_path / "out"), "--no-overlays",
         *[a for kind in ("dual", "gray", "color") for a in ("--model", str(models[kind]))]],
        capture_output=True, text=True, timeout=600)
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [json.loads(x) for x in (tmp_path / "out" / "results.jsonl").read_text()
             .splitlines()]
    by_scan = {ln["scan"]: ln for ln in lines}
    assert len(by_scan) == len(lines) == len(expected), "one line per input, none dropped"
    assert set(by_scan) == set(expected)
    for scan, unreadable in expected.items():
        line = by_scan[scan]
        if unreadable:
            assert line["status"] == "error" and line["alarm"] is True and line["error"], line
        if line["status"] == "error":
            assert line["alarm"] is True and line["detections"] == [], line
        else:
            assert isinstance(line["alarm"], bool) and line["error"] is None, line
    errors = sum(ln["status"] == "error" for ln in lines)
    assert sum(expected.values()) > len(expected) // 2, "the corpus must be mostly hostile"
    assert errors < len(lines), "some fuzzed inputs must be readable, or nothing was detected"
    assert proc.returncode == 2 and f"errors {errors}" in proc.stderr
    print(f"detect fuzz: {len(lines)} inputs, {sum(expected.values())} unreadable, {errors} "
          f"error lines, {len(lines) - errors} ok")  # shown with -s: docs/reliability.md
