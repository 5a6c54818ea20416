"""Find every input under the given paths, 2-D scans and CT volumes alike.

A CT volume is a ``.npy`` file, a TIFF with three or more pages, a multi-frame DICOM/DICOS CT
file, or a folder holding DICOM/DICOS CT slices (one series: the folder is the volume). All
other files go through `detector.readers.discover_scans` unchanged, so ``detect`` and
``check`` see one ordered list in which nothing is dropped but a folder's DICOMDIR and
macOS ``._NAME`` files that hold no image (indexes and metadata, never scans).

A dual-energy CT scan is ``NAME.npy`` (or ``.tif``) with its second, lower-energy volume
``NAME_<kVp>kvp.npy`` beside it (what ``concealscan synth --kinds ct`` writes with two
energies): one input, whose `VolumeRef.low` is that file, not two.
"""

from __future__ import annotations

import glob
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from detector.dicom_ct import is_ct, is_media_directory, read_header, sort_dicom_folder
from detector.errors import ScanError
from detector.imagefiles import sniff_format
from detector.readers import DEFAULT_MAX_PIXELS, SCAN_SUFFIXES, ScanRef, discover_scans, read_scan
from detector.scan import Scan
from detector.volume import Volume
from detector.volume_readers import (
    DEFAULT_MAX_VOLUME_BYTES,
    DEFAULT_MAX_VOXELS,
    attach_low_energy,
    read_volume,
)

VOLUME_SUFFIXES = (".npy",)


@dataclass(frozen=True)
class VolumeRef:
    """Where one CT volume lives: a file, or a folder of DICOM CT slices."""

    id: str
    path_: Path
    #: A dual-energy scan's low-energy volume (``NAME_<kVp>kvp.npy``) and its kVp.
    low: Path | None = None
    low_kvp: float | None = None

    @property
    def path(self) -> str:
        return str(self.path_)


#: ``NAME_<kVp>kvp`` (file stem): the second-energy volume of the scan ``NAME``.
_ENERGY_STEM = re.compile(r"^(?P<main>.+)_(?P<kvp>\d+(?:\.\d+)?)kvp$", re.IGNORECASE)


def energy_main(path: Path) -> Path | None:
    """The main volume file a ``NAME_<kVp>kvp`` file belongs to (``NAME`` + its suffix), or
    None when ``path`` is not named as a second energy."""
    m = _ENERGY_STEM.match(Path(path).stem)
    return None if m is None else Path(path).with_name(m["main"] + Path(path).suffix)


def _volume_refs(files: list[Path]) -> dict[Path, VolumeRef]:
    """Volume file -> its ref, for the volume files of one folder: a main volume with exactly
    one ``NAME_<kVp>kvp`` file beside it carries that file as `VolumeRef.low`, and the
    second-energy file is no input of its own (several: ambiguous, each stays an input)."""
    present = set(files)
    lows: dict[Path, list[tuple[Path, float]]] = {}
    for path in files:
        m = _ENERGY_STEM.match(path.stem)
        main = path.with_name(m["main"] + path.suffix) if m else None
        if main in present:
            lows.setdefault(main, []).append((path, float(m["kvp"])))
    refs = {p: VolumeRef(p.stem, p) for p in files}
    for main, found in lows.items():
        if len(found) == 1:
            refs[main] = VolumeRef(main.stem, main, *found[0])
            del refs[found[0][0]]
    return refs


def _volume_ref(path: Path) -> VolumeRef:
    """The ref of the volume file ``path``, with its one second-energy file if it has one."""
    siblings = [p for p in path.parent.glob(f"{glob.escape(path.stem)}_*kvp{path.suffix}")
                if p.is_file()]
    return _volume_refs([path, *siblings])[path]


InputRef = ScanRef | VolumeRef


def _sniff(path: Path) -> str | None:
    try:
        with path.open("rb") as fh:
            return sniff_format(fh.read(132))
    except OSError:
        return None


def _tiff_pages(path: Path) -> int:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            return len(tif.pages)
    except Exception:  # unreadable: the 2-D reader reports it with its reason
        return 0


def is_volume_file(path: Path) -> bool:
    """True for ``.npy``, TIFF with >= 3 pages, and DICOM/DICOS CT files."""
    path = Path(path)
    if not path.is_file():
        return path.suffix.lower() in VOLUME_SUFFIXES
    if path.suffix.lower() in VOLUME_SUFFIXES:
        return True
    fmt = _sniff(path)
    if fmt == "tiff":
        return _tiff_pages(path) >= 3
    if fmt != "dicom":
        return False
    try:
        return is_ct(read_header(path))
    except ScanError:
        return False  # unreadable: the 2-D reader reports it with its reason


def listed_files(folder: Path) -> list[Path]:
    """The files directly in ``folder``, by name, and links in it whose target is gone (a
    scan that vanished is reported by its reader, never dropped)."""
    return [c for c in sorted(folder.iterdir())
            if c.is_file() or (c.is_symlink() and not c.exists())]


def _scan_like(path: Path) -> bool:
    """A file ``detect`` would read: a scan or volume suffix, or DICOM content (slices are
    often named IM0001); a README or notes without a suffix are not."""
    return path.suffix.lower() in SCAN_SUFFIXES + VOLUME_SUFFIXES or _sniff(path) == "dicom"


def _subfolder_inputs(folder: Path) -> list[InputRef]:
    """Inputs for the folders inside a folder given to ``detect``: one holding a CT series is a
    volume; one holding other scans is an error input saying so (folders are not searched,
    and a scan must never be dropped unseen); one holding no scan is not an input."""
    refs: list[InputRef] = []
    for sub in sorted(c for c in folder.iterdir() if c.is_dir() and not c.name.startswith(".")):
        ct, _ = sort_dicom_folder(sub)
        if ct:
            refs.append(VolumeRef(sub.name, sub))
        elif scans := [c for c in listed_files(sub) if _scan_like(c) and not _is_folder_index(c)]:
            refs.append(ScanRef(id=sub.name, files=(sub,), problem=(
                f"a folder of {len(scans)} scan file(s) inside {folder}, not a CT series; "
                f"folders are not searched: give {sub} itself")))
    return refs


def input_files(ref: InputRef) -> set[Path]:
    """The files (or series folder) an input reads, to tell one input given twice."""
    if isinstance(ref, VolumeRef):
        return {ref.path_} | ({ref.low} if ref.low is not None else set())
    return set(ref.files)


def _is_folder_index(path: Path) -> bool:
    """True for files a folder copied from other media holds beside its scans, never a scan:
    a DICOMDIR, and macOS AppleDouble files (``._NAME``) that hold no image (a ``._`` file
    with DICOM, PNG, JPEG or TIFF content is still read, and reported if bad)."""
    if path.name.startswith("._"):
        return _sniff(path) is None
    return (path.name.upper() == "DICOMDIR" or _sniff(path) == "dicom") and \
        is_media_directory(path)


def discover_inputs(paths: Iterable[str | Path]) -> list[InputRef]:
    """Every scan and volume under ``paths``, in the order given, each once (a pair given as
    both its halves, or a file given twice, is one input). Folders are not searched beyond
    their first level, where a folder of CT slices is a volume (`_subfolder_inputs`)."""
    refs: list[InputRef] = []
    for raw in paths:
        path = Path(raw)
        if not path.is_dir():
            if is_volume_file(path):
                refs.append(_volume_ref(path) if path.is_file() else VolumeRef(path.stem, path))
            else:
                refs.extend(discover_scans([path]))
            continue
        ct, damaged = sort_dicom_folder(path)
        taken = set(ct + damaged) if ct else set()  # a damaged slice fails the volume
        if ct:
            refs.append(VolumeRef(path.name, path))
        flat: list[Path] = []
        children = [c for c in listed_files(path) if c not in taken and not _is_folder_index(c)]
        volume_files = [c for c in children if c.suffix.lower() in VOLUME_SUFFIXES or (
            c.suffix.lower() in (".tif", ".tiff") and is_volume_file(c))]
        volumes = _volume_refs(volume_files)
        for child in children:
            if child in volumes:
                refs.append(volumes[child])
            elif child in volume_files:
                continue  # a second-energy file, read with its main volume
            elif child.suffix.lower() in SCAN_SUFFIXES or not child.suffix \
                    or _sniff(child) == "dicom":
                # DICOM files are often named IM0001: one that is not a CT slice (a DX scan,
                # a slice too damaged or too short to tell) is reported, never dropped
                flat.append(child)
        refs.extend(discover_scans(flat))
        refs.extend(_subfolder_inputs(path))
    seen: set[Path] = set()
    unique = []
    for ref in refs:
        files = {Path(f).resolve() for f in input_files(ref)}  # a/../a, links: one file
        if files <= seen:
            continue
        seen |= files
        unique.append(ref)
    return unique


def _file_safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name).lower()


def unique_ids(refs: list[InputRef]) -> list[InputRef]:
    """``refs`` with ids made unique within the run (``bag1``, ``bag1~2``, ...): ids name the
    overlay and report files, so two inputs called alike (``a/bag1.png`` and ``b/bag1.png``,
    ``bag1.png`` and ``bag1.jpg``) would otherwise overwrite each other's outputs. Names that
    differ only in case or in characters a file name cannot hold count as alike."""
    from dataclasses import replace

    taken: set[str] = set()
    out = []
    for ref in refs:
        new_id, n = ref.id, 1
        while _file_safe(new_id) in taken:
            n += 1
            new_id = f"{ref.id}~{n}"
        taken.add(_file_safe(new_id))
        out.append(ref if new_id == ref.id else replace(ref, id=new_id))
    return out


def read_input(ref: InputRef, max_pixels: int = DEFAULT_MAX_PIXELS,
               max_voxels: int = DEFAULT_MAX_VOXELS, voxel_mm=None,
               max_volume_bytes: int = DEFAULT_MAX_VOLUME_BYTES) -> Scan | Volume:
    """Read one input; a `ScanError` naming the file and the reason if it is unusable."""
    if isinstance(ref, VolumeRef):
        volume = read_volume(ref.path_, voxel_mm=voxel_mm, max_voxels=max_voxels,
                             volume_id=ref.id, max_bytes=max_volume_bytes)
        if ref.low is None:
            return volume
        return attach_low_energy(volume, ref.low, ref.low_kvp, voxel_mm, max_voxels,
                                 max_volume_bytes)
    return read_scan(ref, max_pixels=max_pixels)
