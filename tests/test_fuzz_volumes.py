"""Property-based fuzzing of the CT volume readers (.npy + sidecar, multi-page TIFF, DICOM/DICOS
CT series and multi-frame files) and of JPEG: discovery then reading gives a `Scan`, a `Volume`
or a `ScanError`, nothing else.

The CI run is bounded; ``CONCEALSCAN_FUZZ_EXAMPLES`` raises it (docs/reliability.md).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from fuzz_corpus import write_case
from fuzz_volume_cases import VOLUME_STRATEGIES
from hypothesis import HealthCheck, event, given, settings

from detector import Scan, ScanError
from detector.volume import Volume
from detector.volume_inputs import discover_inputs, read_input

EXAMPLES = int(os.environ.get("CONCEALSCAN_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=5000, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def input_outcomes(folder: Path, name: str, max_pixels: int = 4_000_000,
                   max_voxels: int = 4_000_000) -> list[Scan | Volume | ScanError]:
    """Discover what ``folder/name`` holds and read each input: the property under test."""
    outcomes = []
    for ref in discover_inputs([folder / name]):
        try:
            got = read_input(ref, max_pixels=max_pixels, max_voxels=max_voxels)
        except ScanError as exc:
            assert exc.reason, "a ScanError must say why"
            outcomes.append(exc)
            continue
        assert isinstance(got, (Scan, Volume)), type(got)
        outcomes.append(got)
    return outcomes


def _volume_fuzz_test(kind: str):
    @FUZZ
    @given(case=VOLUME_STRATEGIES[kind])
    def test(case):
        name, files = case
        with tempfile.TemporaryDirectory() as tmp:
            write_case(Path(tmp), files)
            outcomes = input_outcomes(Path(tmp), name)
        assert outcomes, "discovery dropped the input: it must be reported, not ignored"
        for got in outcomes:
            event("ScanError" if isinstance(got, ScanError) else f"read {got.kind}")

    test.__name__ = f"test_{kind}_gives_scan_volume_or_scan_error"
    return test


test_npy_volumes = _volume_fuzz_test("npy")
test_tiff_volumes = _volume_fuzz_test("tiff_volume")
test_dicom_ct_series = _volume_fuzz_test("dicom_ct_series")
test_dicom_ct_multiframe = _volume_fuzz_test("dicom_ct_multiframe")
test_jpeg = _volume_fuzz_test("jpeg")
