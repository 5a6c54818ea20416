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


def _bare_dicom(head: bytes) -> bool:
    """A DICOM data set written without the 128-byte preamble and 'DICM' (old exports): it
    starts with a group 0x0002 or 0x0008 element, explicit or implicit VR little endian. Only
    a hint: the DICOM reader then checks every element a scan needs."""
    if len(head) < 8 or head[:2] not in (b"\x02\x00", b"\x08\x00"):
        return False
    vr = head[4:6]
    return (vr.isalpha() and vr.isupper()) or struct.unpack("<I", head[4:8])[0] < 256


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
    fmt = sniff_format(head) or ("dicom" if _bare_dicom(head) else None)
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
    # imagecodecs' libpng, not OpenCV's: it raises with libpng's reason instead of printing
    # "libpng error: ..." to stderr and returning nothing. Same pixels, same speed.
    import imagecodecs

    data = path.read_bytes()
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise ScanError(path, "truncated PNG: no IHDR header")
    width, height, depth, colour_type = struct.unpack(">IIBB", data[16:26])
    check_size(path, height, width, max_pixels)
    if colour_type == 3 and depth != 8:
        raise ScanError(path, f"palette PNG with {depth}-bit indices (at most {2**depth} "
                              "colours) is not an X-ray export: expected 8- or 16-bit gray, "
                              "or 8-bit RGB")
    if depth not in (8, 16):
        raise ScanError(path, f"unsupported PNG bit depth {depth}: expected 8- or 16-bit gray, "
                              "or 8-bit RGB")
    if colour_type not in (0, 2, 3):
        kinds = {4: "gray+alpha", 6: "RGBA"}
        raise ScanError(path, f"unsupported PNG channel layout "
                              f"({kinds.get(colour_type, colour_type)}): expected gray or RGB")
    if b"IEND" not in data[-12:]:
        raise ScanError(path, "truncated PNG: the file ends before its IEND chunk")
    try:
        pixels = imagecodecs.png_decode(data)
    except imagecodecs.PngError as exc:
        raise ScanError(path, f"unreadable PNG: {exc}") from exc
    channels = 1 if colour_type == 0 else 3
    if pixels.ndim == 3 and pixels.shape[2] == channels + 1:
        # a tRNS chunk (one value or palette entry marked transparent) makes the decoder add
        # an alpha channel; the stored values are the scan, and transparency means nothing here
        pixels = np.ascontiguousarray(pixels[:, :, 0] if channels == 1 else pixels[:, :, :3])
    return LoadedImage([pixels], bit_depth=depth)


def _load_jpeg(path: Path, max_pixels: int) -> LoadedImage:
    import simplejpeg

    data = path.read_bytes()
    height, width, colour, _ = simplejpeg.decode_jpeg_header(data)
    check_size(path, height, width, max_pixels)
    if colour not in ("Gray", "YCbCr", "RGB"):
        raise ScanError(path, f"unsupported JPEG colour space {colour}: expected gray or RGB")
    pixels = decode_jpeg_strictly(path, data, "")
    return LoadedImage([pixels], bit_depth=8)


def decode_jpeg_strictly(path: Path, data: bytes, where: str) -> np.ndarray:
    """``(H, W)`` or ``(H, W, 3)`` pixels of an 8-bit JPEG stream; a `ScanError` if it is cut
    short or corrupt.

    simplejpeg, not Pillow, OpenCV or imagecodecs: their libjpeg runs quietly on past a
    cut-off stream (grey fill, no error) when an end marker follows, and only simplejpeg's
    strict mode turns libjpeg's "premature end of data" warnings into errors.
    """
    import simplejpeg

    try:
        problem = _jpeg_structure_problem(data)
    except (IndexError, ValueError, struct.error):  # a header shorter than its fields
        problem = "a frame or scan header is cut short"
    if problem is None:
        try:
            gray = simplejpeg.decode_jpeg_header(data)[2] == "Gray"
            pixels = simplejpeg.decode_jpeg(data, colorspace="GRAY" if gray else "RGB",
                                            strict=True)
        except ValueError as exc:
            problem = str(exc)
    if problem is not None:
        raise ScanError(path, f"truncated or corrupt JPEG{where}: {problem}")
    return np.ascontiguousarray(pixels[:, :, 0] if gray else pixels)


_SOF_DCT = {0xC0, 0xC1, 0xC2, 0xC9, 0xCA}  # baseline, extended, progressive (Huffman/arith.)
_SOF_OTHER = {0xC3, 0xC5, 0xC6, 0xC7, 0xCB, 0xCD, 0xCE, 0xCF}  # lossless and hierarchical
_NO_LENGTH = {0x01, *range(0xD0, 0xD8)}  # TEM and RSTn stand alone


def _jpeg_structure_problem(data: bytes) -> str | None:
    """Why the JPEG's marker structure is broken or its scans miss part of the image, or None.

    libjpeg warns when a scan is cut short, but not when whole scans are missing: a
    progressive file cut between two scans (plus an end marker) decodes without complaint,
    blurred or grey. So every coefficient of every component must reach full precision.
    """
    pos, ids, coded = 2, [], None
    while True:
        if pos + 2 > len(data):
            return "the file ends before its end-of-image marker"
        if data[pos] != 0xFF:
            return f"expected a marker at byte {pos}, found 0x{data[pos]:02x}"
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker == 0xD9:
            break
        if marker in _NO_LENGTH:
            pos += 2
            continue
        if pos + 4 > len(data):
            return "the file ends inside a marker"
        end = pos + 2 + struct.unpack(">H", data[pos + 2:pos + 4])[0]
        segment = data[pos + 4:end]
        if end > len(data) or end < pos + 4:
            return f"marker 0x{marker:02x} at byte {pos} runs past the end of the file"
        if not segment and (marker in _SOF_DCT or marker == 0xDA):
            return f"empty frame or scan header (marker 0x{marker:02x}) at byte {pos}"
        if marker in _SOF_OTHER:
            return f"unsupported JPEG coding process (marker 0x{marker:02x}): expected DCT"
        if marker in _SOF_DCT:
            if coded is not None:
                return "more than one frame header"
            ids = [segment[6 + 3 * i] for i in range(segment[5])]
            coded = np.zeros((len(ids), 64), bool)  # coefficient coded to full precision
        if marker == 0xDA:
            if coded is None:
                return "a scan before the frame header"
            count = segment[0]
            start, stop, approx = segment[1 + 2 * count:4 + 2 * count]
            for comp in segment[1:1 + 2 * count:2]:
                if comp not in ids:
                    return f"a scan names component {comp}, not in the frame"
                if approx & 0x0F == 0:
                    coded[ids.index(comp), start:stop + 1] = True
            end = _entropy_end(data, end)
        pos = end
    if coded is None or not coded.all():
        return "its scans stop before the whole image is coded (cut between scans)"
    return None


def _entropy_end(data: bytes, pos: int) -> int:
    """Offset of the first marker after the entropy-coded data that starts at ``pos``."""
    while True:
        pos = data.find(b"\xff", pos)
        if pos < 0 or pos + 1 >= len(data):
            return len(data)
        following = data[pos + 1]
        if following == 0x00 or 0xD0 <= following <= 0xD7:  # stuffed byte, restart marker
            pos += 2
        elif following == 0xFF:
            pos += 1
        else:
            return pos


def _load_tiff(path: Path, max_pixels: int) -> LoadedImage:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        pages = tif.pages
        count = len(pages)
        if count == 0:
            raise ScanError(path, "TIFF has no pages")
        first = pages[0]
        # The image size, not shape[:2]: a planar RGB page's shape is (3, height, width).
        check_size(path, first.imagelength, first.imagewidth, max_pixels, pages=count)
        if count > 2:
            raise ScanError(path, f"TIFF has {count} pages; expected 1 (gray/colour) or "
                                  "2 (dual-energy high+low)")
        arrays = [_tiff_page(path, page, max_pixels) for page in pages]
        bits = {page.bitspersample for page in pages}
    dtypes = {a.dtype for a in arrays}
    if len(dtypes) != 1 or len(bits) != 1:
        raise ScanError(path, f"TIFF pages have different pixel types: {sorted(map(str, dtypes))}, "
                              f"{sorted(bits)} bits")
    return LoadedImage(arrays, bit_depth=bits.pop())


# (samples per pixel, TIFF photometric): 0 min-is-white, 1 min-is-black, 2 RGB, 6 YCbCr
# (JPEG-compressed colour: the codec returns RGB).
_TIFF_LAYOUTS = {(1, 0), (1, 1), (3, 2), (3, 6)}


def check_tiff_tiles(path: Path, page, max_pixels: int) -> None:
    """A tiled page is decoded tile by tile at the tile's declared size, whatever the image's:
    a 16x16 image in one 16384x16384 compressed tile took 543 MB from a 543 KB file. So the
    tile is held to the pixel limit too."""
    if page.is_tiled:
        tile = page.tilelength * page.tilewidth * max(1, page.tiledepth)
        if tile > max_pixels:
            raise ScanError(path, f"TIFF tile of {page.tilelength}x{page.tilewidth} = {tile} "
                                  f"pixels exceeds the limit of {max_pixels} (possible "
                                  "decompression bomb)")


def _tiff_page(path: Path, page, max_pixels: int) -> np.ndarray:
    """One page as ``(H, W)`` or ``(H, W, 3)`` counts where the maximum is unattenuated air."""
    height, width = page.imagelength, page.imagewidth
    check_size(path, height, width, max_pixels)
    check_tiff_tiles(path, page, max_pixels)
    if page.dtype not in (np.uint8, np.uint16) or not 8 <= page.bitspersample <= 16:
        raise ScanError(path, f"unsupported TIFF pixel type {page.dtype} "
                              f"({page.bitspersample} bits): expected 8- to 16-bit unsigned counts")
    samples, photometric = page.samplesperpixel, int(page.photometric)
    if (samples, photometric) not in _TIFF_LAYOUTS or page.imagedepth != 1 or (
            photometric == 6 and int(page.compression) != 7):
        raise ScanError(path, f"unsupported TIFF layout: {samples} sample(s) per pixel, "
                              f"photometric {page.photometric.name}, depth {page.imagedepth}, "
                              f"compression {page.compression.name}: expected gray or RGB")
    if int(page.compression) == 7:
        _check_tiff_jpeg(path, page)
    pixels = page.asarray()
    if samples == 3 and pixels.shape == (3, height, width):  # planar RGB: samples first
        pixels = np.ascontiguousarray(np.moveaxis(pixels, 0, -1))
    if pixels.shape != ((height, width) if samples == 1 else (height, width, 3)):
        raise ScanError(path, f"TIFF page decoded to shape {pixels.shape}, expected "
                              f"{height}x{width} with {samples} sample(s)")
    if photometric == 0:  # min-is-white: 0 = white, turn into counts where max = air
        pixels = ((1 << page.bitspersample) - 1 - pixels).astype(pixels.dtype)
    return pixels


def _check_tiff_jpeg(path: Path, page) -> None:
    """Check each JPEG strip or tile of a TIFF page as strictly as a JPEG file: tifffile
    decodes them with imagecodecs, whose libjpeg fills a cut-off strip with grey silently."""
    if page.bitspersample != 8:
        raise ScanError(path, f"{page.bitspersample}-bit JPEG-compressed TIFF is not supported: "
                              "a cut-off strip could not be told from a whole one; expected "
                              "8-bit JPEG, or uncompressed, LZW or Deflate TIFF")
    tables = page.jpegtables or b""
    fh = page.parent.filehandle
    for offset, count in zip(page.dataoffsets, page.databytecounts, strict=True):
        fh.seek(offset)
        strip = fh.read(count)
        if tables:  # abbreviated streams: the shared tables go after the strip's SOI
            strip = strip[:2] + tables[2:-2] + strip[2:]
        decode_jpeg_strictly(path, strip, f" strip in TIFF (at byte {offset})")


def _load_dicom(path: Path, max_pixels: int) -> LoadedImage:
    from detector.dicom import load_dicom

    return load_dicom(path, max_pixels)
