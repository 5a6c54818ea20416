"""Load the shipped physics tables (``data/*.npz``) once per process; numpy only.

A material is named (``"cellulose"``) or a mass-fraction mixture of names
(``{"cellulose": 0.83, "calcium_carbonate": 0.17}``); `mu_rho` returns its cm2/g per 1 keV.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

DATA_DIR = Path(__file__).with_name("data")
REBUILD_HINT = "rebuild them with: python -m training.sim.build_tables"

Composition = str | dict[str, float]


@dataclass(frozen=True)
class Tables:
    energies_kev: np.ndarray  # (E,)
    names: tuple[str, ...]
    mu: np.ndarray  # (materials, E) mass attenuation, cm2/g
    kvp_grid: tuple[float, ...]
    spectra: np.ndarray  # (kVp, E) unfiltered tube photons per bin

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise ValueError(f"unknown material {name!r}; valid: {sorted(self.names)}") from None

    def mu_rho(self, composition: Composition) -> np.ndarray:
        """Mass attenuation (cm2/g, float64) of a named material or a mixture of them."""
        return sum(w * self.mu[self.index(n)].astype(np.float64)
                   for n, w in normalise(composition).items())

    def tube_spectrum(self, kvp: float) -> np.ndarray:
        """Unfiltered photons per bin for a kVp on the shipped grid."""
        for i, grid_kvp in enumerate(self.kvp_grid):
            if abs(grid_kvp - kvp) < 1e-9:
                return self.spectra[i].astype(np.float64)
        raise ValueError(f"kVp {kvp} has no shipped spectrum; valid: {list(self.kvp_grid)}")


def normalise(composition: Composition) -> dict[str, float]:
    """``{name: mass fraction}`` summing to one; `ValueError` for an empty or negative mix."""
    if isinstance(composition, str):
        return {composition: 1.0}
    if not isinstance(composition, dict) or not composition:
        raise ValueError(f"material: expected a name or a non-empty {{name: fraction}} dict, "
                         f"got {composition!r}")
    total = float(sum(composition.values()))
    if total <= 0 or any(w < 0 for w in composition.values()):
        raise ValueError(f"material mixture: expected non-negative fractions with a positive "
                         f"sum, got {composition!r}")
    return {name: float(w) / total for name, w in composition.items()}


@lru_cache(maxsize=1)
def load() -> Tables:
    """The tables in ``training/sim/data``; `FileNotFoundError` says how to rebuild them."""
    mu_path, spectra_path = DATA_DIR / "mu_table.npz", DATA_DIR / "spectra.npz"
    for path in (mu_path, spectra_path):
        if not path.is_file():
            raise FileNotFoundError(f"simulator table {path} is missing; {REBUILD_HINT}")
    with np.load(mu_path) as mu_file, np.load(spectra_path) as spec_file:
        energies = mu_file["energies_kev"]
        if not np.array_equal(energies, spec_file["energies_kev"]):
            raise ValueError(f"mu_table.npz and spectra.npz use different energy grids; "
                             f"{REBUILD_HINT}")
        return Tables(energies_kev=energies.astype(np.float64),
                      names=tuple(str(n) for n in mu_file["names"]),
                      mu=mu_file["mu_rho"],
                      kvp_grid=tuple(float(k) for k in spec_file["kvp"]),
                      spectra=spec_file["photons"])
