"""Voxelise a 3-D parcel scene onto a CT grid: basis-material densities with partial volume,
and the voxels of each packet's contents for its 3-D label.

A scene primitive is the solid ``|z - centre_z| <= t(u, v) / 2`` where ``t`` is the vertical
path length the 2-D simulator draws (`training.sim.geometry.path_length`), so both simulators
share one definition of every shape. Axes: belt x becomes the volume's slices (z), height its
rows (y, row 0 at the top) and across-belt y its columns (x). In the plane, each voxel averages
``supersample**2`` samples; vertically the overlap of the solid with the voxel is exact. A
texture multiplies the density over the column (the 2-D simulator multiplies the path length:
the same mass seen from above). Cavities carry a negative density and subtract their host.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from training.sim import textures
from training.sim.forward import basis_coefficients
from training.sim.geometry import path_length
from training.sim.scene import Primitive, Scene

#: A voxel belongs to a packet's label when its contents fill at least this fraction of it
#: (or half of the fullest voxel, for packets thinner than a quarter voxel).
LABEL_FILL = 0.25


@dataclass(frozen=True)
class CtGrid:
    """The reconstruction grid: ``(D, H, W)`` cubic voxels of ``voxel_mm``."""

    size_dhw: tuple[int, int, int]  # (slices along the belt, rows = height, columns = across)
    voxel_mm: float
    belt_mm: float  # height of the belt surface above the grid's bottom edge
    supersample: int = 2

    def __post_init__(self) -> None:
        if len(self.size_dhw) != 3 or min(self.size_dhw) < 2:
            raise ValueError(f"CtGrid.size_dhw: expected three sizes >= 2, got {self.size_dhw}")
        if not self.voxel_mm > 0 or self.supersample < 1 or not self.belt_mm >= 0:
            raise ValueError(f"CtGrid: expected voxel_mm > 0, supersample >= 1, belt_mm >= 0, "
                             f"got {self.voxel_mm}, {self.supersample}, {self.belt_mm}")

    @property
    def top_mm(self) -> float:
        """Height above the belt of the grid's top edge (row 0's upper boundary)."""
        return self.size_dhw[1] * self.voxel_mm - self.belt_mm


@dataclass
class Voxelised:
    basis: np.ndarray  # (D, H, W, 3) float32 g/cm3 of polyethylene, aluminium, copper
    content: dict[str, np.ndarray]  # group -> (D, H, W) float32 fill of its "content" parts


def _footprint(prim: Primitive, grid: CtGrid) -> tuple[int, int, int, int] | None:
    """(slice0, slice1, col0, col1), end-exclusive and clipped; None if outside the grid."""
    c, s = abs(math.cos(math.radians(prim.angle))), abs(math.sin(math.radians(prim.angle)))
    a, b = prim.size[0] / 2, prim.size[1] / 2
    half_x, half_y = c * a + s * b, s * a + c * b
    v = grid.voxel_mm
    d, _, w = grid.size_dhw
    k0 = max(int(math.floor((prim.center[0] - half_x) / v)), 0)
    k1 = min(int(math.ceil((prim.center[0] + half_x) / v)), d)
    j0 = max(int(math.floor((prim.center[1] - half_y) / v)), 0)
    j1 = min(int(math.ceil((prim.center[1] + half_y) / v)), w)
    return None if k0 >= k1 or j0 >= j1 else (k0, k1, j0, j1)


def _sample_points(lo: int, hi: int, grid: CtGrid) -> np.ndarray:
    f = grid.supersample
    return ((np.arange(lo * f, hi * f, dtype=np.float32) + 0.5) / f) * np.float32(grid.voxel_mm)


def fill(prim: Primitive, grid: CtGrid) -> tuple[tuple[slice, slice, slice], np.ndarray,
                                                np.ndarray] | None:
    """Where ``prim`` lies: (slices, rows, cols) window, the voxel fill ``(d, h, w)`` in
    0..1, and the fill weighted by its texture (what its density multiplies)."""
    box = _footprint(prim, grid)
    if box is None:
        return None
    k0, k1, j0, j1 = box
    xs, ys = _sample_points(k0, k1, grid), _sample_points(j0, j1, grid)
    dx, dy = xs[:, None] - prim.center[0], ys[None, :] - prim.center[1]
    cos, sin = math.cos(math.radians(prim.angle)), math.sin(math.radians(prim.angle))
    u = (cos * dx + sin * dy).astype(np.float32)
    v = (-sin * dx + cos * dy).astype(np.float32)
    f, vox = grid.supersample, grid.voxel_mm
    thick = path_length(prim, u, v, soft_mm=vox / f)  # (x samples, y samples) mm
    half = float(thick.max()) / 2
    if half <= 0:
        return None
    i0 = max(int(math.floor((grid.top_mm - prim.center[2] - half) / vox)), 0)
    i1 = min(int(math.ceil((grid.top_mm - prim.center[2] + half) / vox)), grid.size_dhw[1])
    if i0 >= i1:
        return None
    row_top = grid.top_mm - np.arange(i0, i1, dtype=np.float32) * np.float32(vox)
    lo = np.float32(prim.center[2]) - thick / 2
    hi = np.float32(prim.center[2]) + thick / 2
    overlap = np.minimum(hi[:, None, :], row_top[None, :, None]) \
        - np.maximum(lo[:, None, :], row_top[None, :, None] - np.float32(vox))
    overlap = np.clip(overlap, 0, vox) / np.float32(vox)  # (x samples, rows, y samples)
    weighted = overlap
    if prim.texture is not None:
        tex = textures.sample(prim.texture, prim.size[:2], u, v)
        weighted = overlap * tex[:, None, :]
    nk, nj = k1 - k0, j1 - j0
    occ = overlap.reshape(nk, f, i1 - i0, nj, f).mean(axis=(1, 4))
    dens = weighted.reshape(nk, f, i1 - i0, nj, f).mean(axis=(1, 4))
    return (slice(k0, k1), slice(i0, i1), slice(j0, j1)), occ, dens


def belt(grid: CtGrid, thickness_mm: float = 3.0) -> Primitive:
    """The conveyor belt: a rubber sheet under the parcel across the whole field of view."""
    d, _, w = grid.size_dhw
    v = grid.voxel_mm
    return Primitive(shape="box", material="rubber_sole", density=1.2,
                     center=(d * v / 2, w * v / 2, -thickness_mm / 2),
                     size=(d * v + 8 * v, w * v + 8 * v, thickness_mm))


def voxelise(scene: Scene, grid: CtGrid) -> Voxelised:
    """Basis densities of ``scene`` (plus the belt) and each group's content fill."""
    d, h, w = grid.size_dhw
    basis = np.zeros((d, h, w, 3), np.float32)
    content: dict[str, np.ndarray] = {}
    for prim in [belt(grid), *scene.primitives]:
        placed = fill(prim, grid)
        if placed is None:
            continue
        window, occ, dens = placed
        coef = basis_coefficients(prim.material).astype(np.float32)
        basis[window] += (dens * np.float32(prim.density))[..., None] * coef
        if prim.group and prim.role == "content":
            content.setdefault(prim.group, np.zeros((d, h, w), np.float32))[window] += occ
    return Voxelised(basis, content)


def label_mask(fill_volume: np.ndarray) -> np.ndarray:
    """The voxels a packet's label covers (see `LABEL_FILL`)."""
    peak = float(fill_volume.max())
    return fill_volume >= min(LABEL_FILL, 0.5 * peak) if peak > 0 else fill_volume > 0


def box3d(mask: np.ndarray) -> tuple[list[int], list[list[int]]] | None:
    """``[x1, y1, z1, x2, y2, z2]`` (end-exclusive voxels) of a ``(D, H, W)`` mask, and per
    slice ``[z, x1, y1, x2, y2]``; None for an empty mask."""
    zs, ys, xs = np.nonzero(mask)
    if len(zs) == 0:
        return None
    box = [int(xs.min()), int(ys.min()), int(zs.min()),
           int(xs.max()) + 1, int(ys.max()) + 1, int(zs.max()) + 1]
    per_slice = []
    for z in range(box[2], box[5]):
        rows, cols = np.nonzero(mask[z])
        if len(rows):
            per_slice.append([z, int(cols.min()), int(rows.min()), int(cols.max()) + 1,
                              int(rows.max()) + 1])
    return box, per_slice


def benign_boxes3d(scene: Scene, grid: CtGrid, avoid: list[list[int]],
                   margin: int = 1) -> list[dict]:
    """The 3-D boxes (``bbox3d``, voxels, end-exclusive) of the scene's benign solids that look
    like a block (`training.sim.labels.is_benign_block`), the voxels they fill at least
    `LABEL_FILL` of; none that touches a box of ``avoid`` (the packets' ``bbox3d``, grown by
    ``margin``: a book with a packet inside is not a negative). With material and density,
    like the 2-D field ``benign_object``."""
    from training.sim.labels import benign_fields, is_benign_block

    grown = [[a - margin for a in b[:3]] + [a + margin for a in b[3:]] for b in avoid]
    out, seen = [], set()
    for prim in scene.primitives:
        if not is_benign_block(prim):
            continue
        placed = fill(prim, grid)
        if placed is None:
            continue
        (zs, ys, xs), occ, _ = placed
        found = box3d(occ >= LABEL_FILL)
        if found is None:
            continue
        x1, y1, z1, x2, y2, z2 = found[0]
        box = [x1 + xs.start, y1 + ys.start, z1 + zs.start,
               x2 + xs.start, y2 + ys.start, z2 + zs.start]
        if tuple(box) in seen or any(all(box[k] < g[k + 3] and g[k] < box[k + 3]
                                         for k in range(3)) for g in grown):
            continue
        seen.add(tuple(box))
        out.append({"bbox3d": box, **benign_fields(prim)})
    return out
