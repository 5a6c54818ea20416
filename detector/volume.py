"""The one CT volume type: what every CT stage (detection, training, overlay) consumes.

A `Volume` is reconstructed attenuation in Hounsfield units (air -1000, water 0), float32,
``(D, H, W)`` = (slices, rows, columns), with its voxel size in millimetres as ``(z, y, x)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

#: Values a reconstructed CT volume can hold, in HU: int16 padding (-32768) to uint16 metal.
HU_MIN, HU_MAX = -32768.0, 65535.0
#: Smallest extent (voxels) along each axis: fewer than this is not a volume.
MIN_SIZE = 2
#: Voxels from MIN_VOXEL_MM to MAX_VOXEL_MM (mm) are accepted. Parcel CT voxels are about
#: 0.3-2 mm: a value outside is a unit mistake (metres or centimetres written for millimetres),
#: and a tiny one resampled the volume to a grid of one voxel that came back clear.
MIN_VOXEL_MM, MAX_VOXEL_MM = 0.1, 100.0


@dataclass(frozen=True)
class Volume:
    """One CT volume, ready for preprocessing.

    ``hu`` is float32 ``(D, H, W)`` in HU; ``voxel_mm`` is ``(z, y, x)`` in millimetres, z
    between slices, y between rows, x between columns. ``sources`` are the files read.
    ``low`` is, for a dual-energy scan, the same volume at the scanner's second, lower energy
    (HU, same shape and grid), else None; ``low_kvp`` is that energy's tube voltage if known.
    """

    id: str
    hu: np.ndarray
    voxel_mm: tuple[float, float, float]
    sources: tuple[str, ...]
    meta: dict = field(default_factory=dict)
    low: np.ndarray | None = None
    low_kvp: float | None = None

    def __post_init__(self) -> None:
        _check_hu("hu", self.hu)
        if self.low is not None:
            _check_hu("low", self.low)
            if self.low.shape != self.hu.shape:
                raise ValueError(f"Volume.low: expected the shape of hu {self.hu.shape}, got "
                                 f"{self.low.shape}")
        elif self.low_kvp is not None:
            raise ValueError("Volume.low_kvp: given without a low-energy volume")
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"Volume.id: expected a non-empty string, got {self.id!r}")
        object.__setattr__(self, "voxel_mm", check_voxel_mm(self.voxel_mm))
        if not self.sources:
            raise ValueError("Volume.sources: expected at least one source file")
        object.__setattr__(self, "sources", tuple(str(s) for s in self.sources))

    @property
    def kind(self) -> str:
        return "ct"

    @property
    def size_dhw(self) -> tuple[int, int, int]:
        """Size in voxels as (depth/slices, height/rows, width/columns)."""
        d, h, w = self.hu.shape
        return int(d), int(h), int(w)

    @property
    def extent_mm(self) -> tuple[float, float, float]:
        """Physical size as (z, y, x) millimetres."""
        return tuple(n * s for n, s in zip(self.size_dhw, self.voxel_mm, strict=True))


def _check_hu(name: str, hu) -> None:
    if not isinstance(hu, np.ndarray):
        raise TypeError(f"Volume.{name}: expected numpy array, got {type(hu).__name__}")
    if hu.ndim != 3:
        raise ValueError(f"Volume.{name}: expected shape (D, H, W), got {hu.shape}")
    if hu.dtype != np.float32:
        raise ValueError(f"Volume.{name}: expected dtype float32, got {hu.dtype}")
    if min(hu.shape) < MIN_SIZE:
        raise ValueError(f"Volume.{name}: expected at least {MIN_SIZE} voxels along each "
                         f"axis, got {hu.shape}")
    lo, hi = float(hu.min()), float(hu.max())
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"Volume.{name}: contains NaN or infinity")
    if lo < HU_MIN or hi > HU_MAX:
        raise ValueError(f"Volume.{name}: expected HU in [{HU_MIN:g}, {HU_MAX:g}], "
                         f"got [{lo:g}, {hi:g}]")


def check_voxel_mm(value) -> tuple[float, float, float]:
    """``value`` as a validated ``(z, y, x)`` tuple of positive millimetres."""
    try:
        sizes = tuple(float(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"voxel_mm: expected three numbers (z, y, x), got {value!r}") from exc
    if len(sizes) != 3:
        raise ValueError(f"voxel_mm: expected three numbers (z, y, x), got {value!r}")
    if not all(math.isfinite(s) and MIN_VOXEL_MM <= s <= MAX_VOXEL_MM for s in sizes):
        raise ValueError(f"voxel_mm: expected sizes in [{MIN_VOXEL_MM:g}, {MAX_VOXEL_MM:g}] mm "
                         "(parcel CT voxels are about 0.3-2 mm: a size outside is a unit "
                         f"mistake, such as metres or centimetres for millimetres), got {sizes}")
    return sizes  # type: ignore[return-value]


def hu_scale_problem(hu: np.ndarray) -> str | None:
    """Why ``hu`` does not look like a parcel CT in HU, or None if it does.

    A parcel CT always holds air around the parcel (about -1000 HU) and the parcel itself.
    Values in attenuation units (water 0.02/mm) or 0..1 scaling would otherwise pass as
    "all water" and give a false "clear", so they are refused rather than guessed at.
    """
    sample = hu[:: max(1, hu.shape[0] // 16)]
    lo, hi = (float(v) for v in np.percentile(sample, [1.0, 99.9]))
    if lo > -500.0:
        return (f"values do not look like HU: the 1st percentile is {lo:.4g}, but a parcel CT "
                "holds air at about -1000 HU (give rescale_slope/rescale_intercept if the "
                "file stores raw values)")
    if hi - lo < 200.0:
        return f"values do not look like HU: almost uniform ({lo:.4g} to {hi:.4g})"
    return None
