"""Packets: drug-like organic powders, bricks and pills in their wrapping, and the benign
look-alikes (chocolate, coffee, soap, sugar, cheese...) in their shop packaging that every
data set must hold.

A packet is built centred on the origin, sized to fit a given box, and returns its
primitives (content, wrapping shell, and optionally the cavity it displaces in a host) all
tagged with one group, plus the facts the labels report (substance, mass, wrapping).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.sim.geometry import volume_factor
from training.sim.parts import choice, texture, uniform
from training.sim.scene import Primitive
from training.sim.tables import Composition

# Street purity ranges (mass fraction of the active compound) and forms for each drug.
DRUGS = {"fentanyl_base": (0.02, 0.4), "fentanyl_hcl": (0.02, 0.4),
         "fentanyl_citrate": (0.02, 0.3), "carfentanil": (0.005, 0.05),
         "cocaine_hcl": (0.3, 0.95), "cocaine_base": (0.5, 0.95), "heroin_base": (0.2, 0.8),
         "heroin_hcl": (0.2, 0.8), "methamphetamine_hcl": (0.6, 0.99), "mdma_hcl": (0.3, 0.9)}
CUTS = ("mannitol", "lactose", "caffeine", "paracetamol", "glucose", "sucrose", "lidocaine",
        "levamisole_hcl", "xylazine")
# Form: (bulk density range g/cm3, pillow roundness range, texture).
FORMS = {"powder": ((0.5, 0.9), (2.5, 4.0), None),
         "brick": ((0.9, 1.4), (8.0, 16.0), None),
         "pills": ((0.6, 0.85), (3.0, 5.0), "discs")}
# Wrapping: layers of (material, density, thickness range mm, layer count range).
WRAPS = {"plastic": [("polyethylene", 0.93, (0.04, 0.12), (1, 4))],
         "tape": [("polyethylene", 0.93, (0.04, 0.1), (1, 2)),
                  ("packing_tape", 0.95, (0.05, 0.06), (3, 10))],
         "foil": [("polyethylene", 0.93, (0.04, 0.1), (1, 2)),
                  ("aluminium", 2.7, (0.012, 0.03), (1, 4))],
         "carbon_paper": [("polyethylene", 0.93, (0.04, 0.1), (1, 2)),
                          ("carbon_paper", 0.9, (0.05, 0.1), (1, 3))],
         "vacuum": [("nylon", 1.14, (0.08, 0.2), (1, 1))],
         "paper": [("cellulose", 0.8, (0.06, 0.12), (1, 2))],
         "none": []}
@dataclass
class Packet:
    primitives: list[Primitive]
    outer_size: tuple[float, float, float]  # mm, wrapping included
    meta: dict


def drug_substance(rng: np.random.Generator, drugs: dict[str, float]) -> tuple[dict, dict]:
    """A street formulation: the active compound at a plausible purity in a cutting agent."""
    drug = choice(rng, drugs)
    lo, hi = DRUGS[drug]
    purity = uniform(rng, lo, hi)
    cut = choice(rng, list(CUTS))
    comp = {drug: purity, cut: 1.0 - purity} if purity < 0.999 else {drug: 1.0}
    return comp, {"material": drug, "purity": round(purity, 3), "cut": cut}


def _wrap_layers(rng: np.random.Generator, wrap: str) -> tuple[float, dict, float]:
    """Total thickness (mm), mass-fraction composition and mean density of the wrapping."""
    total, mass = 0.0, {}
    for material, density, (t_lo, t_hi), (n_lo, n_hi) in WRAPS[wrap]:
        t = uniform(rng, t_lo, t_hi) * int(rng.integers(n_lo, n_hi + 1))
        total += t
        mass[material] = mass.get(material, 0.0) + t * density
    if total == 0:
        return 0.0, {}, 0.0
    m = sum(mass.values())
    return total, {k: v / m for k, v in mass.items()}, m / total


def _fit(rng, volume_mm3: float, limits, flatness: float) -> tuple[float, float, float]:
    """Box dimensions near ``volume_mm3`` within ``limits``: flat, aspect 1 to 2.2."""
    lx, ly, lz = limits
    t = min(lz, flatness * volume_mm3 ** (1 / 3))
    area = volume_mm3 / t
    aspect = uniform(rng, 1.0, 2.2)
    x = min(np.sqrt(area * aspect), lx)
    y = min(area / x, ly)
    t = min(lz, volume_mm3 / (x * y))
    return float(x), float(y), float(t)


def build_packet(rng: np.random.Generator, group: str, composition: Composition, form: str,
                 density: float, wrap: str, mass_g: float, limits, min_mass_g: float,
                 displaces: Composition | None = None, host_density: float = 0.0,
                 standing: bool = False) -> Packet | None:
    """A wrapped packet of about ``mass_g`` fitting ``limits`` (outer x, y, z mm), centred on
    the origin; None if even ``min_mass_g`` does not fit. With ``standing`` its thin side is
    along x (a packet on edge in a double wall)."""
    (_, _), (r_lo, r_hi), tex = FORMS[form]
    roundness = uniform(rng, r_lo, r_hi)
    thick, wrap_comp, wrap_rho = _wrap_layers(rng, wrap)
    lim = [v - 2 * thick for v in limits]
    if standing:
        lim = [lim[2], lim[1], lim[0]]
    if min(lim) <= 1.0:
        return None
    vf = volume_factor("pillow", roundness)
    flat = uniform(rng, 0.3, 0.55) if form != "brick" else uniform(rng, 0.4, 0.7)
    x, y, t = _fit(rng, mass_g / density * 1000.0 / vf, lim, flat)
    if standing:
        x, t = t, x
    mass = density * vf * x * y * t / 1000.0
    if mass < min_mass_g:
        return None
    outer = (x + 2 * thick, y + 2 * thick, t + 2 * thick)
    texture = None
    if tex is not None:
        texture = {"kind": tex, "seed": int(rng.integers(0, 2**31 - 1)),
                   "radius_mm": uniform(rng, 3.5, 6.0)}
    common = {"shape": "pillow", "roundness": roundness, "group": group,
              "center": (0.0, 0.0, 0.0)}
    prims = [Primitive(material=composition, density=density, size=(x, y, t), role="content",
                       texture=texture, **common)]
    if thick > 0:
        prims += [Primitive(material=wrap_comp, density=wrap_rho, size=outer, role="wrap",
                            **common),
                  Primitive(material=wrap_comp, density=-wrap_rho, size=(x, y, t), role="wrap",
                            **common)]
    if displaces is not None:
        prims.append(Primitive(material=displaces, density=-host_density, size=outer,
                               role="void", **common))
    meta = {"group": group, "form": form, "density": round(density, 3),
            "mass_g": round(mass, 2), "wrap": wrap, "wrap_mm": round(thick, 3),
            "size_mm": [round(v, 1) for v in outer]}
    return Packet(prims, outer, meta)


def drug_packet(rng, cfg, group: str, limits, displaces=None, host_density=0.0,
                standing=False) -> Packet | None:
    """A concealed drug packet per the scene config (mass, forms, wraps, substances)."""
    comp, info = drug_substance(rng, cfg.substances)
    form = choice(rng, cfg.forms)
    density = uniform(rng, *FORMS[form][0])
    mass = float(np.exp(uniform(rng, *np.log(cfg.packet_mass_g))))
    packet = build_packet(rng, group, comp, form, density, choice(rng, cfg.wraps), mass, limits,
                          cfg.min_packet_mass_g, displaces, host_density, standing)
    if packet is not None:
        packet.meta.update(info)
    return packet


# Benign look-alikes in the form shops sell them. Dual energy cannot tell sugar from a cut
# drug (physics.md 1.4), so what tells a grocery from a concealed packet is its make-up:
# crisp cartons, steel tins, plastic tubs, moulded bars with grooves, round cakes, laminate
# bricks with a folded end, at retail sizes. Name: (content, density g/cm3, package,
# (x, y, z) mm sizes, each drawn +-8 %).
RETAIL = {
    "chocolate bar": ("chocolate", (1.2, 1.35), "bar", [(155, 75, 10), (190, 85, 14),
                                                        (100, 50, 8)]),
    "coffee brick": ("coffee", (0.55, 0.75), "laminate", [(145, 85, 55), (190, 100, 65)]),
    "sugar carton": ("sucrose", (0.8, 0.95), "carton", [(160, 100, 60), (190, 120, 75)]),
    "salt carton": ("salt", (1.1, 1.3), "carton", [(140, 90, 50)]),
    "flour bag": ("flour", (0.5, 0.7), "paper_bag", [(170, 110, 80), (200, 130, 90)]),
    "tea carton": ("tea", (0.3, 0.5), "carton", [(150, 75, 70), (130, 65, 65)]),
    "tea cake": ("tea", (0.8, 1.1), "disc", [(200, 200, 25), (180, 180, 22)]),
    "milk powder tin": ("milk_powder", (0.45, 0.6), "tin", [(100, 100, 130), (125, 125, 170)]),
    "protein tub": ("protein_powder", (0.35, 0.55), "tub", [(125, 125, 180), (155, 155, 220)]),
    "soap bars": ("soap", (1.0, 1.15), "soap", [(90, 60, 25)]),
    "cheese wheel": ("cheese", (1.0, 1.15), "disc", [(120, 120, 45), (200, 200, 60)]),
    "candy tin": ("sucrose", (0.7, 0.9), "candy_tin", [(100, 60, 20), (120, 80, 25)]),
}
ROUND = ("disc", "tin", "tub")  # cylinders: they may also lie on their side


def _box(group: str, material, density: float, size, center=(0.0, 0.0, 0.0), role="content",
         shape: str = "box", texture=None) -> Primitive:
    return Primitive(shape=shape, material=material, density=density, center=center,
                     size=tuple(float(s) for s in size), group=group, role=role,
                     texture=texture)


def _shell(group: str, material, density: float, outer, wall: float,
           shape: str = "box") -> list[Primitive]:
    """A closed shell: the whole solid (its footprint is the label's), minus its inside."""
    inner = tuple(s - 2 * wall for s in outer)
    return [_box(group, material, density, outer, shape=shape),
            _box(group, material, -density, inner, role="wrap", shape=shape)]


def _package(rng: np.random.Generator, group: str, package: str, material, density: float,
             inner, shape: str) -> tuple[list[Primitive], tuple[float, float, float], float]:
    """Primitives (centred on the origin), outer size and content volume (mm3) of one good."""
    x, y, z = inner
    if package in ("tin", "candy_tin"):
        wall = uniform(rng, 0.18, 0.3)
        outer = (x + 2 * wall, y + 2 * wall, z + 2 * wall)
        fill = uniform(rng, 0.75, 0.95)
        size, centre = (x, y, z * fill), (0.0, 0.0, -z * (1 - fill) / 2)  # settled powder
        tex = texture(rng, "discs", radius_mm=uniform(rng, 6.0, 9.0)) \
            if package == "candy_tin" else None
        content = _box(group, material, density, size, centre, shape=shape, texture=tex)
        prims = _shell(group, "steel", 7.85, outer, wall, shape) + [content]
        return prims, outer, float(np.prod(size)) * volume_factor(shape)
    if package == "tub":
        wall = uniform(rng, 1.5, 2.5)
        fill = uniform(rng, 0.5, 0.9)
        outer = (x + 2 * wall, y + 2 * wall, z + 2 * wall)
        size, centre = (x, y, z * fill), (0.0, 0.0, -z * (1 - fill) / 2)
        prims = _shell(group, "polypropylene", 0.9, outer, wall, shape)
        prims.append(_box(group, material, density, size, centre, shape=shape))
        return prims, outer, float(np.prod(size)) * volume_factor(shape)
    if package == "bar":  # moulded chocolate: grooves between the pieces, in a paper sleeve
        wall = uniform(rng, 0.2, 0.4)
        prims = [_box(group, material, density, inner)]
        pieces = int(rng.integers(3, 7))
        depth = z * uniform(rng, 0.3, 0.45)
        for k in range(1, pieces):
            gx = -x / 2 + k * x / pieces
            prims.append(_box(group, material, -density, (2.0, y, depth),
                              (gx, 0.0, z / 2 - depth / 2), role="wrap"))
        outer = (x + 2 * wall, y + 2 * wall, z + 2 * wall)
        prims += _shell(group, "cellulose", 0.8, outer, wall)
        volume = x * y * z - (pieces - 1) * 2.0 * y * depth
        return prims, outer, volume
    if package == "soap":  # one to four bars, each in its own carton, side by side
        n = int(rng.integers(1, 5))
        wall = uniform(rng, 0.3, 0.5)
        ox, oy, oz = x + 2 * wall, y + 2 * wall, z + 2 * wall
        prims = []
        for k in range(n):
            cx = (k - (n - 1) / 2) * (ox + 1.0)
            prims += [p.moved(cx, 0.0, 0.0) for p in _shell(group, "cellulose", 0.7,
                                                              (ox, oy, oz), wall)]
            prims.append(_box(group, material, density, (x, y, z), (cx, 0.0, 0.0)))
        return prims, (n * (ox + 1.0), oy, oz), n * x * y * z
    # Cartons, laminate bricks, paper bags and wrapped discs: a crisp solid in a shell.
    wall, wrap_mat, wrap_rho = {
        "carton": (uniform(rng, 0.4, 0.8), "cellulose", 0.7),
        "laminate": (uniform(rng, 0.08, 0.15), {"polyethylene": 0.8, "aluminium": 0.2}, 1.1),
        "paper_bag": (uniform(rng, 0.12, 0.25), "cellulose", 0.8),
        "disc": (uniform(rng, 0.05, 0.12), "cellulose", 0.8),
    }[package]
    fill = uniform(rng, 0.85, 0.97) if package == "carton" else 1.0
    size, centre = (x, y, z * fill), (0.0, 0.0, -z * (1 - fill) / 2)
    outer = (x + 2 * wall, y + 2 * wall, z + 2 * wall)
    prims = _shell(group, wrap_mat, wrap_rho, outer, wall, shape)
    prims.append(_box(group, material, density, size, centre, shape=shape))
    if package in ("laminate", "paper_bag"):  # the folded, glued end: several more layers
        band = uniform(rng, 20.0, 35.0)
        layers = int(rng.integers(3, 7))
        prims.append(_box(group, wrap_mat, wrap_rho, (band, y, layers * wall),
                          (x / 2 - band / 2, 0.0, z / 2 + wall + layers * wall / 2)))
        top = layers * wall
        if package == "laminate" and rng.random() < 0.7:  # aroma valve beside the fold
            prims.append(_box(group, "polyethylene", 0.93, (18.0, 18.0, top),
                              (0.0, 0.0, z / 2 + wall + top / 2), shape="cylinder"))
        prims = [p.moved(0.0, 0.0, -top / 2) for p in prims]  # centred again
        outer = (outer[0], outer[1], outer[2] + top)
    return prims, outer, float(np.prod(size)) * volume_factor(shape)


def retail_good(rng: np.random.Generator, cfg, group: str, limits) -> Packet | None:
    """A benign grocery or toiletry in its shop packaging, fitting ``limits`` (x, y, z mm);
    its content mass within ``cfg.decoy_mass_g``. None if none fits after a few draws."""
    lo, hi = cfg.decoy_mass_g
    for _ in range(6):
        name = choice(rng, list(RETAIL))
        material, rho_range, package, sizes = RETAIL[name]
        inner = [s * uniform(rng, 0.92, 1.08) for s in sizes[int(rng.integers(len(sizes)))]]
        shape = "cylinder" if package in ROUND else "box"
        if package in ROUND and inner[2] > limits[2]:  # lay it on its side
            shape, inner = "rod", [inner[2], inner[0], inner[1]]
        density = uniform(rng, *rho_range)
        prims, outer, volume = _package(rng, group, package, material, density, inner, shape)
        mass = density * volume / 1000.0
        if not (lo <= mass <= hi):
            continue
        turn = outer[0] > limits[0] or outer[1] > limits[1]
        if turn:  # try it turned by 90 degrees on the belt
            outer = (outer[1], outer[0], outer[2])
            prims = [p.moved(0.0, 0.0, 0.0, 90.0) for p in prims]
        if any(o > lim for o, lim in zip(outer, limits, strict=True)):
            continue
        meta = {"group": group, "form": "retail", "density": round(density, 3),
                "mass_g": round(mass, 2), "wrap": package, "wrap_mm": None,
                "size_mm": [round(v, 1) for v in outer], "material": name, "purity": None,
                "cut": None}
        return Packet(prims, tuple(outer), meta)
    return None
