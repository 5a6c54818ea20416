"""`.npy` and multi-page TIFF volumes: voxel size and HU scale from a sidecar, never guessed."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from conftest import write_pair
from ct_data import phantom_hu

from detector import ScanError
from detector.readers import ScanRef
from detector.volume_inputs import VolumeRef, discover_inputs, read_input
from detector.volume_readers import read_volume, write_sidecar


def save_npy(path, array, voxel_mm=(2.0, 1.0, 1.0), **rescale):
    np.save(path, array)
    if voxel_mm is not None:
        write_sidecar(path, voxel_mm, **rescale)
    return path


@pytest.mark.parametrize("dtype", ["float32", "float64", "int16", "int32"])
def test_npy_signed_and_float_are_hu(tmp_path, dtype):
    hu = np.rint(phantom_hu())
    path = save_npy(tmp_path / "v.npy", hu.astype(dtype))
    vol = read_volume(path)
    assert vol.id == "v" and vol.voxel_mm == (2.0, 1.0, 1.0) and vol.hu.dtype == np.float32
    np.testing.assert_allclose(vol.hu, hu)
    assert vol.sources == (str(path),) and vol.meta["stored_dtype"] == dtype


def test_npy_uint16_needs_and_uses_intercept(tmp_path):
    hu = np.rint(phantom_hu())
    stored = (hu + 1024).astype(np.uint16)
    path = save_npy(tmp_path / "u.npy", stored)
    (tmp_path / "u.json").write_text(json.dumps({"voxel_mm": [1, 1, 1]}))
    with pytest.raises(ScanError, match="rescale_intercept"):
        read_volume(path)
    save_npy(path, stored, rescale_intercept=-1024.0)
    np.testing.assert_allclose(read_volume(path).hu, hu)


def test_voxel_size_from_caller_is_required_without_a_sidecar(tmp_path):
    path = save_npy(tmp_path / "n.npy", phantom_hu(), voxel_mm=None)
    with pytest.raises(ScanError, match="voxel size unknown") as err:
        read_volume(path)
    assert err.value.path == str(path)
    assert read_volume(path, voxel_mm=(3, 2, 1)).voxel_mm == (3.0, 2.0, 1.0)


@pytest.mark.parametrize("suffix", [".npy", ".tif"])
def test_a_files_own_voxel_size_wins_over_the_callers_and_a_difference_is_reported(
        tmp_path, caplog, suffix):
    """--voxel-mm is for volumes without a sidecar: it never overrides a file's own."""
    path = tmp_path / f"s{suffix}"
    if suffix == ".npy":
        np.save(path, phantom_hu())
    else:
        tifffile.imwrite(path, np.rint(phantom_hu()).astype(np.int16))
    write_sidecar(path, (2.0, 0.8, 0.8))
    with caplog.at_level("WARNING", logger="detector.volume_readers"):
        assert read_volume(path, voxel_mm=(2.0, 0.8, 0.8)).voxel_mm == (2.0, 0.8, 0.8)
        assert not caplog.records  # the same size: nothing to say
        assert read_volume(path, voxel_mm=(4, 4, 4)).voxel_mm == (2.0, 0.8, 0.8)
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert str(path) in message and "s.json" in message and "not used" in message


def write_truncated(path):
    np.save(path, phantom_hu())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def write_object(path):
    np.save(path, np.array([{"a": 1}] * 8, dtype=object).reshape(2, 2, 2), allow_pickle=True)


@pytest.mark.parametrize("make, words", [
    (lambda p: np.save(p, phantom_hu()[0]), "3-D array"),
    (lambda p: np.save(p, phantom_hu()[:1]), "at least 2"),
    (lambda p: np.save(p, phantom_hu().astype(np.complex64)), "unsupported dtype"),
    (lambda p: np.save(p, phantom_hu().astype(np.uint8)), "unsupported dtype"),
    (write_object, "pickle"),
    (write_truncated, "unreadable .npy"),
    (lambda p: p.write_bytes(b"not numpy at all"), "not a valid .npy"),
    (lambda p: p.write_bytes(b""), "not a valid .npy"),
    (lambda p: np.save(p, (phantom_hu() + 1000) / 1000), "look like HU"),
    (lambda p: np.save(p, np.full((4, 8, 8), np.nan, np.float32)), "NaN"),
])
def test_bad_npy_is_a_scan_error(tmp_path, make, words):
    path = tmp_path / "bad.npy"
    make(path)
    write_sidecar(path, (1, 1, 1))
    with pytest.raises(ScanError) as err:
        read_volume(path)
    assert err.value.path == str(path)
    assert words in err.value.reason


def test_npy_size_limit_is_checked_before_loading(tmp_path):
    path = save_npy(tmp_path / "big.npy", phantom_hu())
    with pytest.raises(ScanError, match="exceeds the limit"):
        read_volume(path, max_voxels=1000)


@pytest.mark.parametrize("dtype, limit, refused", [
    ("float64", 8 * 12 * 40 * 48 - 1, True),  # its stored values are the larger array
    ("float64", 8 * 12 * 40 * 48, False),
    ("float32", 4 * 12 * 40 * 48 - 1, True),
    ("int16", 4 * 12 * 40 * 48 - 1, True),  # the float32 HU volume is the larger array
    ("int16", 4 * 12 * 40 * 48, False),
])
def test_npy_byte_limit_names_the_file_and_the_limit(tmp_path, dtype, limit, refused):
    hu = np.rint(phantom_hu())  # (12, 40, 48)
    path = save_npy(tmp_path / "v.npy", hu.astype(dtype))
    if not refused:
        np.testing.assert_allclose(read_volume(path, max_bytes=limit).hu, hu)
        return
    with pytest.raises(ScanError) as err:
        read_volume(path, max_bytes=limit)
    assert err.value.path == str(path)
    assert f"over the limit of {limit} bytes" in err.value.reason and dtype in err.value.reason


def test_byte_limit_is_checked_from_the_header_before_any_allocation(tmp_path):
    # 100 M float64 voxels (800 MB) declared in a 128-byte header: within the voxel limit,
    # refused by bytes without reading further (an allocation would need 800 MB)
    path = tmp_path / "declared.npy"
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "<f8", "fortran_order": False,
                                                 "shape": (100, 1000, 1000)})
    write_sidecar(path, (1, 1, 1))
    with pytest.raises(ScanError, match="decodes to 800000000 bytes, over the limit"):
        read_volume(path, max_bytes=512 * 2**20)


def test_tiff_volume_byte_limit(tmp_path):
    path = tmp_path / "v.tif"
    tifffile.imwrite(path, np.rint(phantom_hu()).astype(np.float64))
    write_sidecar(path, (1, 1, 1))
    with pytest.raises(ScanError, match="over the limit of 1000 bytes"):
        read_volume(path, max_bytes=1000)
    assert read_volume(path).hu.shape == (12, 40, 48)


@pytest.mark.parametrize("sidecar, words", [
    ("[1, 2, 3]", "JSON object"),
    ("{", "unreadable sidecar"),
    ('{"voxel_mm": [1, 1]}', "three numbers"),
    ('{"voxel_mm": [1, 1, 1], "spacing": 2}', "unknown sidecar keys"),
    ('{"voxel_mm": [1, 1, 1], "units": "mu"}', "expected 'HU'"),
    ('{"voxel_mm": [1, 1, 1], "rescale_slope": 0}', "rescale_slope"),
    ('{"voxel_mm": [1, 1, 1], "rescale_slope": "2"}', "must be a number"),
])
def test_bad_sidecar(tmp_path, sidecar, words):
    path = save_npy(tmp_path / "s.npy", phantom_hu(), voxel_mm=None)
    (tmp_path / "s.json").write_text(sidecar)
    with pytest.raises(ScanError) as err:
        read_volume(path)
    assert words in err.value.reason


@pytest.mark.parametrize("voxel", [[0.004, 0.004, 0.004], [0.04, 4, 4]])
def test_voxel_size_in_the_wrong_unit_is_refused_naming_the_sidecar(tmp_path, voxel):
    """Metres (or a slip of the decimal point) in a sidecar resampled the volume to one voxel,
    which came back clear."""
    path = save_npy(tmp_path / "m.npy", phantom_hu(), voxel_mm=None)
    (tmp_path / "m.json").write_text(json.dumps({"voxel_mm": voxel}))
    with pytest.raises(ScanError) as err:
        read_volume(path)
    assert err.value.path == str(path)
    assert "m.json" in err.value.reason and "unit mistake" in err.value.reason
    assert str(tuple(float(v) for v in voxel)) in err.value.reason


def test_multipage_tiff_volume(tmp_path):
    hu = np.rint(phantom_hu())
    path = tmp_path / "t.tif"
    tifffile.imwrite(path, (hu + 1024).astype(np.uint16))
    write_sidecar(path, (2.5, 0.8, 0.8), rescale_intercept=-1024.0)
    vol = read_volume(path)
    assert vol.size_dhw == hu.shape and vol.voxel_mm == (2.5, 0.8, 0.8)
    np.testing.assert_allclose(vol.hu, hu)


def test_tiff_with_mismatched_pages_is_refused(tmp_path):
    path = tmp_path / "m.tif"
    with tifffile.TiffWriter(path) as tif:
        for shape in ((40, 48), (40, 48), (40, 40)):
            tif.write(np.zeros(shape, np.int16))
    write_sidecar(path, (1, 1, 1))
    with pytest.raises(ScanError, match="pages must match"):
        read_volume(path)


def test_discover_inputs_mixes_volumes_and_scans(tmp_path):
    save_npy(tmp_path / "vol.npy", phantom_hu())
    tifffile.imwrite(tmp_path / "stack.tif", np.rint(phantom_hu()).astype(np.int16))
    write_sidecar(tmp_path / "stack.tif", (1, 1, 1))
    write_pair(tmp_path, "parcel")
    (tmp_path / "notes.txt").write_text("not a scan")
    refs = discover_inputs([tmp_path])
    kinds = {r.id: type(r) for r in refs}
    assert kinds == {"vol": VolumeRef, "stack": VolumeRef, "parcel": ScanRef}
    read = {r.id: read_input(r) for r in refs}
    assert read["vol"].kind == "ct" and read["stack"].kind == "ct"
    assert read["parcel"].kind == "dual"


def test_explicit_missing_npy_is_reported_not_dropped(tmp_path):
    refs = discover_inputs([tmp_path / "gone.npy"])
    assert len(refs) == 1 and isinstance(refs[0], VolumeRef)
    with pytest.raises(ScanError, match="file not found"):
        read_input(refs[0])
