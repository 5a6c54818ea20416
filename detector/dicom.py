"""DICOM and DICOS digital X-ray input (pydicom), as raw transmission pages.

Convention for dual energy in one file: two frames, frame 0 high energy, frame 1 low.
CT objects are recognised and refused here with a clear message; volumes are read elsewhere.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from detector.errors import ScanError
from detector.imagefiles import LoadedImage, check_size

DICOS_CT = "1.2.840.10008.5.1.4.1.1.501.1"
DICOS_DX_PRESENTATION = "1.2.840.10008.5.1.4.1.1.501.2.1"
DICOS_DX_PROCESSING = "1.2.840.10008.5.1.4.1.1.501.2.2"
#: DICOS Threat Detection Report: a detector's result (`detector.dicos`), never a scan.
DICOS_TDR = "1.2.840.10008.5.1.4.1.1.501.3"
DICOM_CT = "1.2.840.10008.5.1.4.1.1.2"
DICOM_ENHANCED_CT = "1.2.840.10008.5.1.4.1.1.2.1"
_CT_CLASSES = {DICOS_CT, DICOM_CT, DICOM_ENHANCED_CT}



class _CappedReader(io.BufferedReader):
    """A file whose ``read(n)`` never asks for more than the bytes left. pydicom reads each
    element's declared length in one call, and CPython allocates ``n`` bytes before reading:
    a damaged length field declaring 4 GB in a 200-byte file would allocate 4 GB (found by
    fuzzing under RLIMIT_AS)."""

    def __init__(self, path: Path) -> None:
        super().__init__(io.FileIO(path, "rb"))
        self._size = os.fstat(self.fileno()).st_size

    def read(self, n: int | None = -1) -> bytes:
        if n is not None and n > 0:
            n = min(n, max(0, self._size - self.tell()))
        return super().read(n)


#: Deflated Explicit VR Little Endian: pydicom inflates the whole data set in one call before
#: any size check, so a 150 KB file became 440 MB (a decompression bomb); no scanner writes it
#: for images (PS3.5 A.5 means it for structured data).
DEFLATED = "1.2.840.10008.1.2.1.99"
_META_BYTES = 8192


def _file_meta_bytes(head: bytes) -> bytes:
    """The file meta group (group 0002, where the transfer syntax is named) of a file starting
    with ``head``: after the preamble and 'DICM', (0002,0000) gives its length. Found without
    parsing, let alone inflating, anything; a data set without that header has no file meta,
    so no transfer syntax of its own (b"")."""
    if head[128:132] != b"DICM" or head[132:136] != b"\x02\x00\x00\x00":
        return b""
    length = int.from_bytes(head[140:144], "little") if head[136:138] == b"UL" else \
        int.from_bytes(head[136:140], "little")  # explicit VR "UL", or implicit
    start = 144 if head[136:138] == b"UL" else 140
    return head[start:start + min(length, _META_BYTES)]


def dcmread(path: Path, header_only: bool = False, force: bool = False):
    """`pydicom.dcmread` through `_CappedReader` (``header_only``: stop before pixel data;
    ``force``: read a data set written without the 128-byte preamble and 'DICM'). A data set
    declaring the deflated transfer syntax is refused before it is inflated."""
    import pydicom

    with _CappedReader(Path(path)) as fh:
        if DEFLATED.encode() in _file_meta_bytes(fh.read(_META_BYTES)):
            raise ScanError(path, f"DICOM with the deflated transfer syntax ({DEFLATED}) is not "
                                  "read: it inflates before any size check (a decompression "
                                  "bomb); export the scan uncompressed or RLE/JPEG")
        fh.seek(0)
        return pydicom.dcmread(fh, stop_before_pixels=header_only, force=force)


def load_dicom(path: Path, max_pixels: int) -> LoadedImage:
    from pydicom.errors import InvalidDicomError

    try:  # force: the caller has seen a preamble, or an old export's bare data set
        header = dcmread(path, header_only=True, force=True)
    except InvalidDicomError as exc:
        raise ScanError(path, f"invalid DICOM: {exc}") from exc
    sop = str(header.get("SOPClassUID", ""))
    if sop in _CT_CLASSES:
        raise ScanError(path, f"DICOM/DICOS CT slice (SOP class {sop}) is a volume slice, "
                              "not a 2-D X-ray scan")
    if sop == DICOS_TDR:
        raise ScanError(path, "a DICOS Threat Detection Report (SOP class ...501.3): a "
                              "detector's result, not a scan (keep --dicos-out outside the "
                              "folders that are scanned)")
    rows, cols = int(header.get("Rows", 0)), int(header.get("Columns", 0))
    frames = int(header.get("NumberOfFrames", 1) or 1)
    check_size(path, rows, cols, max_pixels, pages=frames)
    if frames not in (1, 2):
        raise ScanError(path, f"DICOM has {frames} frames; expected 1 (gray/colour) or "
                              "2 (dual-energy: frame 0 high, frame 1 low)")
    bits = int(header.get("BitsStored", 0))
    if bits not in (8, 10, 12, 14, 16):
        raise ScanError(path, f"unsupported DICOM BitsStored {bits}: expected 8-16")
    if int(header.get("PixelRepresentation", 0)) != 0:
        raise ScanError(path, "signed DICOM pixels are not transmission counts")
    _refuse_modality_lut(path, header)
    photometric = str(header.get("PhotometricInterpretation", ""))
    samples = int(header.get("SamplesPerPixel", 1))
    if (samples, photometric) not in ((1, "MONOCHROME1"), (1, "MONOCHROME2"), (3, "RGB")):
        raise ScanError(path, f"unsupported DICOM layout: SamplesPerPixel={samples}, "
                              f"PhotometricInterpretation={photometric!r}")

    dataset = dcmread(path, force=True)
    if "PixelData" not in dataset:
        raise ScanError(path, "DICOM has no pixel data")
    _name_bare_transfer_syntax(dataset)
    syntax = str(dataset.file_meta.TransferSyntaxUID)
    if syntax in DECODED_HERE:
        pixels = decode_encapsulated(path, dataset, syntax, frames, (rows, cols), bits,
                                     signed=False)
    else:
        try:
            pixels = dataset.pixel_array
        except Exception as exc:  # noqa: BLE001 -- no decoder for its transfer syntax, damaged
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ScanError(path, f"cannot decode the DICOM pixel data (transfer syntax "
                                  f"{syntax}): {first}") from exc
    full_scale = (1 << bits) - 1
    if samples == 1:
        pixels = np.clip(pixels, 0, full_scale).astype(np.uint8 if bits == 8 else np.uint16)
        if photometric == "MONOCHROME1":  # 0 = white: turn into counts where max = air
            pixels = (full_scale - pixels).astype(pixels.dtype)
        pages = [pixels] if frames == 1 else [pixels[0], pixels[1]]
    else:
        if bits != 8:
            raise ScanError(path, f"DICOM RGB must be 8-bit, got BitsStored {bits}")
        pages = [np.ascontiguousarray(pixels.astype(np.uint8))]
    meta = {"sop_class_uid": sop, "modality": str(header.get("Modality", ""))}
    return LoadedImage(pages, bit_depth=bits, meta=meta)


#: Encapsulated transfer syntaxes decoded here, not by pydicom, each with a decoder that raises
#: on a stream cut short (`benchmarks/codec_cuts.py`, 2026-12-01: of 600 random cuts, with and
#: without an end marker appended, the JPEG-LS and lossless JPEG 2000 decoders decoded none; a
#: lossy JPEG 2000 stream 1, cut at a quality-layer boundary, a whole coarser image): JPEG Baseline
#: and Extended, 8-bit (simplejpeg in strict mode); JPEG-LS lossless and near-lossless
#: (CharLS) and JPEG 2000 lossless and lossy (OpenJPEG), both through imagecodecs. pydicom's
#: plugins for them (Pillow, pylibjpeg) grey-fill a cut-off stream, and the workstation
#: installs neither.
JPEG_8BIT = ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51")
JPEG_LS = ("1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81")
JPEG_2000 = ("1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91")
STRICT_SYNTAXES = JPEG_8BIT + JPEG_LS + JPEG_2000
#: JPEG Lossless (Process 14, and its Selection Value 1): refused, since the decoders at hand
#: decode a stream cut short without a word (same benchmark: lj92 2 of 600, libjpeg-turbo 600).
JPEG_LOSSLESS = ("1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70")
#: What `decode_encapsulated` takes (decoding, or refusing with the reason), not pydicom.
DECODED_HERE = STRICT_SYNTAXES + JPEG_LOSSLESS


def decode_encapsulated(path: Path, dataset, syntax: str, frames: int,
                        rows_cols: tuple[int, int], bits: int, signed: bool) -> np.ndarray:
    """Pixels of ``dataset``'s encapsulated frames (a syntax of `DECODED_HERE`): ``(rows,
    cols[, 3])`` for one frame, stacked for more. ``signed``: PixelRepresentation 1, whose
    values JPEG-LS (and some JPEG 2000 writers) store as unsigned ``bits``-bit patterns.
    Every problem, a frame cut short included, is a `ScanError`."""
    from pydicom.encaps import generate_frames

    if syntax in JPEG_LOSSLESS:
        raise ScanError(path, f"JPEG Lossless DICOM ({syntax}) is not read: no decoder here "
                              "reports a stream cut short; export it uncompressed, RLE, "
                              "JPEG-LS or JPEG 2000")
    if syntax in JPEG_8BIT and bits != 8:
        raise ScanError(path, f"JPEG-compressed DICOM with BitsStored {bits} is not read "
                              "(8-bit JPEG only); export it uncompressed, RLE, JPEG-LS or "
                              "JPEG 2000")
    try:
        streams = list(generate_frames(dataset.PixelData, number_of_frames=frames))
    except Exception as exc:  # noqa: BLE001 -- pydicom raises several kinds for damaged items
        raise ScanError(path, f"damaged encapsulated pixel data: {exc}") from exc
    if len(streams) != frames:
        raise ScanError(path, f"DICOM declares {frames} frame(s), its pixel data holds "
                              f"{len(streams)}")
    decoded = [_decode_frame(path, syntax, data, f" (frame {i})" if frames > 1 else " frame")
               for i, data in enumerate(streams)]
    if any(d.shape[:2] != rows_cols for d in decoded):
        raise ScanError(path, f"frames of {sorted({d.shape[:2] for d in decoded})} pixels "
                              f"in a DICOM of {rows_cols[0]}x{rows_cols[1]} (Rows x Columns)")
    pixels = decoded[0] if frames == 1 else np.stack(decoded)
    return _as_stored(path, pixels, bits, signed)


def _decode_frame(path: Path, syntax: str, data: bytes, where: str) -> np.ndarray:
    import imagecodecs

    from detector.imagefiles import decode_jpeg_strictly

    if syntax in JPEG_8BIT:
        return decode_jpeg_strictly(path, data, where)
    name, decode = (("JPEG-LS", imagecodecs.jpegls_decode) if syntax in JPEG_LS else
                    ("JPEG 2000", imagecodecs.jpeg2k_decode))
    try:
        return np.asarray(decode(data))
    except Exception as exc:  # noqa: BLE001 -- imagecodecs raises one error class per codec
        raise ScanError(path, f"truncated or corrupt {name}{where}: {exc}") from exc


def _as_stored(path: Path, pixels: np.ndarray, bits: int, signed: bool) -> np.ndarray:
    """Decoded values as the data set's stored values: signed ones sign-extended from
    ``bits`` where the codec gave their unsigned pattern."""
    if signed and pixels.dtype.kind == "u":
        # the codec's precision is BitsStored, or (values stored sign-extended, as many CT
        # writers do, then encoded) the whole word: a value past 2**BitsStored says which
        precision = bits if int(pixels.max(initial=0)) < 1 << bits else 8 * pixels.itemsize
        wide = pixels.astype(np.int64)
        return np.where(wide >= 1 << (precision - 1), wide - (1 << precision),
                        wide).astype(np.int32)
    if not signed and pixels.dtype.kind == "i":
        if pixels.min() < 0:
            raise ScanError(path, "the compressed frame holds negative values where the DICOM "
                                  "says its pixels are unsigned (PixelRepresentation 0)")
        return pixels.astype(np.uint16)
    return pixels


def _refuse_modality_lut(path: Path, header) -> None:
    """A DX/DICOS DX modality LUT that is not the identity is an error, not ignored.

    Scans are read as stored transmission counts whose full scale is ``2**BitsStored - 1``
    (unattenuated air). A DX rescale's output units are unspecified (RescaleType "US"), so
    rescaled values have no known full scale: neither ignoring the rescale nor applying it
    gives a transmission we can trust, and the scan goes to manual check.
    """
    values = []
    for name, identity in (("RescaleSlope", 1.0), ("RescaleIntercept", 0.0)):
        value = header.get(name)
        if value not in (None, "") and float(value) != identity:
            values.append(f"{name} {value}")
    if "ModalityLUTSequence" in header:
        values.append("a Modality LUT Sequence")
    if values:
        raise ScanError(path, f"DICOM modality LUT is not the identity ({', '.join(values)}): "
                              "X-ray scans are read as stored counts with full scale "
                              "2**BitsStored - 1, and rescaled DX values have no known full scale")


def _name_bare_transfer_syntax(dataset) -> None:
    """A bare data set (no file meta) holds native pixels in the encoding it was read with;
    pydicom needs that named to decode them."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    meta = dataset.get("file_meta") or FileMetaDataset()
    if "TransferSyntaxUID" in meta:
        return
    implicit, little = dataset.original_encoding
    meta.TransferSyntaxUID = (ImplicitVRLittleEndian if implicit else
                              ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
    dataset.file_meta = meta
