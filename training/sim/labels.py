"""Labels from the rendered groups: boxes of the projected footprints and a CNR difficulty.

The box of a packet encloses every pixel where the path through its contents exceeds 5 % of
its maximum (physics.md section 6), so a packet's thin rim is not counted. Its difficulty is
the contrast-to-noise ratio of the high-energy attenuation the packet adds (with the cavity
it displaced taken out again) against the quantum and electronic noise of those pixels: the
per-pixel "sigma" of physics.md table C. Hidden under metal it tends to zero.
"""

from __future__ import annotations

import numpy as np

from training.sim import sensor
from training.sim.forward import ScannerPhysics, render_lut
from training.sim.geometry import GroupRaster

FOOTPRINT_FRACTION = 0.05
OPAQUE_ATT = float(np.log(100.0))  # 1 % transmission: the scanner shows black


def measure(group: GroupRaster, basis: np.ndarray, att: np.ndarray, physics: ScannerPhysics,
            pixel_mm: float, settings: sensor.SensorSettings) -> dict | None:
    """Box, area and difficulty of one group; None if it lies outside the image."""
    content = group.content_mm
    if content.size == 0 or float(content.max()) <= 0:
        return None
    mask = content > FOOTPRINT_FRACTION * float(content.max())
    rows, cols = np.nonzero(mask)
    r0, r1, c0, c1 = group.box_rc
    crop = (slice(r0, r1), slice(c0, c1))
    without = render_lut(basis[(slice(None),) + crop] - group.delta_basis, physics)
    with_packet = att[(slice(None),) + crop]
    delta = (with_packet[0] - without[0])[mask]
    sigma = sensor.attenuation_sigma(with_packet[:, mask], physics, pixel_mm, settings)[0]
    cnr = float(abs(delta.mean()) / np.sqrt(np.mean(sigma**2)))
    delta_ratio = float(np.mean(with_packet[1][mask] / np.maximum(with_packet[0][mask], 1e-3))
                        - np.mean(without[1][mask] / np.maximum(without[0][mask], 1e-3)))
    x0, y0 = int(cols.min()) + c0, int(rows.min()) + r0
    w, h = int(cols.max()) + c0 - x0 + 1, int(rows.max()) + r0 - y0 + 1
    return {"bbox": [x0, y0, w, h], "area": int(mask.sum()),
            "difficulty": round(cnr, 3), "cnr_region": round(cnr * float(np.sqrt(mask.sum())), 2),
            "delta_att_high": round(float(delta.mean()), 4),
            "delta_ratio": round(delta_ratio, 4),
            "metal_shadow": round(float(np.mean(with_packet[0][mask] > OPAQUE_ATT)), 3)}


def annotations(scene_packets: list[dict], groups: dict[str, GroupRaster], basis: np.ndarray,
                att: np.ndarray, physics: ScannerPhysics, pixel_mm: float,
                settings: sensor.SensorSettings) -> list[dict]:
    """One label dict per packet that shows in the image (COCO fields plus our extras)."""
    out = []
    for packet in scene_packets:
        group = groups.get(packet["group"])
        found = None if group is None else measure(group, basis, att, physics, pixel_mm,
                                                   settings)
        packet["visible"] = found is not None
        if found is None:
            continue
        out.append({**found, "iscrowd": 0, "host": packet["host"],
                    "material": packet["material"], "mass_g": packet["mass_g"],
                    "strategy": packet["strategy"], "form": packet["form"],
                    "wrap": packet["wrap"], "purity": packet["purity"], "cut": packet["cut"],
                    "group": packet["group"]})
    return out


# Benign objects of the scene worth teaching as negatives: solids of low or middle density
# (organics, glass, light metal, cells; not the dense metal parts) whose footprint and mass
# thickness make a block a detector could take for a packet. Bags, clothes and sheets
# (footprint > MAX, or thin) and tiny parts are left out.
BENIGN_DENSITY = (0.3, 3.0)  # g/cm3
BENIGN_FOOTPRINT_MM = (15.0, 300.0)  # shorter and longer side
BENIGN_MASS_G_CM2 = 0.3  # thickness x density, at the thickest


def is_benign_block(prim) -> bool:
    """Whether a scene primitive is a benign solid that looks like a block (BENIGN_*): no
    packet's part, packet-like density, footprint and mass. The 2-D and CT labels share it."""
    a, b, thick = prim.size
    short, long = sorted((a, b))
    return (not prim.group and BENIGN_DENSITY[0] <= prim.density <= BENIGN_DENSITY[1]
            and short >= BENIGN_FOOTPRINT_MM[0] and long <= BENIGN_FOOTPRINT_MM[1]
            and thick * prim.density / 10.0 >= BENIGN_MASS_G_CM2)


def benign_objects(scene, avoid_xywh: list[list[float]], margin_px: int = 2) -> list[dict]:
    """Boxes of the scene's ungrouped solids that look like a block (see BENIGN_*), except those
    that touch a box of ``avoid_xywh`` (the packets: a book with a packet inside is not a
    negative). One dict per solid: COCO ``bbox`` (xywh, pixels), material, density."""
    from training.sim.geometry import Projector

    proj = Projector(scene)
    avoid = [(x - margin_px, y - margin_px, x + w + margin_px, y + h + margin_px)
             for x, y, w, h in avoid_xywh]
    out, seen = [], set()
    for prim in scene.primitives:
        if not is_benign_block(prim):
            continue
        box = proj.pixel_box(prim)
        if box is None:
            continue
        r0, r1, c0, c1 = box
        if (c0, r0, c1, r1) in seen or any(c0 < x1 and x0 < c1 and r0 < y1 and y0 < r1
                                           for x0, y0, x1, y1 in avoid):
            continue
        seen.add((c0, r0, c1, r1))
        out.append({"bbox": [c0, r0, c1 - c0, r1 - r0], **benign_fields(prim)})
    return out


def benign_fields(prim) -> dict:
    """What a ``benign_object`` entry says of its solid besides the box: material, density."""
    material = prim.material if isinstance(prim.material, str) else dict(prim.material)
    return {"material": material, "density": round(float(prim.density), 3)}
