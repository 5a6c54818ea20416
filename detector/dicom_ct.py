"""DICOM and DICOS CT input (pydicom): a series of slices, or one multi-frame file, as a `Volume`.

Slices are ordered by their position along the slice normal (ImagePositionPatient and
ImageOrientationPatient), or by InstanceNumber when no position is stored. Stored values are
turned into HU with each slice's RescaleSlope/RescaleIntercept. Every inconsistency (mixed
series, different sizes or spacing, gaps, duplicate positions, a gantry tilt) is a `ScanError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detector.dicom import (
    DECODED_HERE,
    DICOM_CT,
    DICOM_ENHANCED_CT,
    DICOS_CT,
    dcmread,
    decode_encapsulated,
)
from detector.errors import ScanError
from detector.imagefiles import sniff_format
from detector.volume import Volume, check_voxel_mm
from detector.volume_readers import check_decoded_size

CT_SOP_CLASSES = frozenset({DICOS_CT, DICOM_CT, DICOM_ENHANCED_CT})
#: Media Storage Directory: a DICOMDIR, the index a DICOM medium keeps beside its images.
MEDIA_DIRECTORY = "1.2.840.10008.1.3.10"
#: Slice gaps may differ by this fraction of the median gap (rounding in stored positions).
SPACING_TOLERANCE = 0.05
#: Pixel spacings of a series' slices may differ by this fraction: DS strings are written at
#: different precision (0.9765625 on one slice, 0.976562 on the next).
PIXEL_SPACING_RTOL = 1e-3
#: Largest gantry tilt (degrees), stated or seen in the slice positions. A tilted acquisition
#: stacks sheared slices; the reader does not shear them back, so boxes would be misplaced
#: (0.5 degrees shifts 300 mm of slices by 2.6 mm, under a 4 mm model voxel).
MAX_TILT_DEG = 0.5
#: Decimals kept of a slice gap measured from positions (their differences carry float noise).
GAP_DECIMALS = 6


@dataclass(frozen=True)
class _Slice:
    """One 2-D plane of the series: where it is and how to turn its values into HU."""

    path: Path
    frame: int | None  # frame index in a multi-frame file, None for a single-frame file
    position: float | None  # mm along the slice normal
    across: tuple[float, float, float] | None  # the position's part in the slice plane (mm)
    instance: int
    slope: float
    intercept: float


def read_header(path: Path):
    """The dataset without pixel data; a `ScanError` if it is not readable DICOM."""
    from pydicom.errors import InvalidDicomError

    try:
        header = dcmread(path, header_only=True)
        header.get("SOPClassUID")  # pydicom decodes lazily: a damaged element raises here
        return header
    except InvalidDicomError as exc:
        raise ScanError(path, f"invalid DICOM: {exc}") from exc
    except Exception as exc:  # pydicom raises many types for damaged files
        raise ScanError(path, f"unreadable DICOM header ({type(exc).__name__}: {exc})") from exc


def is_ct(header) -> bool:
    return str(header.get("SOPClassUID", "")) in CT_SOP_CLASSES


def is_dicom_file(path: Path) -> bool:
    """True if ``path`` is a readable file with the DICOM preamble (any suffix, or none)."""
    try:
        with Path(path).open("rb") as fh:
            return sniff_format(fh.read(132)) == "dicom"
    except OSError:
        return False


def is_media_directory(path: Path, header=None) -> bool:
    """True for a DICOMDIR: named ``DICOMDIR`` (PS3.10 reserves the name on media) or of SOP
    class Media Storage Directory in its file meta (``header``, read if not given). It indexes
    the images beside it and is never one of them."""
    if Path(path).name.upper() == "DICOMDIR":
        return True
    if header is None:
        try:
            header = read_header(path)
        except ScanError:
            return False
    meta = getattr(header, "file_meta", None) or {}
    return str(meta.get("MediaStorageSOPClassUID", "")) == MEDIA_DIRECTORY


def sort_dicom_folder(folder: Path) -> tuple[list[Path], list[Path]]:
    """(CT files, damaged files) directly in ``folder``, by name.

    Any suffix or none counts: slices are often named ``IM0001``. Damaged: DICOM files whose
    header cannot be read and, where the folder holds CT slices, files named like slices
    (`_named_like_a_slice`) with no DICOM content at all (empty, garbled): without them the
    rest could stack into a shorter volume that looks whole. Other DICOM files (DX, a
    report) and a DICOMDIR (`is_media_directory`) are in neither list.
    """
    ct, damaged, unknown = [], [], []
    for path in sorted(Path(folder).iterdir()):
        if not path.is_file() or path.name.upper() == "DICOMDIR":
            continue
        if not is_dicom_file(path):
            if _named_like_a_slice(path):
                unknown.append(path)
            continue
        try:
            header = read_header(path)
        except ScanError:
            damaged.append(path)
            continue
        if is_media_directory(path, header):
            continue
        if "SOPClassUID" not in header:  # cut short before its identity: damaged
            damaged.append(path)
        elif is_ct(header):
            ct.append(path)
    return ct, sorted(damaged + unknown) if ct else damaged


#: Suffixes DICOM slices are stored under (none is common: ``IM0001``).
SLICE_SUFFIXES = ("", ".dcm", ".dicom", ".dcs", ".ima")


#: Files media exports and desktops put beside images, never slices (DICOMDIR apart).
NOT_SLICES = frozenset({"LOCKFILE", "VERSION", "README", "ICON\r"})


def _named_like_a_slice(path: Path) -> bool:
    """True for a file named as the slices of a series are (no suffix, a DICOM one, or the
    last number of a UID, ``CT.1.2.840....7``, as storescp names them) that is not hidden
    (``.DS_Store``), an AppleDouble file (``._IM0001``) or a media export's index or note
    (`NOT_SLICES`). Beside CT slices such a file without DICOM content (empty, cut before its
    preamble, overwritten) is a slice that cannot be read: the series is incomplete,
    wherever the slice stood."""
    suffix = path.suffix.lower()
    return (not path.name.startswith(".") and path.name.upper() not in NOT_SLICES
            and (suffix in SLICE_SUFFIXES or suffix[1:].isdigit()))


def ct_folder_files(folder: Path) -> list[Path]:
    """The CT slices of ``folder``; a `ScanError` if one of its DICOM files is unreadable, since
    a volume silently missing a slice could hide a packet."""
    ct, damaged = sort_dicom_folder(folder)
    if ct and damaged:
        bad = damaged[0]
        if not is_dicom_file(bad):
            size = bad.stat().st_size
            raise ScanError(bad, "unreadable file among the CT slices: " + (
                "empty (0 bytes)" if size == 0 else f"{size} bytes without the DICOM preamble") +
                "; the series is incomplete")
        read_header(bad)  # raises with the reason if it can
        raise ScanError(bad, "damaged DICOM file among the CT slices: no SOPClassUID")
    if not ct:
        raise ScanError(folder, "folder holds no DICOM/DICOS CT slices")
    return ct


def read_ct_series(paths: Sequence[Path], volume_id: str, max_voxels: int,
                   max_bytes: int) -> Volume:
    """One volume from ``paths``: single-frame CT slices of one series, or one multi-frame file.
    ``max_voxels``/``max_bytes``: `detector.volume_readers.check_decoded_size`."""
    if not paths:
        raise ScanError(None, f"{volume_id}: no DICOM CT files")
    try:
        return _read_ct_series(paths, volume_id, max_voxels, max_bytes)
    except ScanError:
        raise
    except MemoryError as exc:
        raise ScanError(paths[0], "CT volume too large to decode in memory") from exc
    except Exception as exc:  # noqa: BLE001 -- pydicom decodes header elements lazily, so a
        # damaged element raises (NotImplementedError, ValueError, ...) wherever it is read
        raise ScanError(paths[0], f"malformed CT file ({type(exc).__name__}: {exc})") from exc


def series_order(paths: Sequence[Path]) -> list[Path]:
    """``paths``, one series' CT files, in the order `read_ct_series` stacks them (volume
    slice 0 first: ascending position); a `ScanError` where that order cannot be told."""
    paths = [Path(p) for p in paths]
    if len(paths) < 2:
        return paths
    try:
        headers = [(p, read_header(p)) for p in paths]
        slices, _ = _order(*headers[0], [_single(p, h) for p, h in headers])
    except ScanError:
        raise
    except Exception as exc:  # noqa: BLE001 -- as in read_ct_series: lazily decoded elements
        raise ScanError(paths[0], f"malformed CT file ({type(exc).__name__}: {exc})") from exc
    return [s.path for s in slices]


def _read_ct_series(paths: Sequence[Path], volume_id: str, max_voxels: int,
                    max_bytes: int) -> Volume:
    headers = [(Path(p), read_header(Path(p))) for p in paths]
    for path, header in headers:
        if not is_ct(header):
            raise ScanError(path, f"not a CT slice (SOP class {header.get('SOPClassUID', '?')}); "
                                  f"expected one of {sorted(CT_SOP_CLASSES)}")
    _check_one_series(headers)
    first_path, first = headers[0]
    multi = [p for p, h in headers if int(h.get("NumberOfFrames", 1) or 1) > 1]
    if multi and len(headers) > 1:
        raise ScanError(multi[0], "a multi-frame CT file must be alone in its folder, "
                                  f"found {len(headers)} CT files")
    rows, cols, pixel_mm = _plane_geometry(first_path, first)
    for path, header in headers[1:]:
        r, c, mm = _plane_geometry(path, header)
        if (r, c) != (rows, cols) or not np.allclose(mm, pixel_mm, rtol=PIXEL_SPACING_RTOL,
                                                     atol=0.0):
            raise ScanError(path, f"slice size/spacing {(r, c, mm)} differs from "
                                  f"{(rows, cols, pixel_mm)} in {first_path.name}")
    slices = _frames(first_path, first) if multi else [_single(p, h) for p, h in headers]
    # decoded into float32 HU (`_decode`), one file's stored values at a time
    check_decoded_size(first_path, (len(slices), rows, cols), np.dtype(np.float32),
                       max_voxels, max_bytes)
    slices, z_mm = _order(first_path, first, slices)
    try:
        voxel = check_voxel_mm((z_mm, *pixel_mm))
    except ValueError as exc:
        raise ScanError(first_path, f"slice spacing {z_mm:g} mm: {exc}") from exc
    hu = _decode(slices, rows, cols)
    meta = {"sop_class_uid": str(first.SOPClassUID), "modality": str(first.get("Modality", "")),
            "series_instance_uid": str(first.get("SeriesInstanceUID", "")),
            "study_instance_uid": str(first.get("StudyInstanceUID", "")),
            "sop_instance_uids": [str(h.get("SOPInstanceUID", "")) for _, h in headers],
            "format": "dicom"}
    sources = tuple(dict.fromkeys(str(s.path) for s in slices))
    return Volume(id=volume_id, hu=hu, voxel_mm=voxel, sources=sources, meta=meta)


def _check_one_series(headers) -> None:
    series = {}
    for path, header in headers:
        series.setdefault(str(header.get("SeriesInstanceUID", "")), path)
    if len(series) > 1:
        names = ", ".join(f"{uid or '(none)'} in {p.name}" for uid, p in series.items())
        raise ScanError(headers[0][0], f"mixed series: {len(series)} SeriesInstanceUIDs "
                                       f"({names}); put one series per folder")


def _functional(header, keyword: str, sequence: str, frame: int | None = None):
    """``keyword`` from the top level, the per-frame or the shared functional groups."""
    if keyword in header:
        return header.get(keyword)
    groups = []
    if frame is not None and "PerFrameFunctionalGroupsSequence" in header:
        per_frame = header.PerFrameFunctionalGroupsSequence
        if frame >= len(per_frame):
            raise ValueError(f"PerFrameFunctionalGroupsSequence has {len(per_frame)} items, "
                             f"but frame {frame + 1} is needed (NumberOfFrames "
                             f"{header.get('NumberOfFrames')})")
        groups.append(per_frame[frame])
    if "SharedFunctionalGroupsSequence" in header:
        groups.append(header.SharedFunctionalGroupsSequence[0])
    for group in groups:
        if sequence in group and len(group[sequence].value) and keyword in group[sequence][0]:
            return group[sequence][0].get(keyword)
    return None


def _plane_geometry(path: Path, header) -> tuple[int, int, tuple[float, float]]:
    from pydicom.multival import MultiValue

    rows, cols = int(header.get("Rows", 0)), int(header.get("Columns", 0))
    if rows < 2 or cols < 2:
        raise ScanError(path, f"slice size {rows}x{cols} (rows x columns) is too small")
    if int(header.get("SamplesPerPixel", 1)) != 1:
        raise ScanError(path, f"CT slices must have one sample per pixel, got "
                              f"{header.get('SamplesPerPixel')}")
    spacing = _functional(header, "PixelSpacing", "PixelMeasuresSequence", 0)
    if spacing is not None and not isinstance(spacing, (list, tuple, MultiValue)):
        raise ScanError(path, f"PixelSpacing must hold 2 values (row, column), got {spacing!r}")
    if spacing is None or len(spacing) != 2:
        raise ScanError(path, "no PixelSpacing: the voxel size is unknown")
    pixel_mm = (float(spacing[0]), float(spacing[1]))  # (between rows, between columns)
    try:
        check_voxel_mm((1.0, *pixel_mm))
    except ValueError as exc:
        raise ScanError(path, f"bad PixelSpacing {list(spacing)}: {exc}") from exc
    return rows, cols, pixel_mm


def _normal(path: Path, header, frame: int | None) -> np.ndarray | None:
    orient = _functional(header, "ImageOrientationPatient", "PlaneOrientationSequence", frame)
    if orient is None:
        return None
    if len(orient) != 6:
        raise ScanError(path, f"ImageOrientationPatient must have 6 values, got {list(orient)}")
    row, col = np.asarray(orient[:3], float), np.asarray(orient[3:], float)
    normal = np.cross(row, col)
    if not np.isclose(np.linalg.norm(normal), 1.0, atol=1e-2):
        raise ScanError(path, f"ImageOrientationPatient {list(orient)} is not two unit vectors "
                              "at right angles")
    return normal


def _position(path: Path, header, frame: int | None):
    """(mm along the slice normal, the rest of ImagePositionPatient), or (None, None)."""
    ipp = _functional(header, "ImagePositionPatient", "PlanePositionSequence", frame)
    if ipp is None:
        return None, None
    normal = _normal(path, header, frame)
    if normal is None:
        raise ScanError(path, "ImagePositionPatient without ImageOrientationPatient: the slice "
                              "order is unknown")
    xyz = np.asarray(ipp, float)
    along = float(np.dot(xyz, normal))
    return along, tuple(float(v) for v in xyz - along * normal)


def _check_tilt(path: Path, header, frame: int | None) -> None:
    tilt = _functional(header, "GantryDetectorTilt", "CTAcquisitionDetailsSequence", frame)
    if tilt is not None and abs(float(tilt)) > MAX_TILT_DEG:
        raise ScanError(path, f"GantryDetectorTilt {float(tilt):g} degrees: tilted slices "
                              "stack into a sheared volume, which is not corrected; refused "
                              f"(at most {MAX_TILT_DEG:g} degrees)")


def _rescale(path: Path, header, frame: int | None) -> tuple[float, float]:
    slope = _functional(header, "RescaleSlope", "PixelValueTransformationSequence", frame)
    intercept = _functional(header, "RescaleIntercept", "PixelValueTransformationSequence", frame)
    if slope is None or intercept is None:
        raise ScanError(path, "no RescaleSlope/RescaleIntercept: stored values cannot be "
                              "turned into HU")
    kind = _functional(header, "RescaleType", "PixelValueTransformationSequence", frame)
    if kind not in (None, "", "HU"):
        raise ScanError(path, f"RescaleType {kind!r}: expected HU")
    if not float(slope) > 0:
        raise ScanError(path, f"RescaleSlope must be > 0, got {slope}")
    return float(slope), float(intercept)


def _single(path: Path, header) -> _Slice:
    slope, intercept = _rescale(path, header, None)
    _check_tilt(path, header, None)
    return _Slice(path, None, *_position(path, header, None),
                  int(header.get("InstanceNumber", 0) or 0), slope, intercept)


def _frames(path: Path, header) -> list[_Slice]:
    count = int(header.NumberOfFrames)
    out = []
    for i in range(count):
        slope, intercept = _rescale(path, header, i)
        _check_tilt(path, header, i)
        out.append(_Slice(path, i, *_position(path, header, i), i + 1, slope, intercept))
    return out


def _order(path: Path, header, slices: list[_Slice]) -> tuple[list[_Slice], float]:
    """Slices sorted along z and the gap between them (mm)."""
    have = [s.position is not None for s in slices]
    if all(have):
        slices = sorted(slices, key=lambda s: s.position)
        positions = np.array([s.position for s in slices])
        gaps = np.diff(positions)
        if len(gaps) and gaps.min() < 1e-3:
            dup = slices[int(np.argmin(gaps)) + 1]
            raise ScanError(dup.path, f"two slices at the same position ({dup.position:.3f} mm): "
                                      "duplicate or mixed acquisitions")
        gap = _even_gap(path, gaps, slices)
        _check_shear(path, slices, gap)
        return slices, gap
    if any(have):
        missing = next(s for s in slices if s.position is None)
        raise ScanError(missing.path, "some slices have ImagePositionPatient and some do not")
    instances = [s.instance for s in slices]
    if len(set(instances)) != len(instances):
        raise ScanError(path, "slices have neither positions nor distinct InstanceNumbers: "
                              "their order is unknown")
    gap = _functional(header, "SpacingBetweenSlices", "PixelMeasuresSequence", 0)
    gap = gap if gap is not None else _functional(header, "SliceThickness",
                                                  "PixelMeasuresSequence", 0)
    if gap is None:
        raise ScanError(path, "no slice positions, SpacingBetweenSlices or SliceThickness: "
                              "the slice spacing is unknown")
    return sorted(slices, key=lambda s: s.instance), float(gap)


def _check_shear(path: Path, slices: list[_Slice], gap: float) -> None:
    """Refuse slices that step sideways as they advance (a gantry tilt not stated in the
    header): stacked straight, they would misplace every box."""
    across = np.array([s.across for s in slices])
    drift = float(np.linalg.norm(across[-1] - across[0])) / (len(slices) - 1)
    tilt = float(np.degrees(np.arctan2(drift, gap)))
    if tilt > MAX_TILT_DEG:
        raise ScanError(path, f"slices are sheared: each is shifted {drift:.3f} mm in its own "
                              f"plane per {gap:.3f} mm step (a gantry tilt of {tilt:.1f} "
                              "degrees), which is not corrected; refused")


def _even_gap(path: Path, gaps: np.ndarray, slices: list[_Slice]) -> float:
    """The series' slice gap; a `ScanError` naming the two slices around the worst gap when
    gaps differ (a slice missing or one too many)."""
    if len(gaps) == 0:
        raise ScanError(path, "a CT volume needs at least 2 slices, got 1")
    median = float(np.median(gaps))
    worst = int(np.argmax(np.abs(gaps - median)))
    if abs(gaps[worst] - median) > SPACING_TOLERANCE * median:
        before, after = slices[worst], slices[worst + 1]
        raise ScanError(after.path, f"uneven slice spacing ({gaps.min():.3f} to "
                                    f"{gaps.max():.3f} mm; {gaps[worst]:.3f} mm from "
                                    f"{_where(before)} to here, {median:.3f} mm elsewhere): "
                                    "missing or extra slices")
    return round(median, GAP_DECIMALS)


def _where(s: _Slice) -> str:
    return s.path.name if s.frame is None else f"frame {s.frame} of {s.path.name}"


def _decode(slices: list[_Slice], rows: int, cols: int) -> np.ndarray:
    hu = np.empty((len(slices), rows, cols), np.float32)
    cache: dict[Path, np.ndarray] = {}
    for i, s in enumerate(slices):
        if s.path not in cache:
            cache.clear()
            cache[s.path] = _pixels(s.path)
        pixels = cache[s.path]
        plane = pixels if s.frame is None else pixels[s.frame]
        if plane.shape != (rows, cols):
            raise ScanError(s.path, f"pixel data has shape {plane.shape}, expected {(rows, cols)}")
        hu[i] = plane.astype(np.float32) * np.float32(s.slope) + np.float32(s.intercept)
    return hu


def _pixels(path: Path) -> np.ndarray:
    """Stored values of every frame; every decoding problem becomes a `ScanError`."""
    from pydicom.uid import UID

    try:
        dataset = dcmread(path)
    except Exception as exc:  # truncated or damaged after the header
        raise ScanError(path, f"unreadable DICOM ({type(exc).__name__}: {exc})") from exc
    if "PixelData" not in dataset:
        raise ScanError(path, "DICOM has no pixel data")
    syntax = UID(str(dataset.file_meta.get("TransferSyntaxUID", "")))
    if not syntax.is_transfer_syntax:
        raise ScanError(path, f"unknown transfer syntax {str(syntax)!r}")
    if str(syntax) in DECODED_HERE:
        try:
            shape = (int(dataset.Rows), int(dataset.Columns))
            frames = int(dataset.get("NumberOfFrames", 1) or 1)
            bits = int(dataset.BitsStored)
            signed = int(dataset.get("PixelRepresentation", 0)) == 1
        except (AttributeError, TypeError, ValueError) as exc:
            raise ScanError(path, f"no usable Rows/Columns/BitsStored ({exc})") from exc
        return decode_encapsulated(path, dataset, str(syntax), frames, shape, bits, signed)
    if not syntax.is_compressed:
        frames = int(dataset.get("NumberOfFrames", 1) or 1)
        expected = int(dataset.Rows) * int(dataset.Columns) * frames * (
            int(dataset.get("BitsAllocated", 16)) // 8)
        if len(dataset.PixelData) < expected:
            raise ScanError(path, f"truncated: pixel data holds {len(dataset.PixelData)} bytes, "
                                  f"expected {expected}")
    try:
        pixels = dataset.pixel_array
    except Exception as exc:  # truncated pixel data, missing decoder plugin, corrupt stream
        raise ScanError(path, f"cannot decode pixel data ({syntax.name}): "
                              f"{type(exc).__name__}: {exc}") from exc
    if pixels.dtype.kind not in "iu":
        raise ScanError(path, f"unsupported CT pixel type {pixels.dtype}: expected integers")
    return pixels
