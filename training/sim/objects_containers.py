"""Benign containers: bottles of liquid, cans and tins, glass jars, cosmetics, mugs.

A container's contents are a slot: a packet hidden there displaces the contents, so the
container looks no fuller than before.
"""

from __future__ import annotations

import numpy as np

from training.sim.parts import choice, hollow, slot, solid, uniform
from training.sim.scene import Item

LIQUIDS = {"water": ("water", 1.0), "juice": ({"water": 0.88, "sucrose": 0.12}, 1.05),
           "oil": ("oil", 0.92), "wine": ({"water": 0.87, "ethanol": 0.13}, 0.99),
           "shampoo": ("shampoo", 1.03), "spirits": ({"water": 0.6, "ethanol": 0.4}, 0.95)}
FOODS = {"soup": ({"water": 0.85, "flour": 0.1, "oil": 0.05}, 1.02),
         "fish in oil": ({"water": 0.45, "protein": 0.3, "oil": 0.25}, 1.0),
         "beans": ({"water": 0.7, "flour": 0.2, "protein": 0.1}, 1.05),
         "tomatoes": ({"water": 0.93, "sucrose": 0.05, "salt": 0.02}, 1.02)}


def bottle(rng: np.random.Generator, space) -> Item | None:
    dia, length = uniform(rng, 55, 95), uniform(rng, 180, 320)
    glass = rng.random() < 0.35
    liquid_name = choice(rng, list(LIQUIDS))
    liquid, rho = LIQUIDS[liquid_name]
    fill = uniform(rng, 0.6, 0.97)
    if length <= space[0] and dia <= space[1] and dia <= space[2]:
        # Lying down: the liquid pools in the lower part of the section.
        wall = uniform(rng, 3, 5) if glass else uniform(rng, 0.25, 0.5)
        prims = [solid("rod", "glass" if glass else "pet", 2.5 if glass else 1.38,
                       (length, dia, dia)),
                 solid("rod", "glass" if glass else "pet", -(2.5 if glass else 1.38),
                       (length - 2 * wall, dia - 2 * wall, dia - 2 * wall), (0, 0, wall)),
                 solid("rod", liquid, rho, (length - 2 * wall - 30, dia - 2 * wall,
                                            (dia - 2 * wall) * fill), (-15, 0, wall)),
                 solid("rod", "polypropylene", 0.9, (22, 30, 30),
                       (length / 2 + 8, 0, dia / 2 - 15))]
        return Item("bottle", prims, [], (length + 40, dia), dia)
    if dia > min(space[0], space[1]) or length > space[2]:
        return None
    wall = uniform(rng, 3, 5) if glass else uniform(rng, 0.25, 0.5)
    mat, mrho = ("glass", 2.5) if glass else ("pet", 1.38)
    prims = hollow("cylinder", mat, mrho, (dia, dia, length), wall)
    prims.append(solid("cylinder", liquid, rho, (dia - 2 * wall, dia - 2 * wall,
                                                 (length - 2 * wall - 40) * fill), (0, 0, wall)))
    return Item("bottle", prims, [], (dia, dia), length)


def can(rng: np.random.Generator, space) -> Item | None:
    """A tinned-steel food can or a large biscuit / tea tin."""
    if rng.random() < 0.7:
        dia, h, wall = uniform(rng, 65, 105), uniform(rng, 55, 125), uniform(rng, 0.18, 0.3)
        shape, size = "cylinder", (dia, dia, h)
    else:
        dia, h, wall = uniform(rng, 120, 220), uniform(rng, 60, 120), uniform(rng, 0.25, 0.4)
        shape, size = "box", (dia, dia * uniform(rng, 0.6, 1.0), h)
    if size[0] > space[0] or size[1] > space[1] or h > space[2]:
        return None
    food_name = choice(rng, list(FOODS) + ["biscuits", "tea"])
    if food_name == "biscuits":
        contents, rho = "flour", uniform(rng, 0.3, 0.5)
    elif food_name == "tea":
        contents, rho = "tea", uniform(rng, 0.3, 0.5)
    else:
        contents, rho = FOODS[food_name]
    prims = hollow(shape, "steel", 7.85, size, wall)
    inner = (size[0] - 2 * wall, size[1] - 2 * wall, (h - 2 * wall) * uniform(rng, 0.85, 0.98))
    prims.append(solid(shape, contents, rho, inner, (0, 0, wall)))
    # A square inside a round can: 0.65 of the diameter keeps its corners inside.
    hide = slot("can contents", (0, 0, wall + inner[2] / 2),
                (inner[0] * 0.65, inner[1] * 0.65, inner[2] * 0.9), contents, rho)
    return Item("can", prims, [hide], size[:2], h)


def glass_jar(rng: np.random.Generator, space) -> Item | None:
    dia, h = uniform(rng, 60, 110), uniform(rng, 70, 160)
    if dia > min(space[0], space[1]) or h > space[2]:
        return None
    wall = uniform(rng, 2.5, 4.5)
    contents, rho = choice(rng, [("honey", 1.4), ({"honey": 0.7, "water": 0.3}, 1.3),
                                 ("coffee", uniform(rng, 0.25, 0.45)), ("sucrose", 0.85)])
    prims = hollow("cylinder", "glass", 2.5, (dia, dia, h - 8), wall, open_top=True)
    prims.append(solid("cylinder", "steel", 7.85, (dia + 2, dia + 2, 0.3), (0, 0, h - 8)))
    prims.append(solid("cylinder", "steel", 7.85, (dia + 2, dia + 2, 8), (0, 0, h - 8)))
    prims.append(solid("cylinder", "steel", -7.85, (dia + 1.4, dia + 1.4, 7.7), (0, 0, h - 8)))
    fill_h = (h - 8 - wall) * uniform(rng, 0.7, 0.95)
    prims.append(solid("cylinder", contents, rho, (dia - 2 * wall, dia - 2 * wall, fill_h),
                       (0, 0, wall)))
    hide = slot("jar contents", (0, 0, wall + fill_h / 2),
                ((dia - 2 * wall) * 0.65, (dia - 2 * wall) * 0.65, fill_h * 0.85), contents, rho)
    return Item("glass_jar", prims, [hide], (dia, dia), h)


def cosmetics(rng: np.random.Generator, space) -> Item | None:
    """A wash bag: cream jar, lotion tube, lipstick, perfume, powder compact."""
    w, d = uniform(rng, 180, 260), uniform(rng, 110, 170)
    if w > space[0] or d > space[1] or space[2] < 45:
        return None
    prims = [solid("box", "nylon", 1.14, (w, d, 0.6)), solid("box", "nylon", 1.14, (w, d, 0.6),
                                                           (0, 0, 44))]
    slots = []
    lengths = {"cream": 75.0, "tube": 165.0, "lipstick": 80.0, "perfume": 66.0, "compact": 76.0}
    x = -w / 2 + 10
    for kind in rng.permutation(list(lengths)):
        if x + lengths[kind] > w / 2 - 5:
            continue  # does not fit beside the others: left out of this bag
        y = uniform(rng, -d / 4, d / 4)
        if kind == "cream":
            dia = uniform(rng, 50, 72)
            prims += hollow("cylinder", "polypropylene", 0.9, (dia, dia, 40), 2.5,
                            (x + dia / 2, y, 0))
            prims.append(solid("cylinder", "cosmetic_cream", 1.0, (dia - 5, dia - 5, 30),
                               (x + dia / 2, y, 2.5)))
            side = (dia - 5) * 0.65
            slots.append(slot("cream jar", (x + dia / 2, y, 17), (side, side, 26),
                              "cosmetic_cream", 1.0))
        elif kind == "tube":
            prims.append(solid("pillow", "cosmetic_cream", 1.0, (130, 45, 25), (x + 65, y, 0)))
            prims.append(solid("cylinder", "polypropylene", 0.9, (30, 30, 25), (x + 145, y, 0)))
        elif kind == "lipstick":
            prims.append(solid("rod", "aluminium", 1.2, (75, 20, 20), (x + 37, y, 0)))
            prims.append(solid("rod", "lipstick", 1.1, (40, 12, 12), (x + 30, y, 4)))
        elif kind == "perfume":
            prims += hollow("box", "glass", 2.5, (60, 35, 42), 5, (x + 30, y, 0))
            prims.append(solid("box", {"ethanol": 0.8, "water": 0.2}, 0.85, (50, 25, 28),
                               (x + 30, y, 5)))
            prims.append(solid("cylinder", "stainless", 3.0, (12, 12, 2.5), (x + 30, y, 41)))
        else:
            prims += [solid("cylinder", "abs", 1.05, (70, 70, 12), (x + 35, y, 0)),
                      solid("cylinder", "talc", 1.2, (58, 58, 6), (x + 35, y, 2)),
                      solid("cylinder", "glass", 2.5, (56, 56, 1.5), (x + 35, y, 9))]
        x += lengths[kind]
    return Item("cosmetics", prims, slots, (w, d), 45)


def mug(rng: np.random.Generator, space) -> Item | None:
    dia, h = uniform(rng, 75, 95), uniform(rng, 85, 110)
    if dia + 40 > space[0] or dia > space[1] or h > space[2]:
        return None
    prims = hollow("cylinder", "ceramic", 2.4, (dia, dia, h), uniform(rng, 3.5, 5.5), open_top=True)
    prims.append(solid("box", "ceramic", 2.4, (22, 10, h * 0.6), (dia / 2 + 8, 0, h * 0.2)))
    prims.append(solid("box", "ceramic", -2.4, (14, 10, h * 0.45), (dia / 2 + 9, 0, h * 0.27)))
    return Item("mug", prims, [], (dia + 40, dia), h)


BUILDERS = {"bottle": bottle, "can": can, "glass_jar": glass_jar, "cosmetics": cosmetics,
            "mug": mug}
