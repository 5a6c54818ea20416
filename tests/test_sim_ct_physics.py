"""CT physics tier: the projector/FBP pair inverts, and simulated HU match physics.

Reference HU at 140 kVp (docs/ct.md, from the research notes): fentanyl base at 1.2 g/cm3 is
113-124 HU, sucrose at 1.2 g/cm3 is 128-133 HU, fentanyl HCl is 212-216 HU, water is 0 and air
is -1000. Dual energy separates fentanyl base (lower at 80 kVp) from sugar (about the same).
"""

from __future__ import annotations

import numpy as np
import pytest

from training.sim_ct.radon import Geometry, fbp, project
from training.sim_ct.scanner import CtScanner, material_densities, mu_table, reconstruct

MATERIALS = ["cellulose", "fentanyl_base", "sucrose", "fentanyl_hcl", "water", "steel"]


def test_fbp_inverts_projection():
    geom = Geometry(64, 96)
    yy, xx = np.mgrid[0:64, 0:64]
    image = ((xx - 32) ** 2 + (yy - 32) ** 2 < 20**2).astype(np.float32) * 0.5
    image[25:30, 35:45] = 2.0
    back = fbp(project(image[:, :, None], geom), geom)[:, :, 0]
    assert np.abs(back - image)[8:56, 8:56].mean() < 0.04  # edges ring a little
    assert abs(back[32, 20:28].mean() - 0.5) < 0.02 and abs(back[26:29, 37:43].mean() - 2.0) < 0.1


@pytest.mark.parametrize("bad", [dict(size=4, angles=10), dict(size=16, angles=2)])
def test_geometry_is_validated(bad):
    with pytest.raises(ValueError, match=">= 8"):
        Geometry(**bad)


def phantom(steel=False, f=2, n=64):
    labels = np.zeros((3 * f, n * f, n * f), np.uint8)
    labels[:, 10:118, 8:120] = 1  # paper 0.3 filling the box
    labels[:, 20:50, 20:50] = 2
    labels[:, 20:50, 78:108] = 3
    labels[:, 70:100, 20:50] = 4
    labels[:, 70:100, 78:108] = 5
    if steel:
        labels[:, 58:62, 40:90] = 6
    table = [(0, 0.0), (0, 0.3), (1, 1.2), (2, 1.2), (3, 1.2), (4, 1.0), (5, 7.9)]
    return material_densities(labels, table, len(MATERIALS), f)


def roi(hu, y0, y1, x0, x1):
    return float(hu[1, y0 // 2 + 2: y1 // 2 - 2, x0 // 2 + 2: x1 // 2 - 2].mean())


def test_simulated_hu_match_physics_and_metal_streaks():
    hu = {}
    for kvp in (140.0, 80.0):
        scanner = CtScanner(kvp=kvp, size=64, angles=96, voxel_mm=8.0)
        hu[kvp] = reconstruct(phantom(), mu_table(scanner, MATERIALS), scanner,
                              np.random.default_rng(0))
    h = hu[140.0]
    assert abs(float(h[1, :4, :4].mean()) + 1000) < 30  # air
    assert abs(roi(h, 70, 100, 78, 108)) < 25  # water
    assert 95 < roi(h, 20, 50, 20, 50) < 145  # fentanyl base
    assert 105 < roi(h, 20, 50, 78, 108) < 160  # sucrose
    assert 190 < roi(h, 70, 100, 20, 50) < 250  # fentanyl HCl
    low = hu[80.0]
    assert roi(low, 20, 50, 20, 50) < roi(h, 20, 50, 20, 50) - 20  # base drops at 80 kVp
    scanner = CtScanner(size=64, angles=96, voxel_mm=8.0)
    metal = reconstruct(phantom(steel=True), mu_table(scanner, MATERIALS), scanner,
                        np.random.default_rng(0))
    clean = h[1, 5:60, 5:60].std()
    assert metal[1, 5:27, 5:60].std() > clean  # streaks raise the variation around the bar
