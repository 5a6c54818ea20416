"""Hostile scan files for fuzzing the readers: shared by the CI test and the long run.

Each strategy draws bytes for one file (or a pair); the property is always the same:
`read_scan` returns a `Scan` or raises `ScanError`, never anything else, quickly.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pydicom
import tifffile
from hypothesis import strategies as st
from pydicom.dataset import FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import ExplicitVRLittleEndian

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _valid_png(rng: np.random.Generator, h: int, w: int, bits: int, channels: int) -> bytes:
    import cv2

    dtype = np.uint8 if bits == 8 else np.uint16
    shape = (h, w) if channels == 1 else (h, w, channels)
    pixels = rng.integers(0, np.iinfo(dtype).max, size=shape, dtype=dtype, endpoint=True)
    ok, buf = cv2.imencode(".png", pixels)
    assert ok
    return buf.tobytes()


@st.composite
def png_files(draw) -> bytes:
    """A PNG with random header fields (recomputed CRC, so the decoder gets that far)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    h, w = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    data = bytearray(_valid_png(rng, h, w, draw(st.sampled_from([8, 16])),
                                draw(st.sampled_from([1, 3, 4]))))
    if draw(st.booleans()):  # hostile IHDR: sizes up to 2**32-1, odd depths and colour types
        fields = (draw(st.sampled_from([0, 1, w, 65535, 2**31 - 1, 2**32 - 1])),
                  draw(st.sampled_from([0, 1, h, 65535, 2**31 - 1, 2**32 - 1])),
                  draw(st.sampled_from([1, 2, 4, 8, 16, 32])),
                  draw(st.sampled_from([0, 2, 3, 4, 6, 7])), 0, 0, 0)
        ihdr = struct.pack(">IIBBBBB", *fields)
        data[8:33] = _chunk(b"IHDR", ihdr)
    return _mutate(draw, bytes(data))


@st.composite
def tiff_files(draw) -> bytes:
    """TIFFs of odd pixel types (floats with NaN/inf, signed, 32-bit), pages and sizes."""
    dtype = draw(st.sampled_from(["uint8", "uint16", "int16", "uint32", "float32", "float64",
                                  "bool"]))
    pages = draw(st.integers(1, 4))
    h, w = draw(st.integers(1, 30)), draw(st.integers(1, 30))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    arr = (rng.random((pages, h, w)) * 300).astype(dtype)
    if arr.dtype.kind == "f" and draw(st.booleans()):
        arr.flat[0] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    buf = io.BytesIO()
    with tifffile.TiffWriter(buf) as tif:
        for page in arr:
            tif.write(page, photometric="minisblack",
                      compression=draw(st.sampled_from([None, "zlib"])))
    return _mutate(draw, buf.getvalue())


@st.composite
def dicom_files(draw) -> bytes:
    """DICOM X-ray objects whose header lies about the pixel data in every way it can."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    h, w = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    frames = draw(st.sampled_from([1, 1, 2, 3]))
    samples = draw(st.sampled_from([1, 1, 3]))
    alloc = draw(st.sampled_from([8, 16, 16, 32]))
    dtype = {8: np.uint8, 16: np.uint16, 32: np.uint32}[alloc]
    shape = (frames, h, w, samples)
    pixels = rng.integers(0, 2**min(alloc, 16) - 1, size=shape).astype(dtype)
    if samples == 1:
        pixels = pixels[..., 0]
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = draw(st.sampled_from([
        "1.2.840.10008.5.1.4.1.1.501.2.1", "1.2.840.10008.5.1.4.1.1.501.2.2",
        "1.2.840.10008.5.1.4.1.1.1.1", "1.2.840.10008.5.1.4.1.1.501.1"]))
    meta.MediaStorageSOPInstanceUID = f"1.2.826.0.1.3680043.10.1.{draw(st.integers(0, 10**9))}"
    meta.TransferSyntaxUID = draw(st.sampled_from([ExplicitVRLittleEndian] * 6 + [
        "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.5", "9.9.9"]))
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    honest = draw(st.booleans())  # half the files tell the truth, so decoding is reached

    def field(truth, lies):
        return truth if honest else draw(st.sampled_from([truth, *lies]))

    ds.Rows = field(h, [0, 65535])
    ds.Columns = field(w, [0, 65535])
    ds.SamplesPerPixel = field(samples, [1, 3, 4])
    ds.PhotometricInterpretation = field("RGB" if samples == 3 else "MONOCHROME2",
                                         ["MONOCHROME1", "YBR_FULL", "PALETTE COLOR"])
    ds.BitsAllocated = alloc
    ds.BitsStored = field(alloc, [12, 1, 7, 33])
    ds.HighBit = max(0, min(ds.BitsStored, 32) - 1)
    ds.PixelRepresentation = field(0, [1])
    if ds.SamplesPerPixel > 1:
        ds.PlanarConfiguration = 0
    if frames > 1 or draw(st.booleans()):
        ds.NumberOfFrames = field(frames, [0, 2, 100000])
    if draw(st.integers(0, 9)) > 0:
        ds.PixelData = pixels.tobytes()
        if meta.TransferSyntaxUID != ExplicitVRLittleEndian:  # compressed: encapsulate junk
            ds.PixelData = encapsulate([f.tobytes() for f in pixels])
            ds["PixelData"].VR = "OB"
    buf = io.BytesIO()
    private = {"implicit_vr": False, "little_endian": True} if meta.TransferSyntaxUID == "9.9.9" \
        else {}
    ds.save_as(buf, enforce_file_format=True, **private)
    return _mutate(draw, buf.getvalue())


@st.composite
def any_bytes(draw) -> bytes:
    """Garbage behind a real magic number, so each decoder sees it."""
    magic = draw(st.sampled_from([PNG_MAGIC, b"\xff\xd8\xff\xe0", b"II*\x00", b"MM\x00*",
                                  b"\x00" * 128 + b"DICM", b""]))
    return magic + draw(st.binary(max_size=400))


def _mutate(draw, data: bytes) -> bytes:
    """Leave the file alone, truncate it, or flip a few bytes."""
    how = draw(st.sampled_from(["keep", "keep", "truncate", "flip"]))
    if how == "truncate" and len(data) > 1:
        return data[: draw(st.integers(0, len(data) - 1))]
    if how == "flip":
        buf = bytearray(data)
        for _ in range(draw(st.integers(1, 8))):
            pos = draw(st.integers(0, len(buf) - 1))
            buf[pos] = draw(st.integers(0, 255))
        return bytes(buf)
    return data


SUFFIX = {"png": ".png", "tiff": ".tif", "dicom": ".dcm", "bytes": ".png"}
STRATEGIES = {"png": png_files(), "tiff": tiff_files(), "dicom": dicom_files(),
              "bytes": any_bytes()}
