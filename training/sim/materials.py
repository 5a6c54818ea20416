"""The simulator's material library: chemical compositions and nominal densities.

Every material is a mass-fraction mixture of chemical formulas; ``build_tables`` turns this
list into the shipped attenuation table. Scene code refers to materials by name only and may
mix named materials at run time (a street drug cut with mannitol, paper with chalk filler):
mass attenuation coefficients of a mixture are the mass-weighted sum of its parts.

Compositions of foods, rubbers and cells are generic approximations (sources: typical
nutrition labels, manufacturer data sheets); the generator samples densities and fractions
around them rather than trusting one value.
"""

from __future__ import annotations

from dataclasses import dataclass

# Shorthand for often-used parts (chemical formulas, as xraydb parses them).
CELLULOSE = "C6H10O5"
PROTEIN = "C4.5H7.5NO1.5"  # mean amino-acid residue of food proteins
FAT = "C57H104O6"  # triolein, a typical triglyceride
WATER = "H2O"
EPOXY = "C21H24O4"  # bisphenol-A epoxy resin
SODA_LIME_GLASS = {"SiO2": 0.72, "Na2O": 0.14, "CaO": 0.09, "MgO": 0.04, "Al2O3": 0.01}
E_GLASS = {"SiO2": 0.54, "CaO": 0.20, "Al2O3": 0.14, "B2O3": 0.08, "MgO": 0.04}


@dataclass(frozen=True)
class Material:
    """One material: mass fractions of formulas (summing to 1) and a nominal density."""

    name: str
    parts: tuple[tuple[str, float], ...]
    density: float  # g/cm3, nominal; scenes draw their own within a plausible range
    kind: str  # "drug", "cut", "food", "organic", "inorganic", "metal", "detector"


def _m(name: str, parts: str | dict, density: float, kind: str) -> Material:
    if isinstance(parts, str):
        parts = {parts: 1.0}
    flat: dict[str, float] = {}
    for formula, fraction in parts.items():
        sub = formula if isinstance(formula, dict) else {formula: 1.0}
        for f, w in sub.items():
            flat[f] = flat.get(f, 0.0) + w * fraction
    total = sum(flat.values())
    if abs(total - 1.0) > 1e-6:
        raise ValueError(f"material {name!r}: mass fractions sum to {total}, expected 1")
    return Material(name, tuple(sorted(flat.items())), density, kind)


def _glass(parts: dict[str, float], share: float) -> dict:
    return {f: w * share for f, w in parts.items()}


MATERIALS: tuple[Material, ...] = (
    # Drugs: active compounds in their common forms (densities are packed powder).
    _m("fentanyl_base", "C22H28N2O", 1.1, "drug"),
    _m("fentanyl_hcl", "C22H29ClN2O", 1.2, "drug"),
    _m("fentanyl_citrate", "C28H36N2O8", 1.3, "drug"),
    _m("carfentanil", "C24H30N2O3", 1.1, "drug"),
    _m("cocaine_hcl", "C17H22ClNO4", 1.2, "drug"),
    _m("cocaine_base", "C17H21NO4", 1.1, "drug"),
    _m("heroin_base", "C21H23NO5", 1.2, "drug"),
    _m("heroin_hcl", "C21H24ClNO5", 1.2, "drug"),
    _m("methamphetamine_hcl", "C10H16ClN", 1.1, "drug"),
    _m("mdma_hcl", "C11H16ClNO2", 1.2, "drug"),
    # Cutting agents and adulterants.
    _m("mannitol", "C6H14O6", 1.0, "cut"),
    _m("lactose", "C12H24O12", 1.0, "cut"),  # the monohydrate sold as a diluent
    _m("caffeine", "C8H10N4O2", 1.0, "cut"),
    _m("paracetamol", "C8H9NO2", 1.0, "cut"),
    _m("lidocaine", "C14H22N2O", 1.0, "cut"),
    _m("levamisole_hcl", "C11H13ClN2S", 1.0, "cut"),
    _m("xylazine", "C12H16N2S", 1.0, "cut"),
    # Foods and benign powders: the look-alikes a dual-energy scanner cannot separate.
    _m("sucrose", "C12H22O11", 0.85, "food"),
    _m("glucose", "C6H12O6", 0.8, "food"),
    _m("flour", {"C6H10O5": 0.75, PROTEIN: 0.11, WATER: 0.13, FAT: 0.01}, 0.6, "food"),
    _m("salt", "NaCl", 1.2, "food"),
    _m("chocolate", {"C12H22O11": 0.50, FAT: 0.31, PROTEIN: 0.07, CELLULOSE: 0.11,
                     "K2CO3": 0.01}, 1.3, "food"),
    _m("coffee", {CELLULOSE: 0.55, FAT: 0.14, PROTEIN: 0.14, WATER: 0.05, "C12H22O11": 0.08,
                  "K2CO3": 0.04}, 0.7, "food"),
    _m("tea", {CELLULOSE: 0.70, PROTEIN: 0.20, WATER: 0.06, "K2CO3": 0.04}, 0.5, "food"),
    _m("milk_powder", {"C12H24O12": 0.38, PROTEIN: 0.26, FAT: 0.27, "Ca3P2O8": 0.06,
                       "KCl": 0.03}, 0.55, "food"),
    _m("protein_powder", {PROTEIN: 0.80, "C12H22O11": 0.10, FAT: 0.06, "Ca3P2O8": 0.04},
       0.45, "food"),
    _m("cheese", {WATER: 0.38, FAT: 0.33, PROTEIN: 0.25, "NaCl": 0.02, "Ca3P2O8": 0.02},
       1.1, "food"),
    _m("soap", {"C18H35NaO2": 0.80, WATER: 0.12, "C3H8O3": 0.08}, 1.07, "food"),
    _m("honey", {"C6H12O6": 0.80, WATER: 0.20}, 1.4, "food"),
    _m("detergent", {"Na2CO3": 0.30, "Na2SO4": 0.30, "C18H29NaO3S": 0.20,
                     "Na12Al12Si12O48": 0.20}, 0.7, "inorganic"),
    # Everyday organics.
    _m("cellulose", CELLULOSE, 0.8, "organic"),
    _m("water", WATER, 1.0, "organic"),
    _m("ethanol", "C2H6O", 0.79, "organic"),
    _m("glycerol", "C3H8O3", 1.26, "organic"),
    _m("oil", FAT, 0.92, "organic"),
    _m("polyethylene", "C2H4", 0.94, "organic"),
    _m("polypropylene", "C3H6", 0.90, "organic"),
    _m("pet", "C10H8O4", 1.38, "organic"),
    _m("pvc", "C2H3Cl", 1.38, "organic"),
    _m("polystyrene", "C8H8", 1.05, "organic"),
    _m("abs", "C15H17N", 1.05, "organic"),
    _m("nylon", "C6H11NO", 1.14, "organic"),
    _m("polycarbonate", "C16H14O3", 1.20, "organic"),
    _m("acrylic", "C5H8O2", 1.18, "organic"),
    _m("epoxy", EPOXY, 1.2, "organic"),
    _m("silicone", "C2H6OSi", 1.1, "organic"),
    _m("paraffin", "C25H52", 0.9, "organic"),
    _m("graphite", "C", 2.2, "organic"),
    _m("protein", PROTEIN, 1.3, "organic"),
    _m("leather", {PROTEIN: 0.85, WATER: 0.12, "Cr2O3": 0.03}, 0.9, "organic"),
    _m("rubber_sole", {"C12H14": 0.55, "C": 0.25, "CaCO3": 0.10, "SiO2": 0.06, "ZnO": 0.02,
                       "S": 0.02}, 1.15, "organic"),
    _m("carbon_paper", {"C": 0.30, "C25H52": 0.30, CELLULOSE: 0.40}, 0.9, "organic"),
    _m("packing_tape", {"C3H6": 0.70, "C5H8O2": 0.30}, 0.95, "organic"),
    _m("cosmetic_cream", {WATER: 0.65, FAT: 0.20, "C3H8O3": 0.10, "TiO2": 0.03,
                          "ZnO": 0.02}, 1.0, "organic"),
    _m("shampoo", {WATER: 0.80, "C12H25NaO4S": 0.15, "NaCl": 0.05}, 1.03, "organic"),
    _m("lipstick", {"C25H52": 0.45, FAT: 0.45, "TiO2": 0.05, "Fe2O3": 0.05}, 1.1, "organic"),
    # Inorganics, fillers and minerals.
    _m("calcium_carbonate", "CaCO3", 2.7, "inorganic"),
    _m("kaolin", "Al2Si2H4O9", 2.6, "inorganic"),
    _m("talc", "Mg3Si4H2O12", 2.75, "inorganic"),
    _m("titanium_dioxide", "TiO2", 4.2, "inorganic"),
    _m("glass", SODA_LIME_GLASS, 2.5, "inorganic"),
    _m("ceramic", {"SiO2": 0.60, "Al2O3": 0.30, "K2O": 0.05, "Na2O": 0.02, "CaO": 0.02,
                   "Fe2O3": 0.01}, 2.4, "inorganic"),
    _m("silicon", "Si", 2.33, "inorganic"),
    _m("fr4", {**_glass(E_GLASS, 0.55), EPOXY: 0.40, "C15H12Br4O2": 0.05}, 1.85, "inorganic"),
    _m("ferrite", {"Fe2O3": 0.70, "MnO": 0.20, "ZnO": 0.10}, 4.8, "inorganic"),
    _m("li_ion_stack", {"LiCoO2": 0.35, "C": 0.20, "Cu": 0.15, "Al": 0.08, "LiPF6": 0.02,
                        "C3H4O3": 0.15, "C2H4": 0.05}, 2.6, "inorganic"),
    _m("alkaline_cell", {"MnO2": 0.42, "Zn": 0.26, "KOH": 0.07, WATER: 0.15, "C": 0.10},
       2.9, "inorganic"),
    # Metals.
    _m("aluminium", "Al", 2.70, "metal"),
    _m("steel", {"Fe": 0.99, "C": 0.01}, 7.85, "metal"),
    _m("iron", "Fe", 7.874, "metal"),
    _m("stainless", {"Fe": 0.72, "Cr": 0.18, "Ni": 0.10}, 7.9, "metal"),
    _m("copper", "Cu", 8.96, "metal"),
    _m("brass", {"Cu": 0.65, "Zn": 0.35}, 8.5, "metal"),
    _m("zinc", "Zn", 7.14, "metal"),
    # The scanner itself: tube anode, filters and scintillators.
    _m("tungsten", "W", 19.3, "detector"),
    _m("caesium_iodide", "CsI", 4.51, "detector"),
)

BY_NAME: dict[str, Material] = {m.name: m for m in MATERIALS}
if len(BY_NAME) != len(MATERIALS):
    raise RuntimeError("duplicate material names in training.sim.materials.MATERIALS")

#: Reference "materials" of a chosen effective atomic number, used to calibrate the
#: pseudo-colour class boundaries (organic/mixed at Zeff 10, mixed/metal at Zeff 18).
#: ``build_tables`` finds the mixing fraction of the two parts by bisection.
ZEFF_REFERENCES: dict[str, tuple[float, str, str]] = {
    "zeff10": (10.0, "H2O", "Al"),
    "zeff18": (18.0, "Al", "Fe"),
}


def material(name: str) -> Material:
    """The material called ``name``; `ValueError` naming the valid ones otherwise."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown material {name!r}; valid: {sorted(BY_NAME)}") from None
