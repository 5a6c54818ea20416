"""Procedural thickness textures: folds of cloth, PCB traces, pills, bubble wrap, coils.

A texture is a dict stored in the scene (``{"kind": "folds", "seed": 7, ...}``); it becomes a
multiplier on a primitive's path length, drawn in the primitive's own frame at 1 mm per texel
from its own seed, so a scene replays exactly. Multipliers average about one, so a texture
changes the look, not the mass.
"""

from __future__ import annotations

import numpy as np

_TEXEL_MM = 1.0


def _smooth_noise(rng: np.random.Generator, shape_hw: tuple[int, int], scale_hw) -> np.ndarray:
    """Zero-mean, unit-std noise correlated over ``scale_hw`` texels (bicubic upsampling)."""
    import cv2

    h, w = shape_hw
    gh = max(2, int(np.ceil(h / max(scale_hw[0], 1.0))) + 2)
    gw = max(2, int(np.ceil(w / max(scale_hw[1], 1.0))) + 2)
    coarse = rng.standard_normal((gh, gw)).astype(np.float32)
    fine = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    std = float(fine.std())
    return (fine - fine.mean()) / (std if std > 0 else 1.0)


def _folds(rng, shape_hw, spec) -> np.ndarray:
    """Folded cloth: long creases in one main direction, weaker ones across, fine weave."""
    along = spec.get("scale_mm", 30.0)
    noise = _smooth_noise(rng, shape_hw, (along * 0.12, along * 1.5))
    noise += 0.4 * _smooth_noise(rng, shape_hw, (along * 1.5, along * 0.12))
    noise += 0.25 * _smooth_noise(rng, shape_hw, (3.0, 3.0))
    return np.clip(1.0 + spec.get("amp", 0.3) * noise / 1.1, 0.05, None)


def _noise(rng, shape_hw, spec) -> np.ndarray:
    scale = spec.get("scale_mm", 10.0)
    return np.clip(1.0 + spec.get("amp", 0.2) * _smooth_noise(rng, shape_hw, (scale, scale)),
                   0.0, None)


def _traces(rng, shape_hw, spec) -> np.ndarray:
    """Copper tracks and pads: the coverage, 0 or 1 (the layer's thickness is the copper's)."""
    import cv2

    h, w = shape_hw
    img = np.zeros((h, w), np.uint8)
    for _ in range(int(h * w * spec.get("density", 0.004)) + 4):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        length = int(rng.integers(5, max(6, max(h, w) // 2)))
        if rng.random() < 0.5:
            x1, y1 = min(w - 1, x0 + length), y0
        else:
            x1, y1 = x0, min(h - 1, y0 + length)
        cv2.line(img, (x0, y0), (x1, y1), 255, 1)
    for _ in range(int(h * w * 0.0008) + 2):  # ground planes and pads
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        cv2.rectangle(img, (x0, y0), (x0 + int(rng.integers(2, 12)),
                                      y0 + int(rng.integers(2, 12))), 255, -1)
    return img.astype(np.float32) / 255.0


def _discs(rng, shape_hw, spec) -> np.ndarray:
    """Pills in a bag or beans: many small domes, mean one."""
    import cv2

    h, w = shape_hw
    img = np.zeros((h, w), np.float32)
    radius = spec.get("radius_mm", 4.0) / _TEXEL_MM
    count = int(h * w / (np.pi * radius**2) * spec.get("fill", 0.8)) + 1
    for _ in range(count):
        cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
        r = max(1, int(round(radius * rng.uniform(0.85, 1.15))))
        cv2.circle(img, (cx, cy), r, 1.0, -1)
    img = cv2.GaussianBlur(img, (0, 0), max(radius * 0.35, 0.5))
    return img / max(float(img.mean()), 1e-3)


def _bubbles(rng, shape_hw, spec) -> np.ndarray:
    """Bubble wrap: a hexagonal lattice of air bubbles whose walls add film."""
    h, w = shape_hw
    pitch = spec.get("pitch_mm", 12.0) / _TEXEL_MM
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    row = np.floor(yy / (pitch * 0.866))
    xs = xx - (row % 2) * pitch / 2
    dx = (xs % pitch) - pitch / 2
    dy = (yy % (pitch * 0.866)) - pitch * 0.433
    r = np.sqrt(dx * dx + dy * dy) / (pitch * 0.42)
    ring = np.exp(-((r - 1.0) ** 2) / 0.02) * 3.0 + 1.0 * (r < 1.0)
    return ring / float(ring.mean())


def _rings(rng, shape_hw, spec) -> np.ndarray:
    """A coiled cable seen from above: concentric rings of wire."""
    h, w = shape_hw
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.hypot((xx - w / 2) / (w / 2), (yy - h / 2) / (h / 2))
    turns = spec.get("turns", 6)
    phase = rng.uniform(0, 1)
    ring = (np.cos(2 * np.pi * (r * turns + phase)) > 0.3) * (r > 0.55) * (r < 1.0)
    ring = ring.astype(np.float32)
    return ring / max(float(ring.mean()), 1e-3)


def _curve(rng, shape_hw, spec) -> np.ndarray:
    """A cable lying loose: a smooth random path, 1 on the wire, 0 beside it."""
    import cv2

    h, w = shape_hw
    img = np.zeros((h, w), np.uint8)
    x, y = rng.uniform(0.2 * w, 0.8 * w), rng.uniform(0.2 * h, 0.8 * h)
    heading, turn = rng.uniform(0, 2 * np.pi), 0.0
    points = []
    for _ in range(int(spec.get("length_mm", 800) / 4)):
        turn = 0.85 * turn + rng.normal(0, 0.08)
        heading += turn
        x, y = x + 4 * np.cos(heading), y + 4 * np.sin(heading)
        if not (0 <= x < w and 0 <= y < h):  # bend back inside the object's outline
            heading += np.pi * rng.uniform(0.6, 1.4)
            x, y = np.clip(x, 0, w - 1), np.clip(y, 0, h - 1)
        points.append((x, y))
    width = max(1, int(round(spec.get("width_mm", 4.0) / _TEXEL_MM)))
    cv2.polylines(img, [np.array(points, np.int32)], False, 255, width, cv2.LINE_AA)
    return img.astype(np.float32) / 255.0


TEXTURES = {"curve": _curve, "folds": _folds, "noise": _noise, "traces": _traces, "discs": _discs,
            "bubbles": _bubbles, "rings": _rings}


def texture_image(spec: dict, size_mm: tuple[float, float]) -> np.ndarray:
    """The multiplier image (rows = local y, columns = local x) at 1 mm per texel."""
    kind = spec.get("kind")
    if kind not in TEXTURES:
        raise ValueError(f"texture kind {kind!r}: valid are {sorted(TEXTURES)}")
    shape_hw = (max(2, int(np.ceil(size_mm[1] / _TEXEL_MM)) + 1),
                max(2, int(np.ceil(size_mm[0] / _TEXEL_MM)) + 1))
    rng = np.random.default_rng(int(spec["seed"]))
    return TEXTURES[kind](rng, shape_hw, spec).astype(np.float32)


def sample(spec: dict, size_mm: tuple[float, float], u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The texture at local coordinates ``u``, ``v`` (mm from the primitive's centre)."""
    import cv2

    img = texture_image(spec, size_mm)
    map_x = ((u + size_mm[0] / 2) / _TEXEL_MM).astype(np.float32)
    map_y = ((v + size_mm[1] / 2) / _TEXEL_MM).astype(np.float32)
    return cv2.remap(img, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
