"""Inputs the fuzzers found that once escaped as another exception or were dropped, kept as
plain table tests so that they run every time whatever hypothesis draws."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from ct_data import phantom_hu, write_ct_series, write_multiframe_ct
from fuzz_volume_cases import _replace_npy_shape

from detector import ScanError
from detector.volume_inputs import discover_inputs, read_input
from detector.volume_readers import read_volume, write_sidecar

HU = np.rint(phantom_hu((4, 8, 10)))


def _npy_bytes(arr) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def case_npy_header_unclosed_paren(tmp):  # a null byte for "(": tokenize.TokenError in numpy
    (tmp / "v.npy").write_bytes(b"\x93NUMPY\x01\x00v\x00{'descr': '<i2', 'fortran_order': "
                                b"False, 'shape': \x000,), }" + b" " * 60 + b"\n")
    return tmp / "v.npy", "not a valid .npy"


def case_npy_declares_2gb_but_holds_bytes(tmp):  # refused before np.load allocates it
    data = _replace_npy_shape(_npy_bytes(HU.astype(np.float64)), (800, 800, 400))
    (tmp / "v.npy").write_bytes(data)
    write_sidecar(tmp / "v.npy", (1, 1, 1))
    return tmp / "v.npy", "truncated"


def case_single_pixel_spacing_value(tmp):
    paths = write_ct_series(tmp / "s", HU)
    for p in paths:
        ds = pydicom.dcmread(p)
        ds.PixelSpacing = 0.5
        ds.save_as(p)
    return tmp / "s", "PixelSpacing must hold 2 values"


def case_fewer_per_frame_groups_than_frames(tmp):
    path = write_multiframe_ct(tmp / "enh.dcm", HU)
    ds = pydicom.dcmread(path)
    del ds.PerFrameFunctionalGroupsSequence[1:]
    ds.save_as(path)
    return path, "PerFrameFunctionalGroupsSequence has 1 items"


def case_unknown_vr_in_series_uid(tmp):  # pydicom decodes lazily: raised on first access
    paths = write_ct_series(tmp / "s", HU)
    data = paths[1].read_bytes()
    at = data.find(b"\x20\x00\x0e\x00UI")  # (0020,000E) SeriesInstanceUID, explicit VR
    paths[1].write_bytes(data[:at + 4] + b"U\x00" + data[at + 6:])
    return tmp / "s", ""


CASES = [case_npy_header_unclosed_paren,
         case_npy_declares_2gb_but_holds_bytes, case_single_pixel_spacing_value,
         case_fewer_per_frame_groups_than_frames, case_unknown_vr_in_series_uid]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__[5:] for c in CASES])
def test_found_by_fuzzing_is_a_scan_error(tmp_path, case):
    path, words = case(tmp_path)
    with pytest.raises(ScanError, match=words) as info:
        # limits above the cases, so that each meets the check it was found by (the byte
        # limit alone now refuses the 2 GB one too, earlier)
        read_volume(path, max_voxels=300_000_000, max_bytes=1 << 32)
    assert info.value.reason


def test_empty_slice_file_without_suffix_is_reported_not_dropped(tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "IM0000").write_bytes(b"")  # a slice whose copy was cut to nothing
    (tmp_path / "s" / "notes.txt").write_bytes(b"operator notes")
    refs = discover_inputs([tmp_path / "s"])
    assert [r.id for r in refs] == ["IM0000"]
    with pytest.raises(ScanError, match="empty"):
        read_input(refs[0])
