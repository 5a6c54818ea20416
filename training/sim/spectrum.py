"""X-ray tube spectra and the dual-energy sandwich detector, as arrays over 1 keV energy bins.

The tube model is analytic (documented in docs/simulation.md): a generalised Kramers
bremsstrahlung spectrum ``(E0 - E)**a / E``, self-absorption in the tungsten anode, and the
tungsten K lines. ``build_tables`` fits its three constants to spekpy reference figures and
ships the resulting spectra; this module only does the arithmetic on given arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KEV_TO_J = 1.602176634e-16
# Tungsten K emission lines (keV) and relative intensities; they exist above the K edge.
W_K_EDGE_KEV = 69.525
W_K_LINES = ((57.98, 0.58), (59.32, 1.0), (67.24, 0.33), (69.07, 0.085))

# NIST mass energy-absorption coefficients of dry air (Hubbell & Seltzer, NISTIR 5632,
# table 4), cm2/g: used for air kerma, i.e. dose and half-value layers.
AIR_MU_EN_KEV = (10, 15, 20, 30, 40, 50, 60, 80, 100, 150, 200)
AIR_MU_EN = (4.742, 1.334, 0.5389, 0.1537, 0.06833, 0.04098, 0.03041, 0.02407, 0.02325,
             0.02496, 0.02672)


@dataclass(frozen=True)
class TubeModel:
    """Constants of the analytic tube spectrum (fitted by ``build_tables``)."""

    exponent: float  # a in (E0 - E)**a / E; 1.0 is Kramers' law
    anode_w_um: float  # equivalent tungsten self-absorption of the anode
    k_line_fraction: float  # K-line photons per bremsstrahlung photon at 2x the K edge


@dataclass(frozen=True)
class DetectorModel:
    """Sandwich line detector: front (low-energy) scintillator, copper filter, rear layer."""

    front_csi_mm: float = 0.3
    filter_cu_mm: float = 0.5
    rear_csi_mm: float = 3.0

    def __post_init__(self) -> None:
        for name in ("front_csi_mm", "filter_cu_mm", "rear_csi_mm"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"DetectorModel.{name}: expected > 0 mm, got {value}")


def tube_spectrum(energies_kev: np.ndarray, kvp: float, tube: TubeModel,
                  mu_tungsten: np.ndarray) -> np.ndarray:
    """Photons per 1 keV bin (arbitrary scale) leaving the anode, before added filtration."""
    e = np.asarray(energies_kev, dtype=np.float64)
    photons = np.where(e < kvp, np.clip(kvp - e, 0.0, None) ** tube.exponent / e, 0.0)
    if kvp > W_K_EDGE_KEV:
        # Characteristic yield grows as (U - 1)**1.63 with overvoltage U (Green & Cosslett).
        total = photons.sum() * tube.k_line_fraction * (kvp / W_K_EDGE_KEV - 1.0) ** 1.63
        weights = np.array([w for _, w in W_K_LINES])
        for (line_kev, _), share in zip(W_K_LINES, weights / weights.sum(), strict=True):
            photons[int(np.argmin(np.abs(e - line_kev)))] += total * share
    rho_w = 19.3
    return photons * np.exp(-mu_tungsten * rho_w * tube.anode_w_um * 1e-4)


def filtered(spectrum: np.ndarray, mu_rho: np.ndarray, density: float,
             thickness_mm: float) -> np.ndarray:
    """``spectrum`` after ``thickness_mm`` of a filter (mass attenuation ``mu_rho``, cm2/g)."""
    return spectrum * np.exp(-mu_rho * density * thickness_mm / 10.0)


def air_mu_en(energies_kev: np.ndarray) -> np.ndarray:
    """Air mass energy-absorption coefficient (cm2/g), log-log interpolated from NIST."""
    return np.exp(np.interp(np.log(energies_kev), np.log(AIR_MU_EN_KEV), np.log(AIR_MU_EN)))


def kerma_per_fluence(energies_kev: np.ndarray, spectrum: np.ndarray) -> float:
    """Air kerma in uGy per photon/cm2 of a spectrum of this shape."""
    p = spectrum / spectrum.sum()
    gray = np.sum(p * energies_kev * KEV_TO_J * air_mu_en(energies_kev) * 1000.0)
    return float(gray * 1e6)


def half_value_layer_mm(energies_kev: np.ndarray, spectrum: np.ndarray,
                        mu_aluminium: np.ndarray) -> float:
    """Aluminium thickness (mm) that halves the air kerma of ``spectrum``."""
    weight = spectrum * energies_kev * air_mu_en(energies_kev)
    full = weight.sum()
    lo, hi = 0.0, 100.0
    for _ in range(60):  # bisection to far below a micrometre
        mid = 0.5 * (lo + hi)
        if np.sum(weight * np.exp(-mu_aluminium * 2.699 * mid / 10.0)) > 0.5 * full:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def sandwich_absorption(detector: DetectorModel, mu_csi: np.ndarray,
                        mu_cu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fraction of photons absorbed per energy in the (front, rear) layers."""
    rho_csi, rho_cu = 4.51, 8.96
    front_t = np.exp(-mu_csi * rho_csi * detector.front_csi_mm / 10.0)
    through = front_t * np.exp(-mu_cu * rho_cu * detector.filter_cu_mm / 10.0)
    rear = through * (1.0 - np.exp(-mu_csi * rho_csi * detector.rear_csi_mm / 10.0))
    return 1.0 - front_t, rear
