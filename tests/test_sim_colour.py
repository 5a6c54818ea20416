"""detector/render.py: the pseudo-colour and gray views the simulator writes and operators see."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest

from detector import render
from detector.scan import transmission_to_attenuation
from training.sim import forward, spectrum


@pytest.fixture(scope="module")
def physics():
    return forward.scanner_physics(160.0, 2.0, spectrum.DetectorModel())


def _slab(physics, name, mass_g_cm2, size=9):
    att = forward.render_spectral({name: np.array([[mass_g_cm2]])}, physics)[:, 0, 0]
    return (np.full((size, size), att[0], np.float32), np.full((size, size), att[1], np.float32))


@pytest.mark.parametrize("preset", sorted(render.PRESETS))
@pytest.mark.parametrize("name,mass,expect", [
    ("cellulose", 4.0, "orange"), ("fentanyl_hcl", 3.0, "orange"), ("sucrose", 6.0, "orange"),
    ("aluminium", 2.7, "green"), ("glass", 2.5, "green"),
    ("steel", 2.4, "blue"), ("copper", 1.8, "blue"), ("steel", 40.0, "black")])
def test_material_classes_get_the_conventional_colours(physics, preset, name, mass, expect):
    high, low = _slab(physics, name, mass)
    r, g, b = (int(c) for c in render.pseudo_colour(high, low, render.PRESETS[preset])[4, 4])
    if expect == "orange":
        assert r > g > b and r - b > 40
    elif expect == "green":
        assert g > r and g > b
    elif expect == "blue":
        assert b > r and b > g
    else:
        assert max(r, g, b) < 40


def test_air_is_white_and_thicker_is_darker(physics):
    zeros = np.zeros((5, 5), np.float32)
    assert render.pseudo_colour(zeros, zeros).min() >= 250
    thin, thick = _slab(physics, "water", 2.0), _slab(physics, "water", 12.0)
    assert render.pseudo_colour(*thin).sum() > render.pseudo_colour(*thick).sum()


def test_output_layout():
    high = np.random.default_rng(0).random((7, 11)).astype(np.float32)
    rgb = render.pseudo_colour(high, high * 1.3)
    assert rgb.shape == (7, 11, 3) and rgb.dtype == np.uint8
    gray = render.gray_view(high.astype(np.float64))
    assert gray.shape == (7, 11) and gray.dtype == np.uint8


def test_gray_view_reads_back_as_the_same_attenuation():
    att = np.linspace(0, 4, 200, dtype=np.float32).reshape(10, 20)
    back = transmission_to_attenuation(render.gray_view(att), 8)
    counts = 255 * np.exp(-att)
    # Rounding counts c by up to half a count moves attenuation by at most -ln(1 - 0.5 / c).
    assert np.all(np.abs(back - att) <= -np.log(1 - 0.5 / counts) + 1e-4)


@pytest.mark.parametrize("bad,error", [
    (np.zeros((4, 4), np.uint16), ValueError), (np.full((4, 4), np.nan, np.float32), ValueError),
    (np.zeros((4, 4, 2), np.float32), ValueError), (np.zeros((0, 4), np.float32), ValueError),
    ([[0.0]], TypeError)])
def test_bad_attenuation_is_refused(bad, error):
    ok = np.zeros((4, 4), np.float32)
    with pytest.raises(error):
        render.pseudo_colour(bad, ok)
    with pytest.raises(error):
        render.gray_view(bad)


def test_mismatched_shapes_and_bad_palettes_are_refused():
    with pytest.raises(ValueError, match="differ in shape"):
        render.pseudo_colour(np.zeros((4, 4), np.float32), np.zeros((4, 5), np.float32))
    with pytest.raises(ValueError, match="unknown palette 'nope'"):
        render.palette("nope")
    with pytest.raises(ValueError, match="equal"):
        dataclasses.replace(render.PRESETS["classic"], mixed_metal_ratio=(1.0, 2.0))
    with pytest.raises(ValueError, match="0..255"):
        render.Palette("x", organic_rgb=(300, 0, 0))
    with pytest.raises(ValueError, match="contrast"):
        render.gray_view(np.zeros((2, 2), np.float32), contrast=0)


def test_default_boundaries_are_the_simulators_zeff_curves(physics):
    """The numbers in detector/render.py are forward.ratio_curve for the default scanner."""
    pal = render.PRESETS["classic"]
    for ref, curve in (("zeff10", pal.organic_mixed_ratio), ("zeff18", pal.mixed_metal_ratio)):
        np.testing.assert_allclose(forward.ratio_curve(ref, physics, pal.boundary_att), curve,
                                   atol=2e-3, err_msg=ref)


def test_render_needs_neither_torch_nor_xraydb_nor_training():
    code = ("import sys; sys.modules['torch'] = None; sys.modules['xraydb'] = None\n"
            "sys.modules['training'] = None\n"
            "import numpy as np; from detector.render import pseudo_colour, gray_view\n"
            "a = np.ones((8, 8), np.float32)\n"
            "print(pseudo_colour(a, a * 1.4).shape, gray_view(a).shape)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "(8, 8, 3) (8, 8)" in out.stdout
