"""One simulated scan from (config, seed, index), and its exact replay from the scene record.

`generate` draws everything random up front into a plain-JSON scene record (scanner, sensor,
palette, scene); `render_record` turns a record into images and labels with no randomness of
its own beyond the sensor seed the record carries. So a record replays a scan bit for bit, and
can be re-rendered with other sensor settings or palettes without re-sampling the scene.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from detector.render import PRESETS, Palette, gray_view, pseudo_colour
from detector.scan import transmission_to_attenuation
from training.sim import compose, geometry, labels, sensor
from training.sim.config import SynthConfig
from training.sim.forward import render_lut, scanner_physics
from training.sim.parts import choice, uniform
from training.sim.spectrum import DetectorModel

RECORD_FORMAT = 1


@dataclass
class SimResult:
    """A rendered scan: what the writer saves and the stream hands to training."""

    name: str
    counts: np.ndarray  # (2, H, W) uint16, (high, low), 65535 = air
    measured: np.ndarray  # (2, H, W) float32 transmission before 16-bit rounding and clipping
    color: np.ndarray  # (H, W, 3) uint8 RGB
    gray: np.ndarray  # (H, W) uint8 single-energy view
    annotations: list[dict]  # concealed packets (category concealed_organic)
    benign: list[dict]  # look-alike blocks: boxes of the hard negatives
    record: dict  # the scene record that replays this scan
    objects: list[dict] = dataclasses.field(default_factory=list)  # other benign solids

    @property
    def size_hw(self) -> tuple[int, int]:
        return int(self.counts.shape[1]), int(self.counts.shape[2])

    def image_entry(self) -> dict:
        """The COCO ``images`` entry (without ``id``), with our extra fields."""
        h, w = self.size_hw
        scene = self.record["scene"]
        return {"file_name": f"{self.name}_high.png", "width": w, "height": h,
                "scan_id": self.name,
                "files": {"dual": [f"{self.name}_high.png", f"{self.name}_low.png"],
                          "gray": f"{self.name}_gray.png", "color": f"{self.name}_color.png"},
                "positive": bool(self.annotations),
                "host_kinds": sorted({a["host"] for a in self.annotations}),
                "pixel_mm": scene["pixel_mm"], "parcel": scene["parcel"]["kind"],
                "palette": self.record["palette"]["name"],
                "benign_packet": self.benign, "benign_object": self.objects}


def _jittered_palette(rng: np.random.Generator, base: Palette, jitter: float) -> Palette:
    def hue(rgb):
        return tuple(int(np.clip(c * (1 + uniform(rng, -jitter, jitter)), 0, 255)) for c in rgb)

    scale10, scale18 = 1 + uniform(rng, -jitter, jitter) / 3, 1 + uniform(rng, -jitter, jitter) / 3
    return dataclasses.replace(
        base, organic_rgb=hue(base.organic_rgb), mixed_rgb=hue(base.mixed_rgb),
        metal_rgb=hue(base.metal_rgb),
        organic_mixed_ratio=tuple(r * scale10 for r in base.organic_mixed_ratio),
        mixed_metal_ratio=tuple(r * scale18 for r in base.mixed_metal_ratio),
        gamma=base.gamma * (1 + uniform(rng, -jitter, jitter)))


def draw_record(config: SynthConfig, seed: int, index: int, name: str) -> dict:
    """Every random choice of scan ``index`` of data set ``seed``, as a JSON-able record."""
    root = np.random.SeedSequence(seed, spawn_key=(index,))
    scene_seq, sensor_seq = root.spawn(2)
    rng = np.random.default_rng(scene_seq)
    sc, se = config.scanner, config.sensor
    scanner = {"kvp": float(choice(rng, list(sc.kvp))),
               "filter_al_mm": float(choice(rng, list(sc.filter_al_mm))),
               "detector": {"front_csi_mm": sc.front_csi_mm, "filter_cu_mm": sc.filter_cu_mm,
                            "rear_csi_mm": sc.rear_csi_mm},
               "pixel_mm": uniform(rng, *sc.pixel_mm),
               "source_distance_mm": uniform(rng, *sc.source_distance_mm)}
    settings = {
        "dose_ugy": float(np.exp(uniform(rng, *np.log(se.dose_ugy)))),
        "electronic_noise": uniform(rng, *se.electronic_noise),
        "blur_across_px": uniform(rng, *se.blur_across_px),
        "blur_along_px": uniform(rng, *se.blur_along_px),
        "channel_gain_std": uniform(rng, *se.channel_gain_std),
        "line_gain_std": uniform(rng, *se.line_gain_std),
        "seed": int(sensor_seq.generate_state(1)[0])}
    palette = _jittered_palette(rng, PRESETS[choice(rng, config.colour.palettes)],
                                config.colour.jitter)
    scene = compose.compose(rng, config.scene, sc, scanner["pixel_mm"],
                            scanner["source_distance_mm"])
    return {"format": RECORD_FORMAT, "name": name, "seed": int(seed), "index": int(index),
            "png_compression": config.png_compression, "scanner": scanner, "sensor": settings,
            "palette": dataclasses.asdict(palette), "scene": scene.to_json()}


def render_record(record: dict) -> SimResult:
    """Images and labels of a scene record (deterministic: same record, same bytes)."""
    from training.sim.scene import Scene

    if record.get("format") != RECORD_FORMAT:
        raise ValueError(f"scene record format: expected {RECORD_FORMAT}, got "
                         f"{record.get('format')!r}")
    scanner = record["scanner"]
    physics = scanner_physics(scanner["kvp"], scanner["filter_al_mm"],
                              DetectorModel(**scanner["detector"]))
    settings = sensor.SensorSettings(**record["sensor"])
    palette = Palette(**{k: tuple(v) if isinstance(v, list) else v
                         for k, v in record["palette"].items()})
    scene = Scene.from_json(record["scene"])
    raster = geometry.rasterise(scene)
    ideal = render_lut(raster.basis, physics)
    measured, counts = sensor.expose(ideal, physics, scene.pixel_mm, settings)
    att = transmission_to_attenuation(counts, 16)  # exactly what read_scan will return
    color = pseudo_colour(att[0], att[1], palette)
    gray = gray_view(_single_energy(measured, physics))
    packets = [dict(p) for p in scene.packets]
    decoys = [dict(d) for d in scene.decoys]
    args = (raster.groups, raster.basis, ideal, physics, scene.pixel_mm, settings)
    found = labels.annotations(packets, *args)
    benign = labels.annotations(decoys, *args)
    objects = labels.benign_objects(scene, [a["bbox"] for a in found])
    return SimResult(record["name"], counts, measured, color, gray, found, benign, record,
                     objects)


def _single_energy(measured: np.ndarray, physics) -> np.ndarray:
    """Attenuation a single-layer detector would report: both layers' signals summed."""
    # Signal in air = absorbed photons x their mean energy (weights are energy-weighted).
    mean_e = 1.0 / (physics.weights / physics.energies_kev).sum(axis=1)
    signal = physics.photons_per_ugy_mm2 * mean_e
    w = (signal / signal.sum()).astype(np.float32)
    t = np.clip(w[0] * measured[0] + w[1] * measured[1], 1.0 / 65535, 1.0)
    return -np.log(t)


def generate(config: SynthConfig, seed: int, index: int, name: str | None = None) -> SimResult:
    """Scan ``index`` of the data set with ``seed``: the same arguments give the same bytes."""
    record = draw_record(config, seed, index, name or f"synth_{index:06d}")
    return render_record(record)
