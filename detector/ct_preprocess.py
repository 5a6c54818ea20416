"""The one CT preprocessing: a `Volume` becomes the stack of 3-slice slabs the CT model sees.

The volume is resampled to cubic voxels of the model's ``voxel_mm`` (area averaging when
shrinking), HU in the model's ``hu_window`` map linearly to 0..1 (clipped), and slab ``z`` is
slices ``z-1, z, z+1`` as three channels (edge slices repeated). A dual-energy model
(`InputSpec.ct_energies` 2) also reads the same three slices of the low-energy volume
(`Volume.low`), on the same window. Training, evaluation and the workstation all call
`model_grids` and `slabs`; the constants travel in the model's `InputSpec`.
"""

from __future__ import annotations

import numpy as np

from detector.preprocess import InputSpec
from detector.volume import Volume

#: Largest side (voxels) after resampling; a bigger volume is refused, not cropped.
MAX_SIDE = 1024
#: Smallest side (voxels) after resampling (16 mm at 4 mm). A grid of a voxel or two is no
#: parcel (a wrong voxel size, or a cropped volume) and would come back clear: refused.
MIN_SIDE = 4


def zoom_factors(volume: Volume, spec: InputSpec) -> tuple[float, float, float]:
    """Model voxels per volume voxel along (z, y, x)."""
    _check(spec)
    return tuple(float(v) / spec.voxel_mm for v in volume.voxel_mm)  # type: ignore[return-value]


def _check(spec: InputSpec) -> None:
    if spec.kind != "ct":
        raise ValueError(f"CT preprocessing needs a 'ct' input spec, got {spec.kind!r}")


def model_grids(volume: Volume, spec: InputSpec) -> tuple[np.ndarray, np.ndarray | None]:
    """(main volume, low-energy volume or None) on the model's voxel grid, as `resample`.

    Raises ValueError when the model reads two energies and the volume has one.
    """
    _check(spec)
    if spec.ct_energies == 1:
        return resample(volume, spec), None
    if volume.low is None:
        raise ValueError("this CT model reads dual-energy volumes, and the scan has one energy "
                         "(give the low-energy volume beside it, e.g. NAME_80kvp.npy)")
    return resample(volume, spec), resample(volume, spec, volume.low)


def resample(volume: Volume, spec: InputSpec, hu: np.ndarray | None = None) -> np.ndarray:
    """``hu`` (default ``volume.hu``; an array on the volume's grid) on the model's voxel
    grid, float32 ``(D', H', W')``."""
    import cv2

    zf, yf, xf = zoom_factors(volume, spec)
    d, h, w = volume.size_dhw
    size = (max(1, round(d * zf)), max(1, round(h * yf)), max(1, round(w * xf)))
    if max(size) > MAX_SIDE:
        raise ValueError(f"volume of {volume.size_dhw} voxels at {volume.voxel_mm} mm is "
                         f"{size} at the model's {spec.voxel_mm} mm; the limit is {MAX_SIDE}")
    if min(size) < MIN_SIDE:
        raise ValueError(f"volume of {volume.size_dhw} voxels at {volume.voxel_mm} mm is only "
                         f"{size} at the model's {spec.voxel_mm} mm, under {MIN_SIDE} along an "
                         "axis: too small to assess (is the voxel size in millimetres?)")
    hu = volume.hu if hu is None else hu
    if (size[1], size[2]) != (h, w):
        interp = cv2.INTER_AREA if yf < 1 or xf < 1 else cv2.INTER_LINEAR
        # One slice at a time, as a 2-D image: OpenCV 5 refuses INTER_AREA on more than 4
        # channels unless the factor is a whole number (3 mm or 0.977 mm pixels failed).
        plane = np.empty((d, size[1], size[2]), np.float32)
        for k in range(d):
            plane[k] = cv2.resize(np.ascontiguousarray(hu[k], dtype=np.float32),
                                  (size[2], size[1]), interpolation=interp)
        hu = plane
    if size[0] != d:
        interp = cv2.INTER_AREA if zf < 1 else cv2.INTER_LINEAR
        flat = np.ascontiguousarray(hu.reshape(d, -1))
        hu = cv2.resize(flat, (flat.shape[1], size[0]), interpolation=interp).reshape(size)
    return np.ascontiguousarray(hu, dtype=np.float32)


def normalise(hu: np.ndarray, spec: InputSpec) -> np.ndarray:
    """HU mapped to 0..1 by the model's window (float32)."""
    _check(spec)
    lo, hi = spec.hu_window
    return np.clip((hu - np.float32(lo)) / np.float32(hi - lo), 0.0, 1.0).astype(np.float32)


def slabs(grid_hu: np.ndarray, spec: InputSpec, start: int = 0, stop: int | None = None,
          low: np.ndarray | None = None) -> np.ndarray:
    """Model input for slabs ``start..stop`` of a resampled volume: ``(N, C, H', W')``;
    ``low`` is the resampled low-energy volume, required by a dual-energy model."""
    if (low is not None) != (spec.ct_energies == 2):
        raise ValueError(f"CT slabs: the model reads {spec.ct_energies} energies, got "
                         f"{1 + (low is not None)} volumes")
    depth = grid_hu.shape[0]
    stop = depth if stop is None else stop
    z = np.arange(start, stop)
    index = np.clip(np.stack([z - 1, z, z + 1], axis=1), 0, depth - 1)
    if low is None:
        return normalise(grid_hu[index], spec)
    return normalise(np.concatenate([grid_hu[index], low[index]], axis=1), spec)
