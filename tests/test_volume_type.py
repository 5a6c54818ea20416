"""The `Volume` type refuses every malformed array, size or voxel spacing with the bad value."""

from __future__ import annotations

import numpy as np
import pytest
from ct_data import phantom_hu

from detector.volume import Volume, check_voxel_mm, hu_scale_problem

GOOD = dict(id="v", hu=phantom_hu(), voxel_mm=(2.0, 1.0, 1.0), sources=("a.npy",))


def test_valid_volume_properties():
    vol = Volume(**GOOD)
    assert vol.kind == "ct" and vol.size_dhw == (12, 40, 48)
    assert vol.extent_mm == (24.0, 40.0, 48.0)
    assert isinstance(vol.voxel_mm, tuple) and vol.voxel_mm == (2.0, 1.0, 1.0)


@pytest.mark.parametrize("change, error, words", [
    ({"hu": [[[0.0]]]}, TypeError, "numpy array"),
    ({"hu": np.zeros((4, 4), np.float32)}, ValueError, "(D, H, W)"),
    ({"hu": np.zeros((4, 4, 4), np.float64)}, ValueError, "float32"),
    ({"hu": np.zeros((1, 4, 4), np.float32)}, ValueError, "at least 2"),
    ({"hu": np.full((3, 4, 4), np.nan, np.float32)}, ValueError, "NaN"),
    ({"hu": np.full((3, 4, 4), 1e6, np.float32)}, ValueError, "expected HU"),
    ({"voxel_mm": (1.0, 1.0)}, ValueError, "three numbers"),
    ({"voxel_mm": (1.0, 0.0, 1.0)}, ValueError, "[0.1, 100]"),
    ({"voxel_mm": (1.0, float("inf"), 1.0)}, ValueError, "[0.1, 100]"),
    ({"voxel_mm": "abc"}, ValueError, "three numbers"),
    ({"sources": ()}, ValueError, "at least one source"),
    ({"id": ""}, ValueError, "non-empty"),
])
def test_invalid_volume(change, error, words):
    with pytest.raises(error, match=None) as err:
        Volume(**{**GOOD, **change})
    assert words in str(err.value)


@pytest.mark.parametrize("value, ok", [
    ((1, 2, 3), True), ([0.5, 0.5, 0.5], True), ((0.1, 0.3, 100), True),
    ((1, 2, 3, 4), False), ((-1, 1, 1), False), (None, False),
    ((0.004, 0.004, 0.004), False),  # metres written for millimetres
    ((0.04, 4, 4), False), ((4, 4, 0.09), False), ((4, 4, 100.5), False),
])
def test_check_voxel_mm(value, ok):
    if ok:
        assert check_voxel_mm(value) == tuple(float(v) for v in value)
    else:
        with pytest.raises(ValueError, match="voxel_mm"):
            check_voxel_mm(value)


@pytest.mark.parametrize("scale, problem", [
    (None, None),
    ("mu", "look like HU"),  # attenuation per mm: water 0.02, air 0
    ("unit", "look like HU"),  # 0..1 normalised
    ("flat", "uniform"),
])
def test_hu_scale_problem(scale, problem):
    hu = phantom_hu()
    if scale == "mu":
        hu = (hu + 1000.0) / 1000.0 * 0.02
    elif scale == "unit":
        hu = (hu - hu.min()) / (hu.max() - hu.min())
    elif scale == "flat":
        hu = np.full_like(hu, -1000.0)
        hu[0, 0, 0] = -999.0
    found = hu_scale_problem(hu)
    assert (found is None) if problem is None else (problem in found)
