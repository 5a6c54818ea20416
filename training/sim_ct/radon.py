"""Parallel-beam CT geometry: a sparse projector, its transpose, and filtered back-projection.

numpy + scipy.sparse only (astra is GPLv3, skimage's radon is 7x slower). The system matrix is
pixel-driven with linear interpolation onto the detector; `fbp` back-projects with its
transpose, which is the textbook voxel-driven FBP. Units: pixels in, "sum over pixels" out;
callers scale by the pixel size.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np


@dataclass(frozen=True)
class Geometry:
    """``size`` x ``size`` image, ``angles`` views over 180 degrees, one detector bin per pixel."""

    size: int
    angles: int

    def __post_init__(self) -> None:
        if self.size < 8 or self.angles < 8:
            raise ValueError(f"Geometry: expected size and angles >= 8, got {self.size}, "
                             f"{self.angles}")

    @property
    def bins(self) -> int:
        """Detector bins: the image diagonal, so every pixel projects inside."""
        return int(np.ceil(self.size * np.sqrt(2.0))) + 2

    @property
    def rays(self) -> int:
        return self.angles * self.bins


@lru_cache(maxsize=4)
def system_matrix(geom: Geometry):
    """Sparse ``(rays, size*size)`` CSR matrix: ray sums of an image, ray-major by view."""
    from scipy import sparse

    n, nb = geom.size, geom.bins
    theta = np.arange(geom.angles) * np.pi / geom.angles
    c = (n - 1) / 2.0
    ys, xs = np.mgrid[0:n, 0:n]
    x, y = (xs.ravel() - c), (c - ys.ravel())  # y up, so views turn counter-clockwise
    t = np.cos(theta)[:, None] * x[None] + np.sin(theta)[:, None] * y[None] + (nb - 1) / 2.0
    lo = np.floor(t).astype(np.int64)
    frac = (t - lo).astype(np.float32)
    view = np.arange(geom.angles)[:, None] * nb
    pixel = np.broadcast_to(np.arange(n * n), t.shape)
    rows = np.concatenate([(view + lo).ravel(), (view + lo + 1).ravel()])
    cols = np.concatenate([pixel.ravel(), pixel.ravel()])
    vals = np.concatenate([(1.0 - frac).ravel(), frac.ravel()])
    return sparse.csr_matrix((vals, (rows, cols)), shape=(geom.rays, n * n), dtype=np.float32)


def project(images: np.ndarray, geom: Geometry) -> np.ndarray:
    """Ray sums of ``(size, size, ...)`` images -> ``(angles, bins, ...)`` (pixel units)."""
    n = geom.size
    if images.shape[:2] != (n, n):
        raise ValueError(f"project: expected ({n}, {n}, ...) images, got {images.shape}")
    rest = images.shape[2:]
    flat = images.reshape(n * n, -1).astype(np.float32, copy=False)
    sino = system_matrix(geom) @ flat
    return np.asarray(sino).reshape(geom.angles, geom.bins, *rest)


@lru_cache(maxsize=8)
def _ramp(bins: int) -> np.ndarray:
    """Frequency response of the spatial Ram-Lak kernel (Kak & Slaney 3.61), zero-padded."""
    pad = 1 << int(np.ceil(np.log2(2 * bins)))
    n = np.concatenate([np.arange(0, pad // 2 + 1), np.arange(-pad // 2 + 1, 0)])
    h = np.zeros(pad)
    h[0] = 0.25
    odd = n % 2 == 1
    h[odd] = -1.0 / (np.pi * n[odd]) ** 2
    return np.real(np.fft.rfft(h)).astype(np.float32)


def fbp(sinogram: np.ndarray, geom: Geometry) -> np.ndarray:
    """Filtered back-projection of ``(angles, bins, ...)`` -> ``(size, size, ...)`` images.

    The inverse of `project` for band-limited images: ``fbp(project(f)) ~= f``.
    """
    if sinogram.shape[:2] != (geom.angles, geom.bins):
        raise ValueError(f"fbp: expected ({geom.angles}, {geom.bins}, ...), got {sinogram.shape}")
    rest = sinogram.shape[2:]
    ramp = _ramp(geom.bins)
    pad = 2 * (len(ramp) - 1)
    spec = np.fft.rfft(sinogram, n=pad, axis=1)
    spec *= ramp.reshape(1, -1, *([1] * len(rest)))
    filtered = np.fft.irfft(spec, n=pad, axis=1)[:, : geom.bins].astype(np.float32)
    back = system_matrix(geom).T @ filtered.reshape(geom.rays, -1)
    image = np.asarray(back) * np.float32(np.pi / geom.angles)
    return image.reshape(geom.size, geom.size, *rest)
