"""Benign tools, food, toys and keys: steel that shadows, organics that look like packets."""

from __future__ import annotations

import math

import numpy as np

from training.sim.parts import choice, hollow, solid, texture, uniform
from training.sim.scene import Item


def tools(rng: np.random.Generator, space) -> Item | None:
    kind = choice(rng, ["wrench", "screwdriver", "pliers", "hammer", "tape measure"])
    if kind == "wrench":
        length = uniform(rng, 140, 260)
        w = length * 0.12
        prims = [solid("box", "steel", 7.85, (length, w * 0.6, uniform(rng, 4, 7))),
                 solid("cylinder", "steel", 7.85, (w * 1.6, w * 1.6, 6), (length / 2, 0, 0)),
                 solid("cylinder", "steel", -7.85, (w * 0.8, w * 0.8, 6), (length / 2, 0, 0)),
                 solid("cylinder", "steel", 7.85, (w * 1.5, w * 1.5, 6), (-length / 2, 0, 0))]
        size = (length + w * 1.6, w * 1.6, 7.0)
    elif kind == "screwdriver":
        length = uniform(rng, 100, 220)
        prims = [solid("rod", "steel", 7.85, (length * 0.55, 6, 6), (length * 0.25, 0, 7)),
                 solid("rod", choice(rng, ["abs", "polypropylene"]), 1.0, (length * 0.45, 28, 28),
                       (-length * 0.25, 0, 0))]
        size = (length, 28.0, 28.0)
    elif kind == "pliers":
        length = uniform(rng, 150, 220)
        prims = [solid("box", "steel", 7.85, (length * 0.55, 9, 10), (length * 0.18, sy * 6, 0),
                       angle=sy * 4.0) for sy in (-1, 1)]
        prims += [solid("box", "pvc", 1.38, (length * 0.45, 14, 12), (-length * 0.25, sy * 12, 0),
                        angle=sy * 6.0) for sy in (-1, 1)]
        prims.append(solid("cylinder", "steel", 7.85, (22, 22, 12), (length * 0.08, 0, 0)))
        size = (length, 62.0, 12.0)
    elif kind == "hammer":
        length = uniform(rng, 250, 330)
        prims = [solid("rod", "cellulose", 0.65, (length, 30, 30)),
                 solid("box", "steel", 7.85, (28, 100, 28), (length / 2 - 20, 0, 1))]
        size = (length, 100.0, 30.0)
    else:
        prims = hollow("box", "abs", 1.05, (65, 65, 35), 2.0)
        prims += [solid("cylinder", "steel", 2.5, (56, 56, 20), (0, 0, 7),
                        texture=texture(rng, "rings", turns=12))]
        size = (65.0, 65.0, 35.0)
    if size[0] > space[0] or size[1] > space[1] or size[2] > space[2]:
        return None
    return Item("tools", prims, [], size[:2], size[2])


def food(rng: np.random.Generator, space) -> Item | None:
    """Pasta, rice, biscuits, tea, spices in their retail packaging (loose, unwrapped)."""
    kind = choice(rng, ["pasta", "rice", "biscuits", "tea box", "crisps"])
    if kind == "pasta":
        w, d, h = uniform(rng, 60, 90), uniform(rng, 170, 260), uniform(rng, 35, 60)
        fill, rho, grain = "flour", uniform(rng, 0.35, 0.5), 3.0
    elif kind == "rice":
        w, d, h = uniform(rng, 110, 160), uniform(rng, 160, 240), uniform(rng, 40, 70)
        fill, rho, grain = "flour", uniform(rng, 0.75, 0.9), 1.5
    elif kind == "biscuits":
        w, d, h = uniform(rng, 55, 75), uniform(rng, 150, 220), uniform(rng, 55, 75)
        fill, rho, grain = {"flour": 0.6, "sucrose": 0.2, "oil": 0.2}, uniform(rng, 0.45, 0.6), 8.0
    elif kind == "tea box":
        w, d, h = uniform(rng, 70, 90), uniform(rng, 120, 160), uniform(rng, 60, 80)
        fill, rho, grain = "tea", uniform(rng, 0.15, 0.3), 6.0
    else:
        w, d, h = uniform(rng, 150, 220), uniform(rng, 220, 300), uniform(rng, 50, 90)
        fill, rho, grain = {"flour": 0.6, "oil": 0.35, "salt": 0.05}, uniform(rng, 0.05, 0.1), 20.0
    if w > space[0] or d > space[1] or h > space[2]:
        return None
    pack = "cellulose" if kind in ("pasta", "tea box", "biscuits") else "polypropylene"
    prims = hollow("box", pack, 0.8, (w, d, h), 0.5)
    prims.append(solid("pillow" if pack == "polypropylene" else "box", fill, rho,
                       (w - 2, d - 2, h - 2), (0, 0, 1), roundness=8.0,
                       texture=texture(rng, "noise", amp=0.35, scale_mm=grain)))
    if kind == "crisps":
        prims.append(solid("box", "aluminium", 2.7, (w, d, 0.02), (0, 0, h / 2)))  # metallised film
    return Item("food", prims, [], (w, d), h)


def toy(rng: np.random.Generator, space) -> Item | None:
    w, d, h = uniform(rng, 80, 250), uniform(rng, 60, 200), uniform(rng, 30, 120)
    if w > space[0] or d > space[1] or h > space[2]:
        return None
    prims = hollow("ellipsoid", choice(rng, ["abs", "polypropylene", "polystyrene"]), 1.0,
                   (w, d, h), uniform(rng, 1.5, 3.0))
    for _ in range(int(rng.integers(1, 4))):  # inner parts, well inside the shell
        pw = uniform(rng, 15, min(w / 3, d / 1.8))
        prims += hollow("box", "abs", 1.05, (pw, pw * 0.6, min(h / 3, 30)), 1.5,
                        (uniform(rng, -w / 6, w / 6), uniform(rng, -d / 8, d / 8), h * 0.2))
    if rng.random() < 0.5:  # motor and AA cells
        prims += [solid("rod", "steel", 4.0, (30, 20, 20), (0, 0, h * 0.25)),
                  solid("rod", "copper", 3.0, (18, 14, 14), (0, 0, h * 0.25 + 3)),
                  solid("rod", "alkaline_cell", 2.9, (50, 14, 14), (0, d * 0.2, h * 0.2)),
                  solid("rod", "steel", 1.0, (50, 14.5, 14.5), (0, d * 0.2, h * 0.2))]
    return Item("toy", prims, [], (w, d), h)


def keys(rng: np.random.Generator, space) -> Item | None:
    if space[0] < 85 or space[1] < 122 or space[2] < 8:
        return None
    prims = [solid("cylinder", "steel", 7.85, (30, 30, 1.5)),
             solid("cylinder", "steel", -7.85, (26, 26, 1.5))]
    for _ in range(int(rng.integers(2, 6))):
        angle = uniform(rng, -60, 60)
        key = solid("box", choice(rng, ["brass", "steel", "stainless"]), 8.2,
                    (uniform(rng, 45, 65), uniform(rng, 8, 12), 2.0), (35, 0, 0))
        prims.append(key.moved(0, 0, 0, angle))
    # Keys fan out up to 60 degrees from the ring: x from -15 to 68 mm, y within +-60 mm.
    return Item("keys", [p.moved(-26.5, 0, 0) for p in prims], [], (85.0, 122.0), 8.0)


def _stationery_piece(rng, kind: str, x: float, y: float, angle: float) -> list:
    if kind == "pen":
        return [solid("rod", "polystyrene", 1.05, (140, 10, 10), (x, y, 0), angle),
                solid("rod", "steel", 2.0, (30, 3, 3), (x, y, 3.5), angle),
                solid("rod", "brass", 8.5, (8, 2.5, 2.5), (x, y, 3.8), angle)]
    if kind == "pencil":
        return [solid("rod", "cellulose", 0.6, (170, 7, 7), (x, y, 0), angle),
                solid("rod", "graphite", 2.0, (170, 2, 2), (x, y, 2.5), angle)]
    if kind == "coin":
        dia = uniform(rng, 16, 28)
        return [solid("cylinder", choice(rng, ["brass", "steel", "copper"]), 8.0,
                      (dia, dia, uniform(rng, 1.5, 2.3)), (x, y, 0))]
    if kind == "usb":
        return [solid("box", "abs", 1.05, (45, 16, 7), (x, y, 0), angle),
                solid("box", "stainless", 7.9, (12, 12, 4.5), (x, y, 1.2), angle)]
    if kind == "lighter":  # lying on its side
        return hollow("box", "polypropylene", 0.9, (80, 24, 12), 1.2, (x, y, 0), angle) + \
            [solid("box", "steel", 7.85, (12, 22, 10), (x, y, 1), angle)]
    return [solid("box", "steel", 7.85, (30, 8, 1.0), (x, y, 0), angle)]  # paper clip


def stationery(rng: np.random.Generator, space) -> Item | None:
    """A handful of small things: pens, pencils, coins, a USB stick, a lighter, clips."""
    w, d = uniform(rng, 120, 220), uniform(rng, 80, 160)
    if w > space[0] or d > space[1] or space[2] < 14:
        return None
    sizes = {"pen": (140, 10), "pencil": (170, 7), "coin": (28, 28), "usb": (45, 16),
             "lighter": (80, 24), "clip": (30, 8)}
    prims = []
    for _ in range(int(rng.integers(3, 9))):
        kind = choice(rng, list(sizes))
        angle = uniform(rng, 0, 180)
        c, s = abs(math.cos(math.radians(angle))), abs(math.sin(math.radians(angle)))
        hx = (c * sizes[kind][0] + s * sizes[kind][1]) / 2
        hy = (s * sizes[kind][0] + c * sizes[kind][1]) / 2
        if hx > w / 2 or hy > d / 2:  # too long to lie askew here: square it up
            angle, hx, hy = 0.0, sizes[kind][0] / 2, sizes[kind][1] / 2
            if hx > w / 2 or hy > d / 2:
                continue
        x, y = uniform(rng, -w / 2 + hx, w / 2 - hx), uniform(rng, -d / 2 + hy, d / 2 - hy)
        prims += _stationery_piece(rng, kind, x, y, angle)
    if not prims:
        return None
    return Item("stationery", prims, [], (w, d), 14)


BUILDERS = {"tools": tools, "food": food, "toy": toy, "keys": keys, "stationery": stationery}
