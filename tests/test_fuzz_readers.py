"""Property-based fuzzing of every scan reader: a `Scan` or a `ScanError`, nothing else.

The CI run is bounded (a few hundred cases); ``benchmarks/fuzz_readers.py`` runs the same
strategies for longer and docs/reliability.md records its counts.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from fuzz_cases import STRATEGIES, SUFFIX, png_files
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from detector import Scan, ScanError, read_scan

EXAMPLES = int(os.environ.get("CONCEALSCAN_FUZZ_EXAMPLES", "80"))
FUZZ = settings(max_examples=EXAMPLES, deadline=5000, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def read_outcome(folder: Path, name: str, data: bytes, partner: bytes | None = None):
    path = folder / name
    path.write_bytes(data)
    if partner is not None:
        (folder / name.replace("_high", "_low")).write_bytes(partner)
    try:
        scan = read_scan(path, max_pixels=4_000_000)
    except ScanError as exc:
        assert exc.path is not None and exc.reason
        event("ScanError")
        return exc
    assert isinstance(scan, Scan)
    event(f"Scan {scan.kind}")
    return scan


def _reader_fuzz_test(kind: str):
    @FUZZ
    @given(data=STRATEGIES[kind])
    def test(data):
        with tempfile.TemporaryDirectory() as tmp:
            read_outcome(Path(tmp), "scan" + SUFFIX[kind], data)

    test.__name__ = f"test_{kind}_reader_gives_scan_or_scan_error"
    return test


test_png_reader = _reader_fuzz_test("png")
test_tiff_reader = _reader_fuzz_test("tiff")
test_dicom_reader = _reader_fuzz_test("dicom")
test_garbage_behind_magic = _reader_fuzz_test("bytes")


@FUZZ
@given(high=png_files(), low=png_files())
def test_mismatched_dual_pairs(high, low):
    with tempfile.TemporaryDirectory() as tmp:
        read_outcome(Path(tmp), "bag_high.png", high, partner=low)


@FUZZ
@given(name=st.text(min_size=1, max_size=40).filter(lambda s: "/" not in s and "\x00" not in s
                                                   and s not in (".", "..")))
def test_odd_file_names(name):
    with tempfile.TemporaryDirectory() as tmp:
        try:
            (Path(tmp) / name).write_bytes(b"not an image")
        except OSError:
            return  # the file system refused the name; nothing to read
        with pytest.raises(ScanError):
            read_scan(Path(tmp) / name)
