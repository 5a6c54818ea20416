"""Typed configuration of ``concealscan synth --kinds ct``: the CT grid and scanner.

The parcels, objects, packets and concealments come from the 2-D simulator's ``scene``
section (`training.sim.config.SceneConfig`), so both kinds draw from one library. A YAML file
for ``--kinds ct`` holds a ``scene:`` section and a ``ct:`` section with the keys below; the
2-D scanner, sensor and colour settings do not apply to CT and are refused.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from training.sim.config import (
    MIN_FIELD_MM,
    ConfigError,
    ScannerConfig,
    SynthConfig,
    as_declared,
    from_dict,
    is_number,
    read_yaml,
)


def _positive(name: str, value, integer: bool = False) -> None:
    if not is_number(value, integer) or not value > 0:
        shown = list(value) if isinstance(value, tuple) else value
        raise ConfigError(f"ct.{name}: expected a positive {'integer' if integer else 'number'}"
                          f", got {shown!r}")


@dataclass(frozen=True)
class CtConfig:
    """One simulated CT scanner and its grid. Defaults: ~2-3 s per volume on one core."""

    voxel_mm: float = 4.0  # cubic voxels
    size: int = 128  # rows (height) and columns (across the belt) of a slice
    slices: tuple[int, int] = (40, 96)  # volume depth range along the belt
    margin: tuple[int, int] = (2, 6)  # air slices before and after the parcel
    belt_mm: float = 24.0  # belt surface above the bottom of the field of view
    kvp: tuple[float, ...] = (140.0,)  # the first is NAME.npy; others NAME_<kvp>kvp.npy
    filter_al_mm: float = 3.0
    photons_per_ray: tuple[float, float] = (1e5, 4e5)  # drawn log-uniformly per volume
    angles: int = 120  # views over 180 degrees
    supersample: int = 2  # in-plane samples per voxel side (partial volume)
    energy_step_kev: int = 4  # spectrum grouping of the polychromatic projection

    def __post_init__(self) -> None:
        from training.sim.tables import load

        for name in ("voxel_mm", "belt_mm", "filter_al_mm"):
            _positive(name, getattr(self, name))
        for name in ("size", "angles", "supersample", "energy_step_kev"):
            _positive(name, getattr(self, name), integer=True)
        if self.size < 32 or self.angles < 8:
            raise ConfigError(f"ct.size >= 32 and ct.angles >= 8 expected, got {self.size}, "
                              f"{self.angles}")
        for name in ("slices", "margin", "photons_per_ray"):
            value, integer = getattr(self, name), name != "photons_per_ray"
            if (not isinstance(value, tuple) or len(value) != 2
                    or not all(is_number(v, integer) and v >= 0 for v in value)
                    or value[0] > value[1]):
                shown = list(value) if isinstance(value, tuple) else value
                raise ConfigError(f"ct.{name}: expected [low, high] "
                                  f"{'integers' if integer else 'finite numbers'} with "
                                  f"0 <= low <= high, got {shown!r}")
        if self.slices[0] < 32 or 2 * self.margin[1] >= self.slices[0]:
            raise ConfigError(f"ct.slices: expected >= 32 and room for the margins "
                              f"{list(self.margin)}, got {list(self.slices)}")
        if not self.photons_per_ray[0] > 0:
            raise ConfigError(f"ct.photons_per_ray: expected > 0, got {self.photons_per_ray}")
        if (not isinstance(self.kvp, tuple) or not self.kvp
                or any(k not in load().kvp_grid for k in self.kvp)):
            raise ConfigError(f"ct.kvp: expected a list of kVps with a shipped spectrum "
                              f"{list(load().kvp_grid)}, got {self.kvp!r}")
        if len(set(self.kvp)) != len(self.kvp):
            raise ConfigError(f"ct.kvp: expected each energy once (one volume each), got "
                              f"{list(self.kvp)}")
        along = self.slices[1] - 2 * self.margin[0]
        if min(self.size, along) * self.voxel_mm < MIN_FIELD_MM:
            raise ConfigError(f"ct: the grid, {self.size} x {self.voxel_mm:g} mm across and "
                              f"{along} x {self.voxel_mm:g} mm along the belt (slices high less "
                              f"the margins), must be >= {MIN_FIELD_MM:g} mm each way to hold "
                              f"a parcel (size, slices, margin, voxel_mm)")
        if not self.belt_mm < self.size * self.voxel_mm / 4:
            raise ConfigError(f"ct.belt_mm: expected below a quarter of the field of view, got "
                              f"{self.belt_mm}")

    def scanner(self) -> ScannerConfig:
        """The 2-D composer's view of this grid: belt travel in slices, the slice width as
        its detector channels, one voxel per pixel."""
        return ScannerConfig(channels=self.size, fit_height=False,
                             length_px=tuple(int(s) for s in self.slices),
                             margin_px=tuple(int(m) for m in self.margin),
                             pixel_mm=(float(self.voxel_mm), float(self.voxel_mm)))

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def ct_from_dict(data: dict) -> CtConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"ct: expected a mapping, got {type(data).__name__}")
    known = {f.name: f for f in dataclasses.fields(CtConfig)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"unknown key(s) {['ct.' + k for k in unknown]}; valid keys in ct: "
                          f"{sorted(known)}")
    values = {key: as_declared(known[key], tuple(value) if isinstance(value, list) else value)
              for key, value in data.items()}
    try:
        return CtConfig(**values)
    except TypeError as exc:
        raise ConfigError(f"ct: {exc}") from exc


#: The sections of a ``--kinds ct`` YAML file: CT volumes use only the scenes of the 2-D
#: config (`generate_ct` takes the scanner from `CtConfig.scanner`).
CT_SECTIONS = ("scene", "ct")


def load_ct_config(path: str | Path | None = None) -> tuple[SynthConfig, CtConfig]:
    """(2-D config for the scenes, CT config) from a YAML file; defaults without one."""
    if path is None:
        return SynthConfig(), CtConfig()
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping, got {type(data).__name__}")
    data = dict(data)
    ignored = [key for key in data if key not in CT_SECTIONS]
    if ignored:
        # They would change the config digest and not one voxel: scanner.kvp, for one, is not
        # the CT energy.
        raise ConfigError(f"{path}: {', '.join(map(str, ignored))}: not used by --kinds ct, "
                          f"which takes only {' and '.join(f'{k}:' for k in CT_SECTIONS)}; the CT "
                          f"scanner and grid (kvp, filter_al_mm, photons_per_ray, voxel_mm, "
                          f"size, slices, ...) are set under ct:")
    try:
        ct = ct_from_dict(data.pop("ct", {}))
        return from_dict(data), ct
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
