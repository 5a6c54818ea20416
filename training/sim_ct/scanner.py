"""The CT scanner model: material volumes in, reconstructed HU volumes out (physics tier).

Per slice: per-material mass-thickness sinograms (`radon.project`) -> polychromatic
Beer-Lambert over the tube spectrum (energy-integrating detector) -> Poisson counts with photon
starvation -> -log -> water beam-hardening precorrection, as clinical scanners do -> FBP -> HU
on the scanner's own water value. Partial volume comes from rendering the label volume at
``supersample`` times the voxel grid and averaging each material's density. Metal streaks and
cupping are not added: they follow from beam hardening and starvation of the projections.
Spectra and attenuation come from the 2-D simulator's shipped tables (`training.sim.tables`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from training.sim import spectrum
from training.sim.tables import Composition, load
from training.sim_ct.radon import Geometry, fbp, project

WATER_DENSITY = 1.0
_WATER_TABLE_CM = np.linspace(0.0, 120.0, 1201)


@dataclass(frozen=True)
class CtScanner:
    """One scanner setting. Defaults: a parcel CT with a 51 cm field of view at 4 mm voxels."""

    kvp: float = 140.0
    filter_al_mm: float = 3.0
    photons_per_ray: float = 2e5  # unattenuated photons per detector bin and view
    size: int = 128  # in-plane voxels (x and y)
    angles: int = 120
    voxel_mm: float = 4.0  # in-plane and slice spacing
    supersample: int = 2  # label volume voxels per CT voxel along each axis
    energy_step_kev: int = 4
    detector_blur_bins: float = 0.6  # Gaussian sigma of the detector response

    def __post_init__(self) -> None:
        if self.kvp not in load().kvp_grid:
            raise ValueError(f"kvp: expected one of {load().kvp_grid}, got {self.kvp}")
        if not self.photons_per_ray > 0 or not self.voxel_mm > 0 or self.supersample < 1:
            raise ValueError(f"CtScanner: photons_per_ray, voxel_mm > 0 and supersample >= 1 "
                             f"expected, got {self.photons_per_ray}, {self.voxel_mm}, "
                             f"{self.supersample}")

    @property
    def geometry(self) -> Geometry:
        return Geometry(self.size, self.angles)


@lru_cache(maxsize=8)
def _spectrum(scanner: CtScanner) -> tuple[np.ndarray, np.ndarray]:
    """(energies keV, detected energy weights summing to 1), grouped into coarse bins."""
    tables = load()
    keep = tables.energies_kev < scanner.kvp
    e = tables.energies_kev[keep]
    photons = spectrum.filtered(tables.tube_spectrum(scanner.kvp), tables.mu_rho("aluminium"),
                                2.699, scanner.filter_al_mm)[keep]
    weight = photons * e  # energy-integrating scintillator: signal grows with photon energy
    groups = np.arange(len(e)) // scanner.energy_step_kev
    w = np.bincount(groups, weight)
    e_mean = np.bincount(groups, weight * e) / np.maximum(w, 1e-30)
    ok = w > w.sum() * 1e-5
    return e_mean[ok], (w[ok] / w[ok].sum())


def mu_table(scanner: CtScanner, compositions: list[Composition]) -> np.ndarray:
    """``(materials, energy groups)`` mass attenuation (cm2/g) at the grouped energies."""
    tables = load()
    e, _ = _spectrum(scanner)
    return np.stack([np.interp(e, tables.energies_kev, tables.mu_rho(c)) for c in compositions])


def _transmission(mass_cm2: np.ndarray, mu: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Detected fraction for ``(..., materials)`` mass thicknesses (g/cm2)."""
    return np.exp(-(mass_cm2 @ mu)) @ weights


@lru_cache(maxsize=8)
def water_correction(scanner: CtScanner) -> tuple[np.ndarray, np.ndarray, float]:
    """(polychromatic -ln T of water, the same as linear attenuation, mu_water (1/cm))."""
    _, weights = _spectrum(scanner)
    mu_w = mu_table(scanner, ["water"])
    mu0 = float(weights @ mu_w[0]) * WATER_DENSITY  # first-order (thin water) attenuation
    poly = -np.log(_transmission(_WATER_TABLE_CM[:, None] * WATER_DENSITY, mu_w, weights))
    return poly, mu0 * _WATER_TABLE_CM, mu0


def _blur_bins(sino: np.ndarray, sigma: float) -> np.ndarray:
    if sigma <= 0:
        return sino
    from scipy.ndimage import gaussian_filter1d

    return gaussian_filter1d(sino, sigma, axis=1, mode="nearest")


def reconstruct(density: np.ndarray, mu: np.ndarray, scanner: CtScanner,
                rng: np.random.Generator) -> np.ndarray:
    """HU slices ``(D, size, size)`` from per-material densities ``(D, size, size, M)`` g/cm3."""
    geom = scanner.geometry
    depth, n, _, m = density.shape
    _, weights = _spectrum(scanner)
    poly_w, lin_w, mu0 = water_correction(scanner)
    stack = np.ascontiguousarray(density.transpose(1, 2, 0, 3)).reshape(n, n, depth * m)
    mass = project(stack, geom) * np.float32(scanner.voxel_mm / 10.0)  # g/cm2
    mass = _blur_bins(mass, scanner.detector_blur_bins).reshape(geom.angles, geom.bins,
                                                                depth, m)
    expected = scanner.photons_per_ray * _transmission(mass.astype(np.float64), mu, weights)
    counts = np.maximum(rng.poisson(expected), 0.5)  # starved rays: half a photon, not log(0)
    poly = np.log(scanner.photons_per_ray / counts)
    line = np.interp(poly, poly_w, lin_w)  # water precorrection: cm * (1/cm)
    mu_img = fbp(line.astype(np.float32), geom) / np.float32(scanner.voxel_mm / 10.0)
    return (1000.0 * (mu_img / mu0 - 1.0)).transpose(2, 0, 1).astype(np.float32)


def material_densities(labels: np.ndarray, table: list[tuple[int, float]], count: int,
                       factor: int) -> np.ndarray:
    """Per-material densities ``(D, H, W, count)`` on the CT grid from a fine label volume.

    ``labels`` is ``(D*f, H*f, W*f)`` with label 0 = air; ``table[label]`` is (material index,
    density g/cm3). Averaging each ``f**3`` block gives partial volume at object edges.
    """
    d, h, w = (s // factor for s in labels.shape)
    out = np.zeros((d, h, w, count), np.float32)
    fine = labels[: d * factor, : h * factor, : w * factor]
    for label in np.unique(fine):
        if label == 0:
            continue
        material, rho = table[int(label)]
        occupancy = (fine == label).reshape(d, factor, h, factor, w, factor).mean(axis=(1, 3, 5))
        out[..., material] += np.float32(rho) * occupancy.astype(np.float32)
    return out
