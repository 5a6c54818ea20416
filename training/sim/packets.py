"""Packets: drug-like organic powders, bricks and pills in their wrapping, and the benign
look-alike blocks (chocolate, coffee, soap, sugar, cheese...) that every data set must hold.

A packet is built centred on the origin, sized to fit a given box, and returns its
primitives (content, wrapping shell, and optionally the cavity it displaces in a host) all
tagged with one group, plus the facts the labels report (substance, mass, wrapping).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.sim.geometry import volume_factor
from training.sim.parts import choice, uniform
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
# Benign look-alikes: (material, density range, form, wraps they come in).
DECOYS = {"chocolate": ("chocolate", (1.2, 1.35), "brick", ("foil", "paper", "plastic")),
          "coffee brick": ("coffee", (0.55, 1.0), "brick", ("vacuum", "foil")),
          "soap": ("soap", (1.0, 1.15), "brick", ("paper", "plastic", "none")),
          "sugar": ("sucrose", (0.75, 0.95), "powder", ("paper", "plastic")),
          "cheese": ("cheese", (1.0, 1.15), "brick", ("vacuum", "plastic")),
          "book block": ({"cellulose": 0.85, "calcium_carbonate": 0.15}, (0.7, 1.0), "brick",
                         ("plastic", "none")),
          "flour": ("flour", (0.5, 0.7), "powder", ("paper", "plastic")),
          "protein powder": ("protein_powder", (0.35, 0.55), "powder", ("plastic", "tape")),
          "tea brick": ("tea", (0.8, 1.1), "brick", ("paper", "plastic")),
          "milk powder": ("milk_powder", (0.45, 0.6), "powder", ("foil", "plastic")),
          "salt": ("salt", (1.1, 1.3), "powder", ("plastic", "paper")),
          "candy": ("sucrose", (0.7, 0.9), "pills", ("plastic", "tape"))}


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


def decoy_packet(rng, cfg, group: str, limits, displaces=None, host_density=0.0) -> Packet | None:
    """A benign dense organic block; sometimes taped like a drug packet (a hard negative)."""
    name = choice(rng, list(DECOYS))
    material, rho_range, form, wraps = DECOYS[name]
    wrap = "tape" if rng.random() < 0.25 else choice(rng, list(wraps))
    mass = float(np.exp(uniform(rng, *np.log(cfg.decoy_mass_g))))
    packet = build_packet(rng, group, material, form, uniform(rng, *rho_range), wrap, mass,
                          limits, cfg.min_packet_mass_g, displaces, host_density)
    if packet is not None:
        packet.meta.update({"material": name, "purity": None, "cut": None})
    return packet
