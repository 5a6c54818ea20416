"""Reading every scan kind from disk into a `Scan`."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tifffile
from conftest import colour_image, parcel_counts, write_pair, write_png
from ct_data import CODECS, compress_dicom, new_dataset

from detector import ScanError, discover_scans, read_scan
from detector.scan import attenuation_to_transmission, transmission_to_attenuation


def expected_att(counts, bits):
    full = 2.0**bits - 1
    return -np.log(np.clip(counts.astype(np.float64), 1, full) / full)


@pytest.mark.parametrize("bits,suffix", [(16, ".png"), (8, ".png"), (16, ".tif"), (16, ".tiff")])
def test_dual_pair(tmp_path, bits, suffix):
    (high_path, _), high, low = write_pair(tmp_path, "parcel7", bits=bits, suffix=suffix)
    scan = read_scan(high_path)
    assert scan.kind == "dual" and scan.id == "parcel7" and scan.bit_depth == bits
    assert scan.size_hw == (60, 80)
    np.testing.assert_allclose(scan.image[0], expected_att(high, bits), atol=1e-5)
    np.testing.assert_allclose(scan.image[1], expected_att(low, bits), atol=1e-5)
    assert scan.sources == (str(high_path), str(tmp_path / f"parcel7_low{suffix}"))


def test_dual_given_as_low_file_is_still_high_first(tmp_path):
    (high_path, low_path), high, _ = write_pair(tmp_path, "p")
    scan = read_scan(low_path)
    assert scan.sources[0] == str(high_path)
    np.testing.assert_allclose(scan.image[0], expected_att(high, 16), atol=1e-5)


def test_two_page_tiff_is_dual(tmp_path):
    high, low = parcel_counts(seed=1), parcel_counts(seed=2)
    path = tmp_path / "belt42.tiff"
    tifffile.imwrite(path, np.stack([high, low]))
    scan = read_scan(path)
    assert scan.kind == "dual" and scan.id == "belt42"
    np.testing.assert_allclose(scan.image[1], expected_att(low, 16), atol=1e-5)


@pytest.mark.parametrize("bits,fmt", [(16, "png"), (8, "png"), (16, "tif"), (8, "tif")])
def test_gray(tmp_path, bits, fmt):
    counts = parcel_counts(bits=bits)
    path = tmp_path / f"g.{fmt}"
    write_png(path, counts) if fmt == "png" else tifffile.imwrite(path, counts)
    scan = read_scan(path)
    assert scan.kind == "gray" and scan.bit_depth == bits and scan.image.shape == (1, 60, 80)
    np.testing.assert_allclose(scan.image[0], expected_att(counts, bits), atol=1e-5)


def test_gray_jpeg_and_rgb_with_equal_channels(tmp_path):
    counts = parcel_counts(bits=8)
    import cv2

    jpg = tmp_path / "g.jpg"
    cv2.imwrite(str(jpg), counts)
    assert read_scan(jpg).kind == "gray"
    rgb = write_png(tmp_path / "gdx.png", np.repeat(counts[:, :, None], 3, axis=2))
    scan = read_scan(rgb)
    assert scan.kind == "gray" and scan.bit_depth == 8
    np.testing.assert_allclose(scan.image[0], expected_att(counts, 8), atol=1e-5)


@pytest.mark.parametrize("gray", [False, True], ids=["colour", "gray"])
@pytest.mark.parametrize("save", [
    {}, {"subsampling": 0}, {"subsampling": 2}, {"progressive": True},
    {"progressive": True, "optimize": True, "quality": 40}, {"optimize": True},
    {"exif": b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x00"}, {"trailing": b"vendor footer"},
], ids=["420", "444", "420q", "progressive", "progressive-optimised", "optimised", "exif",
        "bytes-after-end"])
def test_good_jpegs_still_read(tmp_path, save, gray):
    """The stricter JPEG check (truncation, missing scans) must not refuse sound files."""
    from PIL import Image

    pixels = colour_image((97, 131))
    pixels = pixels[:, :, 1] if gray else pixels
    save = dict(save)
    trailing = save.pop("trailing", b"")
    path = tmp_path / "g.jpg"
    Image.fromarray(pixels).save(path, "JPEG", **save)
    path.write_bytes(path.read_bytes() + trailing)
    scan = read_scan(path)
    assert scan.kind == ("gray" if gray else "color") and scan.size_hw == (97, 131)
    if not gray:
        assert np.abs(scan.image.transpose(1, 2, 0).astype(int) - pixels).mean() < 4


def test_jpeg_with_restart_markers_reads(tmp_path):
    import cv2

    path = tmp_path / "r.jpg"
    cv2.imwrite(str(path), colour_image((97, 131)), [cv2.IMWRITE_JPEG_RST_INTERVAL, 3])
    assert read_scan(path).kind == "color"


@pytest.mark.parametrize("fmt", ["png", "jpg"])
def test_colour(tmp_path, fmt):
    rgb = colour_image()
    path = write_png(tmp_path / f"c.{fmt}", rgb)
    scan = read_scan(path)
    assert scan.kind == "color" and scan.image.dtype == np.uint8 and scan.image.shape == (3, 60, 80)
    if fmt == "png":  # lossless: channel order must be RGB, not OpenCV's BGR
        np.testing.assert_array_equal(scan.image.transpose(1, 2, 0), rgb)


def write_dicom(path, pixels, photometric="MONOCHROME2", bits_stored=None, frames=1,
                sop="1.2.840.10008.5.1.4.1.1.501.2.1"):
    ds = new_dataset(sop)
    ds.Modality = "DX"
    samples = 3 if pixels.ndim == 3 and frames == 1 else 1
    ds.Rows, ds.Columns = pixels.shape[-3:-1] if samples == 3 else pixels.shape[-2:]
    ds.SamplesPerPixel = samples
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 8 if pixels.dtype == np.uint8 else 16
    ds.BitsStored = bits_stored or ds.BitsAllocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 0
    if samples == 3:
        ds.PlanarConfiguration = 0
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.PixelData = pixels.tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def test_dicos_dx_gray_and_bits_stored(tmp_path):
    counts = (parcel_counts(bits=16) >> 4).astype(np.uint16)  # 12-bit counts, 4095 = air
    scan = read_scan(write_dicom(tmp_path / "dx.dcm", counts, bits_stored=12))
    assert scan.kind == "gray" and scan.bit_depth == 12
    np.testing.assert_allclose(scan.image[0], expected_att(counts, 12), atol=1e-5)


def test_dicom_monochrome1_is_inverted(tmp_path):
    counts = parcel_counts(bits=16)
    scan = read_scan(write_dicom(tmp_path / "m1.dcm", 65535 - counts, photometric="MONOCHROME1"))
    np.testing.assert_allclose(scan.image[0], expected_att(counts, 16), atol=1e-5)


def test_dicom_two_frames_is_dual_and_rgb_is_colour(tmp_path):
    high, low = parcel_counts(seed=1), parcel_counts(seed=2)
    scan = read_scan(write_dicom(tmp_path / "de.dcm", np.stack([high, low]), frames=2))
    assert scan.kind == "dual"
    np.testing.assert_allclose(scan.image[1], expected_att(low, 16), atol=1e-5)
    rgb = colour_image()
    scan = read_scan(write_dicom(tmp_path / "rgb.dcm", rgb, photometric="RGB",
                                 sop="1.2.840.10008.5.1.4.1.1.501.2.2"))
    assert scan.kind == "color"
    np.testing.assert_array_equal(scan.image.transpose(1, 2, 0), rgb)


@pytest.mark.parametrize("implicit", [False, True], ids=["explicit-vr", "implicit-vr"])
def test_dicom_without_preamble_is_read(tmp_path, implicit):
    """Old exports write the data set bare: no 128-byte preamble, no 'DICM'."""
    import pydicom

    counts = (parcel_counts(bits=16) >> 4).astype(np.uint16)
    ds = pydicom.dcmread(write_dicom(tmp_path / "full.dcm", counts, bits_stored=12))
    ds.preamble = None
    if implicit:
        del ds.file_meta
    path = tmp_path / "bare.dcm"
    ds.save_as(path, enforce_file_format=False, implicit_vr=implicit, little_endian=True)
    assert path.read_bytes()[:2] in (b"\x02\x00", b"\x08\x00")  # no preamble
    scan = read_scan(path)
    assert scan.kind == "gray" and scan.bit_depth == 12
    np.testing.assert_allclose(scan.image[0], expected_att(counts, 12), atol=1e-5)


def test_dicom_identity_rescale_is_read(tmp_path):
    import pydicom

    counts = parcel_counts(bits=16)
    path = write_dicom(tmp_path / "dx.dcm", counts)
    ds = pydicom.dcmread(path)
    ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = "1", "0", "US"
    ds.save_as(path)
    np.testing.assert_allclose(read_scan(path).image[0], expected_att(counts, 16), atol=1e-5)


def test_folder_joins_pairs_and_keeps_names_distinct(tmp_path):
    write_pair(tmp_path, "NAME")
    write_png(tmp_path / "NAME_color.png", colour_image())
    write_png(tmp_path / "NAME_gray.png", parcel_counts())
    (tmp_path / "annotations.json").write_text(json.dumps({"images": []}))
    refs = discover_scans([tmp_path])
    assert [r.id for r in refs] == ["NAME_color", "NAME_gray", "NAME"]
    kinds = {r.id: read_scan(r).kind for r in refs}
    assert kinds == {"NAME": "dual", "NAME_color": "color", "NAME_gray": "gray"}
    assert refs[2].path == str(tmp_path / "NAME_high.png")


@pytest.mark.parametrize("high,low", [
    ("x_high.PNG", "x_low.PNG"), ("x_High.png", "x_Low.png"), ("x_HIGH.Png", "x_low.png"),
    ("x_high.tif", "x_LOW.TIFF"),
])
def test_pair_names_match_in_any_case(tmp_path, high, low):
    (a, b), *_ = write_pair(tmp_path, "x")
    a.rename(tmp_path / high)
    b.rename(tmp_path / low)
    for given in ([tmp_path], [tmp_path / high], [tmp_path / low]):
        refs = discover_scans(given)
        assert [(r.id, r.files, r.problem) for r in refs] == [
            ("x", (tmp_path / high, tmp_path / low), None)]
    assert read_scan(tmp_path / low).kind == "dual"


def test_two_files_for_one_half_is_an_error_not_a_guess(tmp_path):
    (high, low), *_ = write_pair(tmp_path, "x")
    old = 1_000_000_000  # an old folder: its listing is kept while it is unchanged
    os.utime(tmp_path, (old, old))
    assert [r.problem for r in discover_scans([tmp_path])] == [None]
    write_png(tmp_path / "x_LOW.png", parcel_counts())  # changes the folder's mtime
    refs = discover_scans([tmp_path])
    assert len(refs) == 3 and all("ambiguous dual-energy pair: x_LOW.png, x_low.png could "
                                  "each be the '_low' half of 'x'" in r.problem for r in refs)
    with pytest.raises(ScanError, match="ambiguous"):
        read_scan(high)


def test_pair_given_twice_is_one_scan(tmp_path):
    (high, low), *_ = write_pair(tmp_path, "x")
    refs = discover_scans([high, low, tmp_path])
    assert [r.id for r in refs] == ["x"]


def test_attenuation_round_trip():
    att = np.array([[0.0, 0.5, 3.0, 20.0]], np.float32)
    counts = attenuation_to_transmission(att, 16)
    assert counts.dtype == np.uint16 and counts[0, 0] == 65535 and counts[0, 3] == 0
    back = transmission_to_attenuation(counts, 16)
    np.testing.assert_allclose(back[0, :3], att[0, :3], atol=1e-3)
    assert back[0, 3] == pytest.approx(np.log(65535), rel=1e-6)


@pytest.mark.parametrize("counts, bits", [
    (np.zeros((0, 3), np.uint16), 16),
    (np.array([[0, 1, 2, 65534, 65535]], np.uint16), 16),
    (np.array([[0, 1, 128, 255]], np.uint8), 8),
    (np.array([[4095, 4096, 65535]], np.uint16), 12),  # above 12-bit full scale: clipped
])
def test_attenuation_in_place_equals_the_plain_formula(counts, bits):
    full, before = 2.0**bits - 1.0, counts.copy()
    expected = (np.log(np.float32(full))
                - np.log(np.clip(counts.astype(np.float32), 1.0, full))).astype(np.float32)
    got = transmission_to_attenuation(counts, bits)
    out = np.full(counts.shape, np.nan, np.float32)
    assert transmission_to_attenuation(counts, bits, out=out) is out
    for att in (got, out):
        assert att.dtype == np.float32 and np.array_equal(att, expected)
    assert np.array_equal(counts, before)  # the input is left as it was


def test_real_scans_are_all_readable(real_scans):
    labelled = json.loads((real_scans / "annotations.json").read_text())
    refs = discover_scans([real_scans / "images"])
    assert len(refs) == 28
    scans = {r.id: read_scan(r) for r in refs}
    for image in labelled["images"]:
        scan = scans[image["file_name"].split("/")[-1].rsplit(".", 1)[0]]
        assert scan.size_hw == (image["height"], image["width"])
    assert all(s.kind == "gray" for k, s in scans.items() if k.startswith("gdxray"))
    assert all(s.kind == "color" for k, s in scans.items() if k.startswith(("sixray", "pidray")))


def test_planar_rgb_tiff_is_colour(tmp_path):
    rgb = colour_image()
    tifffile.imwrite(tmp_path / "p.tif", rgb.transpose(2, 0, 1), photometric="rgb",
                     planarconfig="separate")
    scan = read_scan(tmp_path / "p.tif")
    assert scan.kind == "color"
    np.testing.assert_array_equal(scan.image.transpose(1, 2, 0), rgb)


def test_tiff_bit_depth_and_polarity_come_from_its_tags(tmp_path):
    """12-bit counts in a 12-bit TIFF are not 16-bit ones; min-is-white is inverted."""
    counts = (parcel_counts(bits=16) >> 4).astype(np.uint16)
    tifffile.imwrite(tmp_path / "b12.tif", counts, bitspersample=12)
    scan = read_scan(tmp_path / "b12.tif")
    assert scan.bit_depth == 12
    np.testing.assert_allclose(scan.image[0], expected_att(counts, 12), atol=1e-5)
    counts = parcel_counts(bits=8)
    tifffile.imwrite(tmp_path / "w.tif", 255 - counts, photometric="miniswhite")
    np.testing.assert_allclose(read_scan(tmp_path / "w.tif").image[0], expected_att(counts, 8),
                               atol=1e-5)


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("compression", ["lzw", "zlib", "adobe_deflate", "packbits", "jpeg"])
def test_compressed_tiff(tmp_path, compression, bits):
    """Exporters' defaults (OpenCV writes LZW); LZW and JPEG need imagecodecs."""
    counts = parcel_counts(bits=bits)
    path = tmp_path / "c.tif"
    if compression == "jpeg" and bits == 16:  # lossy JPEG has no 16-bit form: 12-bit it is
        counts = (counts >> 4).astype(np.uint16)
        tifffile.imwrite(path, counts, compression="jpeg", bitspersample=12)
        with pytest.raises(ScanError, match="12-bit JPEG-compressed TIFF is not supported"):
            read_scan(path)
        return
    tifffile.imwrite(path, counts, compression=compression)
    scan = read_scan(path)
    assert scan.kind == "gray" and scan.bit_depth == bits
    if compression == "jpeg":  # lossy
        assert np.abs(scan.image[0] - expected_att(counts, bits)).mean() < 0.02
    else:
        np.testing.assert_allclose(scan.image[0], expected_att(counts, bits), atol=1e-5)


def test_jpeg_compressed_colour_tiff(tmp_path):
    rgb = colour_image()
    tifffile.imwrite(tmp_path / "c.tif", rgb, compression="jpeg")  # stored as YCbCr
    scan = read_scan(tmp_path / "c.tif")
    assert scan.kind == "color"
    assert np.abs(scan.image.transpose(1, 2, 0).astype(int) - rgb).mean() < 4


def _jpeg_dicom(path, counts8, keep=1.0):
    """An 8-bit JPEG Baseline DX; ``keep`` < 1 cuts the JPEG stream and appends its end
    marker, as a damaged transfer would leave it."""
    import cv2
    import pydicom
    from pydicom.encaps import encapsulate

    jpeg = cv2.imencode(".jpg", counts8, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
    if keep < 1:
        jpeg = jpeg[: int(len(jpeg) * keep)] + b"\xff\xd9"
    write_dicom(path, counts8)
    ds = pydicom.dcmread(path)
    ds.PixelData = encapsulate([jpeg])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.50"
    ds.save_as(path, enforce_file_format=True)
    return path


def test_jpeg_dicom_is_read_strictly(tmp_path):
    """A JPEG Baseline DX reads as a .jpg does (no Pillow needed), and one whose JPEG stream was
    cut short is an error, not a scan grey where its data ended (pydicom's decoders fill)."""
    import cv2

    counts8 = (parcel_counts(bits=16) >> 8).astype(np.uint8)
    scan = read_scan(_jpeg_dicom(tmp_path / "j.dcm", counts8))
    reference = cv2.imdecode(cv2.imencode(".jpg", counts8, [cv2.IMWRITE_JPEG_QUALITY, 95])[1],
                             cv2.IMREAD_UNCHANGED)
    assert scan.kind == "gray" and scan.bit_depth == 8
    np.testing.assert_allclose(scan.image[0], expected_att(reference, 8), atol=1e-5)
    with pytest.raises(ScanError, match="truncated or corrupt JPEG frame"):
        read_scan(_jpeg_dicom(tmp_path / "cut.dcm", counts8, keep=0.4))


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_jpegls_and_jpeg2000_dx_read_as_uncompressed_and_cut_ones_are_errors(tmp_path, codec):
    """12-bit gray and 16-bit dual-energy DX, compressed losslessly as scanners export them:
    the same attenuation as uncompressed (no pydicom plugin needed); a stream cut short (end
    marker appended) is an error, never a scan filled where its data ended."""
    counts = (parcel_counts(bits=16) >> 4).astype(np.uint16)
    gray = read_scan(compress_dicom(write_dicom(tmp_path / "g.dcm", counts, bits_stored=12),
                                    codec))
    assert gray.kind == "gray" and gray.bit_depth == 12
    np.testing.assert_allclose(gray.image[0], expected_att(counts, 12), atol=1e-5)
    high, low = parcel_counts(seed=1), parcel_counts(seed=2)
    dual = read_scan(compress_dicom(write_dicom(tmp_path / "d.dcm", np.stack([high, low]),
                                                frames=2), codec))
    assert dual.kind == "dual"
    np.testing.assert_allclose(dual.image[1], expected_att(low, 16), atol=1e-5)
    name = "JPEG-LS" if codec == "jpegls" else "JPEG 2000"
    cut = compress_dicom(write_dicom(tmp_path / "c.dcm", counts, bits_stored=12), codec, keep=0.8)
    with pytest.raises(ScanError, match=f"truncated or corrupt {name} frame"):
        read_scan(cut)


def test_a_comment_naming_the_deflated_syntax_is_no_deflated_file(tmp_path):
    """Only the file meta group's transfer syntax counts: a DX whose description mentions the
    deflated syntax's UID is read."""
    import pydicom

    path = write_dicom(tmp_path / "c.dcm", parcel_counts())
    ds = pydicom.dcmread(path)
    ds.ImageComments = "not 1.2.840.10008.1.2.1.99"
    ds.save_as(path, enforce_file_format=True)
    assert read_scan(path).kind == "gray"


def test_legal_jpeg_and_png_variants_read(tmp_path):
    """Valid files the strict readers once refused: a JPEG with an empty comment segment, and
    gray, RGB and palette PNGs with a tRNS chunk (the decoder adds an alpha channel)."""
    import cv2

    counts8 = (parcel_counts(bits=16) >> 8).astype(np.uint8)
    jpeg = cv2.imencode(".jpg", counts8)[1].tobytes()
    (tmp_path / "c.jpg").write_bytes(jpeg[:2] + b"\xff\xfe\x00\x02" + jpeg[2:])
    assert read_scan(tmp_path / "c.jpg").kind == "gray"
    png = cv2.imencode(".png", counts8)[1].tobytes()
    iend = png.rindex(b"IEND") - 4
    import zlib

    trns = (2).to_bytes(4, "big") + b"tRNS" + b"\x00\x00" + \
        zlib.crc32(b"tRNS\x00\x00").to_bytes(4, "big")
    first_idat = png.index(b"IDAT") - 4
    (tmp_path / "t.png").write_bytes(png[:first_idat] + trns + png[first_idat:iend] + png[iend:])
    scan = read_scan(tmp_path / "t.png")
    assert scan.kind == "gray"
    np.testing.assert_allclose(scan.image[0], expected_att(counts8, 8), atol=1e-5)
