"""Hostile CT volumes and JPEGs for fuzzing: shared by the CI tests and the long run.

Each strategy draws ``(name, files)``: the files to write into an empty folder (``{relative
path: bytes}``) and the name to read there (a file, or a sub-folder holding a DICOM series).
The property is the readers' one: a result or a `ScanError`, nothing else, quickly.
"""

from __future__ import annotations

import io
import json
import struct

import numpy as np
import pydicom
import tifffile
from fuzz_cases import _mutate
from hypothesis import strategies as st
from pydicom.dataset import FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

CT_SOPS = ["1.2.840.10008.5.1.4.1.1.501.1", "1.2.840.10008.5.1.4.1.1.2",
           "1.2.840.10008.5.1.4.1.1.2.1", "1.2.840.10008.5.1.4.1.1.501.2.1"]
_NPY_DTYPES = ["int16", "uint16", "int32", "float32", "float64", "int8", "uint8", "float16",
               "complex64", "bool", ">i2", "<U3"]
_HOSTILE_DIMS = [0, 1, 2, 3, 65535, 2**31 - 1]


def _hu(rng: np.random.Generator, shape, dtype: str, draw, honest: bool = False) -> np.ndarray:
    """Values that look like HU (air and a parcel) or not (0..1, all one value, NaN, inf)."""
    style = "hu" if honest else draw(st.sampled_from(["hu", "hu", "unit", "flat"]))
    if style == "hu":
        arr = rng.uniform(-1000, 1500, size=shape)
    elif style == "unit":
        arr = rng.random(size=shape)
    else:
        arr = np.full(shape, -1000.0)
    arr = arr.astype(dtype) if np.dtype(dtype).kind != "U" else arr.astype(int).astype(dtype)
    if arr.dtype.kind in "fc" and arr.size and not honest and draw(st.booleans()):
        arr.flat[draw(st.integers(0, arr.size - 1))] = draw(
            st.sampled_from([np.nan, np.inf, -np.inf, 1e30]))
    return arr


def _sidecar(draw, honest: bool = False) -> bytes | None:
    """None (no sidecar) or the bytes of a NAME.json, honest or hostile."""
    kind = "good" if honest else draw(st.sampled_from(
        ["none", "good", "good", "bad_voxel", "junk", "list", "unknown_key", "bad_slope",
         "units"]))
    good = {"voxel_mm": [2.0, 1.0, 1.0], "units": "HU", "rescale_slope": 1.0,
            "rescale_intercept": draw(st.sampled_from([0.0, -1024.0]))}
    if kind == "none":
        return None
    if kind == "junk":
        return draw(st.binary(max_size=40))
    if kind == "list":
        return b"[1, 2, 3]"
    if kind == "bad_voxel":
        good["voxel_mm"] = draw(st.sampled_from([[0, 1, 1], [-1, 1, 1], [1, 1], "abc", None,
                                                 [1e9, 1, 1], [float("nan"), 1, 1]]))
    elif kind == "unknown_key":
        good["evil"] = "../../etc/passwd"
    elif kind == "bad_slope":
        good["rescale_slope"] = draw(st.sampled_from([0, -2, "1", None, float("inf")]))
    elif kind == "units":
        good["units"] = "mm^-1"
    return json.dumps(good).encode()


@st.composite
def npy_volumes(draw) -> tuple[str, dict[str, bytes]]:
    """``.npy`` volumes of every dtype and rank, headers that lie about the shape, sidecars."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    honest = draw(st.booleans())  # half the files are valid, so reading gets all the way
    dtype = draw(st.sampled_from(_NPY_DTYPES[:5] if honest else _NPY_DTYPES))
    shape = tuple(draw(st.lists(st.integers(2 if honest else 0, 6), min_size=3 if honest else 1,
                                max_size=3 if honest else 4)))
    buf = io.BytesIO()
    np.save(buf, _hu(rng, shape, dtype, draw, honest), allow_pickle=False)
    data = buf.getvalue()
    if not honest and draw(st.booleans()):  # the header declares another (enormous?) shape
        fake = tuple(draw(st.lists(st.sampled_from(_HOSTILE_DIMS), min_size=1, max_size=4)))
        data = _replace_npy_shape(data, fake)
    files = {"vol.npy": data if honest else _mutate(draw, data)}
    side = _sidecar(draw, honest)
    if side is not None:
        files["vol.json"] = side
    return "vol.npy", files


def _replace_npy_shape(data: bytes, shape: tuple[int, ...]) -> bytes:
    """The same .npy with ``shape`` written into its header (padded like numpy does)."""
    major = data[6]
    size_len = 2 if major == 1 else 4
    hlen = int.from_bytes(data[8:8 + size_len], "little")
    start = 8 + size_len
    header = data[start:start + hlen].decode("latin1")
    head, _, tail = header.partition("'shape': (")
    _, _, tail = tail.partition(")")
    shape_txt = ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "")
    new = (head + "'shape': (" + shape_txt + ")" + tail).rstrip("\n ")
    total = start + len(new) + 1
    new = new + " " * ((64 - total % 64) % 64) + "\n"
    fmt = "<H" if size_len == 2 else "<I"
    return data[:8] + struct.pack(fmt, len(new)) + new.encode("latin1") + data[start + hlen:]


@st.composite
def tiff_volumes(draw) -> tuple[str, dict[str, bytes]]:
    """Multi-page TIFFs: odd dtypes (NaN/inf floats), pages of different size or type."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    honest = draw(st.booleans())
    pages = draw(st.integers(3 if honest else 1, 6))
    h, w = draw(st.integers(2 if honest else 1, 12)), draw(st.integers(2 if honest else 1, 12))
    dtype = draw(st.sampled_from(["int16", "int32", "float32"] if honest else
                                 ["int16", "uint16", "int32", "float32", "float64", "uint8",
                                  "int8", "bool"]))
    odd_page = None if honest else draw(st.sampled_from([None, None, "shape", "dtype"]))
    buf = io.BytesIO()
    with tifffile.TiffWriter(buf) as tif:
        for i in range(pages):
            page_shape, page_dtype = (h, w), dtype
            if i == pages - 1 and odd_page == "shape":
                page_shape = (h + 1, w)
            elif i == pages - 1 and odd_page == "dtype":
                page_dtype = "float32" if dtype != "float32" else "uint16"
            tif.write(_hu(rng, page_shape, page_dtype, draw, honest), photometric="minisblack",
                      compression=draw(st.sampled_from([None, "zlib"])))
    files = {"vol.tif": buf.getvalue() if honest else _mutate(draw, buf.getvalue())}
    side = _sidecar(draw, honest)
    if side is not None:
        files["vol.json"] = side
    return "vol.tif", files


def _ct_slice(draw, rng, sop: str, series: str, rows: int, cols: int, k: int,
              honest: bool) -> pydicom.Dataset:
    def field(truth, lies):
        return truth if honest else draw(st.sampled_from([truth, truth, *lies]))

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop
    meta.MediaStorageSOPInstanceUID = f"1.2.826.0.1.3680043.10.2.{draw(st.integers(0, 10**9))}"
    meta.TransferSyntaxUID = field(ExplicitVRLittleEndian, ["1.2.840.10008.1.2.4.50", "9.9.9"])
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = field(sop, [CT_SOPS[3], ""])
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.SeriesInstanceUID = field(series, ["1.2.3.999"])
    ds.Modality = "CT"
    ds.Rows = field(rows, [0, 1, rows + 1, 65535])
    ds.Columns = field(cols, [0, cols + 1, 65535])
    ds.SamplesPerPixel = field(1, [3])
    ds.PhotometricInterpretation = "MONOCHROME2"
    alloc = field(16, [8, 32])
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = alloc, alloc, alloc - 1
    ds.PixelRepresentation = field(0, [1])
    ds.InstanceNumber = field(k + 1, [1, 0])
    spacing = field([1.0, 1.5], [[0.0, 1.0], [-1.0, 1.0], [1.0], [1e9, 1.0], None])
    if spacing is not None:
        ds.PixelSpacing = spacing
    ds.SliceThickness = field(2.0, [0.0, -2.0])
    if field(True, [False]):
        ds.ImageOrientationPatient = field([1, 0, 0, 0, 1, 0], [[1, 0, 0, 1, 0, 0],
                                                                [1, 0, 0, 0, 1]])
        ds.ImagePositionPatient = [0.0, 0.0, field(2.0 * k, [0.0, 2.0 * k + 0.7])]
    if field(True, [False]):
        ds.RescaleSlope = field(1.0, [0.0, -1.0])
        ds.RescaleIntercept = -1024.0
    if field(False, [True]):
        ds.RescaleType = "US"
    dtype = {8: np.uint8, 16: np.uint16, 32: np.uint32}[alloc]
    pixels = rng.integers(0, 2500, size=(rows, cols)).astype(dtype)
    if honest or draw(st.integers(0, 9)) > 0:
        ds.PixelData = pixels.tobytes()
        if meta.TransferSyntaxUID != ExplicitVRLittleEndian:
            ds.PixelData = encapsulate([pixels.tobytes()])
            ds["PixelData"].VR = "OB"
    return ds


def _dicom_bytes(ds: pydicom.Dataset) -> bytes:
    buf = io.BytesIO()
    private = {"implicit_vr": False, "little_endian": True} \
        if ds.file_meta.TransferSyntaxUID == "9.9.9" else {}
    ds.save_as(buf, enforce_file_format=True, **private)
    return buf.getvalue()


@st.composite
def dicom_ct_series(draw) -> tuple[str, dict[str, bytes]]:
    """A folder of CT slices whose headers lie (sizes, spacing, order, rescale, series)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    sop = draw(st.sampled_from(CT_SOPS[:3]))
    rows, cols = draw(st.integers(2, 10)), draw(st.integers(2, 10))
    honest = draw(st.booleans())
    count = draw(st.integers(2 if honest else 1, 5))
    files = {}
    for k in range(count):
        ds = _ct_slice(draw, rng, sop, "1.2.3.4", rows, cols, k, honest)
        data = _dicom_bytes(ds)
        files[f"series/IM{k:04d}"] = data if honest else _mutate(draw, data)
    if draw(st.integers(0, 4)) == 0:
        files["series/notes.txt"] = b"operator notes"
    return "series", files


@st.composite
def dicom_ct_multiframe(draw) -> tuple[str, dict[str, bytes]]:
    """One multi-frame CT file: frame counts and per-frame groups that disagree."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    rows, cols = draw(st.integers(2, 8)), draw(st.integers(2, 8))
    frames = draw(st.integers(1, 5))
    honest = draw(st.booleans())
    ds = _ct_slice(draw, rng, CT_SOPS[2], "1.2.3.5", rows, cols, 0, honest)
    for key in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing",
                "RescaleSlope", "RescaleIntercept", "SliceThickness"):
        if key in ds and draw(st.booleans()):
            delattr(ds, key)  # only in the functional groups below
    ds.NumberOfFrames = frames if honest else draw(st.sampled_from([frames, 0, frames + 2,
                                                                    100000]))
    shared, measures, orient, rescale = (pydicom.Dataset() for _ in range(4))
    measures.PixelSpacing = [1.0, 1.0]
    orient.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    rescale.RescaleSlope, rescale.RescaleIntercept = 1.0, -1024.0
    shared.PixelMeasuresSequence = Sequence([measures])
    shared.PlaneOrientationSequence = Sequence([orient])
    shared.PixelValueTransformationSequence = Sequence([rescale])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per_frame = frames if honest else draw(st.integers(0, frames + 1))
    items = []
    for k in range(per_frame):
        item, pos = pydicom.Dataset(), pydicom.Dataset()
        pos.ImagePositionPatient = [0.0, 0.0, 1.5 * k]
        item.PlanePositionSequence = Sequence([pos])
        items.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(items)
    dtype = np.uint16 if ds.BitsAllocated == 16 else (
        np.uint8 if ds.BitsAllocated == 8 else np.uint32)
    if "PixelData" in ds and ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian:
        ds.PixelData = rng.integers(0, 2500, size=(frames, rows, cols)).astype(dtype).tobytes()
    data = _dicom_bytes(ds)
    return "enh.dcm", {"enh.dcm": data if honest else _mutate(draw, data)}


@st.composite
def jpeg_files(draw) -> tuple[str, dict[str, bytes]]:
    """JPEGs (gray, RGB, CMYK) with hostile SOF sizes, truncated or flipped."""
    from PIL import Image

    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    mode = draw(st.sampled_from(["L", "RGB", "RGB", "CMYK"]))
    h, w = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    channels = {"L": 1, "RGB": 3, "CMYK": 4}[mode]
    pixels = rng.integers(0, 255, size=(h, w, channels), dtype=np.uint8, endpoint=True)
    img = Image.fromarray(pixels[:, :, 0] if channels == 1 else pixels, mode=mode)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=draw(st.integers(5, 95)),
             progressive=draw(st.booleans()))
    data = bytearray(buf.getvalue())
    sof = data.find(b"\xff\xc0") if data.find(b"\xff\xc0") >= 0 else data.find(b"\xff\xc2")
    if sof >= 0 and draw(st.booleans()):  # declared height/width: zero or enormous
        data[sof + 5:sof + 9] = struct.pack(">HH", draw(st.sampled_from([0, 1, h, 65535])),
                                            draw(st.sampled_from([0, 1, w, 65535])))
    return "scan.jpg", {"scan.jpg": _mutate(draw, bytes(data))}


VOLUME_STRATEGIES = {"npy": npy_volumes(), "tiff_volume": tiff_volumes(),
                     "dicom_ct_series": dicom_ct_series(),
                     "dicom_ct_multiframe": dicom_ct_multiframe(), "jpeg": jpeg_files()}
