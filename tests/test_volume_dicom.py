"""DICOM and DICOS CT series: ordering, HU rescale, geometry checks, and every bad file."""

from __future__ import annotations

import imagecodecs
import numpy as np
import pydicom
import pytest
from ct_data import (
    CODECS,
    DICOM_CT,
    DICOS_CT,
    compress_dicom,
    phantom_hu,
    write_ct_series,
    write_multiframe_ct,
)
from pydicom.encaps import encapsulate

from detector import ScanError, read_scan
from detector.volume_inputs import VolumeRef, discover_inputs, read_input
from detector.volume_readers import read_volume

HU = np.rint(phantom_hu())


@pytest.mark.parametrize("sop", [DICOS_CT, DICOM_CT])
def test_series_sorted_by_position_with_rescale(tmp_path, sop):
    order = np.random.default_rng(3).permutation(HU.shape[0])  # names not in slice order
    write_ct_series(tmp_path / "s", HU, sop=sop, order=order, slope=0.5, intercept=-2000.0)
    vol = read_volume(tmp_path / "s")
    assert vol.id == "s" and vol.voxel_mm == (2.0, 1.0, 1.5)
    np.testing.assert_allclose(vol.hu, HU, atol=0.5)
    assert vol.meta["sop_class_uid"] == sop and len(vol.sources) == HU.shape[0]


def test_instance_number_order_when_positions_are_absent(tmp_path):
    order = np.random.default_rng(4).permutation(HU.shape[0])
    write_ct_series(tmp_path / "s", HU, positions=False, order=order)
    vol = read_volume(tmp_path / "s")
    np.testing.assert_allclose(vol.hu, HU)
    assert vol.voxel_mm[0] == 2.0  # from SliceThickness


def test_multiframe_enhanced_ct_is_one_volume(tmp_path):
    path = write_multiframe_ct(tmp_path / "enh.dcm", HU)
    vol = read_volume(path)
    np.testing.assert_allclose(vol.hu, HU)
    assert vol.voxel_mm == (2.0, 1.0, 1.5)


def test_a_series_keeps_its_own_voxel_size_whatever_the_caller_gives(tmp_path, caplog):
    write_ct_series(tmp_path / "s", HU)
    with caplog.at_level("WARNING", logger="detector.volume_readers"):
        assert read_volume(tmp_path / "s", voxel_mm=(4, 4, 4)).voxel_mm == (2.0, 1.0, 1.5)
        assert read_input(VolumeRef("s", tmp_path / "s"), voxel_mm=(4, 4, 4)).voxel_mm == (
            2.0, 1.0, 1.5)
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [str(tmp_path / "s")] * 2
    assert "DICOM header" in caplog.records[0].getMessage()


def test_folder_of_slices_is_discovered_as_one_volume(tmp_path):
    write_ct_series(tmp_path / "bag7", HU)
    refs = discover_inputs([tmp_path / "bag7"])
    assert refs == [VolumeRef("bag7", tmp_path / "bag7")]
    assert read_input(refs[0]).size_dhw == HU.shape


def test_ct_slice_is_still_refused_as_a_2d_scan(tmp_path):
    path = write_ct_series(tmp_path / "s", HU)[0]
    with pytest.raises(ScanError, match="CT slice"):
        read_scan(path)


def _edit(path, **changes):
    ds = pydicom.dcmread(path)
    for key, value in changes.items():
        if value is None:
            delattr(ds, key)
        else:
            setattr(ds, key, value)
    ds.save_as(path)


def mixed_series(folder):
    write_ct_series(folder, HU)
    write_ct_series(folder / "other", HU[:3])
    (folder / "other" / "slice_000.dcm").rename(folder / "intruder.dcm")


def wrong_size(folder):
    paths = write_ct_series(folder, HU)
    small = write_ct_series(folder / "x", HU[:, :20])
    ds = pydicom.dcmread(small[0])
    ds.SeriesInstanceUID = pydicom.dcmread(paths[0]).SeriesInstanceUID
    ds.save_as(paths[3])


def missing_slice(folder):
    write_ct_series(folder, HU)[5].unlink()


def duplicate_slice(folder):
    paths = write_ct_series(folder, HU)
    _edit(paths[4], ImagePositionPatient=pydicom.dcmread(paths[3]).ImagePositionPatient)


def truncated_slice(folder):
    path = write_ct_series(folder, HU)[2]
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 500])


def no_pixel_data(folder):
    path = write_ct_series(folder, HU)[2]
    _edit(path, PixelData=None)


def unknown_transfer_syntax(folder):
    path = write_ct_series(folder, HU)[2]
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = "1.2.3.4.5.6.7"
    ds.save_as(path)


def no_rescale(folder):
    _edit(write_ct_series(folder, HU)[1], RescaleSlope=None)


def no_pixel_spacing(folder):
    for path in write_ct_series(folder, HU):
        _edit(path, PixelSpacing=None)


def position_without_orientation(folder):
    for path in write_ct_series(folder, HU):
        _edit(path, ImageOrientationPatient=None)


def single_slice(folder):
    write_ct_series(folder, HU[:1])


def gantry_tilt(folder):
    for path in write_ct_series(folder, HU):
        _edit(path, GantryDetectorTilt=15.0)


def sheared_slices(folder):
    """A 15 degree tilt the header does not state: the slices tilt, the positions advance
    along the table, so each slice steps sideways in its own plane."""
    t = np.deg2rad(15.0)
    for k, path in enumerate(write_ct_series(folder, HU)):
        _edit(path, ImageOrientationPatient=[1, 0, 0, 0, np.cos(t), np.sin(t)],
              ImagePositionPatient=[0.0, 0.0, 2.0 * k])


@pytest.mark.parametrize("make, words", [
    (mixed_series, "mixed series"),
    (wrong_size, "differs"),
    (missing_slice, "uneven slice spacing"),
    (duplicate_slice, "same position"),
    (truncated_slice, "truncated"),
    (no_pixel_data, "no pixel data"),
    (unknown_transfer_syntax, "transfer syntax"),
    (no_rescale, "RescaleSlope"),
    (no_pixel_spacing, "PixelSpacing"),
    (position_without_orientation, "ImageOrientationPatient"),
    (single_slice, "at least 2 slices"),
    (gantry_tilt, "GantryDetectorTilt 15 degrees"),
    (sheared_slices, "tilt of 15.0 degrees"),
])
def test_bad_series_is_one_scan_error_naming_a_file(tmp_path, make, words):
    folder = tmp_path / "series"
    make(folder)
    with pytest.raises(ScanError) as err:
        read_volume(folder)
    assert words in err.value.reason
    assert err.value.path is not None and err.value.path.startswith(str(folder))


def test_series_voxel_limit(tmp_path):
    write_ct_series(tmp_path / "s", HU)
    with pytest.raises(ScanError, match="exceeds the limit"):
        read_volume(tmp_path / "s", max_voxels=1000)


def test_series_byte_limit_counts_the_float32_volume(tmp_path):
    write_ct_series(tmp_path / "s", HU)
    need = 4 * HU.size
    with pytest.raises(ScanError, match=f"over the limit of {need - 1} bytes"):
        read_volume(tmp_path / "s", max_bytes=need - 1)
    assert read_volume(tmp_path / "s", max_bytes=need).hu.shape == HU.shape


def test_slice_with_damaged_header_fails_the_volume_and_is_not_listed_apart(tmp_path):
    paths = write_ct_series(tmp_path / "s", HU)
    data = paths[-1].read_bytes()
    paths[-1].write_bytes(data[:300])  # cut inside the header
    with pytest.raises(ScanError) as err:
        read_volume(tmp_path / "s")
    assert err.value.path == str(paths[-1])
    assert discover_inputs([tmp_path / "s"]) == [VolumeRef("s", tmp_path / "s")]


@pytest.mark.parametrize("which", [0, -1, 5])
@pytest.mark.parametrize("content", [b"", b"\x00" * 100, bytes(range(256)) * 80])
def test_a_slice_file_without_dicom_content_fails_the_volume_wherever_it_stood(
        tmp_path, which, content):
    """Empty, cut before its preamble or overwritten: at either end of the series the rest
    used to stack into a shorter volume that looked whole (assessed CLEAR)."""
    paths = write_ct_series(tmp_path / "s", HU)
    paths[which].write_bytes(content)
    with pytest.raises(ScanError, match="unreadable file among the CT slices") as err:
        read_volume(tmp_path / "s")
    assert err.value.path == str(paths[which])
    assert ("empty (0 bytes)" if not content else f"{len(content)} bytes") in err.value.reason
    assert discover_inputs([tmp_path / "s"]) == [VolumeRef("s", tmp_path / "s")]
    assert discover_inputs([tmp_path]) == [VolumeRef("s", tmp_path / "s")]  # as a subfolder


def test_hidden_and_non_slice_files_beside_the_slices_are_not_slices(tmp_path):
    write_ct_series(tmp_path / "s", HU)
    (tmp_path / "s" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (tmp_path / "s" / "notes.txt").write_text("scanned at gate 3")
    assert read_volume(tmp_path / "s").hu.shape == HU.shape


def test_a_missing_slice_names_the_slices_around_the_gap(tmp_path):
    paths = write_ct_series(tmp_path / "s", HU)
    paths[3].unlink()
    with pytest.raises(ScanError, match="uneven slice spacing") as err:
        read_volume(tmp_path / "s")
    assert err.value.path == str(paths[4])
    assert f"from {paths[2].name} to here" in err.value.reason


@pytest.mark.parametrize("codec", sorted(CODECS))
@pytest.mark.parametrize("signed", [False, True])
def test_jpegls_and_jpeg2000_series_read_as_uncompressed(tmp_path, codec, signed):
    """Read without pydicom's plugins (the workstation installs none): the same HU."""
    for path in write_ct_series(tmp_path / "s", HU):
        compress_dicom(path, codec, signed=signed)
    np.testing.assert_allclose(read_volume(tmp_path / "s").hu, np.rint(HU), atol=0.5)
    enhanced = compress_dicom(write_multiframe_ct(tmp_path / "enh.dcm", HU), codec)
    np.testing.assert_allclose(read_volume(enhanced).hu, HU, atol=0.5)


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_a_compressed_slice_cut_short_fails_the_volume_naming_it(tmp_path, codec):
    paths = write_ct_series(tmp_path / "s", HU)
    for path in paths:
        compress_dicom(path, codec, keep=0.7 if path == paths[4] else 1.0)
    name = "JPEG-LS" if codec == "jpegls" else "JPEG 2000"
    with pytest.raises(ScanError, match=f"truncated or corrupt {name} frame") as err:
        read_volume(tmp_path / "s")
    assert err.value.path == str(paths[4])


def test_signed_12_bit_ct_stored_sign_extended_in_16_bit_jpegls_reads_its_hu(tmp_path):
    """BitsStored 12, signed, values written sign-extended to 16 bits (as many CT writers
    do) and encoded at 16-bit precision: -1000 must stay -1000, not 60440."""
    for path in write_ct_series(tmp_path / "s", HU):
        ds = pydicom.dcmread(path)
        values = (ds.pixel_array.astype(np.int32) - 1024).astype(np.int16)  # HU, intercept 0
        ds.PixelData = encapsulate([imagecodecs.jpegls_encode(values.view(np.uint16))])
        ds["PixelData"].VR = "OB"
        ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 12, 11, 1
        ds.RescaleIntercept = 0.0
        ds.file_meta.TransferSyntaxUID = CODECS["jpegls"]
        ds.save_as(path, enforce_file_format=True)
    np.testing.assert_allclose(read_volume(tmp_path / "s").hu, HU, atol=0.5)


def test_uid_named_slices_an_empty_one_fails_and_a_readme_beside_them_does_not(tmp_path):
    """storescp names slices CT.1.2.840....7 (a numeric suffix): an empty one is a slice that
    cannot be read; README, VERSION, LOCKFILE beside slices are a media export's notes."""
    paths = write_ct_series(tmp_path / "s", HU)
    named = [p.rename(p.with_name(f"CT.1.2.840.113619.2.{k + 1}")) for k, p in enumerate(paths)]
    for note in ("README", "VERSION", "LOCKFILE"):
        (tmp_path / "s" / note).write_text("exported by the scanner\n")
    assert read_volume(tmp_path / "s").hu.shape == HU.shape
    named[-1].write_bytes(b"")
    with pytest.raises(ScanError, match="unreadable file among the CT slices") as err:
        read_volume(tmp_path / "s")
    assert err.value.path == str(named[-1])


def test_jpeg_lossless_series_is_refused_with_the_reason(tmp_path):
    paths = write_ct_series(tmp_path / "s", HU)
    for path in paths:  # whole, valid streams: refused all the same
        ds = pydicom.dcmread(path)
        ds.PixelData = encapsulate([imagecodecs.ljpeg_encode(ds.pixel_array)])
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.70"
        ds.save_as(path, enforce_file_format=True)
    with pytest.raises(ScanError, match="JPEG Lossless DICOM .* not read: no decoder here"):
        read_volume(tmp_path / "s")


def _png(path, value=100):
    import cv2

    cv2.imwrite(str(path), np.full((20, 30), value, np.uint8))
    return path


def test_each_input_once_when_given_as_several_paths(tmp_path):
    """`detect dir/*` names both halves of a pair (and may name a file twice): each input is
    found once, not once per path that leads to it."""
    high, low = _png(tmp_path / "bag_high.png", 200), _png(tmp_path / "bag_low.png", 150)
    gray = _png(tmp_path / "other.png")
    refs = discover_inputs([high, low, gray, gray, tmp_path])
    assert [r.id for r in refs] == ["bag", "other"]
    assert refs[0].files == (high, low)


def test_a_link_whose_scan_is_gone_is_reported_not_dropped(tmp_path):
    _png(tmp_path / "kept.png")
    (tmp_path / "gone.png").symlink_to(tmp_path / "nowhere.png")
    refs = {r.id: r for r in discover_inputs([tmp_path])}
    assert set(refs) == {"gone", "kept"}
    with pytest.raises(ScanError, match="gone.png"):
        read_input(refs["gone"])


def test_subfolders_a_ct_series_is_a_volume_other_scans_are_an_error_not_skipped(tmp_path):
    """Folders are searched one level deep for CT series only: a folder of scans inside the
    folder given is an error input (manual check), never left out unseen; a folder holding
    no scan (an output folder's notes) is no input."""
    write_ct_series(tmp_path / "series_a", phantom_hu((6, 16, 16)), sop=DICOM_CT)
    _png((tmp_path / "more").mkdir() or tmp_path / "more" / "scan.png")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("not a scan")
    refs = {r.id: r for r in discover_inputs([tmp_path])}
    assert set(refs) == {"series_a", "more"}
    assert isinstance(refs["series_a"], VolumeRef)
    assert read_input(refs["series_a"]).size_dhw == (6, 16, 16)
    with pytest.raises(ScanError, match="folders are not searched"):
        read_input(refs["more"])


def write_dicomdir(folder, slices, name="DICOMDIR"):
    """A media export's DICOMDIR indexing ``slices``, written beside them as ``name``."""
    import shutil

    from pydicom.fileset import FileSet

    fileset = FileSet()
    for path in slices[:3]:
        ds = pydicom.dcmread(path)
        ds.PatientID, ds.SeriesNumber = "P1", 1  # what DICOMDIR records need
        fileset.add(ds)
    fileset.write(folder / "export")
    shutil.move(folder / "export" / "DICOMDIR", folder / name)
    shutil.rmtree(folder / "export")


@pytest.mark.parametrize("index_name", ["DICOMDIR", "dicomdir", "INDEX"])
def test_a_dicomdir_and_macos_appledouble_files_beside_the_slices_are_not_slices(
        tmp_path, index_name):
    folder = tmp_path / "s"
    slices = write_ct_series(folder, HU)
    write_dicomdir(folder, slices, index_name)  # "INDEX": known by its SOP class alone
    (folder / "._slice_000.dcm").write_bytes(b"\x00\x05\x16\x07" + bytes(80))  # AppleDouble
    (folder / "._slice_001.dcm").write_bytes(b"junk")
    assert discover_inputs([folder]) == [VolumeRef("s", folder)]
    vol = read_volume(folder)
    assert vol.size_dhw == HU.shape and vol.sources == tuple(str(p) for p in slices)


def test_a_damaged_slice_beside_a_dicomdir_still_fails_the_volume_naming_it(tmp_path):
    folder = tmp_path / "s"
    slices = write_ct_series(folder, HU)
    write_dicomdir(folder, slices)
    slices[4].write_bytes(b"\0" * 128 + b"DICM" + bytes(range(256)) * 2)
    with pytest.raises(ScanError) as err:
        read_volume(folder)
    assert err.value.path == str(slices[4])


def test_an_appledouble_name_holding_an_image_is_still_read(tmp_path):
    """Only ``._`` files holding no image are skipped: a scan is never dropped for its name."""
    from conftest import write_pair

    write_pair(tmp_path, "parcel")
    high = next(tmp_path.glob("parcel_high*"))
    high.rename(tmp_path / f"._{high.name}")
    ids = [ref.id for ref in discover_inputs([tmp_path])]
    assert len(ids) == 2 and any(i.startswith("._") for i in ids)


def test_pixel_spacing_written_at_another_precision_is_the_same_spacing(tmp_path):
    paths = write_ct_series(tmp_path / "s", HU, voxel_mm=(2.0, 0.9765625, 0.9765625))
    for path in paths[1::2]:
        _edit(path, PixelSpacing=["0.976562", "0.976562"])
    assert read_volume(tmp_path / "s").voxel_mm[1:] == (0.9765625, 0.9765625)
    _edit(paths[1], PixelSpacing=["0.97", "0.97"])  # a real difference is still refused
    with pytest.raises(ScanError, match="differs"):
        read_volume(tmp_path / "s")


def test_slice_gap_from_positions_has_no_float_noise(tmp_path):
    for k, path in enumerate(write_ct_series(tmp_path / "s", HU, voxel_mm=(0.6, 1.0, 1.0))):
        _edit(path, ImagePositionPatient=[0.0, 0.0, 100.0 + k * 0.6])
    assert read_volume(tmp_path / "s").voxel_mm == (0.6, 1.0, 1.0)


def test_one_input_reached_by_two_spellings_or_a_link_is_read_once(tmp_path):
    (tmp_path / "g").mkdir()
    _png(tmp_path / "g" / "q.png")
    (tmp_path / "link").symlink_to(tmp_path / "g")
    refs = discover_inputs([tmp_path / "g", tmp_path / "g" / ".." / "g", tmp_path / "link"])
    assert [r.id for r in refs] == ["q"]
    (tmp_path / "top").mkdir()
    (tmp_path / "top" / "docs").mkdir()
    (tmp_path / "top" / "docs" / "README").write_text("a folder of notes is no scan folder")
    _png(tmp_path / "top" / "a.png")
    assert [r.id for r in discover_inputs([tmp_path / "top"])] == ["a"]
