"""Benign electronics: laptops, phones, circuit boards, batteries, chargers, cables, headphones.

Electronics are where most of a parcel's metal sits (copper traces, steel plates, battery
cans) and where packets hide (a battery bay emptied, the air inside a case).
"""

from __future__ import annotations

import numpy as np

from training.sim.parts import choice, hollow, slot, solid, texture, uniform
from training.sim.scene import Item, Primitive

_CHIP = {"epoxy": 0.7, "silicon": 0.3}


def _board(rng, w, d, at, thick=1.6) -> list[Primitive]:
    """A populated PCB: FR-4, copper tracks (35 um a layer, several layers), chips."""
    x, y, z = at
    prims = [solid("box", "fr4", 1.85, (w, d, thick), (x, y, z)),
             solid("box", "copper", 8.96, (w, d, 0.035 * int(rng.integers(2, 5))),
                   (x, y, z + thick), texture=texture(rng, "traces"))]
    for _ in range(int(rng.integers(2, 7))):
        cw = uniform(rng, 5, min(30, w / 3))
        prims.append(solid("box", _CHIP, 1.9, (cw, cw * uniform(rng, 0.5, 1.2), 1.4),
                           (x + uniform(rng, -w / 3, w / 3), y + uniform(rng, -d / 3, d / 3),
                            z + thick)))
    return prims


def _screws(rng, w, d, z, count) -> list[Primitive]:
    return [solid("cylinder", "steel", 7.85, (2.5, 2.5, 4),
                  (uniform(rng, -w / 2 + 5, w / 2 - 5), uniform(rng, -d / 2 + 5, d / 2 - 5), z))
            for _ in range(count)]


def laptop(rng: np.random.Generator, space) -> Item | None:
    w, d, h = uniform(rng, 290, 380), uniform(rng, 195, 260), uniform(rng, 15, 25)
    if w > space[0] or d > space[1] or h > space[2]:
        return None
    metal = rng.random() < 0.5
    prims = hollow("box", "aluminium" if metal else "abs", 2.7 if metal else 1.05, (w, d, h),
                   wall=uniform(rng, 0.9, 1.4) if metal else uniform(rng, 1.8, 2.5))
    prims.append(solid("box", "steel", 7.85, (w - 24, d * 0.45, uniform(rng, 0.3, 0.5)),
                       (0, -d * 0.08, h - 4)))
    prims += _board(rng, w * 0.55, d * 0.4, (-w * 0.15, -d * 0.25, 2.5))
    prims.append(solid("rod", "copper", 3.0, (uniform(rng, 110, 170), 6, 3),
                       (-w * 0.1, -d * 0.3, 5.0), angle=uniform(rng, -10, 10)))
    prims += hollow("cylinder", "polypropylene", 1.0, (60, 60, 7), 1.0, (w * 0.3, -d * 0.28, 2))
    prims += [solid("box", "steel", 7.85, (22, 10, 6), (sx * (w / 2 - 30), d / 2 - 10, 4))
              for sx in (-1, 1)]
    prims += _screws(rng, w, d, 0.5, int(rng.integers(6, 11)))
    # Battery: 3-4 pouch cells along the front edge.
    cells, first = int(rng.integers(3, 5)), len(prims)
    cell_w, cell_d, cell_t = (w * 0.75) / cells, d * 0.3, uniform(rng, 5, 7)
    for i in range(cells):
        prims.append(solid("box", "li_ion_stack", uniform(rng, 2.3, 2.7),
                           (cell_w - 3, cell_d, cell_t),
                           (-w * 0.375 + cell_w * (i + 0.5), d * 0.27, 2.0)))
    bay = slot("laptop battery bay", (0, d * 0.27, 2.0 + cell_t / 2), (w * 0.75, cell_d, cell_t),
               replace=list(range(first, first + cells)))
    # The lid (closed): screen glass, light guide, frame.
    prims += [solid("box", "glass", 2.5, (w - 12, d - 12, uniform(rng, 0.5, 0.8)), (0, 0, h)),
              solid("box", "acrylic", 1.18, (w - 16, d - 16, 2.0), (0, 0, h + 0.8)),
              solid("box", "aluminium" if metal else "abs", 2.7 if metal else 1.05,
                    (w, d, 1.2 if metal else 2.2), (0, 0, h + 3))]
    return Item("laptop", prims, [bay], (w, d), h + 5)


def phone(rng: np.random.Generator, space) -> Item | None:
    w, d, h = uniform(rng, 68, 80), uniform(rng, 140, 168), uniform(rng, 7.5, 9.5)
    if w > space[0] or d > space[1] or h > space[2]:
        return None
    frame = choice(rng, {"aluminium": 0.7, "stainless": 0.3})
    rho = 2.7 if frame == "aluminium" else 7.9
    prims = [solid("box", frame, rho, (w, d, h)), solid("box", frame, -rho, (w - 3, d - 3, h)),
             solid("box", "glass", 2.5, (w - 1, d - 1, 0.6), (0, 0, 0)),
             solid("box", "glass", 2.5, (w - 1, d - 1, 0.6), (0, 0, h - 0.6))]
    prims += _board(rng, w * 0.8, d * 0.3, (0, -d * 0.3, 1.0), thick=0.8)
    prims.append(solid("cylinder", "steel", 7.85, (12, 12, 1.5), (-w * 0.25, -d * 0.38, h - 2)))
    prims.append(solid("box", "iron", 7.8, (10, 14, 2.5), (0, d * 0.42, 2)))  # speaker magnet
    first = len(prims)
    prims.append(solid("box", "li_ion_stack", uniform(rng, 2.3, 2.7),
                       (w * 0.8, d * 0.5, h - 3.5), (0, d * 0.12, 1.2)))
    bay = slot("phone battery", (0, d * 0.12, h / 2), (w * 0.8, d * 0.5, h - 3.5),
               replace=[first])
    return Item("phone", prims, [bay], (w, d), h)


def circuit_board(rng: np.random.Generator, space) -> Item | None:
    """A router, set-top box or similar: a plastic case around a populated board."""
    w, d, h = uniform(rng, 140, 260), uniform(rng, 100, 200), uniform(rng, 25, 50)
    if w > space[0] or d > space[1] or h > space[2]:
        return None
    prims = hollow("box", "abs", 1.05, (w, d, h), uniform(rng, 1.8, 2.6))
    prims += _board(rng, w - 12, d - 12, (0, 0, 4))
    for _ in range(int(rng.integers(2, 7))):  # electrolytic capacitors
        dia = uniform(rng, 6, 12)
        prims.append(solid("cylinder", {"aluminium": 0.5, "water": 0.3, "cellulose": 0.2}, 1.6,
                           (dia, dia, uniform(rng, 10, min(20, h - 10))),
                           (uniform(rng, -w / 3, w / 3), uniform(rng, -d / 3, d / 3), 6)))
    if rng.random() < 0.6:  # heat sink
        prims.append(solid("box", "aluminium", 1.2, (40, 40, 12), (w * 0.15, 0, 6),
                           texture=texture(rng, "folds", amp=0.5, scale_mm=8)))
    prims.append(solid("box", "steel", 7.85, (14, 10, 8), (w / 2 - 9, -d / 4, 4)))
    gap = (w * 0.5, d * 0.5, max(h - 16, 4.0))
    return Item("circuit_board", prims,
                [slot("inside electronics case", (-w * 0.15, 0, 6 + gap[2] / 2), gap)], (w, d), h)


def _cell_18650(x, y, z, angle=0.0) -> list[Primitive]:
    return [solid("rod", "steel", 7.85, (65, 18, 18), (x, y, z), angle),
            solid("rod", "steel", -7.85, (64, 17.5, 17.5), (x, y, z + 0.25), angle),
            solid("rod", "li_ion_stack", 2.6, (64, 17.5, 17.5), (x, y, z + 0.25), angle)]


def batteries(rng: np.random.Generator, space) -> Item | None:
    """A power bank of 18650 cells or a blister pack of AA cells."""
    if rng.random() < 0.6:
        cells = int(rng.integers(2, 7))
        w, d, h = 75.0, cells * 19.0 + 8, 24.0
        if w > space[0] or d > space[1] or h > space[2]:
            return None
        prims = hollow("box", choice(rng, ["abs", "aluminium"]), 1.5, (w, d, h), 1.5)
        first = len(prims)
        for i in range(cells):
            prims += _cell_18650(0, -d / 2 + 4 + 19 * (i + 0.5), 2.5)
        prims += _board(rng, 20, d - 8, (w / 2 - 12, 0, 2), thick=1.0)
        bay = slot("power bank cells", (0, 0, 12), (66, cells * 19.0, 18),
                   replace=list(range(first, first + 3 * cells)))
        return Item("batteries", prims, [bay], (w, d), h)
    cells = int(rng.integers(2, 9))
    w, d, h = 52.0, cells * 15.0 + 6, 16.0
    if w > space[0] or d > space[1] or h > space[2]:
        return None
    prims = [solid("box", "pet", 1.38, (w, d, 0.3), (0, 0, 0)),
             solid("box", "cellulose", 0.8, (w, d, 0.5), (0, 0, 15.5))]
    for i in range(cells):
        y = -d / 2 + 3 + 15 * (i + 0.5)
        prims += [solid("rod", "steel", 7.85, (50, 14.5, 14.5), (0, y, 0.5)),
                  solid("rod", "steel", -7.85, (49, 14, 14), (0, y, 0.75)),
                  solid("rod", "alkaline_cell", 2.9, (49, 14, 14), (0, y, 0.75))]
    return Item("batteries", prims, [], (w, d), h)


def _coil(rng, dia, thick, at) -> Primitive:
    return solid("cylinder", {"pvc": 0.62, "copper": 0.38}, uniform(rng, 0.5, 0.9),
                 (dia, dia * uniform(rng, 0.7, 1.0), thick), at,
                 texture=texture(rng, "rings", turns=int(rng.integers(4, 10))))


def charger(rng: np.random.Generator, space) -> Item | None:
    w, d, h = uniform(rng, 45, 90), uniform(rng, 40, 70), uniform(rng, 25, 35)
    coil = uniform(rng, 70, 140)
    if w + coil > space[0] or max(d, coil) > space[1] or h > space[2]:
        return None
    x = coil / 2  # the case on the right, the coiled cable on the left
    prims = hollow("box", "abs", 1.05, (w, d, h), 2.0, (x, 0, 0))
    prims += [solid("box", "ferrite", 4.8, (18, 18, 14), (x, 0, 4)),
              solid("cylinder", "copper", 4.0, (24, 24, 10), (x, 0, 6)),
              solid("cylinder", {"aluminium": 0.5, "water": 0.3, "cellulose": 0.2}, 1.6,
                    (10, 10, 16), (x + 14, 12, 3))]
    prims += _board(rng, w - 8, d - 8, (x, 0, 2.5), thick=1.2)
    prims += [solid("box", "brass", 8.5, (6, 1.5, 16), (x - w / 2 + 6, dy, h / 2 - 8))
              for dy in (-6, 6)]
    prims.append(_coil(rng, coil, uniform(rng, 6, 14), (-w / 2, 0, 0)))
    return Item("charger", prims, [], (w + coil, max(d, coil)), h)


def cable(rng: np.random.Generator, space) -> Item | None:
    """A coiled cable, or one lying loose in loops, with its plug."""
    if rng.random() < 0.5:
        dia, t = uniform(rng, 80, 220), uniform(rng, 5, 20)
        if dia > min(space[0], space[1]) or t > space[2]:
            return None
        prims = [_coil(rng, dia, t, (0, 0, 0))]
        size = (dia + 30, dia, t)
    else:
        w, d, wire = uniform(rng, 150, 420), uniform(rng, 120, 320), uniform(rng, 3, 6)
        w, d = min(w, space[0]), min(d, space[1])
        if w < 80 or d < 60 or space[2] < 12:
            return None
        prims = [solid("box", {"pvc": 0.62, "copper": 0.38}, 2.0, (w, d, wire),
                       texture=texture(rng, "curve", width_mm=wire,
                                       length_mm=uniform(rng, 500, 1500)))]
        size = (w, d, wire)
    x = size[0] / 2 - 15
    prims += [solid("box", "abs", 1.05, (30, 16, 10), (x - 15, 0, 0)),
              solid("box", "brass", 8.5, (12, 6, 2), (x + 3, 0, 4))]
    return Item("cable", prims, [], size[:2], max(size[2], 10.0))


def headphones(rng: np.random.Generator, space) -> Item | None:
    w, d, h = uniform(rng, 150, 200), uniform(rng, 160, 200), uniform(rng, 40, 80)
    if w > space[0] or d > space[1] or h > space[2]:
        return None
    prims = [solid("box", "polypropylene", 0.95, (w * 0.9, 25, 6), (0, d / 2 - 15, 0))]
    for sx in (-1, 1):
        x = sx * (w / 2 - 35)
        prims += hollow("cylinder", "abs", 1.05, (70, 80, 35), 2.0, (x, -10, 0))
        prims += [solid("cylinder", choice(rng, ["ferrite", "iron"]), 5.5, (28, 28, 5),
                        (x, -10, 8)),
                  solid("cylinder", "copper", 3.0, (20, 20, 3), (x, -10, 13))]
    coil = uniform(rng, 60, min(100, d / 2))
    prims.append(_coil(rng, coil, 6, (0, -d / 2 + coil / 2 + 2, 0)))
    return Item("headphones", prims, [], (w, d), h)


BUILDERS = {"laptop": laptop, "phone": phone, "circuit_board": circuit_board,
            "batteries": batteries, "charger": charger, "cable": cable,
            "headphones": headphones}
