"""The detector's imperfections: quantum noise at a drawn dose, blur, stripes, 16-bit counts.

Order follows the signal: photons are absorbed with compound-Poisson statistics (Gaussian
approximation, variance kappa * N * T for N photons in air), the scintillator spreads the
light across channels and the integration time smears along the belt, read-out adds
electronic noise (drawn with the quantum noise, see `expose`), an imperfect flat-field
correction leaves a gain per channel (stripes along the belt) and the tube flickers per line.
Counts are air-normalised: 65535 = unattenuated.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist

import numpy as np

from training.sim.forward import ScannerPhysics

FULL_SCALE = 65535


@dataclass(frozen=True)
class SensorSettings:
    """One scan's drawn sensor values (stored in the scene record)."""

    dose_ugy: float
    electronic_noise: float
    blur_across_px: float
    blur_along_px: float
    channel_gain_std: float
    line_gain_std: float
    seed: int

    def photons_in_air(self, physics: ScannerPhysics, pixel_mm: float) -> np.ndarray:
        """(2,) photons absorbed per pixel in air, (high, low)."""
        return physics.photons_per_ugy_mm2 * self.dose_ugy * pixel_mm * pixel_mm


@lru_cache(maxsize=1)
def _normal_table() -> np.ndarray:
    """Standard normal quantiles at the centres of 65536 equal-probability bins."""
    dist = NormalDist()
    return np.array([dist.inv_cdf((i + 0.5) / 65536) for i in range(65536)], np.float32)


def standard_normal(rng: np.random.Generator, shape) -> np.ndarray:
    """Gaussian float32 noise via a 16-bit inverse-CDF table (tails cut at 4.3 sigma).

    Four times faster than ``Generator.standard_normal``, which took a tenth of a scan's
    time budget; the cut tails are 2e-5 of the draws and do not matter for sensor noise.
    """
    return np.take(_normal_table(), rng.integers(0, 65536, size=shape, dtype=np.uint16))


def _gaussian_1d(sigma: float) -> np.ndarray:
    if sigma <= 0.05:
        return np.ones(1, np.float32)
    radius = max(1, int(np.ceil(3 * sigma)))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return (k / k.sum()).astype(np.float32)


def noise_reduction(settings: SensorSettings) -> float:
    """Factor by which the blur lowers the std of white noise (sqrt of the sum of k^2)."""
    along, across = _gaussian_1d(settings.blur_along_px), _gaussian_1d(settings.blur_across_px)
    return float(np.sqrt(np.sum(along**2) * np.sum(across**2)))


def attenuation_sigma(att: np.ndarray, physics: ScannerPhysics, pixel_mm: float,
                      settings: SensorSettings) -> np.ndarray:
    """Std of the measured attenuation per pixel, channels (high, low) first."""
    n_air = settings.photons_in_air(physics, pixel_mm)[:, None]
    t = np.exp(-att.reshape(2, -1).astype(np.float64))
    quantum = np.sqrt(physics.kappa[:, None] / (n_air * t)) * noise_reduction(settings)
    electronic = settings.electronic_noise / t
    return np.sqrt(quantum**2 + electronic**2).reshape(att.shape)


def expose(att: np.ndarray, physics: ScannerPhysics, pixel_mm: float,
           settings: SensorSettings) -> tuple[np.ndarray, np.ndarray]:
    """Measured (2, H, W) transmission (float32) and its 16-bit counts, from ideal attenuation."""
    import cv2

    rng = np.random.default_rng(settings.seed)
    _, h, w = att.shape
    n_air = settings.photons_in_air(physics, pixel_mm).astype(np.float32)
    kappa = physics.kappa.astype(np.float32)
    along, across = _gaussian_1d(settings.blur_along_px), _gaussian_1d(settings.blur_across_px)
    # Read-out noise is added before the blur, scaled up so that it keeps its std after it:
    # one random draw per pixel instead of two (the scan's speed budget).
    electronic = np.float32(settings.electronic_noise / noise_reduction(settings)) ** 2
    measured = np.empty((2, h, w), np.float32)
    for ch in range(2):
        t = np.exp(-att[ch])
        variance = t * (kappa[ch] / n_air[ch])
        variance += electronic
        noise = standard_normal(rng, (h, w))
        noise *= np.sqrt(variance, out=variance)
        t += noise
        t = cv2.sepFilter2D(t, cv2.CV_32F, along, across, borderType=cv2.BORDER_REFLECT)
        rows = rng.standard_normal(h).astype(np.float32) * np.float32(settings.channel_gain_std)
        cols = rng.standard_normal(w).astype(np.float32) * np.float32(settings.line_gain_std)
        t *= (rows + 1)[:, None]
        t *= (cols + 1)[None, :]
        measured[ch] = t
    counts = np.clip(np.rint(measured * FULL_SCALE), 0, FULL_SCALE).astype(np.uint16)
    return measured, counts
