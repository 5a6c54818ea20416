"""Read scans from disk: dual-energy pairs, gray and pseudo-colour exports, DICOM/DICOS.

Every problem becomes a `ScanError` that names the file and the reason; nothing here
guesses a scale from pixel values: the bit depth comes from the file itself.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detector import imagefiles
from detector.errors import ScanError
from detector.scan import Scan, transmission_to_attenuation

SCAN_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".dcm", ".dicom", ".dcs")
_PAIR_RE = re.compile(r"^(?P<stem>.+)_(?P<part>high|low)$", re.IGNORECASE)

#: Largest image (pixels per page) accepted; protects against decompression bombs.
DEFAULT_MAX_PIXELS = 64_000_000


@dataclass(frozen=True)
class ScanRef:
    """Where one scan lives on disk, before it is read.

    ``files`` is ``(high, low)`` for a dual pair and ``(file,)`` otherwise. ``problem`` is set
    when discovery already knows the scan cannot be read (a ``_high`` without its ``_low``);
    `read_scan` raises it as a `ScanError`, so the scan is still reported, never dropped.
    """

    id: str
    files: tuple[Path, ...]
    problem: str | None = None

    @property
    def path(self) -> str:
        """The path as given (the ``_high`` file for a pair)."""
        return str(self.files[0])


def _pair_key(path: Path) -> tuple[str, str] | None:
    match = _PAIR_RE.match(path.stem)
    if match is None:
        return None
    return match.group("stem"), match.group("part").lower()


def _find_partner(path: Path, stem: str, part: str,
                  listings: dict[Path, dict[str, dict[str, list[str]]]]) -> Path | None:
    """The other half of ``path``'s dual pair in its folder, or None if there is none.

    Suffix and part name match in any case (``x_High.PNG`` pairs with ``x_low.png``); the stem
    must match exactly. Two files for one half (``x_low.png`` and ``x_LOW.png``) raise
    `ScanError`: which of them belongs to the pair would be a guess. ``listings`` holds each
    folder's `_pair_halves`, listed once per `discover_scans` call (listing it again for each
    file took 20 s for a folder of 5,000 pairs).
    """
    folder = path.parent
    if folder not in listings:
        listings[folder] = _pair_halves(folder)
    halves = listings[folder].get(stem, {})
    want = "low" if part == "high" else "high"
    for half, names in ((part, [n for n in halves.get(part, ()) if n != path.name] + [path.name]),
                        (want, halves.get(want, []))):
        if len(names) > 1:
            raise ScanError(path, f"ambiguous dual-energy pair: {', '.join(sorted(names))} "
                                  f"could each be the '_{half}' half of '{stem}'; keep one")
    partners = halves.get(want, [])
    return path.with_name(partners[0]) if partners else None


def _pair_halves(folder: Path) -> dict[str, dict[str, list[str]]]:
    """``stem -> {"high"|"low": [file names]}`` for the scan files in ``folder``."""
    halves: dict[str, dict[str, list[str]]] = {}
    with os.scandir(folder) as entries:
        for entry in entries:
            key = _pair_key(Path(entry.name))
            if key and Path(entry.name).suffix.lower() in SCAN_SUFFIXES and entry.is_file():
                stem, part = key
                halves.setdefault(stem, {}).setdefault(part, []).append(entry.name)
    return halves


def discover_scans(paths: Iterable[str | Path]) -> list[ScanRef]:
    """Every scan under ``paths`` (files or folders, folders not recursed).

    ``_high``/``_low`` files are joined into one dual scan whose id is the shared stem.
    Files in folders whose suffix is not a scan format (``annotations.json``, notes) are not
    scans and are left out; a path given explicitly is always returned, so that a missing or
    odd file is reported by `read_scan` rather than ignored.
    """
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(  # a link whose target is gone is listed: its reader reports it
                p for p in sorted(path.iterdir())
                if (p.is_file() or (p.is_symlink() and not p.exists()))
                and p.suffix.lower() in SCAN_SUFFIXES
            )
        else:
            files.append(path)

    refs: list[ScanRef] = []
    seen: set[Path] = set()
    listings: dict[Path, dict[str, dict[str, list[str]]]] = {}  # folder -> its pair halves
    for path in files:
        if path in seen:
            continue
        seen.add(path)
        key = _pair_key(path)
        if key is None or not path.exists():
            refs.append(ScanRef(id=path.stem, files=(path,)))
            continue
        stem, part = key
        try:
            partner = _find_partner(path, stem, part, listings)
        except ScanError as exc:
            refs.append(ScanRef(id=stem, files=(path,), problem=exc.reason))
            continue
        if partner is None:
            missing = "low" if part == "high" else "high"
            refs.append(ScanRef(
                id=stem, files=(path,),
                problem=f"dual-energy '_{part}' file without its '_{missing}' partner",
            ))
            continue
        seen.add(partner)
        high, low = (path, partner) if part == "high" else (partner, path)
        refs.append(ScanRef(id=stem, files=(high, low)))
    return refs


def read_scan(ref: ScanRef | str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Scan:
    """Read one scan; raise `ScanError` naming the file and the reason if it is unusable."""
    if not isinstance(ref, ScanRef):
        found = discover_scans([ref])
        if len(found) != 1:
            raise ScanError(ref, f"expected one scan, found {len(found)}")
        ref = found[0]
    if ref.problem is not None:
        raise ScanError(ref.path, ref.problem)
    if len(ref.files) == 2:
        return _read_pair(ref, max_pixels)
    return _read_single(ref, max_pixels)


def _read_pair(ref: ScanRef, max_pixels: int) -> Scan:
    high_path, low_path = ref.files
    high = imagefiles.load(high_path, max_pixels)
    low = imagefiles.load(low_path, max_pixels)
    for path, img in ((high_path, high), (low_path, low)):
        if len(img.pages) != 1 or img.pages[0].ndim != 2:
            raise ScanError(path, f"dual-energy half must be one single-channel image, got "
                                  f"{len(img.pages)} page(s) of shape {img.pages[0].shape}")
    if high.pages[0].shape != low.pages[0].shape:
        raise ScanError(high_path, f"high/low sizes differ: {high.pages[0].shape} (high) vs "
                                   f"{low.pages[0].shape} (low, {low_path})")
    if high.bit_depth != low.bit_depth:
        raise ScanError(high_path, f"high/low bit depths differ: {high.bit_depth} vs "
                                   f"{low.bit_depth} ({low_path})")
    return _dual_scan(ref.id, (str(high_path), str(low_path)),
                      high.pages[0], low.pages[0], high.bit_depth, high.meta)


def _dual_scan(scan_id, sources, high, low, bit_depth, meta) -> Scan:
    for name, counts in (("high", high), ("low", low)):
        _reject_uniform(sources[0], counts, f"{name}-energy image")
    image = np.empty((2, *high.shape), np.float32)
    transmission_to_attenuation(high, bit_depth, out=image[0])
    transmission_to_attenuation(low, bit_depth, out=image[1])
    return Scan(id=scan_id, kind="dual", image=image, sources=sources,
                bit_depth=bit_depth, meta=dict(meta))


def _read_single(ref: ScanRef, max_pixels: int) -> Scan:
    path = ref.files[0]
    img = imagefiles.load(path, max_pixels)
    source = (str(path),)
    if len(img.pages) == 2:
        high, low = img.pages
        if high.ndim != 2 or low.ndim != 2 or high.shape != low.shape:
            raise ScanError(path, "a two-page file is read as a dual-energy pair (page 0 high, "
                                  "page 1 low) and needs two single-channel pages of one size; "
                                  f"got {high.shape} and {low.shape}")
        return _dual_scan(ref.id, source, high, low, img.bit_depth, img.meta)
    if len(img.pages) != 1:
        raise ScanError(path, f"expected 1 page (gray/colour) or 2 (dual high+low), "
                              f"got {len(img.pages)}")
    pixels = img.pages[0]
    if pixels.ndim == 3 and pixels.shape[2] == 3 and _channels_equal(pixels):
        pixels = pixels[:, :, 0]  # gray stored as RGB (GDXray does this)
    if pixels.ndim == 2:
        _reject_uniform(path, pixels, "image")
        att = transmission_to_attenuation(pixels, img.bit_depth)[None]
        return Scan(id=ref.id, kind="gray", image=att, sources=source,
                    bit_depth=img.bit_depth, meta=dict(img.meta))
    if pixels.ndim == 3 and pixels.shape[2] == 3:
        if pixels.dtype != np.uint8:
            raise ScanError(path, f"pseudo-colour exports must be 8-bit RGB, got {pixels.dtype}")
        _reject_uniform(path, pixels, "image")
        return Scan(id=ref.id, kind="color", image=np.ascontiguousarray(pixels.transpose(2, 0, 1)),
                    sources=source, bit_depth=8, meta=dict(img.meta))
    raise ScanError(path, f"unsupported channel count: shape {pixels.shape}; expected one "
                          "channel (gray) or three (RGB)")


def _channels_equal(rgb: np.ndarray) -> bool:
    return bool(np.array_equal(rgb[:, :, 0], rgb[:, :, 1])
                and np.array_equal(rgb[:, :, 0], rgb[:, :, 2]))


def _reject_uniform(path, pixels: np.ndarray, what: str) -> None:
    lo, hi = pixels.min(), pixels.max()
    if lo == hi:
        raise ScanError(path, f"{what} is uniform (every pixel = {int(lo)}): an empty, all-air "
                              "or all-black image has nothing to inspect")
