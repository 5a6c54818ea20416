"""Typed configuration of ``concealscan synth`` and how a YAML file becomes one.

Every value has a default here; ``configs/synth/default.yaml`` spells them out. A YAML file
may set any subset. Unknown keys, wrong types and impossible values are `ConfigError`s that
name the key, the bad value and what is valid. A pair ``[lo, hi]`` is a range to draw from
(uniformly, or log-uniformly where noted); a ``{name: weight}`` dict is a weighted choice.
Numbers must be finite; a number may be written as text (YAML 1.1 reads ``2e-4`` as a string),
as in training recipes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path

from detector.errors import UsageError

#: The smallest field of view (mm, across and along the belt) a scanner may have: the parcel
#: builders fit the parcel into it, and below about 20 mm a carton's walls meet (measured).
MIN_FIELD_MM = 50.0


class ConfigError(UsageError, ValueError):
    """A synth configuration that cannot be used; the message names the key."""


def is_number(value, integer: bool = False) -> bool:
    """A finite int or float (an int only with ``integer``), not a bool."""
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
        return False
    return math.isfinite(value)


def _range(section: str, name: str, value, lo_limit: float = 0.0, positive=True,
           integer: bool = False) -> None:
    """``[low, high]``; ``integer`` for counts and pixels, which are drawn as integers (a
    fraction would be dropped without a word)."""
    if (not isinstance(value, tuple) or len(value) != 2
            or not all(is_number(v, integer) for v in value)):
        kind = "integers" if integer else "finite numbers"
        raise ConfigError(f"{section}.{name}: expected [low, high] {kind}, got {list(value)!r}"
                          if isinstance(value, tuple) else
                          f"{section}.{name}: expected [low, high] {kind}, got {value!r}")
    lo, hi = value
    if lo > hi or lo < lo_limit or (positive and lo <= 0):
        raise ConfigError(f"{section}.{name}: expected {lo_limit} {'<' if positive else '<='} "
                          f"low <= high, got {list(value)}")


def _weights(section: str, name: str, value, valid) -> None:
    if not isinstance(value, dict) or not value:
        raise ConfigError(f"{section}.{name}: expected a {{name: weight}} mapping, got {value!r}")
    for key, weight in value.items():
        if key not in valid:
            raise ConfigError(f"{section}.{name}: unknown name {key!r}; valid: {sorted(valid)}")
        if not is_number(weight) or weight < 0:
            raise ConfigError(f"{section}.{name}.{key}: expected a finite weight >= 0, got "
                              f"{weight!r}")
    if sum(value.values()) <= 0:
        raise ConfigError(f"{section}.{name}: weights must not all be zero, got {value}")


def _choices(section: str, name: str, value, minimum: float = 0.0) -> None:
    if (not isinstance(value, tuple) or not value
            or not all(is_number(v) and v >= minimum for v in value)):
        raise ConfigError(f"{section}.{name}: expected a non-empty list of numbers >= {minimum}, "
                          f"got {value!r}")


def _fraction(section: str, name: str, value) -> None:
    if not is_number(value) or not 0 <= value <= 1:
        raise ConfigError(f"{section}.{name}: expected a number in [0, 1], got {value!r}")


def _positive(section: str, name: str, value) -> None:
    if not is_number(value) or not value > 0:
        shown = list(value) if isinstance(value, tuple) else value
        raise ConfigError(f"{section}.{name}: expected a number > 0, got {shown!r}")


@dataclass(frozen=True)
class ScannerConfig:
    """Tube, detector and geometry; a scan draws one value from each list or range."""

    kvp: tuple[float, ...] = (140.0, 150.0, 160.0)  # choices; each must have a shipped spectrum
    filter_al_mm: tuple[float, ...] = (1.5, 2.0, 3.0)  # choices
    front_csi_mm: float = 0.3
    filter_cu_mm: float = 0.5
    rear_csi_mm: float = 3.0
    pixel_mm: tuple[float, float] = (0.7, 1.2)  # range, at the belt
    channels: int = 768  # detector channels across the belt (the tunnel width in pixels)
    fit_height: bool = True  # crop the rows to the parcel and margins, as exports usually do
    length_px: tuple[int, int] = (512, 1024)  # image width range: belt travel per scan
    margin_px: tuple[int, int] = (8, 64)  # air around the parcel
    source_distance_mm: tuple[float, float] = (600.0, 900.0)  # focus to belt

    def __post_init__(self) -> None:
        from training.sim.tables import load

        s = "scanner"
        _choices(s, "kvp", self.kvp)
        _choices(s, "filter_al_mm", self.filter_al_mm)
        grid = load().kvp_grid
        for kvp in self.kvp:
            if kvp not in grid:
                raise ConfigError(f"{s}.kvp: {kvp} has no shipped spectrum; valid: {list(grid)}")
        for name in ("front_csi_mm", "filter_cu_mm", "rear_csi_mm"):
            _positive(s, name, getattr(self, name))
        for name in ("pixel_mm", "source_distance_mm"):
            _range(s, name, getattr(self, name))
        _range(s, "length_px", self.length_px, integer=True)
        _range(s, "margin_px", self.margin_px, positive=False, integer=True)
        if not isinstance(self.fit_height, bool):
            raise ConfigError(f"{s}.fit_height: expected true or false, got {self.fit_height!r}")
        if not isinstance(self.channels, int) or not 32 <= self.channels <= 4096:
            raise ConfigError(f"{s}.channels: expected an integer in 32..4096, got "
                              f"{self.channels!r}")
        if self.length_px[0] < 32 or 2 * self.margin_px[1] >= self.length_px[0]:
            raise ConfigError(f"{s}.length_px: expected >= 32 and room for the margins "
                              f"{list(self.margin_px)}, got {list(self.length_px)}")
        across = self.channels * self.pixel_mm[0]
        along = (self.length_px[1] - 2 * self.margin_px[0]) * self.pixel_mm[0]
        if min(across, along) < MIN_FIELD_MM:
            raise ConfigError(
                f"{s}.pixel_mm: the field of view at the low pixel size, {across:g} mm across "
                f"(channels x pixel_mm) and {along:g} mm along the belt (length_px high less "
                f"the margins, x pixel_mm), must be >= {MIN_FIELD_MM:g} mm to hold a parcel; "
                f"got pixel_mm {list(self.pixel_mm)}")


@dataclass(frozen=True)
class SensorConfig:
    dose_ugy: tuple[float, float] = (1.0, 20.0)  # air kerma per scan, drawn log-uniformly
    electronic_noise: tuple[float, float] = (2e-4, 1e-3)  # std, fraction of the air signal
    blur_across_px: tuple[float, float] = (0.5, 0.75)  # scintillator light spread (sigma)
    blur_along_px: tuple[float, float] = (0.3, 0.8)  # integration-time smear (sigma)
    channel_gain_std: tuple[float, float] = (0.001, 0.005)  # flat-field residual per channel
    line_gain_std: tuple[float, float] = (0.0, 0.002)  # tube output flicker per line

    def __post_init__(self) -> None:
        _range("sensor", "dose_ugy", self.dose_ugy)
        for name in ("electronic_noise", "blur_across_px", "blur_along_px", "channel_gain_std",
                     "line_gain_std"):
            _range("sensor", name, getattr(self, name), positive=False)


def _default(mapping: dict):
    return field(default_factory=lambda: dict(mapping))


@dataclass(frozen=True)
class SceneConfig:
    positive_fraction: float = 0.5
    parcels: dict = _default({"carton": 0.6, "padded_envelope": 0.2, "mail_bag": 0.2})
    items: tuple[int, int] = (3, 14)  # benign objects wanted per parcel (if they fit)
    objects: dict = _default({
        "book": 1.0, "paper_stack": 0.7, "clothes": 1.5, "shoes": 0.8, "laptop": 0.5,
        "phone": 0.6, "circuit_board": 0.5, "batteries": 0.5, "charger": 0.6, "cable": 0.6,
        "headphones": 0.4, "bottle": 0.7, "can": 0.7, "glass_jar": 0.5, "cosmetics": 0.6,
        "mug": 0.4, "tools": 0.6, "food": 0.8, "toy": 0.5, "keys": 0.4, "stationery": 0.6})
    strategies: dict = _default({
        "hollow_book": 1.0, "in_electronics": 1.0, "in_can": 1.0, "in_cosmetics": 0.5,
        "shoe_sole": 1.0, "among_clothes": 1.0, "false_bottom": 1.0, "double_wall": 0.7,
        "beside_similar": 1.0, "metal_shadow": 1.0})
    packets_per_positive: tuple[int, int] = (1, 2)
    packet_mass_g: tuple[float, float] = (3.0, 1000.0)  # drawn log-uniformly, then fitted
    min_packet_mass_g: float = 2.0  # a host that cannot hold this much is not used
    substances: dict = _default({
        "fentanyl_base": 1.0, "fentanyl_hcl": 1.5, "fentanyl_citrate": 0.5, "carfentanil": 0.3,
        "cocaine_hcl": 1.5, "cocaine_base": 0.5, "heroin_base": 0.7, "heroin_hcl": 0.7,
        "methamphetamine_hcl": 1.0, "mdma_hcl": 0.7})
    forms: dict = _default({"powder": 0.5, "brick": 0.3, "pills": 0.2})
    wraps: dict = _default({"plastic": 1.0, "tape": 1.0, "foil": 0.5, "carbon_paper": 0.4,
                            "vacuum": 0.8, "paper": 0.3})
    decoy_probability: float = 0.7  # parcels (positive or not) with benign look-alike blocks
    decoys: tuple[int, int] = (1, 3)
    decoy_mass_g: tuple[float, float] = (20.0, 1000.0)

    def __post_init__(self) -> None:
        from training.sim import concealment, objects, packets, parcels

        s = "scene"
        _fraction(s, "positive_fraction", self.positive_fraction)
        _fraction(s, "decoy_probability", self.decoy_probability)
        _weights(s, "parcels", self.parcels, parcels.PARCEL_KINDS)
        _weights(s, "objects", self.objects, objects.BUILDERS)
        _weights(s, "strategies", self.strategies, concealment.STRATEGIES)
        _weights(s, "substances", self.substances, packets.DRUGS)
        _weights(s, "forms", self.forms, packets.FORMS)
        _weights(s, "wraps", self.wraps, packets.WRAPS)
        for name in ("items", "packets_per_positive", "decoys"):
            _range(s, name, getattr(self, name), positive=False, integer=True)
        if self.packets_per_positive[0] < 1:
            raise ConfigError(f"{s}.packets_per_positive: expected 1 <= low <= high (a positive "
                              f"scan holds at least one packet; positive_fraction: 0 makes "
                              f"none), got {list(self.packets_per_positive)}")
        for name in ("packet_mass_g", "decoy_mass_g"):
            _range(s, name, getattr(self, name))
        _positive(s, "min_packet_mass_g", self.min_packet_mass_g)
        if self.min_packet_mass_g > self.packet_mass_g[0]:
            raise ConfigError(f"{s}.min_packet_mass_g: expected 0 < value <= packet_mass_g low "
                              f"({self.packet_mass_g[0]}), got {self.min_packet_mass_g!r}")


@dataclass(frozen=True)
class ColourConfig:
    palettes: dict = _default({"classic": 0.6, "vendor_b": 0.4})
    jitter: float = 0.08  # random change of hues and class boundaries, as a fraction

    def __post_init__(self) -> None:
        from detector.render import PRESETS

        _weights("colour", "palettes", self.palettes, PRESETS)
        _fraction("colour", "jitter", self.jitter)


@dataclass(frozen=True)
class SynthConfig:
    scanner: ScannerConfig = field(default_factory=ScannerConfig)
    sensor: SensorConfig = field(default_factory=SensorConfig)
    scene: SceneConfig = field(default_factory=SceneConfig)
    colour: ColourConfig = field(default_factory=ColourConfig)
    png_compression: int = 1  # zlib level of the written PNGs (0 fastest, 9 smallest)

    def __post_init__(self) -> None:
        if not isinstance(self.png_compression, int) or not 0 <= self.png_compression <= 9:
            raise ConfigError(f"png_compression: expected an integer 0..9, got "
                              f"{self.png_compression!r}")

    def to_json(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def digest(self) -> str:
        """sha256 of the canonical JSON of every value: what the manifest records."""
        text = json.dumps(self.to_json(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()


def _build(cls, data, where: str):
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {type(data).__name__}")
    known = {f.name: f for f in fields(cls)}
    for key in data:
        if key not in known:
            name = f"{where}.{key}" if where else str(key)
            ct = " (a ct: section is read with --kinds ct)" if name == "ct" else ""
            raise ConfigError(f"unknown key {name!r}; valid keys "
                              f"{'in ' + where if where else 'at the top level'}: "
                              f"{sorted(known)}{ct}")
    values = {}
    for key, value in data.items():
        sub = _SECTIONS.get(key) if cls is SynthConfig else None
        if sub is not None:
            values[key] = _build(sub, value, key)
        else:
            values[key] = as_declared(known[key], tuple(value) if isinstance(value, list)
                                      else value)
    try:
        return cls(**values)
    except TypeError as exc:  # a value of the wrong kind reached a comparison
        raise ConfigError(f"{where or 'config'}: {exc}") from exc


def _number(value, like):
    """``value`` as a float where the default is a float (YAML writes 160 for 160.0, and
    YAML 1.1 reads 2e-4 as text); anything else is left for the checks to refuse."""
    if isinstance(like, float) and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    if isinstance(like, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def as_declared(f, value):
    """Ints to floats where the field's default holds floats, so equal configs hash equal."""
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    if isinstance(value, tuple) and isinstance(default, tuple) and default:
        return tuple(_number(v, default[0]) for v in value)
    if isinstance(value, dict) and isinstance(default, dict):
        return {k: _number(v, 1.0) for k, v in value.items()}
    return _number(value, default)


_SECTIONS = {"scanner": ScannerConfig, "sensor": SensorConfig, "scene": SceneConfig,
             "colour": ColourConfig}


def from_dict(data: dict) -> SynthConfig:
    """A validated config from a plain mapping (e.g. parsed YAML or a scene record)."""
    return _build(SynthConfig, data, "")


def read_yaml(path: str | Path) -> dict:
    """The mapping in YAML file ``path``; `ConfigError` when missing or not YAML."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    return data


def load_config(path: str | Path | None = None) -> SynthConfig:
    """The config in YAML file ``path`` (defaults for everything it leaves out)."""
    if path is None:
        return SynthConfig()
    data = read_yaml(path)
    try:
        return from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
