"""Show dual-energy scans the way operators expect: pseudo-colour and gray views.

The common convention: organic (Zeff below ~10) orange, mixed and light inorganic (Zeff ~10
to ~18) green, metal blue, opaque black, brightness from thickness. The material class comes
from the ratio R = att_low / att_high compared with two boundary curves, each a function of
att_high because beam hardening lowers R as objects get thicker. Vendors differ in hues and
boundaries, so both live in a `Palette`; the simulator renders its training scans with this
same code and randomises the palette.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

RGB = tuple[int, int, int]
# Ratio axis of the colour table; R outside is clamped (thin steel reaches about 3.8).
_RATIO_RANGE = (0.8, 4.8)
_TABLE_SIZE = 128  # bilinear lookup between nodes; 128 keeps a palette change cheap
# Boundary curves for the default scanner model (160 kVp, 2 mm Al, 0.3 mm CsI / 0.5 mm Cu /
# 3 mm CsI): R of Zeff-10 and Zeff-18 reference mixtures at these att_high values, as
# training.sim.forward.ratio_curve computes them (tests/test_sim_colour.py keeps them in step).
_DEFAULT_ATT = (0.05, 0.1, 0.2, 0.4, 0.7, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0)
_DEFAULT_R10 = (1.684, 1.649, 1.595, 1.524, 1.458, 1.416, 1.37, 1.338, 1.297, 1.268, 1.246)
_DEFAULT_R18 = (3.005, 2.768, 2.49, 2.212, 2.008, 1.891, 1.767, 1.677, 1.542, 1.445, 1.376)


@dataclass(frozen=True)
class Palette:
    """Hues, class boundaries and tone curve of a pseudo-colour view."""

    name: str
    organic_rgb: RGB = (255, 140, 20)
    mixed_rgb: RGB = (70, 190, 60)
    metal_rgb: RGB = (40, 90, 230)
    boundary_att: tuple[float, ...] = _DEFAULT_ATT  # att_high where the curves are sampled
    organic_mixed_ratio: tuple[float, ...] = _DEFAULT_R10  # R of Zeff ~10
    mixed_metal_ratio: tuple[float, ...] = _DEFAULT_R18  # R of Zeff ~18
    softness: float = 0.04  # width of a hue transition, in units of R
    opaque_att: float = 4.6  # att_high that shows black (1 % transmission)
    gamma: float = 1.3  # darkening with thickness: (1 - att/opaque) ** gamma
    tint_att: float = 0.35  # att_high at which the hue reaches 63 % saturation
    ratio_floor_att: float = 0.03  # below this the ratio is pulled towards organic (noise)

    def __post_init__(self) -> None:
        n = len(self.boundary_att)
        if n < 2 or len(self.organic_mixed_ratio) != n or len(self.mixed_metal_ratio) != n:
            raise ValueError(f"Palette {self.name!r}: boundary curves need >= 2 points and equal "
                             f"lengths, got {n}, {len(self.organic_mixed_ratio)}, "
                             f"{len(self.mixed_metal_ratio)}")
        if list(self.boundary_att) != sorted(self.boundary_att):
            raise ValueError(f"Palette {self.name!r}: boundary_att must increase, got "
                             f"{self.boundary_att}")
        for rgb in (self.organic_rgb, self.mixed_rgb, self.metal_rgb):
            if len(rgb) != 3 or not all(0 <= c <= 255 for c in rgb):
                raise ValueError(f"Palette {self.name!r}: colours are 3 values in 0..255, "
                                 f"got {rgb}")
        for field in ("softness", "opaque_att", "gamma", "tint_att", "ratio_floor_att"):
            if not getattr(self, field) > 0:
                raise ValueError(f"Palette {self.name!r}: {field} must be > 0, got "
                                 f"{getattr(self, field)}")


PRESETS: dict[str, Palette] = {
    "classic": Palette("classic"),
    # A second vendor look: browner organics, teal mixed, darker blue, class boundaries
    # a little lower and a softer tone curve.
    "vendor_b": Palette(
        "vendor_b", organic_rgb=(225, 125, 45), mixed_rgb=(40, 170, 120),
        metal_rgb=(35, 55, 185),
        organic_mixed_ratio=tuple(round(r * 0.97, 3) for r in _DEFAULT_R10),
        mixed_metal_ratio=tuple(round(r * 0.95, 3) for r in _DEFAULT_R18),
        softness=0.06, opaque_att=5.2, gamma=1.1, tint_att=0.45),
}


def palette(name: str) -> Palette:
    """A preset by name; `ValueError` lists the valid names."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown palette {name!r}; valid: {sorted(PRESETS)}") from None


def _check_attenuation(name: str, att: np.ndarray) -> None:
    if not isinstance(att, np.ndarray):
        raise TypeError(f"{name}: expected a numpy array, got {type(att).__name__}")
    if att.ndim != 2 or att.size == 0:
        raise ValueError(f"{name}: expected a non-empty (H, W) array, got shape {att.shape}")
    if att.dtype.kind != "f":
        raise ValueError(f"{name}: expected float attenuation -ln(T), got dtype {att.dtype}")
    if not np.isfinite(att).all():
        raise ValueError(f"{name}: contains NaN or infinite values")


@lru_cache(maxsize=64)
def _colour_table(pal: Palette) -> np.ndarray:
    """(ratio, att) -> RGB, an (n, n, 3) uint8 table; rows are R, columns att_high."""
    att = np.linspace(0.0, pal.opaque_att, _TABLE_SIZE)[None, :]
    ratio = np.linspace(*_RATIO_RANGE, _TABLE_SIZE)[:, None]
    r10 = np.interp(att, pal.boundary_att, pal.organic_mixed_ratio)
    r18 = np.interp(att, pal.boundary_att, pal.mixed_metal_ratio)
    beyond10 = 1.0 / (1.0 + np.exp(-(ratio - r10) / pal.softness))
    beyond18 = 1.0 / (1.0 + np.exp(-(ratio - r18) / pal.softness))
    weights = (1.0 - beyond10, np.clip(beyond10 - beyond18, 0, 1), beyond18)
    hues = (pal.organic_rgb, pal.mixed_rgb, pal.metal_rgb)
    hue = sum(w[..., None] * np.array(h, float) for w, h in zip(weights, hues, strict=True))
    saturation = (1.0 - np.exp(-att / pal.tint_att))[..., None]
    value = (np.clip(1.0 - att / pal.opaque_att, 0.0, 1.0) ** pal.gamma)[..., None]
    rgb = value * (255.0 * (1.0 - saturation) + hue * saturation)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def pseudo_colour(att_high: np.ndarray, att_low: np.ndarray,
                  palette: Palette | None = None) -> np.ndarray:
    """(H, W, 3) uint8 RGB view of a dual-energy scan given as attenuation -ln(T)."""
    import cv2

    pal = PRESETS["classic"] if palette is None else palette
    _check_attenuation("att_high", att_high)
    _check_attenuation("att_low", att_low)
    if att_high.shape != att_low.shape:
        raise ValueError(f"att_high and att_low differ in shape: {att_high.shape} vs "
                         f"{att_low.shape}")
    high = np.ascontiguousarray(att_high, dtype=np.float32)
    low = np.ascontiguousarray(att_low, dtype=np.float32)
    # Per-pixel R is noisy (physics.md table C), so real systems smooth it; so do we. The
    # floor pulls near-air pixels towards the organic ratio instead of amplifying noise.
    floor = np.float32(pal.ratio_floor_att)
    r_organic = np.float32(pal.organic_mixed_ratio[0] - 0.3)
    smooth_high = cv2.medianBlur(high, 3)
    ratio = cv2.medianBlur(low, 3)
    ratio += floor * r_organic
    ratio /= np.maximum(smooth_high, 0) + floor
    ratio -= np.float32(_RATIO_RANGE[0])
    ratio *= np.float32((_TABLE_SIZE - 1) / (_RATIO_RANGE[1] - _RATIO_RANGE[0]))
    column = high * np.float32((_TABLE_SIZE - 1) / pal.opaque_att)
    rgb = cv2.remap(_colour_table(pal), column, ratio, cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE)
    return rgb


def gray_view(att: np.ndarray, contrast: float = 1.0) -> np.ndarray:
    """(H, W) uint8 gray view, ``255 * exp(-contrast * att)``: air white, opaque black.

    With the default contrast the value is the transmission itself, so a gray file written
    from it reads back (``detector.read_scan``) as the same attenuation, to 8-bit precision.
    """
    _check_attenuation("att", att)
    if not contrast > 0:
        raise ValueError(f"contrast: expected > 0, got {contrast}")
    t = np.exp(-np.float32(contrast) * att.astype(np.float32, copy=False))
    return np.clip(np.rint(t * 255.0), 0, 255).astype(np.uint8)
