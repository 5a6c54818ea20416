"""Simulator configs: the shipped YAML files, and clear errors for bad ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from detector.cli import main
from training.sim.config import ConfigError, SynthConfig, from_dict, load_config


@pytest.mark.parametrize("path", sorted(Path("configs/synth").glob("*.yaml")))
def test_shipped_configs_load(path):
    assert isinstance(load_config(path), SynthConfig)


def test_default_yaml_spells_out_the_built_in_defaults():
    assert load_config("configs/synth/default.yaml").digest() == SynthConfig().digest()


@pytest.mark.parametrize("data,message", [
    ({"scaner": {}}, "unknown key 'scaner'; valid keys at the top level: ['colour', "),
    ({"scanner": {"kvps": [150]}}, "unknown key 'scanner.kvps'; valid keys in scanner: "),
    ({"scene": {"objects": {"banana": 1}}}, "scene.objects: unknown name 'banana'; valid: "),
    ({"scene": {"strategies": {"in_can": 0}}}, "weights must not all be zero"),
    ({"scanner": {"kvp": [145]}}, "scanner.kvp: 145.0 has no shipped spectrum"),
    ({"scanner": {"kvp": 150}}, "scanner.kvp: expected a non-empty list of numbers"),
    ({"scanner": {"pixel_mm": [1.2, 0.7]}}, "scanner.pixel_mm: expected 0.0 < low <= high"),
    ({"scanner": {"channels": 10}}, "scanner.channels: expected an integer in 32..4096"),
    ({"scanner": {"fit_height": "yes"}}, "scanner.fit_height: expected true or false"),
    ({"sensor": {"dose_ugy": [0, 5]}}, "sensor.dose_ugy"),
    ({"scene": {"positive_fraction": 1.5}}, "scene.positive_fraction: expected a number in [0, 1]"),
    ({"scene": {"packet_mass_g": "heavy"}}, "scene.packet_mass_g: expected [low, high]"),
    ({"scene": {"min_packet_mass_g": 50}}, "scene.min_packet_mass_g"),
    ({"colour": {"palettes": {"rainbow": 1}}}, "colour.palettes: unknown name 'rainbow'"),
    ({"png_compression": 11}, "png_compression: expected an integer 0..9"),
    ({"scanner": []}, "scanner: expected a mapping"),
    ({"scanner": {"pixel_mm": [float("nan"), 1.0]}}, "scanner.pixel_mm: expected [low, high] "
                                                      "finite numbers"),
    ({"sensor": {"dose_ugy": [1.0, float("inf")]}}, "sensor.dose_ugy: expected [low, high] "
                                                     "finite numbers"),
    ({"scene": {"objects": {"book": float("inf")}}}, "scene.objects.book: expected a finite"),
    ({"scene": {"objects": {"book": float("nan")}}}, "scene.objects.book: expected a finite"),
    ({"scanner": {"pixel_mm": [0.01, 0.01]}}, "scanner.pixel_mm: the field of view"),
    ({"scanner": {"front_csi_mm": "abc"}}, "scanner.front_csi_mm: expected a number > 0"),
    ({"scene": {"min_packet_mass_g": "a lot"}}, "scene.min_packet_mass_g: expected a number"),
    ({"scene": {"items": [3.5, 14]}}, "scene.items: expected [low, high] integers"),
    ({"scene": {"packets_per_positive": [1.5, 2.5]}}, "scene.packets_per_positive: expected "
                                                       "[low, high] integers"),
    ({"scene": {"decoys": [0.5, 2.5]}}, "scene.decoys: expected [low, high] integers"),
    ({"scanner": {"length_px": [300.5, 400.5]}}, "scanner.length_px: expected [low, high] int"),
    ({"scanner": {"margin_px": [8.5, 20.5]}}, "scanner.margin_px: expected [low, high] integers"),
    ({"scanner": {"channels": 384.0}}, "scanner.channels: expected an integer"),
    ({"scene": {"packets_per_positive": [0, 0]}}, "scene.packets_per_positive: expected 1 <= low"),
    ({"ct": {"kvp": [140]}}, "(a ct: section is read with --kinds ct)"),
])
def test_bad_configs_name_the_key(data, message):
    with pytest.raises(ConfigError) as info:
        from_dict(data)
    assert message in str(info.value)


def test_bad_yaml_file_is_a_usage_error_naming_the_file(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("scene:\n  itemz: [1, 2]\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: unknown key 'scene\.itemz'"):
        load_config(bad)
    assert main(["synth", "--out", str(tmp_path / "out"), "--count", "1",
                 "--config", str(bad)]) == 64
    assert "itemz" in capsys.readouterr().err
    broken = tmp_path / "broken.yaml"
    broken.write_text("scene: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken)


def test_numbers_written_as_text_are_numbers():
    """YAML 1.1 reads 2e-4 as the string '2e-4' (no dot); training recipes take it as a number,
    and so do synth configs, with the digest of the same values written otherwise."""
    config = from_dict({"sensor": {"electronic_noise": ["2e-4", "1e-3"]},
                        "scene": {"min_packet_mass_g": "2"}})
    assert config.digest() == SynthConfig().digest()
