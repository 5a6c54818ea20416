"""Simulated scenes: the object library, every concealment strategy, cavities, label boxes,
and exact replay from the scene record."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from training.sim import compose, concealment, geometry, objects
from training.sim.config import SynthConfig, load_config
from training.sim.forward import render_lut, scanner_physics
from training.sim.generate import draw_record, render_record
from training.sim.scene import Primitive, Scene
from training.sim.spectrum import DetectorModel

SMALL = load_config("configs/synth/small.yaml")


def _scene_with(prims: list[Primitive], size_hw=(300, 400), pixel_mm=2.0) -> Scene:
    return Scene(size_hw=size_hw, pixel_mm=pixel_mm, source_distance_mm=700.0,
                 primitives=prims, parcel={}, items=[], packets=[], decoys=[],
                 focus_y_mm=size_hw[0] * pixel_mm / 2)


def test_library_has_at_least_fifteen_kinds():
    assert len(objects.BUILDERS) >= 15


def _extent(prim: Primitive) -> tuple[float, float, float, float]:
    """Half extents along x and y (turned), and the bottom and top heights."""
    c, s = abs(math.cos(math.radians(prim.angle))), abs(math.sin(math.radians(prim.angle)))
    a, b = prim.size[0] / 2, prim.size[1] / 2
    return (abs(prim.center[0]) + c * a + s * b, abs(prim.center[1]) + s * a + c * b,
            prim.center[2] - prim.size[2] / 2, prim.center[2] + prim.size[2] / 2)


@pytest.mark.parametrize("kind", sorted(objects.BUILDERS))
@pytest.mark.parametrize("seed", range(12))
def test_objects_stay_inside_their_footprint(kind, seed):
    """The packer reserves footprint x height; nothing may stick out of it (or the parcel)."""
    item = objects.build(kind, np.random.default_rng(seed), (700.0, 700.0, 400.0))
    if item is None:
        return
    for prim in item.primitives:
        hx, hy, bottom, top = _extent(prim)
        assert hx <= item.footprint[0] / 2 + 1.0 and hy <= item.footprint[1] / 2 + 1.0, prim
        assert bottom >= -1e-6 and top <= item.height + 1.0, prim


@pytest.mark.parametrize("kind", sorted(objects.BUILDERS))
def test_every_object_builds_and_rasterises(kind):
    rng = np.random.default_rng(1)
    item = next(it for it in (objects.build(kind, rng, (600.0, 600.0, 400.0)) for _ in range(20))
                if it is not None)
    placed = item.placed(400.0, 300.0, 0.0, 30.0)
    raster = geometry.rasterise(_scene_with(placed.primitives))
    assert raster.basis.sum() > 0
    # Shells and cavities subtract material, but never more than is there.
    assert raster.basis[1:].min() >= -1e-4 and np.all(np.isfinite(raster.basis))


@pytest.mark.parametrize("strategy", sorted(concealment.STRATEGIES))
def test_every_strategy_can_hide_a_packet(strategy):
    cfg = dataclasses.replace(SMALL.scene, positive_fraction=1.0, packets_per_positive=(1, 1),
                              strategies={strategy: 1.0}, parcels={"carton": 1.0})
    for seed in range(40):
        scene = compose.compose(np.random.default_rng(seed), cfg, SynthConfig().scanner, 1.0,
                                700.0)
        if any(p["strategy"] == strategy for p in scene.packets):
            packet = next(p for p in scene.packets if p["strategy"] == strategy)
            assert 2.0 <= packet["mass_g"] <= 1000.0 and 0.5 <= packet["density"] <= 1.4
            return
    pytest.fail(f"{strategy} never succeeded in 40 parcels")


def _positive_records(count: int, config=SMALL):
    cfg = dataclasses.replace(config, scene=dataclasses.replace(
        config.scene, positive_fraction=1.0, decoy_probability=1.0))
    return [draw_record(cfg, 11, i, f"t{i}") for i in range(count)]


def _ideal_att(scene_json: dict) -> tuple[np.ndarray, np.ndarray]:
    scene = Scene.from_json(scene_json)
    raster = geometry.rasterise(scene)
    return raster.basis, render_lut(raster.basis, scanner_physics(160.0, 2.0, DetectorModel()))


def test_boxes_enclose_their_packets_and_decoys():
    """Take each packet out of the scene again: what it visibly changed lies inside its box.

    "Visibly" is the labels' own rule (physics.md section 6): more than 5 % of the packet's
    strongest effect. The thin rim of a pillow, and the corners of a turned one, fall below.
    """
    checked = 0
    for record in _positive_records(5):
        result = render_record(record)
        basis, att = _ideal_att(record["scene"])
        maps = geometry.material_maps(Scene.from_json(record["scene"]))
        for key, mass in maps.items():  # cavities never remove more host than there is
            assert mass.min() >= -2e-3, key
        for label in result.annotations + result.benign:
            scene = dict(record["scene"])
            scene["primitives"] = [p for p in scene["primitives"] if p["group"] != label["group"]]
            _, without = _ideal_att(scene)
            delta = np.abs(att[0] - without[0])
            changed = delta > max(1e-3, 0.05 * float(delta.max()))
            rows, cols = np.nonzero(changed)
            x, y, w, h = label["bbox"]
            assert rows.size > 0
            assert x - 2 <= cols.min() and cols.max() <= x + w + 1, label
            assert y - 2 <= rows.min() and rows.max() <= y + h + 1, label
            assert label["area"] <= w * h
            checked += 1
    assert checked >= 5


def test_labels_carry_the_reported_fields():
    record = _positive_records(1)[0]
    result = render_record(record)
    assert result.annotations
    for ann in result.annotations:
        assert {"bbox", "area", "iscrowd", "host", "material", "mass_g", "difficulty",
                "strategy"} <= set(ann)
        assert ann["difficulty"] >= 0 and ann["iscrowd"] == 0


def test_scene_record_replays_bit_for_bit():
    record = draw_record(SMALL, 5, 3, "replay")
    first = render_record(record)
    again = render_record(json.loads(json.dumps(record)))
    assert np.array_equal(first.counts, again.counts)
    assert np.array_equal(first.color, again.color) and np.array_equal(first.gray, again.gray)
    assert first.annotations == again.annotations


def test_cavity_displaces_host_material():
    """A packet of the host's own material and density, in a cavity, changes nothing."""
    book = Primitive("box", "cellulose", 0.9, center=(200.0, 300.0, 150.0),
                     size=(80.0, 40.0, 30.0))
    common = {"shape": "pillow", "material": "cellulose", "size": (40.0, 30.0, 10.0),
              "center": (200.0, 300.0, 150.0), "group": "packet:0"}
    same = [Primitive(density=0.9, role="content", **common),
            Primitive(density=-0.9, role="void", **common)]
    a = geometry.rasterise(_scene_with([book])).basis
    b = geometry.rasterise(_scene_with([book] + same)).basis
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_fan_beam_shrinks_high_objects_and_keeps_mass_at_the_centre():
    low = Primitive("box", "aluminium", 2.7, center=(400.0, 150.0, 2.5), size=(20.0, 20.0, 5.0))
    high = dataclasses.replace(low, center=(400.0, 150.0, 300.0))
    a = geometry.rasterise(_scene_with([low])).basis[1]
    b = geometry.rasterise(_scene_with([high])).basis[1]
    assert (b > 0.5 * b.max()).sum() < (a > 0.5 * a.max()).sum()
    assert b.sum() == pytest.approx(a.sum() * 700 / (700 + 300), rel=0.05)
