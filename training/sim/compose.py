"""Compose one parcel scene: parcel, concealment, goods, look-alikes, void fill, belt position.

Order matters: strategies that rebuild the carton (false bottom, double wall) run first; then
the hosts of host strategies are packed and the packets hidden (in hosts, or loose); then the
benign shop goods (decoys), which are bulky; then the other goods fill what is left. A
strategy that finds no room is replaced by another drawn from the config, then by a loose
placement; a parcel where nothing fits ends up negative (its label says so).
"""

from __future__ import annotations

import math

import numpy as np

from training.sim import concealment, objects, parcels
from training.sim.config import SceneConfig
from training.sim.parts import choice, uniform
from training.sim.scene import Scene


def _pack_hosts(ctx: concealment.Context, wanted: list[str]) -> None:
    """A host object (book, can, shoe...) for every host strategy."""
    for strategy in wanted:
        if strategy in objects.HOSTS:
            kind = choice(ctx.rng, list(objects.HOSTS[strategy]))
            item = objects.build(kind, ctx.rng, ctx.packer.free_space())
            placed = None if item is None else ctx.packer.place(item)
            if placed is not None:
                ctx.items.append(placed)


def _pack_goods(ctx: concealment.Context, cfg: SceneConfig) -> None:
    rng = ctx.rng
    target = int(rng.integers(cfg.items[0], cfg.items[1] + 1))
    placed_count = 0
    for _ in range(3 * target):  # a full parcel refuses some objects; try others instead
        if placed_count >= target:
            break
        item = objects.build(choice(rng, cfg.objects), rng, ctx.packer.free_space())
        placed = None if item is None else ctx.packer.place(item, tries=20)
        if placed is not None:
            ctx.items.append(placed)
            placed_count += 1


def _conceal(ctx: concealment.Context, wanted: list[str], done: list[bool]) -> None:
    """Run the wanted strategies; where one finds no place, draw another (keeping the
    configured mix), and in the end just pack the packet loose among the goods."""
    for i, strategy in enumerate(wanted):
        if done[i]:
            continue
        redraws = [choice(ctx.rng, ctx.cfg.strategies) for _ in range(3)]
        for attempt in (strategy, *redraws, "loose"):
            if attempt not in concealment.PARCEL_STRATEGIES and concealment.apply(ctx, attempt):
                break


def _belt_position(rng, parcel: parcels.Parcel, pixel_mm: float, scanner) -> dict:
    """Where the parcel lies on the belt and which part of the scan the image keeps."""
    angle = uniform(rng, -10, 10) if rng.random() < 0.8 else uniform(rng, -25, 25)
    c, s = abs(math.cos(math.radians(angle))), abs(math.sin(math.radians(angle)))
    length, width = parcel.outer[0], parcel.outer[1]
    span_x, span_y = c * length + s * width, s * length + c * width
    fov_y = scanner.channels * pixel_mm
    if span_y > fov_y * 0.98 or span_x > scanner.length_px[1] * pixel_mm * 0.98:
        angle, span_x, span_y = 0.0, length, width
    margins = [int(rng.integers(scanner.margin_px[0], scanner.margin_px[1] + 1))
               for _ in range(4)]
    width_px = int(np.clip(math.ceil(span_x / pixel_mm) + margins[0] + margins[1],
                           *scanner.length_px))
    x = span_x / 2 + uniform(rng, 0.0, max(width_px * pixel_mm - span_x, 0.0))
    y = uniform(rng, span_y / 2 + 2, max(fov_y - span_y / 2 - 2, span_y / 2 + 2))
    row0, height_px = 0, scanner.channels
    if scanner.fit_height:
        row0 = max(0, int(math.floor((y - span_y / 2) / pixel_mm)) - margins[2])
        row1 = min(scanner.channels, int(math.ceil((y + span_y / 2) / pixel_mm)) + margins[3])
        height_px = row1 - row0
    return {"x": x, "y": y - row0 * pixel_mm, "angle": angle, "size_hw": (height_px, width_px),
            "focus_y_mm": fov_y / 2 - row0 * pixel_mm}


def compose(rng: np.random.Generator, cfg: SceneConfig, scanner, pixel_mm: float,
            source_distance_mm: float) -> Scene:
    """A random parcel scene on the belt; positive with probability ``cfg.positive_fraction``.

    ``scanner`` is the `training.sim.config.ScannerConfig` (channels, lengths, margins).
    """
    max_xy = ((scanner.length_px[1] - 2 * scanner.margin_px[0]) * pixel_mm * 0.95,
              scanner.channels * pixel_mm * 0.9)
    parcel = parcels.BUILDERS[choice(rng, cfg.parcels)](rng, max_xy)
    ctx = concealment.Context(rng, cfg, parcel)
    positive = rng.random() < cfg.positive_fraction
    count = int(rng.integers(cfg.packets_per_positive[0], cfg.packets_per_positive[1] + 1))
    wanted = [choice(rng, cfg.strategies) for _ in range(count)] if positive else []
    done = [s in concealment.PARCEL_STRATEGIES and concealment.apply(ctx, s) for s in wanted]
    ctx.packer = parcels.Packer(parcel, rng)
    _pack_hosts(ctx, wanted)
    _conceal(ctx, wanted, done)
    if rng.random() < cfg.decoy_probability:  # shop goods before the rest: they are bulky
        for _ in range(int(rng.integers(cfg.decoys[0], cfg.decoys[1] + 1))):
            concealment.place_decoy(ctx)
    _pack_goods(ctx, cfg)
    local = (parcel.primitives + [p for item in ctx.items for p in item.primitives]
             + ctx.extra + parcels.filler(rng, parcel, ctx.packer))
    at = _belt_position(rng, parcel, pixel_mm, scanner)
    items = [{"kind": it.kind, "primitives": len(it.primitives)} for it in ctx.items]
    parcel.record.update({"center_mm": [at["x"], at["y"]], "angle_deg": at["angle"]})
    return Scene(size_hw=at["size_hw"], pixel_mm=pixel_mm, source_distance_mm=source_distance_mm,
                 primitives=parcel.to_world(local, at["x"], at["y"], at["angle"]),
                 parcel=parcel.record, items=items, packets=ctx.packets, decoys=ctx.decoys,
                 focus_y_mm=at["focus_y_mm"])
