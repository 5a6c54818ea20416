"""Every kind of bad input gives one `ScanError` that names the file and the reason."""

from __future__ import annotations

import struct
import subprocess
import sys
import zlib

import numpy as np
import pydicom
import pytest
import tifffile
from conftest import colour_image, parcel_counts, write_pair, write_png
from test_readers import write_dicom

from detector import ScanError, discover_scans, read_scan


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(path, width=100_000, height=100_000):
    """A tiny PNG whose header declares 10 gigapixels (a decompression bomb)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1000)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)
                     + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b""))
    return path


def truncated(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def case_missing(tmp):
    return tmp / "nope.png", "file not found"


def case_empty_file(tmp):
    (tmp / "e.png").write_bytes(b"")
    return tmp / "e.png", "empty"


def case_not_image(tmp):
    (tmp / "notes.png").write_text("hello, I am not a scan")
    return tmp / "notes.png", "not a supported image"


def case_truncated_png(tmp):
    return truncated(write_png(tmp / "t.png", parcel_counts())), "truncated PNG"


def case_truncated_jpeg(tmp):
    import cv2

    cv2.imwrite(str(tmp / "t.jpg"), colour_image((200, 200)))
    return truncated(tmp / "t.jpg"), "truncated"


def _jpeg(path, pixels, flags=()) -> bytes:
    import cv2

    path.write_bytes(cv2.imencode(".jpg", pixels, list(flags))[1].tobytes())
    return path.read_bytes()


def case_truncated_jpeg_with_end_marker(tmp):
    # libjpeg fills the missing 90 % with grey and, given an end marker, only warns
    data = _jpeg(tmp / "t.jpg", colour_image((300, 400)))
    cut = data.index(b"\xff\xda") + (len(data) - data.index(b"\xff\xda")) // 10
    (tmp / "t.jpg").write_bytes(data[:cut] + b"\xff\xd9")
    return tmp / "t.jpg", "truncated or corrupt JPEG: Corrupt JPEG data: premature end"


def case_jpeg_size_patched_in_header(tmp):
    data = bytearray(_jpeg(tmp / "p.jpg", parcel_counts((16, 16), bits=8)))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", 2000, 2000)  # 16x16 of data, 2000x2000 declared
    (tmp / "p.jpg").write_bytes(bytes(data))
    return tmp / "p.jpg", "truncated or corrupt JPEG"


def case_progressive_jpeg_cut_between_scans(tmp):
    import cv2

    data = _jpeg(tmp / "s.jpg", colour_image((200, 200)), (cv2.IMWRITE_JPEG_PROGRESSIVE, 1))
    scans = [i for i in range(len(data)) if data[i:i + 2] == b"\xff\xda"]
    (tmp / "s.jpg").write_bytes(data[:scans[2]] + b"\xff\xd9")  # libjpeg: no warning at all
    return tmp / "s.jpg", "cut between scans"


def case_cmyk_jpeg(tmp):
    from PIL import Image

    Image.new("CMYK", (40, 30), (0, 50, 100, 0)).save(tmp / "k.jpg")
    return tmp / "k.jpg", "unsupported JPEG colour space CMYK"


def case_truncated_tiff(tmp):
    tifffile.imwrite(tmp / "t.tif", parcel_counts((200, 200)))
    return truncated(tmp / "t.tif", 0.3), "unreadable TIFF"


def case_truncated_jpeg_in_tiff(tmp):
    # tifffile's JPEG codec, like Pillow, fills a cut-off strip with grey without an error
    tifffile.imwrite(tmp / "j.tif", parcel_counts((200, 200), bits=8), compression="jpeg",
                     rowsperstrip=200)
    with tifffile.TiffFile(tmp / "j.tif") as tif:
        offset, count = tif.pages[0].dataoffsets[0], tif.pages[0].databytecounts[0]
    data = bytearray((tmp / "j.tif").read_bytes())
    data[offset + count // 2:offset + count] = b"\xff\xd9" + bytes(count - count // 2 - 2)
    (tmp / "j.tif").write_bytes(bytes(data))
    return tmp / "j.tif", "truncated or corrupt JPEG strip in TIFF"


def case_float_tiff_with_nan(tmp):
    img = np.random.default_rng(0).random((40, 40)).astype(np.float32)
    img[3, 3] = np.nan
    tifffile.imwrite(tmp / "f.tif", img)
    return tmp / "f.tif", "unsupported TIFF pixel type float32"


def case_planar_rgb_tiff_16bit(tmp):
    planes = colour_image().transpose(2, 0, 1).astype(np.uint16) * 200
    tifffile.imwrite(tmp / "planar.tif", planes, photometric="rgb", planarconfig="separate")
    return tmp / "planar.tif", "must be 8-bit RGB"


def case_planar_tiff_bomb(tmp):
    # a planar page's shape is (3, H, W): the guard once saw 3 x 8000 pixels
    tifffile.imwrite(tmp / "pb.tif", shape=(3, 8000, 8000), dtype=np.uint8, photometric="rgb",
                     planarconfig="separate")  # sparse on disk
    return tmp / "pb.tif", "too large: 8000x8000"


def case_palette_tiff(tmp):
    indices = parcel_counts(bits=8) // 16
    colormap = np.tile(np.arange(256, dtype=np.uint16) * 257, (3, 1))
    tifffile.imwrite(tmp / "pal.tif", indices, photometric="palette", colormap=colormap)
    return tmp / "pal.tif", "unsupported TIFF layout: 1 sample(s) per pixel, photometric PALETTE"


def case_png_bad_crc(tmp):
    data = bytearray(write_png(tmp / "crc.png", parcel_counts((100, 100))).read_bytes())
    idat = data.index(b"IDAT")
    data[idat + 40:idat + 60] = bytes(20)  # IEND still there: only the CRC tells
    (tmp / "crc.png").write_bytes(bytes(data))
    return tmp / "crc.png", "unreadable PNG: IDAT: "


def case_palette_png_2bit(tmp):
    from PIL import Image

    image = Image.fromarray((parcel_counts(bits=8) // 64).astype(np.uint8), mode="L")
    image = image.convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    image.save(tmp / "p2.png", bits=2)
    assert (tmp / "p2.png").read_bytes()[24] == 2  # IHDR bit depth
    return tmp / "p2.png", "palette PNG with 2-bit indices (at most 4 colours) is not an X-ray"


def case_rgba_png(tmp):
    write_png(tmp / "a.png", np.full((20, 20, 4), 100, np.uint8))
    return tmp / "a.png", "RGBA"


def case_16bit_colour(tmp):
    rgb = colour_image().astype(np.uint16) * 200
    return write_png(tmp / "c16.png", rgb), "must be 8-bit RGB"


def case_three_page_tiff(tmp):
    with tifffile.TiffWriter(tmp / "3p.tif") as tif:
        for _ in range(3):
            tif.write(parcel_counts(), photometric="minisblack")
    return tmp / "3p.tif", "3 pages"


def case_high_without_low(tmp):
    return write_png(tmp / "lonely_high.png", parcel_counts()), "without its '_low' partner"


def case_low_without_high(tmp):
    return write_png(tmp / "lonely_low.png", parcel_counts()), "without its '_high' partner"


def case_pair_size_mismatch(tmp):
    write_png(tmp / "m_high.png", parcel_counts((60, 80)))
    write_png(tmp / "m_low.png", parcel_counts((60, 81)))
    return tmp / "m_high.png", "high/low sizes differ"


def case_pair_bit_depth_mismatch(tmp):
    write_png(tmp / "b_high.png", parcel_counts(bits=16))
    write_png(tmp / "b_low.png", parcel_counts(bits=8))
    return tmp / "b_high.png", "bit depths differ"


def case_all_air(tmp):
    return write_png(tmp / "air.png", np.full((50, 50), 65535, np.uint16)), "uniform"


def case_all_black(tmp):
    return write_png(tmp / "black.png", np.zeros((50, 50), np.uint8)), "uniform"


def case_all_air_dual(tmp):
    write_png(tmp / "air_high.png", np.full((50, 50), 65535, np.uint16))
    write_png(tmp / "air_low.png", parcel_counts((50, 50)))
    return tmp / "air_high.png", "high-energy image is uniform"


def case_decompression_bomb(tmp):
    return bomb_png(tmp / "bomb.png"), "too large"


def case_bomb_tiff_pages(tmp):
    tifffile.imwrite(tmp / "big.tif", np.zeros((9000, 9000), np.uint8))
    return tmp / "big.tif", "too large"


def case_dicom_no_pixels(tmp):
    path = write_dicom(tmp / "np.dcm", parcel_counts())
    ds = pydicom.dcmread(path)
    del ds.PixelData
    ds.save_as(path)
    return path, "no pixel data"


def case_dicom_unknown_transfer_syntax(tmp):
    path = write_dicom(tmp / "ts.dcm", parcel_counts())
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = "1.2.3.4.5.6.7"
    ds.save_as(path)
    return path, "cannot decode the DICOM pixel data (transfer syntax 1.2.3.4.5.6.7)"


def case_dicom_truncated(tmp):
    return truncated(write_dicom(tmp / "tr.dcm", parcel_counts((200, 200))), 0.4), "DICOM"


def case_dicom_dx_rescale(tmp):
    # a DX rescale's units are unspecified: once silently ignored, now refused
    path = write_dicom(tmp / "rs.dcm", parcel_counts())
    ds = pydicom.dcmread(path)
    ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = "2", "-100", "US"
    ds.save_as(path)
    return path, "DICOM modality LUT is not the identity (RescaleSlope 2, RescaleIntercept -100)"


def case_bare_dicom_lookalike(tmp):
    (tmp / "x.dcm").write_bytes(b"\x08\x00\x05\x00CS" + bytes(range(256)) * 4)
    return tmp / "x.dcm", "DICOM"


def case_dicom_deflate_bomb(tmp):
    # the deflated transfer syntax: pydicom inflates it whole before any size check (a 150 KB
    # file made 440 MB); refused from the file meta, nothing inflated
    path = write_dicom(tmp / "df.dcm", parcel_counts())
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.1.99"
    data = path.read_bytes()
    meta_end = data.index(b"\x08\x00")  # first element after the file meta group
    head = data[:meta_end].replace(b"1.2.840.10008.1.2.1\x00", b"1.2.840.10008.1.2.1.99")
    squeeze = zlib.compressobj(9, zlib.DEFLATED, -15)
    path.write_bytes(head + squeeze.compress(b"\0" * (20 << 20)) + squeeze.flush())
    return path, "deflated transfer syntax"


def case_tiff_huge_tile(tmp):
    # a 16x16 image in one 8192x8192 compressed tile: decoded at the tile's size
    tifffile.imwrite(tmp / "tile.tif", np.full((16, 16), 30000, np.uint16), tile=(8192, 8192),
                     compression="zlib", photometric="minisblack")
    return tmp / "tile.tif", "TIFF tile of 8192x8192"


def case_dicom_ct_slice(tmp):
    path = write_dicom(tmp / "ct.dcm", parcel_counts(), sop="1.2.840.10008.5.1.4.1.1.501.1")
    return path, "CT slice"


CASES = [v for k, v in sorted(globals().items()) if k.startswith("case_")]


@pytest.mark.parametrize("make", CASES, ids=[c.__name__[5:] for c in CASES])
def test_bad_input_is_one_scan_error(tmp_path, make):
    path, reason = make(tmp_path)
    with pytest.raises(ScanError) as err:
        read_scan(path, max_pixels=50_000_000)
    assert err.value.path == str(path), "the error must name the file"
    assert reason in err.value.reason
    assert str(path) in str(err.value)


def test_folder_run_reports_each_bad_scan_and_carries_on(tmp_path):
    write_pair(tmp_path, "good")
    write_png(tmp_path / "good_color.png", colour_image())
    write_png(tmp_path / "orphan_high.png", parcel_counts())
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    outcomes = {}
    for ref in discover_scans([tmp_path]):
        try:
            outcomes[ref.id] = read_scan(ref).kind
        except ScanError as exc:
            outcomes[ref.id] = f"error: {exc.reason}"
    assert outcomes["good"] == "dual" and outcomes["good_color"] == "color"
    assert outcomes["orphan"].startswith("error") and outcomes["broken"].startswith("error")

    cli = subprocess.run([sys.executable, "-m", "detector.cli", "check", str(tmp_path), "--json"],
                         capture_output=True, text=True)
    assert cli.returncode == 2, cli.stderr
    lines = cli.stdout.strip().splitlines()
    assert len(lines) == 4
    assert sum('"status": "error"' in line for line in lines) == 2


def test_max_pixels_is_the_only_size_rule(tmp_path):
    """A JPEG declaring 225 Mpx: Pillow's own 178 Mpx limit once overrode a larger
    --max-pixels ("unreadable JPEG: DecompressionBombError")."""
    data = bytearray(_jpeg(tmp_path / "big.jpg", parcel_counts((16, 16), bits=8)))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", 15000, 15000)
    (tmp_path / "big.jpg").write_bytes(bytes(data))
    with pytest.raises(ScanError, match="too large: 15000x15000"):
        read_scan(tmp_path / "big.jpg", max_pixels=200_000_000)
    with pytest.raises(ScanError, match="truncated or corrupt JPEG"):
        read_scan(tmp_path / "big.jpg", max_pixels=300_000_000)


def test_decoders_print_nothing_on_a_bad_scan(tmp_path):
    """The error line says what is wrong; libpng's own "libpng error: ..." is noise."""
    for make in (case_png_bad_crc, case_truncated_jpeg_with_end_marker, case_truncated_png,
                 case_jpeg_size_patched_in_header):
        make(tmp_path)
    cli = subprocess.run([sys.executable, "-m", "detector.cli", "check", str(tmp_path)],
                         capture_output=True, text=True)
    assert cli.returncode == 2 and cli.stdout.count("ERROR") == 4, cli.stdout
    assert "libpng" not in cli.stderr and "Warning" not in cli.stderr, cli.stderr
