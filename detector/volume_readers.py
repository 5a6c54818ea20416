"""Read CT volumes from disk: a folder of DICOM/DICOS CT slices, a multi-page TIFF, or ``.npy``.

TIFF and ``.npy`` carry no voxel size, so it comes from a sidecar ``NAME.json`` next to the
file (``{"voxel_mm": [z, y, x]}``, optionally ``rescale_slope``/``rescale_intercept`` to turn
stored values into HU) or, for a file without one, from the caller. Nothing is guessed: without
a voxel size, or with values that do not look like HU, the volume is refused with a `ScanError`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from detector.errors import ScanError
from detector.imagefiles import check_tiff_tiles
from detector.volume import Volume, check_voxel_mm, hu_scale_problem

#: Largest volume accepted (voxels), about 1 GB as float32; protects memory on the workstation.
DEFAULT_MAX_VOXELS = 256_000_000
#: Largest array a volume may decode to (bytes): its stored values, or the float32 HU, whichever
#: is larger. Counted in voxels alone, a float64 volume took 2 GB plus a 1 GB float32 copy.
DEFAULT_MAX_VOLUME_BYTES = 1 << 30
#: Stored dtypes accepted in .npy/TIFF. uint16 cannot hold negative HU, so it needs an intercept.
_DTYPES = ("int16", "uint16", "int32", "float32", "float64")
_SIDECAR_KEYS = {"voxel_mm", "rescale_slope", "rescale_intercept", "units"}
#: A given voxel size differing from a file's own by more than this fraction is reported.
VOXEL_RTOL = 1e-3

log = logging.getLogger(__name__)


def read_volume(path: str | Path, voxel_mm=None, max_voxels: int = DEFAULT_MAX_VOXELS,
                volume_id: str | None = None,
                max_bytes: int = DEFAULT_MAX_VOLUME_BYTES) -> Volume:
    """The volume at ``path``: ``.npy``, TIFF, a multi-frame DICOM CT file, or a folder of
    DICOM/DICOS CT slices.

    ``voxel_mm`` ``(z, y, x)`` is the voxel size of a TIFF/``.npy`` without a sidecar. A file's
    own voxel size (its sidecar, a DICOM header) always wins: a ``voxel_mm`` that differs from
    it is not used, and a warning naming the file says so.
    ``max_voxels`` and ``max_bytes`` (see `check_decoded_size`) are checked from the headers,
    before any voxel is decoded.
    """
    from detector.dicom_ct import ct_folder_files, is_dicom_file, read_ct_series

    path = Path(path)
    vid = volume_id or (path.name if path.is_dir() else path.stem)
    limits = (max_voxels, max_bytes)
    if path.is_dir() or is_dicom_file(path):  # slices, or one multi-frame CT file
        files = ct_folder_files(path) if path.is_dir() else [path]
        volume = read_ct_series(files, vid, *limits)
        _ignored_voxel_mm(path, volume.voxel_mm, voxel_mm, "its DICOM header")
        return volume
    if not path.is_file():
        raise ScanError(path, "file not found")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        stored = _load_npy(path, *limits)
    elif suffix in (".tif", ".tiff"):
        stored = _load_tiff(path, *limits)
    else:
        raise ScanError(path, f"not a volume format: expected .npy, .tif/.tiff or a folder of "
                              f"DICOM CT slices, got {suffix or 'no suffix'}")
    fmt = suffix.lstrip(".")
    return _volume_from_array(path, vid, stored, _sidecar(path), voxel_mm, fmt)


def _volume_from_array(path: Path, vid: str, stored: np.ndarray, sidecar: dict, voxel_mm,
                       fmt: str) -> Volume:
    side, own = path.with_suffix(".json").name, sidecar.get("voxel_mm")
    voxel, where = (own, side) if own is not None else (voxel_mm, "--voxel-mm")
    if voxel is None:
        raise ScanError(path, f"voxel size unknown: write {side} next to it with "
                              '{"voxel_mm": [z, y, x]} or pass --voxel-mm Z Y X')
    try:
        voxel = check_voxel_mm(voxel)
    except ValueError as exc:
        raise ScanError(path, f"{where}: {exc}") from exc
    if own is not None:
        _ignored_voxel_mm(path, voxel, voxel_mm, side)
    slope = float(sidecar.get("rescale_slope", 1.0))
    intercept = sidecar.get("rescale_intercept")
    if stored.dtype == np.uint16 and intercept is None:
        raise ScanError(path, "uint16 values cannot hold negative HU: give rescale_intercept "
                              f"(e.g. -1024) in {path.stem}.json")
    hu = stored.astype(np.float32, copy=False)  # the reader's own array: no copy needed
    if slope != 1.0 or intercept:  # in place: a float32 volume is up to 1 GB
        hu *= np.float32(slope)
        hu += np.float32(intercept or 0.0)
    problem = hu_scale_problem(hu)
    if problem:
        raise ScanError(path, problem)
    try:
        return Volume(id=vid, hu=hu, voxel_mm=voxel, sources=(str(path),),
                      meta={"format": fmt, "stored_dtype": str(stored.dtype)})
    except ValueError as exc:
        raise ScanError(path, str(exc)) from exc


def _ignored_voxel_mm(path: Path, own: tuple[float, float, float], given, where: str) -> None:
    """Warn that ``given`` (``--voxel-mm``) is not used for ``path``, whose own voxel size
    ``own`` (from ``where``) differs from it; the flag is for files without one."""
    if given is None:
        return
    try:
        same = np.allclose(np.asarray(given, float), own, rtol=VOXEL_RTOL, atol=0.0)
    except (TypeError, ValueError):
        same = False
    if not same:
        log.warning("%s: --voxel-mm %s not used: the file's own voxel size %s mm (from %s) "
                    "wins", path, given, own, where)


def check_decoded_size(path: Path, shape: tuple[int, ...], dtype: np.dtype, max_voxels: int,
                       max_bytes: int) -> None:
    """Refuse a volume of ``shape`` stored as ``dtype`` whose voxels exceed ``max_voxels`` or
    whose largest decoded array (stored values or float32 HU) exceeds ``max_bytes``."""
    voxels = int(np.prod(shape, dtype=np.int64))
    if voxels > max_voxels:
        raise ScanError(path, f"volume of {shape} voxels exceeds the limit of {max_voxels}")
    decoded = voxels * max(np.dtype(dtype).itemsize, 4)
    if decoded > max_bytes:
        raise ScanError(path, f"volume of {shape} {np.dtype(dtype)} voxels decodes to "
                              f"{decoded} bytes, over the limit of {max_bytes} bytes")


def _check_array_header(path: Path, shape: tuple[int, ...], dtype: np.dtype,
                        max_voxels: int, max_bytes: int) -> None:
    if len(shape) != 3:
        raise ScanError(path, f"expected a 3-D array (slices, rows, columns), got shape {shape}")
    if min(shape) < 2:
        raise ScanError(path, f"volume has shape {shape}: expected at least 2 voxels per axis")
    if dtype.name not in _DTYPES:
        raise ScanError(path, f"unsupported dtype {dtype}: expected one of {', '.join(_DTYPES)}")
    check_decoded_size(path, shape, dtype, max_voxels, max_bytes)


def _load_npy(path: Path, max_voxels: int, max_bytes: int) -> np.ndarray:
    try:
        with path.open("rb") as fh:
            version = np.lib.format.read_magic(fh)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, _, dtype = read_header(fh)
            data_bytes = path.stat().st_size - fh.tell()
    # The header is a Python literal parsed by numpy: damaged ones raise ValueError,
    # SyntaxError, tokenize.TokenError, ...; every one means "not a valid .npy".
    except Exception as exc:  # noqa: BLE001
        raise ScanError(path, f"not a valid .npy file: {exc}") from exc
    if dtype.hasobject:
        raise ScanError(path, "object arrays are refused (they need pickle)")
    _check_array_header(path, shape, dtype, max_voxels, max_bytes)
    declared = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if data_bytes < declared:  # checked before np.load allocates the declared size
        raise ScanError(path, f"unreadable .npy: truncated, the header declares {shape} {dtype} "
                              f"({declared} bytes) but the file holds {data_bytes}")
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:  # truncated data after a good header
        raise ScanError(path, f"unreadable .npy: {exc}") from exc
    return np.ascontiguousarray(array)


def _load_tiff(path: Path, max_voxels: int, max_bytes: int) -> np.ndarray:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            pages = tif.pages
            if len(pages) < 3:
                raise ScanError(path, f"a TIFF volume needs one page per slice (at least 3), got "
                                      f"{len(pages)}; 1-2 pages are read as a 2-D scan")
            shape = (len(pages), *pages[0].shape)
            _check_array_header(path, shape, np.dtype(pages[0].dtype), max_voxels, max_bytes)
            _check_tiff_data_present(path, pages)
            for page in pages:
                check_tiff_tiles(path, page, max_voxels)
            volume = np.empty(shape, pages[0].dtype)  # filled page by page: no second copy
            for i, page in enumerate(pages):
                if page.shape != shape[1:] or page.dtype != pages[0].dtype:
                    raise ScanError(path, f"page {i} is {page.shape} {page.dtype}, page 0 is "
                                          f"{shape[1:]} {pages[0].dtype}: pages must match")
                plane = page.asarray()
                if plane.shape != shape[1:]:  # a damaged page decodes to another shape
                    raise ScanError(path, f"page {i} decodes to {plane.shape}, its header says "
                                          f"{shape[1:]}")
                volume[i] = plane
    except ScanError:
        raise
    except Exception as exc:  # tifffile raises many types for damaged files
        raise ScanError(path, f"unreadable TIFF ({type(exc).__name__}: {exc})") from exc
    return volume


def _check_tiff_data_present(path: Path, pages) -> None:
    """Uncompressed pages must hold the bytes their headers declare, inside the file: tifffile
    allocates each page's declared size before reading it, and a flipped header byte can
    declare a gigabyte in a few kilobytes (found by fuzzing: 1.2 GB peak RSS)."""
    size = path.stat().st_size
    for i, page in enumerate(pages):
        if page.compression != 1 or page.dtype is None:  # compressed: the limits bound it
            continue
        declared = int(np.prod(page.shape, dtype=np.int64)) * np.dtype(page.dtype).itemsize
        offsets, counts = page.dataoffsets, page.databytecounts
        held = sum(int(c) for c in counts)
        end = max((int(o) + int(c) for o, c in zip(offsets, counts, strict=False)), default=0)
        if held < declared or end > size:
            raise ScanError(path, f"truncated TIFF: page {i} declares {page.shape} "
                                  f"{page.dtype} ({declared} bytes) but holds {held} bytes "
                                  f"ending at {end} in a file of {size}")


def _sidecar(path: Path) -> dict:
    side = path.with_suffix(".json")
    if not side.is_file():
        return {}
    try:
        data = json.loads(side.read_text())
    except (OSError, ValueError) as exc:
        raise ScanError(side, f"unreadable sidecar JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ScanError(side, f"sidecar must be a JSON object, got {type(data).__name__}")
    unknown = set(data) - _SIDECAR_KEYS
    if unknown:
        raise ScanError(side, f"unknown sidecar keys {sorted(unknown)}; expected "
                              f"{sorted(_SIDECAR_KEYS)}")
    if data.get("units", "HU") != "HU":
        raise ScanError(side, f"units {data['units']!r}: expected 'HU' (after rescale)")
    for key in ("rescale_slope", "rescale_intercept"):
        if key in data and not isinstance(data[key], (int, float)):
            raise ScanError(side, f"{key} must be a number, got {data[key]!r}")
    if "rescale_slope" in data and not data["rescale_slope"] > 0:
        raise ScanError(side, f"rescale_slope must be > 0, got {data['rescale_slope']}")
    return data


def write_sidecar(path: Path, voxel_mm, rescale_slope: float = 1.0,
                  rescale_intercept: float = 0.0) -> Path:
    """Write ``NAME.json`` next to a ``.npy``/TIFF volume (what `read_volume` reads back)."""
    side = Path(path).with_suffix(".json")
    side.write_text(json.dumps({"voxel_mm": list(check_voxel_mm(voxel_mm)), "units": "HU",
                                "rescale_slope": rescale_slope,
                                "rescale_intercept": rescale_intercept}))
    return side


def attach_low_energy(volume: Volume, path: str | Path, kvp: float | None = None,
                      voxel_mm=None, max_voxels: int = DEFAULT_MAX_VOXELS,
                      max_bytes: int = DEFAULT_MAX_VOLUME_BYTES) -> Volume:
    """``volume`` with its low-energy volume read from ``path`` (`Volume.low`).

    The low-energy file is read like the main one (its own sidecar, or ``voxel_mm``) and must
    have the same shape and voxel size; a `ScanError` naming it otherwise.
    """
    import dataclasses

    low = read_volume(path, voxel_mm=voxel_mm, max_voxels=max_voxels, max_bytes=max_bytes)
    if low.size_dhw != volume.size_dhw or not np.allclose(low.voxel_mm, volume.voxel_mm):
        raise ScanError(path, f"low-energy volume of {low.size_dhw} voxels at {low.voxel_mm} mm "
                              f"does not match its main volume ({volume.size_dhw} at "
                              f"{volume.voxel_mm} mm)")
    return dataclasses.replace(volume, low=low.hu, low_kvp=kvp,
                               sources=(*volume.sources, *low.sources))
