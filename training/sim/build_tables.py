"""Build the simulator's shipped physics tables (run once; the runtime needs no network).

    python -m training.sim.build_tables            # writes training/sim/data/*

Writes ``mu_table.npz`` (mass attenuation, cm2/g, every library material x 1 keV bins from
NIST-derived xraydb data), ``spectra.npz`` (analytic tube spectra on a kVp grid) and
``tables.json`` (provenance: versions, the fitted tube constants and how well they match the
spekpy reference figures in ../shared/notes/physics.md, Zeff per material, file hashes).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
from pathlib import Path

import numpy as np

from training.sim import materials, spectrum

DATA_DIR = Path(__file__).with_name("data")
ENERGIES_KEV = np.arange(10.0, 201.0, 1.0)
KVP_GRID = tuple(range(80, 201, 10))
ZEFF_EXPONENT = 2.94

# spekpy 2.5.4 figures (W anode, 20 deg) and the sandwich model (0.3 mm CsI / 0.5 mm Cu /
# 3 mm CsI) from physics.md sections 1.2-1.3: the targets of the analytic tube fit.
SPEKPY_REFERENCE = {
    "mean_kev_160kvp_2al": 60.6, "hvl_mm_160kvp_2al": 4.64,
    "mean_kev_80kvp_1al": 37.8, "hvl_mm_80kvp_1al": 1.41,
    "absorbed_mean_kev_low": 58.5, "absorbed_mean_kev_high": 94.8,
    "t_low_fentanyl_1cm": 0.782, "t_high_fentanyl_1cm": 0.817,
    "t_low_aluminium_1cm": 0.390, "t_high_aluminium_1cm": 0.596,
    "t_low_iron_1cm": 0.0093, "t_high_iron_1cm": 0.058,
}
_SLABS = {"fentanyl": ("fentanyl_base", 1.2), "aluminium": ("aluminium", 2.7),
          "iron": ("iron", 7.874)}


def _mu_formula(formula: str) -> np.ndarray:
    import xraydb

    return np.asarray(xraydb.material_mu(formula, ENERGIES_KEV * 1000.0, density=1.0))


def _mu_parts(parts) -> np.ndarray:
    return sum(w * _mu_formula(f) for f, w in parts)


def _electron_fractions(parts) -> dict[int, float]:
    import xraydb

    electrons: dict[int, float] = {}
    for formula, mass_fraction in parts:
        counts = xraydb.chemparse(formula)
        molar = sum(n * xraydb.atomic_mass(el) for el, n in counts.items())
        for el, n in counts.items():
            z = xraydb.atomic_number(el)
            electrons[z] = electrons.get(z, 0.0) + mass_fraction * n * z / molar
    total = sum(electrons.values())
    return {z: e / total for z, e in electrons.items()}


def zeff(parts) -> float:
    """Power-law effective atomic number (exponent 2.94) of a mass-fraction mixture."""
    fractions = _electron_fractions(parts)
    return float(sum(f * z**ZEFF_EXPONENT for z, f in fractions.items()) ** (1 / ZEFF_EXPONENT))


def zeff_mixture(target: float, low: str, high: str) -> tuple[tuple[str, float], ...]:
    """Mass-fraction mixture of ``low`` and ``high`` formulas whose Zeff is ``target``."""
    lo, hi = 0.0, 1.0
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        if zeff(((low, 1 - mid), (high, mid))) < target:
            lo = mid
        else:
            hi = mid
    share = 0.5 * (lo + hi)
    return ((low, 1.0 - share), (high, share))


def build_mu_table() -> tuple[list[str], np.ndarray, dict]:
    names, rows, info = [], [], {}
    for m in materials.MATERIALS:
        names.append(m.name)
        rows.append(_mu_parts(m.parts))
        info[m.name] = {"parts": dict(m.parts), "density": m.density, "kind": m.kind,
                        "zeff": round(zeff(m.parts), 3)}
    for name, (target, low, high) in materials.ZEFF_REFERENCES.items():
        parts = zeff_mixture(target, low, high)
        names.append(name)
        rows.append(_mu_parts(parts))
        info[name] = {"parts": dict(parts), "density": 1.0, "kind": "reference",
                      "zeff": round(zeff(parts), 3)}
    return names, np.stack(rows), info


def _predict(tube: spectrum.TubeModel, mu: dict[str, np.ndarray]) -> dict[str, float]:
    """The reference figures as the analytic model with ``tube`` predicts them."""
    e = ENERGIES_KEV
    out = {}
    for kvp, al_mm, tag in ((160, 2.0, "160kvp_2al"), (80, 1.0, "80kvp_1al")):
        s = spectrum.filtered(spectrum.tube_spectrum(e, kvp, tube, mu["tungsten"]),
                              mu["aluminium"], 2.699, al_mm)
        out[f"mean_kev_{tag}"] = float(np.sum(s * e) / s.sum())
        out[f"hvl_mm_{tag}"] = spectrum.half_value_layer_mm(e, s, mu["aluminium"])
    s = spectrum.filtered(spectrum.tube_spectrum(e, 160, tube, mu["tungsten"]),
                          mu["aluminium"], 2.699, 2.0)
    front, rear = spectrum.sandwich_absorption(spectrum.DetectorModel(), mu["caesium_iodide"],
                                               mu["copper"])
    for layer, absorbed in (("low", front), ("high", rear)):
        w = s * e * absorbed  # energy-integrating response
        out[f"absorbed_mean_kev_{layer}"] = float(np.sum(w * e) / w.sum())
        for slab, (name, rho) in _SLABS.items():
            t = np.sum(w * np.exp(-mu[name] * rho * 1.0)) / w.sum()
            out[f"t_{layer}_{slab}_1cm"] = float(t)
    return out


def fit_tube(mu: dict[str, np.ndarray]) -> tuple[spectrum.TubeModel, dict[str, float]]:
    """Fit the analytic tube constants to `SPEKPY_REFERENCE` (log-ratio least squares)."""
    from scipy.optimize import minimize

    keys = sorted(SPEKPY_REFERENCE)
    target = np.array([SPEKPY_REFERENCE[k] for k in keys])

    def loss(p: np.ndarray) -> float:
        if np.any(p <= 0):
            return 1e9
        pred = _predict(spectrum.TubeModel(*p), mu)
        return float(np.sum(np.log(np.array([pred[k] for k in keys]) / target) ** 2))

    starts = ((1.0, 3.0, 0.15), (0.8, 2.0, 0.1), (0.7, 5.0, 0.2))
    best = min((minimize(loss, np.array(x0), method="Nelder-Mead",
                         options={"maxiter": 4000, "xatol": 1e-6, "fatol": 1e-10})
                for x0 in starts), key=lambda r: r.fun)
    tube = spectrum.TubeModel(*(round(float(v), 5) for v in best.x))
    return tube, _predict(tube, mu)


def _npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def build(out_dir: Path = DATA_DIR) -> dict:
    """Build every table into ``out_dir``; return the provenance record it wrote."""
    import xraydb

    names, mu, info = build_mu_table()
    by_name = dict(zip(names, mu, strict=True))
    tube, predicted = fit_tube(by_name)
    spectra = np.stack([spectrum.tube_spectrum(ENERGIES_KEV, kvp, tube, by_name["tungsten"])
                        for kvp in KVP_GRID])
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {
        "mu_table.npz": _npz_bytes(energies_kev=ENERGIES_KEV, names=np.array(names),
                                   mu_rho=mu.astype(np.float32)),
        "spectra.npz": _npz_bytes(energies_kev=ENERGIES_KEV, kvp=np.array(KVP_GRID, float),
                                  photons=spectra.astype(np.float32)),
    }
    for name, data in files.items():
        (out_dir / name).write_bytes(data)
    record = {
        "built_by": "python -m training.sim.build_tables",
        "xraydb_version": xraydb.__version__,
        "attenuation": "xraydb.material_mu (Elam-Ravel-Sieber: photo + coherent + "
                       "incoherent), cm2/g, mixtures by mass fraction",
        "energies_kev": [float(ENERGIES_KEV[0]), float(ENERGIES_KEV[-1]), 1.0],
        "tube_model": {"form": "(kVp - E)**exponent / E, W self-absorption, W K lines",
                       "exponent": tube.exponent, "anode_w_um": tube.anode_w_um,
                       "k_line_fraction": tube.k_line_fraction,
                       "kvp_grid": list(KVP_GRID)},
        "tube_fit": {k: {"reference": SPEKPY_REFERENCE[k], "model": round(predicted[k], 4)}
                     for k in sorted(SPEKPY_REFERENCE)},
        "materials": info,
        "sha256": {name: hashlib.sha256(data).hexdigest() for name, data in files.items()},
    }
    (out_dir / "tables.json").write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DATA_DIR, help="output folder")
    args = parser.parse_args(argv)
    record = build(args.out)
    for key, row in record["tube_fit"].items():
        print(f"{key:<28} reference {row['reference']:>8}  model {row['model']:>8}")
    print(f"wrote {', '.join(record['sha256'])} to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
