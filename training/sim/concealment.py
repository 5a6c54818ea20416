"""Concealment strategies: each edits the 3-D scene (never the image) to hide one packet.

Host strategies use a slot of a packed object (hollowed book, emptied battery bay, can
contents, shoe heel, folded clothes, cream jar); parcel strategies rebuild the carton (false
bottom, double wall) and run before packing; loose strategies place the packet among goods of
similar density or under metal. A strategy returns False when this parcel offers no place
for it, and the composer then tries another.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from training.sim import objects
from training.sim.packets import Packet, drug_packet, retail_good
from training.sim.parcels import Packer, Parcel
from training.sim.parts import choice, solid, uniform
from training.sim.scene import Item, Primitive

PARCEL_STRATEGIES = ("false_bottom", "double_wall")
LOOSE_STRATEGIES = ("beside_similar", "metal_shadow", "loose")
STRATEGIES = tuple(objects.HOSTS) + PARCEL_STRATEGIES + LOOSE_STRATEGIES


@dataclass
class Context:
    """The parcel being filled, in the parcel's frame."""

    rng: np.random.Generator
    cfg: object  # training.sim.config.SceneConfig
    parcel: Parcel
    packer: Packer | None = None
    items: list[Item] = field(default_factory=list)
    extra: list[Primitive] = field(default_factory=list)
    packets: list[dict] = field(default_factory=list)
    decoys: list[dict] = field(default_factory=list)

    def group(self, prefix: str) -> str:
        return f"{prefix}:{len(self.packets) if prefix == 'packet' else len(self.decoys)}"


def _in_slot(packet: Packet, slot: dict, rng) -> list[Primitive]:
    """Packet primitives moved to a random spot inside the slot (slot frame = parcel frame)."""
    free = [max(0.0, s - o) / 2 for s, o in zip(slot["size"], packet.outer_size, strict=True)]
    angle = slot["angle"]
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    dx, dy = uniform(rng, -free[0], free[0]), uniform(rng, -free[1], free[1])
    cx = slot["center"][0] + c * dx - s * dy
    cy = slot["center"][1] + s * dx + c * dy
    cz = slot["center"][2] + uniform(rng, -free[2], free[2])
    proj_z = slot.get("proj_z")  # drawn like its host, so the cavity matches what it removes
    return [replace(p.moved(cx, cy, cz, angle), proj_z=proj_z) for p in packet.primitives]


def _record(ctx: Context, packet: Packet, strategy: str, host: str, decoy: bool = False) -> None:
    entry = {**packet.meta, "strategy": strategy, "host": host}
    (ctx.decoys if decoy else ctx.packets).append(entry)


def hide_in_host(ctx: Context, strategy: str) -> bool:
    """Put a packet into a slot of a packed object of a suitable kind."""
    hosts = [it for it in ctx.items if it.kind in objects.HOSTS[strategy] and it.slots]
    ctx.rng.shuffle(hosts)
    for item in hosts:
        slot = item.slots[int(ctx.rng.integers(0, len(item.slots)))]
        packet = drug_packet(ctx.rng, ctx.cfg, ctx.group("packet"), slot["size"],
                             slot["displaces"], slot["density"])
        if packet is None:
            continue
        for index in sorted(slot["replace"], reverse=True):
            del item.primitives[index]
        item.slots.remove(slot)  # one packet per slot
        ctx.extra += _in_slot(packet, slot, ctx.rng)
        _record(ctx, packet, strategy, item.kind)
        return True
    return False


def false_bottom(ctx: Context) -> bool:
    """A second cardboard floor with a flat packet underneath; raises the packing floor."""
    parcel = ctx.parcel
    if parcel.kind != "carton":
        return False
    gap = uniform(ctx.rng, 8, 25)
    li, wi, _ = parcel.inner
    packet = drug_packet(ctx.rng, ctx.cfg, ctx.group("packet"), (li - 10, wi - 10, gap))
    if packet is None or parcel.top_z - parcel.floor_z < gap + 60:
        return False
    ctx.extra += _in_slot(packet, {"center": (0, 0, parcel.floor_z + gap / 2),
                                   "size": (li, wi, gap), "angle": 0.0}, ctx.rng)
    panel_z = parcel.floor_z + gap
    ctx.extra.append(solid("box", "cellulose", parcel.record["board_density"],
                           (li, wi, parcel.wall), (0, 0, panel_z)))
    parcel.floor_z = panel_z + parcel.wall
    _record(ctx, packet, "false_bottom", "parcel")
    return True


def double_wall(ctx: Context) -> bool:
    """An extra inner wall along one end of the carton with a packet standing in the gap."""
    parcel = ctx.parcel
    if parcel.kind != "carton":
        return False
    li, wi, _ = parcel.inner
    gap = uniform(ctx.rng, 8, 22)
    height = parcel.top_z - parcel.floor_z
    packet = drug_packet(ctx.rng, ctx.cfg, ctx.group("packet"), (gap, wi - 10, height - 5),
                         standing=True)
    if packet is None or li < 4 * gap + 100:
        return False
    side = choice(ctx.rng, [-1.0, 1.0])
    x_gap = side * (li / 2 - gap / 2)
    ctx.extra += _in_slot(packet, {"center": (x_gap, 0, parcel.floor_z + height / 2),
                                   "size": (gap, wi, height), "angle": 0.0}, ctx.rng)
    ctx.extra.append(solid("box", "cellulose", parcel.record["board_density"],
                           (parcel.wall, wi, height), (side * (li / 2 - gap - parcel.wall / 2), 0,
                                                       parcel.floor_z)))
    # The packer must not put goods into the gap: its floor ends at the extra wall.
    parcel.inner = (li - gap - parcel.wall, wi, parcel.inner[2])
    parcel.inner_shift = (-side * (gap + parcel.wall) / 2, 0.0)
    _record(ctx, packet, "double_wall", "parcel")
    return True


def _loose_packet(ctx: Context, decoy: bool) -> tuple[Item, Packet] | None:
    """A packet as a free-standing item (base on its floor), sized to the free space."""
    free = ctx.packer.free_space()
    # Hand-made packets lie flat (60 mm at most); shop goods come at their own height.
    limits = (min(free[0], 250.0), min(free[1], 250.0), min(free[2], 250.0 if decoy else 60.0))
    make = retail_good if decoy else drug_packet
    packet = make(ctx.rng, ctx.cfg, ctx.group("decoy" if decoy else "packet"), limits)
    if packet is None:
        return None
    ox, oy, oz = packet.outer_size
    prims = [p.moved(0, 0, oz / 2) for p in packet.primitives]
    return Item("decoy" if decoy else "packet", prims, [], (ox, oy), oz), packet


def _place_loose(ctx: Context, decoy: bool, strategy: str, at=None) -> Item | None:
    made = _loose_packet(ctx, decoy)
    if made is None:
        return None
    item, packet = made
    placed = ctx.packer.place(item, at=at, tries=20)
    if placed is None:
        return None
    ctx.extra += placed.primitives
    _record(ctx, packet, strategy, "loose", decoy=decoy)
    return placed


def place_decoy(ctx: Context) -> Item | None:
    """A benign look-alike (a shop good of drug-like density) placed loose; recorded as a hard
    negative."""
    return _place_loose(ctx, True, "loose")


def beside_similar(ctx: Context) -> bool:
    """A packet placed next to benign blocks of the same density (coffee, chocolate, soap)."""
    anchor = place_decoy(ctx)
    if anchor is None:
        return False
    x, y = anchor.primitives[0].center[:2]
    near = (x + uniform(ctx.rng, -80, 80), y + uniform(ctx.rng, -80, 80))
    return _place_loose(ctx, False, "beside_similar", at=near) is not None


def loose(ctx: Context) -> bool:
    """A packet simply packed among the goods (what a strategy falls back to)."""
    return _place_loose(ctx, False, "loose") is not None


def metal_shadow(ctx: Context) -> bool:
    """A flat packet with a laptop, tools or a steel tray stacked on it (partly shadowed)."""
    placed = _place_loose(ctx, False, "metal_shadow")
    if placed is None:
        return False
    x, y = placed.primitives[0].center[:2]
    kind = choice(ctx.rng, ["laptop", "tools", "tools", "circuit_board"])
    cover = objects.build(kind, ctx.rng, ctx.packer.free_space())
    if cover is not None:
        offset = [uniform(ctx.rng, -0.5, 0.5) * s for s in placed.footprint]
        on_top = ctx.packer.place(cover, at=(x + offset[0], y + offset[1]), tries=5)
        if on_top is not None:
            ctx.items.append(on_top)
    return True


def apply(ctx: Context, strategy: str) -> bool:
    """Run one strategy by name; `ValueError` lists the valid names."""
    if strategy in objects.HOSTS:
        return hide_in_host(ctx, strategy)
    table = {"false_bottom": false_bottom, "double_wall": double_wall,
             "beside_similar": beside_similar, "metal_shadow": metal_shadow, "loose": loose}
    if strategy not in table:
        raise ValueError(f"unknown concealment strategy {strategy!r}; valid: {list(STRATEGIES)}")
    return table[strategy](ctx)
