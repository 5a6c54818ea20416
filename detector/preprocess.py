"""The one preprocessing: a `Scan` becomes the float32 ``(C, H, W)`` model input.

Training, evaluation, export and the workstation all call `model_input`; the constants are
fixed by physics (attenuation ``-ln(T)``) or by the file's bit depth (pseudo-colour), never
fitted to pixel statistics, and travel inside the model file as an `InputSpec`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from detector.scan import KINDS, Scan

#: Attenuation that maps to 1.0. Parcels rarely exceed -ln(T) = 6; steel saturates anyway.
ATT_SCALE = 4.0
#: Offset in the dual-energy ratio (low + c) / (high + c): keeps air (0/0) at ratio 1.
RATIO_OFFSET = 0.1
RATIO_MAX = 3.0

#: Channels each kind feeds the network, in order: the layout new models get. "ratio" is the
#: dual-energy material signal (organics ~1.2-1.5, metals 2+): it does not depend on
#: thickness. A dual model also sees the scan as operators do: "r", "g", "b" are its
#: pseudo-colour view (`detector.render.pseudo_colour` with the fixed palette named in
#: `InputSpec.palette`), which corrects the ratio for beam hardening and smooths it. This is
#: the input colour models read, so a dual model can start from a trained colour model.
CHANNELS: dict[str, tuple[str, ...]] = {
    "dual": ("high", "low", "ratio", "r", "g", "b"),
    "gray": ("att",),
    "color": ("r", "g", "b"),
    # CT (issue 7): three adjacent axial slices of a volume; see detector/ct_preprocess.py.
    "ct": ("slice_below", "slice", "slice_above"),
}
#: A dual-energy CT model: the three slices of the main volume, then the same three of the
#: scanner's second, lower-energy volume (`detector.volume.Volume.low`), on the same window.
CT_DUAL_ENERGY = (*CHANNELS["ct"], "low_below", "low_slice", "low_above")
#: Other layouts a model may have: dual models up to 2.2.0 read the first three channels only.
LAYOUTS: dict[str, tuple[tuple[str, ...], ...]] = {
    **{kind: (channels,) for kind, channels in CHANNELS.items()},
    "dual": (CHANNELS["dual"], ("high", "low", "ratio")),
    "ct": (CHANNELS["ct"], CT_DUAL_ENERGY),
}
#: The palette of a dual model's pseudo-colour channels unless its recipe names another.
DUAL_PALETTE = "classic"


@dataclass(frozen=True)
class InputSpec:
    """How a scan of one kind becomes model input; stored in checkpoints and ONNX metadata."""

    kind: str
    channels: tuple[str, ...]
    att_scale: float = ATT_SCALE
    ratio_offset: float = RATIO_OFFSET
    ratio_max: float = RATIO_MAX
    #: Scans are resized by this factor before the network (boxes are mapped back), so a
    #: model trained on coarse pixels sees coarse pixels on the workstation too.
    scale: float = 1.0
    #: CT only (required there, None otherwise): volumes are resampled to cubic voxels of
    #: ``voxel_mm`` and HU in ``hu_window`` (low, high) are mapped to 0..1.
    voxel_mm: float | None = None
    hu_window: tuple[float, float] | None = None
    #: Dual models with "r", "g", "b" channels only (required there): the `detector.render`
    #: preset that draws them.
    palette: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in CHANNELS:
            raise ValueError(f"InputSpec.kind: expected one of {KINDS}, got {self.kind!r}")
        object.__setattr__(self, "channels", tuple(self.channels))
        if self.channels not in LAYOUTS[self.kind]:
            raise ValueError(f"InputSpec.channels for {self.kind!r}: expected one of "
                             f"{list(LAYOUTS[self.kind])}, got {self.channels}")
        if (self.palette is not None) != self.draws_colour:
            raise ValueError(f"InputSpec.palette: required for a dual model with 'r', 'g', 'b' "
                             f"channels and only there, got {self.palette!r} for kind "
                             f"{self.kind!r} with channels {self.channels}")
        if self.palette is not None:
            from detector.render import PRESETS

            if self.palette not in PRESETS:
                raise ValueError(f"InputSpec.palette: expected one of {sorted(PRESETS)}, got "
                                 f"{self.palette!r}")
        if not self.att_scale > 0:
            raise ValueError(f"InputSpec.att_scale: expected > 0, got {self.att_scale}")
        if not 0.05 <= self.scale <= 4.0:
            raise ValueError(f"InputSpec.scale: expected 0.05..4, got {self.scale}")
        if (self.kind == "ct") != (self.voxel_mm is not None and self.hu_window is not None):
            raise ValueError(f"InputSpec: voxel_mm and hu_window are required for kind 'ct' "
                             f"and only there, got kind {self.kind!r}, voxel_mm "
                             f"{self.voxel_mm}, hu_window {self.hu_window}")
        if self.kind == "ct":
            lo, hi = self.hu_window
            if not (self.voxel_mm > 0 and lo < hi):
                raise ValueError(f"InputSpec: expected voxel_mm > 0 and hu_window low < high, "
                                 f"got {self.voxel_mm}, {self.hu_window}")
            object.__setattr__(self, "hu_window", (float(lo), float(hi)))

    @classmethod
    def for_kind(cls, kind: str, channels: tuple[str, ...] | None = None) -> InputSpec:
        """The spec new models of ``kind`` get (``channels``: one of its `LAYOUTS`)."""
        if kind not in CHANNELS:
            raise ValueError(f"scan kind: expected one of {KINDS}, got {kind!r}")
        channels = CHANNELS[kind] if channels is None else tuple(channels)
        palette = DUAL_PALETTE if kind == "dual" and "r" in channels else None
        return cls(kind=kind, channels=channels, palette=palette)

    @property
    def num_channels(self) -> int:
        return len(self.channels)

    @property
    def ct_energies(self) -> int:
        """Volumes a CT model reads: 1, or 2 for a dual-energy model (0 for 2-D kinds)."""
        if self.kind != "ct":
            return 0
        return 2 if "low_slice" in self.channels else 1

    @property
    def draws_colour(self) -> bool:
        """A dual model that also reads the scan's pseudo-colour view."""
        return self.kind == "dual" and "r" in self.channels

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        if self.kind == "ct":
            d["hu_window"] = list(self.hu_window)
        else:  # 2-D specs (and their exported metadata) stay as they were before CT
            del d["voxel_mm"], d["hu_window"]
        if self.palette is None:  # ... and before dual models drew the pseudo-colour view
            del d["palette"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> InputSpec:
        known = {"kind", "channels", "att_scale", "ratio_offset", "ratio_max", "scale",
                 "voxel_mm", "hu_window", "palette"}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"InputSpec: unknown keys {sorted(unknown)}")
        return cls(**{**d, "channels": tuple(d["channels"])})


def model_input(scan: Scan, spec: InputSpec) -> np.ndarray:
    """``scan`` as the float32 ``(C, H', W')`` array the network expects.

    ``(H', W') = scaled_size(scan.size_hw, spec.scale)``; divide output boxes by
    ``spec.scale`` to get scan pixels.
    """
    if scan.kind != spec.kind:
        raise ValueError(f"model expects {spec.kind!r} scans, got a {scan.kind!r} scan")
    return image_to_input(resize(scan.image, spec.scale), spec, scan.bit_depth)


def scaled_size(size_hw: tuple[int, int], scale: float) -> tuple[int, int]:
    """(height, width) after resizing by ``scale`` (at least one pixel each)."""
    return max(1, round(size_hw[0] * scale)), max(1, round(size_hw[1] * scale))


def resize(image: np.ndarray, scale: float) -> np.ndarray:
    """Resize a ``(C, H, W)`` scan image by ``scale`` (area averaging when shrinking)."""
    if scale == 1.0:
        return image
    import cv2

    h, w = scaled_size(image.shape[1:], scale)
    interp = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
    # cv2.merge interleaves the channels 7x faster than numpy's transposed copy, and gives
    # the same array, so the resize (and the model input) stays bit for bit the same.
    hwc = cv2.merge([np.ascontiguousarray(c) for c in image])
    out = cv2.resize(hwc, (w, h), interpolation=interp)
    return out.reshape(h, w, -1).transpose(2, 0, 1)


def image_to_input(image: np.ndarray, spec: InputSpec, bit_depth: int) -> np.ndarray:
    """Same as `model_input` on a bare ``Scan.image``-layout array (training augments these)."""
    if spec.kind == "color":
        if image.dtype != np.uint8 and bit_depth == 8:
            raise ValueError(f"color image: expected uint8 for 8-bit, got {image.dtype}")
        return image.astype(np.float32) * np.float32(1.0 / (2.0**bit_depth - 1.0))
    att = np.clip(image.astype(np.float32, copy=False), 0.0, None)
    if spec.kind == "gray":
        return att / np.float32(spec.att_scale)
    high, low = att[0], att[1]
    c = np.float32(spec.ratio_offset)
    # Written into one array in place: the same float32 operations as the formula
    # (high / s, low / s, clip((low + c) / (high + c) - 1, 0, max)) without its temporaries.
    x = np.empty((spec.num_channels, *high.shape), np.float32)
    if spec.draws_colour:  # the operators' view, scaled as a colour model reads an 8-bit file
        from detector.render import PRESETS, pseudo_colour

        rgb = pseudo_colour(high, low, PRESETS[spec.palette])
        np.multiply(rgb.transpose(2, 0, 1), np.float32(1.0 / 255.0), out=x[3:6])
    np.divide(high, spec.att_scale, out=x[0])
    np.divide(low, spec.att_scale, out=x[1])
    ratio = np.add(low, c, out=x[2])
    ratio /= high + c
    ratio -= 1.0
    np.clip(ratio, 0.0, spec.ratio_max, out=ratio)
    return x
