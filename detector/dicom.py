"""DICOM and DICOS digital X-ray input (pydicom), as raw transmission pages.

Convention for dual energy in one file: two frames, frame 0 high energy, frame 1 low.
CT objects are recognised and refused here with a clear message; volumes are read elsewhere.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from detector.errors import ScanError
from detector.imagefiles import LoadedImage, check_size

DICOS_CT = "1.2.840.10008.5.1.4.1.1.501.1"
DICOS_DX_PRESENTATION = "1.2.840.10008.5.1.4.1.1.501.2.1"
DICOS_DX_PROCESSING = "1.2.840.10008.5.1.4.1.1.501.2.2"
DICOM_CT = "1.2.840.10008.5.1.4.1.1.2"
DICOM_ENHANCED_CT = "1.2.840.10008.5.1.4.1.1.2.1"
_CT_CLASSES = {DICOS_CT, DICOM_CT, DICOM_ENHANCED_CT}


def load_dicom(path: Path, max_pixels: int) -> LoadedImage:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        header = pydicom.dcmread(path, stop_before_pixels=True)
    except InvalidDicomError as exc:
        raise ScanError(path, f"invalid DICOM: {exc}") from exc
    sop = str(header.get("SOPClassUID", ""))
    if sop in _CT_CLASSES:
        raise ScanError(path, f"DICOM/DICOS CT slice (SOP class {sop}) is a volume slice, "
                              "not a 2-D X-ray scan")
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
    photometric = str(header.get("PhotometricInterpretation", ""))
    samples = int(header.get("SamplesPerPixel", 1))
    if (samples, photometric) not in ((1, "MONOCHROME1"), (1, "MONOCHROME2"), (3, "RGB")):
        raise ScanError(path, f"unsupported DICOM layout: SamplesPerPixel={samples}, "
                              f"PhotometricInterpretation={photometric!r}")

    dataset = pydicom.dcmread(path)
    if "PixelData" not in dataset:
        raise ScanError(path, "DICOM has no pixel data")
    pixels = dataset.pixel_array  # raises for an unknown or undecodable transfer syntax
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
