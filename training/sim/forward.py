"""The dual-energy forward model: mass-thickness maps in, ideal attenuation -ln(T) out.

Two renderers that must agree (tests/test_sim_forward.py):

* `render_spectral`: Beer-Lambert per 1 keV bin on per-material maps, the reference;
* `render_lut`: the fast path. Every material's mass attenuation is fitted as a mix of three
  basis materials (polyethylene, aluminium, copper; 0.25 % worst transmission error over the
  library), so a pixel is three basis mass thicknesses B (g/cm2) and each channel's response
  is a function of B alone: the exactly linear part ``slope @ B`` plus a smooth
  beam-hardening residual, read from a 3-D table (nodes evenly spaced in cbrt(B)) by
  bilinear `cv2.remap` and a blend between two slices. Aluminium and copper coefficients are
  kept non-negative: a negative copper share puts table nodes where ``exp(+mu_Cu * B)``
  explodes at low energy and ruins the interpolation. Polyethylene's attenuation is flat
  enough that a negative share (iron is -1.4 PE + 2.1 Al + 0.56 Cu) does no harm.

Channel 0 is the high-energy (rear) layer, channel 1 the low-energy (front) layer, the order
of `detector.scan.Scan` dual images.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, lru_cache

import numpy as np

from training.sim import spectrum
from training.sim.tables import Composition, load, normalise

BASIS = ("polyethylene", "aluminium", "copper")
# Table extent per basis (g/cm2): a pixel beyond it is opaque at every kVp we ship, and
# clamping it only raises the attenuation (the residual is negative and grows with B).
# Polyethylene goes negative for steel: -60 is 5 cm of it.
_LUT_MIN = (-60.0, 0.0, 0.0)
_LUT_MAX = (120.0, 100.0, 25.0)
_LUT_NODES = (80, 56, 64)
_WARP_POWER = 3  # _node_coordinate inverts it with cbrt
_MAX_ATT = 30.0  # beyond ln(65535) = 11.1 everything reads as opaque; keep the table finite


@cache
def _fit_weights() -> np.ndarray:
    """Energy weighting of the basis fit: the default scanner's two detected spectra."""
    physics = scanner_physics(160.0, 2.0, spectrum.DetectorModel(), _for_fit=True)
    full = np.zeros(len(load().energies_kev))
    full[: physics.weights.shape[1]] = physics.weights.mean(axis=0)
    return full


@lru_cache(maxsize=4096)
def _coefficients_of(name: str) -> np.ndarray:
    tables = load()
    mu = tables.mu_rho(name)
    basis = np.stack([tables.mu_rho(b) for b in BASIS], axis=1)
    scale = np.sqrt(_fit_weights() + 1e-12) / mu  # relative error, weighted by the signal
    return _constrained_lstsq(basis * scale[:, None], mu * scale, free=(0,))


def _constrained_lstsq(a: np.ndarray, y: np.ndarray, free: tuple[int, ...]) -> np.ndarray:
    """Least squares with the unknowns not in ``free`` kept >= 0: try every active set."""
    best, best_cost = np.zeros(a.shape[1]), float(y @ y)
    for mask in range(1, 2 ** a.shape[1]):
        cols = [i for i in range(a.shape[1]) if mask >> i & 1]
        sol, *_ = np.linalg.lstsq(a[:, cols], y, rcond=None)
        if all(v >= 0 or c in free for v, c in zip(sol, cols, strict=True)):
            coef = np.zeros(a.shape[1])
            coef[cols] = sol
            cost = float(np.sum((a @ coef - y) ** 2))
            if cost < best_cost:
                best, best_cost = coef, cost
    return best


def basis_coefficients(composition: Composition) -> np.ndarray:
    """(3,) basis mass per gram of ``composition``; a mixture is the sum of its parts."""
    return sum(w * _coefficients_of(n) for n, w in normalise(composition).items())


@dataclass(frozen=True, eq=False)
class ScannerPhysics:
    """Everything the renderers and the sensor need about one tube + detector setting."""

    kvp: float
    filter_al_mm: float
    energies_kev: np.ndarray  # (E,) bins below the kVp
    weights: np.ndarray  # (2, E) energy-integrating response, each row sums to 1
    mu_basis: np.ndarray  # (3, E)
    slope: np.ndarray  # (2, 3) attenuation per g/cm2 of each basis at zero thickness
    photons_per_ugy_mm2: np.ndarray  # (2,) photons absorbed per mm2 per uGy air kerma
    kappa: np.ndarray  # (2,) <E^2>/<E>^2 of the absorbed spectrum (noise excess)
    lut: np.ndarray | None  # (2, n3 * n2, n1) float32 beam-hardening residual

    def attenuation(self, weights_mu_b: np.ndarray) -> np.ndarray:
        """-ln T per channel for line integrals ``mu.B`` of shape (..., E)."""
        x = np.log(self.weights)[:, None, :] - weights_mu_b[None]
        peak = x.max(axis=-1, keepdims=True)
        return -(peak[..., 0] + np.log(np.exp(x - peak).sum(axis=-1)))


def _grid(axis: int) -> np.ndarray:
    # Nodes evenly spaced in cbrt(B): they crowd near zero, where beam hardening bends most.
    lo, hi = np.cbrt(_LUT_MIN[axis]), np.cbrt(_LUT_MAX[axis])
    return np.linspace(lo, hi, _LUT_NODES[axis]) ** _WARP_POWER


def _build_lut(physics: ScannerPhysics) -> np.ndarray:
    g1, g2, g3 = (_grid(i) for i in range(3))
    n1, n2, n3 = len(g1), len(g2), len(g3)
    m1, m2, m3 = physics.mu_basis
    # exp(-mu.B) factorises per basis, so the sum over energies for every node is one matrix
    # product. No underflow: at the top energies even the table's corner transmits ~1e-18.
    e1 = np.exp(-g1[:, None] * m1)  # (n1, E)
    e23 = np.exp(-g2[:, None, None] * m2 - g3[None, :, None] * m3)  # (n2, n3, E)
    lut = np.empty((2, n3 * n2, n1), np.float32)
    for ch in range(2):
        t = (e1 * physics.weights[ch]) @ e23.reshape(n2 * n3, -1).T  # (n1, n2*n3)
        att = -np.log(np.maximum(t, np.exp(-_MAX_ATT)))
        att = att.reshape(n1, n2, n3).transpose(2, 1, 0)  # (n3, n2, n1)
        k1, k2, k3 = physics.slope[ch]
        linear = k1 * g1[None, None, :] + k2 * g2[None, :, None] + k3 * g3[:, None, None]
        lut[ch] = (att - linear).reshape(n3 * n2, n1)
    return lut


@lru_cache(maxsize=32)
def scanner_physics(kvp: float, filter_al_mm: float, detector: spectrum.DetectorModel,
                    _for_fit: bool = False) -> ScannerPhysics:
    """The (cached) physics of one tube and detector setting."""
    if not filter_al_mm >= 0:
        raise ValueError(f"filter_al_mm: expected >= 0, got {filter_al_mm}")
    tables = load()
    keep = tables.energies_kev < kvp
    e = tables.energies_kev[keep]
    photons = spectrum.filtered(tables.tube_spectrum(kvp), tables.mu_rho("aluminium"),
                                2.699, filter_al_mm)[keep]
    front, rear = spectrum.sandwich_absorption(
        detector, tables.mu_rho("caesium_iodide")[keep], tables.mu_rho("copper")[keep])
    response = np.stack([photons * e * rear, photons * e * front])  # (high, low)
    weights = response / response.sum(axis=1, keepdims=True)
    mu_basis = np.stack([tables.mu_rho(b)[keep] for b in BASIS])
    fluence_per_ugy = 1.0 / spectrum.kerma_per_fluence(e, photons)  # photons/cm2 per uGy
    share = photons / photons.sum()
    absorbed = np.stack([rear, front])
    mean_e = (share * absorbed * e).sum(1) / (share * absorbed).sum(1)
    mean_e2 = (share * absorbed * e * e).sum(1) / (share * absorbed).sum(1)
    physics = ScannerPhysics(
        kvp=float(kvp), filter_al_mm=float(filter_al_mm), energies_kev=e, weights=weights,
        mu_basis=mu_basis, slope=weights @ mu_basis.T,
        photons_per_ugy_mm2=fluence_per_ugy / 100.0 * (share * absorbed).sum(1),
        kappa=mean_e2 / mean_e**2, lut=None)
    if _for_fit:
        return physics
    return _with_lut(physics)


def _with_lut(physics: ScannerPhysics) -> ScannerPhysics:
    fields = {k: getattr(physics, k) for k in physics.__dataclass_fields__}
    fields["lut"] = _build_lut(physics)
    return ScannerPhysics(**fields)


def _node_coordinate(b: np.ndarray, axis: int) -> np.ndarray:
    lo, hi = np.cbrt(_LUT_MIN[axis]), np.cbrt(_LUT_MAX[axis])
    w = np.cbrt(b)
    if lo != 0:
        w -= np.float32(lo)
    w *= np.float32((_LUT_NODES[axis] - 1) / (hi - lo))
    return w


def render_lut(basis: np.ndarray, physics: ScannerPhysics) -> np.ndarray:
    """(2, H, W) float32 attenuation (high, low) from (3, H, W) basis mass thickness."""
    import cv2

    if basis.ndim != 3 or basis.shape[0] != 3:
        raise ValueError(f"basis maps: expected shape (3, H, W), got {basis.shape}")
    b = basis.astype(np.float32, copy=False)
    n1, n2, n3 = _LUT_NODES
    # Node coordinates; remap's border replication clamps x and y (a -1e-7 left by a cavity,
    # an opaque pixel beyond the table), so only z, which picks the slices, needs clipping.
    x, y, z = (_node_coordinate(b[i], i) for i in range(3))
    np.clip(z, 0, n3 - 1, out=z)
    k = np.minimum(np.floor(z), np.float32(n3 - 2))
    frac = z - k
    lower_rows = k * np.float32(n2) + y
    upper_rows = lower_rows + np.float32(n2)
    slope = physics.slope.astype(np.float32)
    out = np.empty((2,) + b.shape[1:], np.float32)
    for ch in range(2):
        lower = cv2.remap(physics.lut[ch], x, lower_rows, cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
        upper = cv2.remap(physics.lut[ch], x, upper_rows, cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
        upper -= lower
        upper *= frac
        lower += upper
        for i in range(3):
            lower += slope[ch, i] * b[i]
        out[ch] = lower
    return out


def render_spectral(material_maps: dict[str, np.ndarray], physics: ScannerPhysics,
                    compositions: dict[str, Composition] | None = None) -> np.ndarray:
    """Reference renderer: (2, H, W) attenuation by Beer-Lambert in every 1 keV bin.

    ``material_maps`` maps a key to a (H, W) mass thickness map in g/cm2; the key is a
    material name, or looked up in ``compositions`` for mixtures.
    """
    tables = load()
    keep = tables.energies_kev < physics.kvp
    line = None
    for key, mass in material_maps.items():
        comp = (compositions or {}).get(key, key)
        term = mass.astype(np.float64)[..., None] * tables.mu_rho(comp)[keep]
        line = term if line is None else line + term
    shape = line.shape[:-1]
    att = physics.attenuation(line.reshape(-1, line.shape[-1]))
    return att.reshape((2,) + shape).astype(np.float32)


def ratio_curve(composition: Composition, physics: ScannerPhysics,
                att_high: tuple[float, ...]) -> tuple[float, ...]:
    """R = att_low / att_high of slabs of ``composition`` at the given high-energy attenuations.

    The material signature a dual-energy scanner sees (physics.md table B); the default
    pseudo-colour boundaries in `detector.render` are this curve of the Zeff 10 and Zeff 18
    reference mixtures for the default scanner.
    """
    mass = np.geomspace(1e-3, 400.0, 3000)[None, :]  # g/cm2
    att = render_spectral({"m": mass}, physics, {"m": composition})[:, 0].astype(np.float64)
    ratio = att[1] / att[0]
    return tuple(float(np.interp(a, att[0], ratio)) for a in att_high)
