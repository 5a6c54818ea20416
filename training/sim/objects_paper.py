"""Benign objects of paper, cloth, leather and rubber: books, paper stacks, clothes, shoes.

Each builder takes a seeded generator and the free space ``(x, y, z)`` in mm and returns an
`Item` in its own frame, or None when the space is too small for that kind of object.
"""

from __future__ import annotations

import math

import numpy as np

from training.sim.parts import choice, paper, slot, solid, texture, uniform
from training.sim.scene import Item


def book(rng: np.random.Generator, space) -> Item | None:
    w, ln, t = uniform(rng, 120, 220), uniform(rng, 170, 300), uniform(rng, 10, 55)
    w, ln, t = min(w, space[0]), min(ln, space[1]), min(t, space[2])
    if w < 90 or ln < 120 or t < 8:
        return None
    pages = paper(rng)
    rho = uniform(rng, 0.65, 1.1)
    prims = [solid("box", pages, rho, (w - 4, ln - 6, t - 2), (1.5, 0, 1.0),
                   texture=texture(rng, "noise", amp=0.04, scale_mm=6.0))]
    if rng.random() < 0.5:  # hard cover: board front, back and spine
        board = uniform(rng, 2.0, 3.0)
        prims += [solid("box", "cellulose", 0.75, (w, ln, board), (0, 0, 0)),
                  solid("box", "cellulose", 0.75, (w, ln, board), (0, 0, t - board)),
                  solid("box", "cellulose", 0.75, (board, ln, t), (-w / 2 + board / 2, 0, 0))]
    else:
        prims.append(solid("box", pages, 0.8, (w, ln, 0.4), (0, 0, t - 0.4)))
    margin = uniform(rng, 12, 25)
    # 75 % of the page block: its texture thins it by up to ~15 %, the hole must fit anyway.
    hole = (w - 2 * margin, ln - 2 * margin, max(0.75 * (t - 2), 2.0))
    slots = [slot("hollowed pages", (1.5, 0, t / 2), hole, pages, rho)]
    return Item("book", prims, slots, (w, ln), t)


def paper_stack(rng: np.random.Generator, space) -> Item | None:
    if rng.random() < 0.6:
        w, ln = 210.0, 297.0  # A4
    else:
        w, ln = uniform(rng, 150, 240), uniform(rng, 200, 320)
    t = min(uniform(rng, 4, 45), space[2])
    w, ln = min(w, space[0]), min(ln, space[1])
    if w < 100 or ln < 140 or t < 3:
        return None
    # Glossy magazine paper carries much more mineral filler and coating than book paper.
    sheets = paper(rng, filler_max=0.35)
    rho = uniform(rng, 0.8, 1.2)
    prims = [solid("box", sheets, rho, (w, ln, t), texture=texture(rng, "noise", amp=0.03))]
    height = t
    if rng.random() < 0.3 and t + 3 <= space[2]:  # a binder clip on top
        prims.append(solid("box", "steel", 7.85, (30, 8, 3), (0, -ln / 2 + 6, t)))
        height = t + 3
    slots = [slot("between sheets", (0, 0, t / 2), (w - 30, ln - 40, max(0.75 * t, 1.0)), sheets,
                  rho)]
    return Item("paper_stack", prims, slots, (w, ln), height)


def clothes(rng: np.random.Generator, space) -> Item | None:
    """A pile of 1-5 folded garments, each a soft cushion with creases, maybe a zip."""
    w, ln, t = uniform(rng, 200, 400), uniform(rng, 180, 380), uniform(rng, 20, 160)
    w, ln, t = min(w, space[0]), min(ln, space[1]), min(t, space[2])
    if w < 120 or ln < 120 or t < 10:
        return None
    fibre = choice(rng, {"cellulose": 0.6, "pet": 0.25, "nylon": 0.15})
    rho = uniform(rng, 0.12, 0.35)  # folded garments are mostly air
    garments = int(rng.integers(1, 6))
    layer = t / garments
    prims = []
    for g in range(garments):
        gw, gl, angle = w * uniform(rng, 0.7, 0.92), ln * uniform(rng, 0.7, 0.92), 0.0
        if rng.random() < 0.5:  # a little askew, if it still fits the pile's footprint
            angle = uniform(rng, -4, 4)
            c, s = math.cos(math.radians(angle)), abs(math.sin(math.radians(angle)))
            if c * gw + s * gl > w or s * gw + c * gl > ln:
                angle = 0.0
        at = ((w - gw) / 2 * uniform(rng, -0.5, 0.5), (ln - gl) / 2 * uniform(rng, -0.5, 0.5),
              g * layer)
        if angle:
            at = (0.0, 0.0, g * layer)
        prims.append(solid("pillow", fibre, rho, (gw, gl, layer), at, angle=angle,
                           roundness=uniform(rng, 5, 12),
                           texture=texture(rng, "folds", amp=uniform(rng, 0.25, 0.5),
                                           scale_mm=uniform(rng, 20, 60))))
    if rng.random() < 0.5:  # a zip
        zl = uniform(rng, 100, min(w, ln) * 0.9)
        at = (uniform(rng, -w / 5, w / 5), uniform(rng, -ln / 5, ln / 5), t * 0.6)
        prims.append(solid("box", choice(rng, ["brass", "steel", "polypropylene"]), 4.0,
                           (zl, 6, 1.5), at, angle=uniform(rng, 0, 180)))
    for _ in range(int(rng.integers(0, 6))):  # buttons
        prims.append(solid("cylinder", choice(rng, ["polycarbonate", "brass"]), 1.2,
                           (12, 12, 2.5), (uniform(rng, -w / 3, w / 3),
                                           uniform(rng, -ln / 3, ln / 3), t * 0.5)))
    # Folded clothes are mostly air: a packet among them squeezes the air out and the pile
    # bulges, so it displaces no cloth (and the creases never have to be deeper than it).
    slots = [slot("among clothes", (0, 0, t / 2), (w * 0.5, ln * 0.5, t * 0.8))]
    return Item("clothes", prims, slots, (w, ln), t)


def _shoe(rng, length, width, sole_t, upper_h, at_y, sole_rho, material_upper):
    prims = [solid("pillow", "rubber_sole", sole_rho, (length, width, sole_t), (0, at_y, 0),
                   roundness=6.0),
             # The upper: a thin-walled shell, modelled as an ellipsoid minus a smaller one.
             solid("ellipsoid", material_upper, 0.9, (length * 0.95, width, upper_h),
                   (0, at_y, sole_t)),
             solid("ellipsoid", material_upper, -0.9, (length * 0.95 - 6, width - 6, upper_h - 6),
                   (0, at_y, sole_t + 3)),
             solid("box", "polyethylene", 0.25, (length * 0.9, width * 0.85, 6),
                   (0, at_y, sole_t))]
    if rng.random() < 0.4:  # steel shank in the arch
        prims.append(solid("box", "steel", 7.85, (90, 14, 1.5), (length * 0.1, at_y, sole_t * 0.4)))
    return prims


def shoes(rng: np.random.Generator, space) -> Item | None:
    length, width = uniform(rng, 230, 310), uniform(rng, 85, 115)
    sole_t, upper_h = uniform(rng, 15, 40), uniform(rng, 50, 110)
    pair = rng.random() < 0.8
    total_w = width * 2 + 10 if pair else width
    if length > space[0] or total_w > space[1] or sole_t + upper_h > space[2]:
        return None
    upper = choice(rng, {"leather": 0.5, "nylon": 0.3, "cellulose": 0.2})
    sole_rho = uniform(rng, 0.9, 1.25)
    offsets = [-(width + 10) / 2, (width + 10) / 2] if pair else [0.0]
    prims = []
    for y in offsets:
        prims += _shoe(rng, length, width, sole_t, upper_h, y, sole_rho, upper)
    # The heel is where soles are hollowed out; a packet there displaces rubber.
    # The heel sits where the sole's rounded outline is still >= 75 % thick: the cavity keeps
    # within 60 % of it.
    heel = slot("shoe sole", (-length * 0.28, offsets[0], sole_t / 2),
                (length * 0.3, width * 0.6, max(min(sole_t - 8, 0.6 * sole_t), 4.0)),
                "rubber_sole", sole_rho)
    return Item("shoes", prims, [heel], (length, total_w), sole_t + upper_h)


BUILDERS = {"book": book, "paper_stack": paper_stack, "clothes": clothes, "shoes": shoes}
