"""Rasterise a scene into basis-material mass thickness on the detector grid.

Line-scan geometry: along the belt (image columns) every line is taken straight up, so the
projection is parallel; across the belt (image rows) the fan beam from a focus below the belt
shrinks an object at height z by ``D / (D + z)`` towards the focus and lengthens oblique rays
by ``1 / cos(fan angle)``. The shrink uses one height per object (its mid-height; exact for
flat objects), the obliquity is applied per row at the end.

Groups (a packet with its wrapping and the cavity it displaced) are also kept on their own,
cropped to their box, so the labels can measure their footprint and contrast exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from training.sim import textures
from training.sim.forward import basis_coefficients
from training.sim.scene import Primitive, Scene


@dataclass
class GroupRaster:
    """One group's share of the scene, inside ``box_rc`` = (row0, row1, col0, col1)."""

    box_rc: tuple[int, int, int, int]
    delta_basis: np.ndarray  # (3, h, w) net basis mass the group adds (voids subtract)
    content_mm: np.ndarray  # (h, w) path length through the group's "content" primitives


@dataclass
class Raster:
    basis: np.ndarray  # (3, H, W) float32, g/cm2 of polyethylene, aluminium, copper
    groups: dict[str, GroupRaster] = field(default_factory=dict)


def _coverage(inside_mm: np.ndarray, soft_mm: float) -> np.ndarray:
    """Fraction of a pixel inside an edge, from the signed distance to it (anti-aliasing)."""
    return np.clip(0.5 + inside_mm / soft_mm, 0.0, 1.0)


@lru_cache(maxsize=64)
def pillow_volume_factor(roundness: float) -> float:
    """Volume of a pillow over that of its bounding box."""
    t = np.linspace(-1, 1, 20001)
    profile = np.sqrt(np.clip(1 - np.abs(t) ** roundness, 0, None))
    return float(profile.mean() ** 2)


def volume_factor(shape: str, roundness: float = 4.0) -> float:
    """Volume of a primitive over that of its bounding box (for masses)."""
    return {"box": 1.0, "ellipsoid": math.pi / 6, "cylinder": math.pi / 4,
            "rod": math.pi / 4}.get(shape) or pillow_volume_factor(roundness)


def path_length(prim: Primitive, u: np.ndarray, v: np.ndarray, soft_mm: float) -> np.ndarray:
    """Vertical path length (mm) through ``prim`` at local coordinates ``u``, ``v`` (mm)."""
    a, b, h = prim.size[0] / 2, prim.size[1] / 2, prim.size[2]
    if prim.shape == "box":
        return h * _coverage(a - np.abs(u), soft_mm) * _coverage(b - np.abs(v), soft_mm)
    if prim.shape == "pillow":
        n = prim.roundness
        fu = np.sqrt(np.clip(1 - np.abs(u / a) ** n, 0, None))
        fv = np.sqrt(np.clip(1 - np.abs(v / b) ** n, 0, None))
        return h * fu * fv
    if prim.shape == "ellipsoid":
        return h * np.sqrt(np.clip(1 - (u / a) ** 2 - (v / b) ** 2, 0, None))
    if prim.shape == "cylinder":
        r = np.sqrt((u / a) ** 2 + (v / b) ** 2)
        return h * _coverage((1 - r) * min(a, b), soft_mm)
    # rod: lying along local x
    return h * np.sqrt(np.clip(1 - (v / b) ** 2, 0, None)) * _coverage(a - np.abs(u), soft_mm)


class Projector:
    """Maps scene millimetres to pixels for one scan geometry."""

    def __init__(self, scene: Scene):
        self.height, self.width = scene.size_hw
        self.pixel_mm = scene.pixel_mm
        self.source_distance_mm = scene.source_distance_mm
        self.focus_y = scene.focus_y_mm  # under the middle of the tunnel, maybe off this crop

    def shrink(self, z_mm: float) -> float:
        return self.source_distance_mm / (self.source_distance_mm + max(z_mm, 0.0))

    def shrink_of(self, prim: Primitive) -> float:
        return self.shrink(prim.center[2] if prim.proj_z is None else prim.proj_z)

    def obliquity(self) -> np.ndarray:
        """(H,) path-length factor 1/cos of the fan angle of each detector row."""
        rows = (np.arange(self.height) + 0.5) * self.pixel_mm - self.focus_y
        return np.sqrt(1.0 + (rows / self.source_distance_mm) ** 2).astype(np.float32)

    def pixel_box(self, prim: Primitive) -> tuple[int, int, int, int] | None:
        """(row0, row1, col0, col1), end-exclusive, clipped to the image; None if outside."""
        c, s = abs(math.cos(math.radians(prim.angle))), abs(math.sin(math.radians(prim.angle)))
        a, b = prim.size[0] / 2, prim.size[1] / 2
        half_x, half_y = c * a + s * b, s * a + c * b
        m = self.shrink_of(prim)
        y0 = self.focus_y + (prim.center[1] - half_y - self.focus_y) * m
        y1 = y0 + 2 * half_y * m
        p = self.pixel_mm
        r0, r1 = int(math.floor(y0 / p)) - 1, int(math.ceil(y1 / p)) + 1
        c0 = int(math.floor((prim.center[0] - half_x) / p)) - 1
        c1 = int(math.ceil((prim.center[0] + half_x) / p)) + 1
        r0, r1 = max(r0, 0), min(r1, self.height)
        c0, c1 = max(c0, 0), min(c1, self.width)
        return None if r0 >= r1 or c0 >= c1 else (r0, r1, c0, c1)

    def local_coords(self, prim: Primitive, box) -> tuple[np.ndarray, np.ndarray]:
        """Local (u, v) in mm of the pixel centres in ``box`` for ``prim``."""
        r0, r1, c0, c1 = box
        p = self.pixel_mm
        m = self.shrink_of(prim)
        xs = (np.arange(c0, c1, dtype=np.float32) + 0.5) * p - prim.center[0]
        ys = ((np.arange(r0, r1, dtype=np.float32) + 0.5) * p - self.focus_y) / m \
            + self.focus_y - prim.center[1]
        if prim.angle % 360 == 0:
            return np.broadcast_to(xs[None, :], (r1 - r0, c1 - c0)), \
                np.broadcast_to(ys[:, None], (r1 - r0, c1 - c0))
        cos, sin = math.cos(math.radians(prim.angle)), math.sin(math.radians(prim.angle))
        u = cos * xs[None, :] + sin * ys[:, None]
        v = -sin * xs[None, :] + cos * ys[:, None]
        return u.astype(np.float32), v.astype(np.float32)


def mass_thickness(proj: Projector, prim: Primitive, box) -> np.ndarray:
    """g/cm2 of ``prim`` (signed by its density) over ``box``, before obliquity."""
    u, v = proj.local_coords(prim, box)
    path = path_length(prim, u, v, soft_mm=proj.pixel_mm)
    if prim.texture is not None:
        path = path * textures.sample(prim.texture, prim.size[:2], u, v)
    return (path * np.float32(prim.density / 10.0)).astype(np.float32)


def rasterise(scene: Scene) -> Raster:
    """Basis mass-thickness maps of ``scene`` and a separate raster per group."""
    proj = Projector(scene)
    h, w = scene.size_hw
    basis = np.zeros((3, h, w), np.float32)
    boxes = [proj.pixel_box(p) for p in scene.primitives]
    group_boxes: dict[str, list[int]] = {}
    for prim, box in zip(scene.primitives, boxes, strict=True):
        if prim.group and box is not None:
            gb = group_boxes.setdefault(prim.group, list(box))
            gb[:] = [min(gb[0], box[0]), max(gb[1], box[1]), min(gb[2], box[2]),
                     max(gb[3], box[3])]
    groups = {g: GroupRaster(tuple(b), np.zeros((3, b[1] - b[0], b[3] - b[2]), np.float32),
                             np.zeros((b[1] - b[0], b[3] - b[2]), np.float32))
              for g, b in group_boxes.items()}
    for prim, box in zip(scene.primitives, boxes, strict=True):
        if box is None:
            continue
        mass = mass_thickness(proj, prim, box)
        coef = basis_coefficients(prim.material).astype(np.float32)
        r0, r1, c0, c1 = box
        for i in np.flatnonzero(coef):
            basis[i, r0:r1, c0:c1] += coef[i] * mass
        if prim.group:
            g = groups[prim.group]
            gr0, _, gc0, _ = g.box_rc
            sl = (slice(r0 - gr0, r1 - gr0), slice(c0 - gc0, c1 - gc0))
            for i in np.flatnonzero(coef):
                g.delta_basis[i][sl] += coef[i] * mass
            if prim.role == "content":
                g.content_mm[sl] += mass * np.float32(10.0 / prim.density)
    oblique = proj.obliquity()
    basis *= oblique[None, :, None]
    for g in groups.values():
        g.delta_basis *= oblique[None, g.box_rc[0]:g.box_rc[1], None]
        g.content_mm *= oblique[g.box_rc[0]:g.box_rc[1], None]
    return Raster(basis, groups)


def material_maps(scene: Scene) -> dict[str, np.ndarray]:
    """Per-material mass thickness (g/cm2, with obliquity), for the reference renderer.

    Mixtures are keyed by their sorted JSON; `training.sim.forward.render_spectral` takes
    the matching ``compositions`` from `material_compositions`.
    """
    proj = Projector(scene)
    maps: dict[str, np.ndarray] = {}
    for prim in scene.primitives:
        box = proj.pixel_box(prim)
        if box is None:
            continue
        key = _material_key(prim.material)
        out = maps.setdefault(key, np.zeros(scene.size_hw, np.float32))
        r0, r1, c0, c1 = box
        out[r0:r1, c0:c1] += mass_thickness(proj, prim, box)
    oblique = proj.obliquity()[:, None]
    return {k: v * oblique for k, v in maps.items()}


def material_compositions(scene: Scene) -> dict[str, str | dict[str, float]]:
    return {_material_key(p.material): p.material for p in scene.primitives}


def _material_key(material) -> str:
    if isinstance(material, str):
        return material
    return "mix:" + ",".join(f"{k}={v!r}" for k, v in sorted(material.items()))
