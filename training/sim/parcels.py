"""Parcels (cartons, padded envelopes, plastic mail bags) and how their contents settle.

Everything is built in the parcel's own frame (origin at the centre of its footprint, on the
belt); `Parcel.to_world` turns and shifts it onto the belt at the end. The `Packer` keeps a
height map of the parcel's floor on a 5 mm grid: an object drops onto whatever is already
under its footprint (the gravity rule of DEBISim's shape grammar) and is refused if it would
stick out of the top.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from training.sim.parts import choice, hollow, paper, solid, texture, uniform
from training.sim.scene import Item, Primitive

PARCEL_KINDS = ("carton", "padded_envelope", "mail_bag")


@dataclass
class Parcel:
    kind: str
    outer: tuple[float, float, float]  # (length along belt, width across, height) mm
    inner: tuple[float, float, float]
    floor_z: float  # height of the inner floor (a false bottom raises it)
    top_z: float  # underside of the lid: nothing may stick out above it
    wall: float
    primitives: list[Primitive] = field(default_factory=list)
    record: dict = field(default_factory=dict)
    inner_shift: tuple[float, float] = (0.0, 0.0)  # centre of the free floor (a double wall)

    def to_world(self, prims: list[Primitive], x: float, y: float, angle: float) -> list[Primitive]:
        return [p.moved(x, y, 0.0, angle) for p in prims]


class Packer:
    """Drops items into a parcel, keeping a height map of what is already there."""

    def __init__(self, parcel: Parcel, rng: np.random.Generator, cell_mm: float = 5.0):
        self.rng = rng
        self.cell = cell_mm
        self.half = (parcel.inner[0] / 2, parcel.inner[1] / 2)
        self.shift = parcel.inner_shift
        self.top = parcel.top_z
        nx = max(1, int(math.ceil(parcel.inner[0] / cell_mm)))
        ny = max(1, int(math.ceil(parcel.inner[1] / cell_mm)))
        self.heights = np.full((ny, nx), parcel.floor_z, np.float64)
        xs = (np.arange(nx) + 0.5) * cell_mm - self.half[0] + self.shift[0]
        ys = (np.arange(ny) + 0.5) * cell_mm - self.half[1] + self.shift[1]
        self.grid_x, self.grid_y = np.meshgrid(xs, ys)

    def free_space(self) -> tuple[float, float, float]:
        """The largest (x, y, z) an item could have and still fit somewhere (optimistic)."""
        return (2 * self.half[0], 2 * self.half[1], self.top - float(self.heights.min()))

    def _mask(self, x, y, footprint, angle) -> tuple[slice, slice, np.ndarray]:
        """The cells under a turned footprint: a window of the grid and a mask within it."""
        c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
        reach = 0.5 * math.hypot(*footprint) + self.cell
        x0 = self.grid_x[0, 0]
        y0 = self.grid_y[0, 0]
        cols = slice(max(0, int((x - reach - x0) / self.cell)),
                     max(0, int((x + reach - x0) / self.cell) + 2))
        rows = slice(max(0, int((y - reach - y0) / self.cell)),
                     max(0, int((y + reach - y0) / self.cell) + 2))
        dx, dy = self.grid_x[rows, cols] - x, self.grid_y[rows, cols] - y
        u, v = c * dx + s * dy, -s * dx + c * dy
        mask = (np.abs(u) <= footprint[0] / 2 + self.cell / 2) & \
               (np.abs(v) <= footprint[1] / 2 + self.cell / 2)
        return rows, cols, mask

    def place(self, item: Item, at=None, angle: float | None = None,
              tries: int = 40) -> Item | None:
        """``item`` moved to a free spot (or onto ``at`` = (x, y)); None if nothing fits."""
        for attempt in range(tries):
            # Late attempts square the object up with the walls: a snug fit needs that.
            a = angle if angle is not None else self._random_angle(square=attempt >= tries // 2)
            c, s = abs(math.cos(math.radians(a))), abs(math.sin(math.radians(a)))
            hx = c * item.footprint[0] / 2 + s * item.footprint[1] / 2
            hy = s * item.footprint[0] / 2 + c * item.footprint[1] / 2
            if hx > self.half[0] or hy > self.half[1]:
                if angle is not None:
                    return None
                continue
            lo_x = self.shift[0] - self.half[0] + hx
            lo_y = self.shift[1] - self.half[1] + hy
            hi_x = max(lo_x, self.shift[0] + self.half[0] - hx)  # a snug fit: equal up to 1e-14
            hi_y = max(lo_y, self.shift[1] + self.half[1] - hy)
            if at is None:
                x, y = uniform(self.rng, lo_x, hi_x), uniform(self.rng, lo_y, hi_y)
            else:
                x, y = float(np.clip(at[0], lo_x, hi_x)), float(np.clip(at[1], lo_y, hi_y))
            rows, cols, mask = self._mask(x, y, item.footprint, a)
            under = self.heights[rows, cols]
            z = float(under[mask].max()) if mask.any() else float(self.heights.min())
            if z + item.height <= self.top + 1e-6:
                under[mask] = z + item.height  # a view: writes into the height map
                return item.placed(x, y, z, a)
        return None

    def _random_angle(self, square: bool) -> float:
        # Packed goods mostly line up with the box walls.
        base = choice(self.rng, [0.0, 90.0, 180.0, 270.0])
        if square:
            return base
        return base + (uniform(self.rng, -12, 12) if self.rng.random() < 0.7
                       else uniform(self.rng, -45, 45))


def carton(rng: np.random.Generator, max_xy: tuple[float, float]) -> Parcel:
    """A corrugated carton: walls, double-layer flap zones, tape, sometimes staples."""
    size_class = choice(rng, {"small": 0.35, "medium": 0.4, "large": 0.25})
    lo, hi = {"small": (150, 280), "medium": (260, 450), "large": (420, 620)}[size_class]
    length = min(uniform(rng, lo, hi), max_xy[0])
    width = min(uniform(rng, lo * 0.55, hi * 0.9), max_xy[1], length)
    height = uniform(rng, max(60, lo * 0.3), hi * 0.75)
    double = rng.random() < 0.25
    wall = uniform(rng, 6.0, 8.5) if double else uniform(rng, 3.0, 5.0)
    board = paper(rng, 0.15)
    rho = uniform(rng, 0.11, 0.2)  # corrugated board: liner paper around air flutes
    prims = hollow("box", board, rho, (length, width, height), wall)
    flap = width / 2  # the minor flaps under the top and over the bottom
    for z in (wall, height - 2 * wall):
        for sx in (-1, 1):
            prims.append(solid("box", board, rho, (flap, width - 2 * wall, wall),
                               (sx * (length / 2 - wall - flap / 2), 0, z)))
    tape = uniform(rng, 48, 75)
    prims.append(solid("box", "packing_tape", 0.95, (length, tape, 0.06), (0, 0, height)))
    if rng.random() < 0.2:
        for i in range(int(rng.integers(3, 8))):
            prims.append(solid("box", "steel", 7.85, (1.0, 12, 0.8),
                               (-length / 2 + 30 + i * 40, width / 2 - 15, height)))
    inner = (length - 2 * wall, width - 2 * wall, height - 4 * wall)
    record = {"kind": "carton", "size_mm": [length, width, height], "wall_mm": wall,
              "double_wall_board": double, "board_density": rho}
    return Parcel("carton", (length, width, height), inner, 2 * wall, height - 2 * wall, wall,
                  prims, record)


def padded_envelope(rng: np.random.Generator, max_xy: tuple[float, float]) -> Parcel:
    length = min(uniform(rng, 220, 400), max_xy[0])
    width = min(uniform(rng, 160, 300), max_xy[1], length)
    thick = uniform(rng, 25, 70)
    kraft = uniform(rng, 0.1, 0.18)
    prims = []
    for z in (0.0, thick - kraft):
        prims.append(solid("box", "cellulose", 0.8, (length, width, kraft), (0, 0, z)))
    for z in (kraft, thick - kraft - 4.0):
        prims.append(solid("box", "polyethylene", 0.06, (length - 12, width - 12, 4.0), (0, 0, z),
                           texture=texture(rng, "bubbles", pitch_mm=uniform(rng, 8, 12))))
    prims.append(solid("box", "cellulose", 0.8, (length, 18, 0.4), (0, width / 2 - 9, thick)))
    inner = (length - 16, width - 16, thick - 9)
    record = {"kind": "padded_envelope", "size_mm": [length, width, thick]}
    return Parcel("padded_envelope", (length, width, thick), inner, 4.5, thick - 4.5, 0.2,
                  prims, record)


def mail_bag(rng: np.random.Generator, max_xy: tuple[float, float]) -> Parcel:
    length = min(uniform(rng, 250, 520), max_xy[0])
    width = min(uniform(rng, 200, 420), max_xy[1], length)
    thick = uniform(rng, 40, 160)
    film = uniform(rng, 0.05, 0.1)
    prims = [solid("box", "polyethylene", 0.93, (length, width, film), (0, 0, z),
                   texture=texture(rng, "folds", amp=0.5, scale_mm=40))
             for z in (0.0, thick - film)]
    for sy in (-1, 1):  # heat-sealed seams: several layers of film folded together
        prims.append(solid("box", "polyethylene", 0.93, (length, 10, film * 4),
                           (0, sy * (width / 2 - 5), 0)))
    inner = (length - 20, width - 20, thick - 1)
    record = {"kind": "mail_bag", "size_mm": [length, width, thick], "film_mm": film}
    return Parcel("mail_bag", (length, width, thick), inner, film, thick - film, film, prims,
                  record)


BUILDERS = {"carton": carton, "padded_envelope": padded_envelope, "mail_bag": mail_bag}


def filler(rng: np.random.Generator, parcel: Parcel, packer: Packer) -> list[Primitive]:
    """Void fill around the goods: crumpled paper, air pillows or bubble wrap (cartons only)."""
    if parcel.kind != "carton" or rng.random() < 0.35:
        return []
    li, wi, _ = parcel.inner
    top = packer.top
    kind = choice(rng, ["crumpled paper", "air pillows", "bubble wrap"])
    prims = []
    for _ in range(int(rng.integers(2, 6))):
        w, d = uniform(rng, li * 0.3, li * 0.8), uniform(rng, wi * 0.3, wi * 0.8)
        h = uniform(rng, 20, max(25, top - parcel.floor_z))
        h = min(h, top - parcel.floor_z)
        at = (uniform(rng, -(li - w) / 2, (li - w) / 2), uniform(rng, -(wi - d) / 2, (wi - d) / 2),
              parcel.floor_z)
        if kind == "crumpled paper":
            prims.append(solid("pillow", "cellulose", uniform(rng, 0.015, 0.04), (w, d, h), at,
                               roundness=3.0, texture=texture(rng, "folds", amp=0.8, scale_mm=25)))
        elif kind == "air pillows":
            prims.append(solid("pillow", "polyethylene", 0.004, (w, d, h), at, roundness=2.5,
                               texture=texture(rng, "bubbles", pitch_mm=uniform(rng, 60, 120))))
        else:
            prims.append(solid("box", "polyethylene", 0.02, (w, d, min(h, 30)), at,
                               texture=texture(rng, "bubbles", pitch_mm=uniform(rng, 8, 30))))
    return prims
