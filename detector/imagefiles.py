"""Decode one image file (PNG, JPEG, TIFF, DICOM) into pages of raw pixel counts.

The format is recognised by content, not by name. Sizes are checked from the header
before any pixel is decoded, so a decompression bomb is refused cheaply.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from detector.errors import ScanError

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_JPEG_MAGIC = b"\xff\xd8\xff"


@dataclass
class LoadedImage:
    """Decoded pages (each ``(H, W)`` or ``(H, W, 3)`` RGB) and their bit depth."""

    pages: list[np.ndarray]
    bit_depth: int
    meta: dict = field(default_factory=dict)


def sniff_format(head: bytes) -> str | None:
    """``"png"``, ``"jpeg"``, ``"tiff"``, ``"dicom"`` or None, from a file's first 132 bytes."""
    if head.startswith(_PNG_MAGIC):
        return "png"
    if head.startswith(_JPEG_MAGIC):
        return "jpeg"
    if head[:4] in _TIFF_MAGICS:
        return "tiff"
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "dicom"
    return None


def load(path: Path, max_pixels: int) -> LoadedImage:
    """Decode ``path``; every failure is a `ScanError` naming the file."""
    path = Path(path)
    if not path.exists():
        raise ScanError(path, "file not found")
    if not path.is_file():
        raise ScanError(path, "not a regular file")
    try:
        with path.open("rb") as fh:
            head = fh.read(132)
    except OSError as exc:
        raise ScanError(path, f"cannot read file: {exc.strerror or exc}") from exc
    if not head:
        raise ScanError(path, "file is empty (0 bytes)")
    fmt = sniff_format(head)
    if fmt is None:
        raise ScanError(path, "not a supported image: expected PNG, JPEG, TIFF or DICOM content")
    loader = {"png": _load_png, "jpeg": _load_jpeg, "tiff": _load_tiff, "dicom": _load_dicom}[fmt]
    try:
        loaded = loader(path, max_pixels)
    except ScanError:
        raise
    except MemoryError as exc:
        raise ScanError(path, "image too large to decode in memory") from exc
    except Exception as exc:  # decoder libraries raise many types; all mean "unreadable"
        raise ScanError(path, f"unreadable {fmt.upper()}: {type(exc).__name__}: {exc}") from exc
    for page in loaded.pages:
        if page.dtype not in (np.uint8, np.uint16):
            raise ScanError(path, f"unsupported pixel type {page.dtype}: scans are 8- or 16-bit "
                                  "unsigned integer counts")
        if page.size == 0:
            raise ScanError(path, f"image has zero size: shape {page.shape}")
    loaded.meta.setdefault("format", fmt)
    return loaded


def check_size(path: Path, height: int, width: int, max_pixels: int, pages: int = 1) -> None:
    """Refuse zero or absurd sizes before decoding."""
    if height <= 0 or width <= 0:
        raise ScanError(path, f"image has zero size: {height}x{width} (height x width)")
    if height * width > max_pixels:
        raise ScanError(path, f"image too large: {height}x{width} = {height * width} pixels "
                              f"exceeds the limit of {max_pixels} (possible decompression bomb)")
    if pages * height * width > 4 * max_pixels:
        raise ScanError(path, f"{pages} pages of {height}x{width} exceed the pixel limit")


def _load_png(path: Path, max_pixels: int) -> LoadedImage:
    import cv2

    data = path.read_bytes()
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise ScanError(path, "truncated PNG: no IHDR header")
    width, height, depth, colour_type = struct.unpack(">IIBB", data[16:26])
    check_size(path, height, width, max_pixels)
    if depth not in (8, 16):
        raise ScanError(path, f"unsupported PNG bit depth {depth}: expected 8 or 16")
    if colour_type not in (0, 2, 3):
        kinds = {4: "gray+alpha", 6: "RGBA"}
        raise ScanError(path, f"unsupported PNG channel layout "
                              f"({kinds.get(colour_type, colour_type)}): expected gray or RGB")
    if b"IEND" not in data[-12:]:
        raise ScanError(path, "truncated PNG: the file ends before its IEND chunk")
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if pixels is None:
        raise ScanError(path, "unreadable PNG: the decoder rejected the pixel data")
    if pixels.ndim == 3:
        pixels = np.ascontiguousarray(pixels[:, :, ::-1])  # OpenCV's BGR to RGB
    return LoadedImage([pixels], bit_depth=depth)


def _load_jpeg(path: Path, max_pixels: int) -> LoadedImage:
    from PIL import Image

    with Image.open(path) as im:
        width, height = im.size
        check_size(path, height, width, max_pixels)
        if im.mode not in ("L", "RGB"):
            raise ScanError(path, f"unsupported JPEG mode {im.mode}: expected gray (L) or RGB")
        im.load()  # raises on a truncated stream, unlike OpenCV which only warns
        pixels = np.asarray(im, dtype=np.uint8).copy()
    return LoadedImage([pixels], bit_depth=8)


def _load_tiff(path: Path, max_pixels: int) -> LoadedImage:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        pages = tif.pages
        count = len(pages)
        if count == 0:
            raise ScanError(path, "TIFF has no pages")
        first = pages[0]
        h, w = first.shape[:2] if len(first.shape) >= 2 else (0, 0)
        check_size(path, h, w, max_pixels, pages=count)
        if count > 2:
            raise ScanError(path, f"TIFF has {count} pages; expected 1 (gray/colour) or "
                                  "2 (dual-energy high+low)")
        arrays = []
        for page in pages:
            if page.dtype not in (np.uint8, np.uint16):
                raise ScanError(path, f"unsupported TIFF pixel type {page.dtype}: expected "
                                      "8- or 16-bit unsigned counts")
            ph, pw = page.shape[:2]
            check_size(path, ph, pw, max_pixels)
            pixels = page.asarray()
            if page.axes.startswith("S") and pixels.ndim == 3:  # planar RGB: samples first
                pixels = np.ascontiguousarray(np.moveaxis(pixels, 0, -1))
            arrays.append(pixels)
    dtypes = {a.dtype for a in arrays}
    if len(dtypes) != 1:
        raise ScanError(path, f"TIFF pages have different pixel types: {sorted(map(str, dtypes))}")
    bit_depth = 8 if arrays[0].dtype == np.uint8 else 16
    return LoadedImage(arrays, bit_depth=bit_depth)


def _load_dicom(path: Path, max_pixels: int) -> LoadedImage:
    from detector.dicom import load_dicom

    return load_dicom(path, max_pixels)
