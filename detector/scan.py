"""The one scan type that every later stage (detection, training, service) consumes."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

KINDS = ("dual", "gray", "color")

# Channel layout of `Scan.image` per kind: (channels, dtype).
_LAYOUT = {
    "dual": (2, np.float32),  # attenuation -ln(T) at (high, low) energy
    "gray": (1, np.float32),  # attenuation -ln(T), single energy
    "color": (3, np.uint8),  # the scanner's pseudo-colour export, RGB
}


@dataclass(frozen=True)
class Scan:
    """One scan, ready for preprocessing.

    ``image`` is channels-first, ``(C, H, W)``:

    * ``dual``: float32 attenuation ``-ln(T)``, channel 0 high energy, channel 1 low energy;
    * ``gray``: float32 attenuation, one channel;
    * ``color``: uint8 RGB as exported by the scanner.

    Attenuation is computed from the file's own bit depth (``T = value / (2**bits - 1)``), so
    ``max_attenuation = ln(2**bits - 1)`` is the value of a fully opaque pixel.
    """

    id: str
    kind: str
    image: np.ndarray
    sources: tuple[str, ...]
    bit_depth: int
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in _LAYOUT:
            raise ValueError(f"Scan.kind: expected one of {KINDS}, got {self.kind!r}")
        channels, dtype = _LAYOUT[self.kind]
        img = self.image
        if not isinstance(img, np.ndarray):
            raise TypeError(f"Scan.image: expected numpy array, got {type(img).__name__}")
        if img.ndim != 3 or img.shape[0] != channels:
            raise ValueError(
                f"Scan.image for kind {self.kind!r}: expected shape ({channels}, H, W), "
                f"got {img.shape}"
            )
        if img.dtype != dtype:
            raise ValueError(
                f"Scan.image for kind {self.kind!r}: expected dtype {np.dtype(dtype)}, "
                f"got {img.dtype}"
            )
        if img.shape[1] < 1 or img.shape[2] < 1:
            raise ValueError(f"Scan.image: expected non-empty H and W, got {img.shape}")
        if self.bit_depth not in (8, 10, 12, 14, 16):
            raise ValueError(f"Scan.bit_depth: expected 8..16, got {self.bit_depth}")
        if not self.sources:
            raise ValueError("Scan.sources: expected at least one source file")

    @property
    def size_hw(self) -> tuple[int, int]:
        """Image size as (height, width)."""
        return int(self.image.shape[1]), int(self.image.shape[2])

    @property
    def max_attenuation(self) -> float:
        """Attenuation of an opaque pixel (one count) at this bit depth."""
        return float(np.log(2.0**self.bit_depth - 1.0))


def transmission_to_attenuation(values: np.ndarray, bit_depth: int,
                                out: np.ndarray | None = None) -> np.ndarray:
    """``-ln(T)`` of raw detector counts where ``2**bit_depth - 1`` means unattenuated air.

    Zero counts (impenetrable) are clipped to one count so that attenuation stays finite.
    ``out`` (float32, ``values``' shape) receives the result, e.g. one channel of a scan.
    """
    full_scale = 2.0**bit_depth - 1.0
    if out is None:
        att = values.astype(np.float32)
    else:
        att = out
        np.copyto(att, values)
    # In place, one float32 array: four temporaries per channel took 3x the time.
    np.clip(att, 1.0, full_scale, out=att)
    np.log(att, out=att)
    np.subtract(np.log(np.float32(full_scale)), att, out=att)
    return att


def attenuation_to_transmission(attenuation: np.ndarray, bit_depth: int) -> np.ndarray:
    """Inverse of `transmission_to_attenuation`, rounded to integer counts."""
    full_scale = 2.0**bit_depth - 1.0
    dtype = np.uint8 if bit_depth <= 8 else np.uint16
    counts = np.rint(full_scale * np.exp(-attenuation.astype(np.float64)))
    return np.clip(counts, 0, full_scale).astype(dtype)
