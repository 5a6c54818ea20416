"""The scene as pure data: analytic primitives with materials, in millimetres.

Coordinates: ``x`` along the belt (image columns), ``y`` across the belt (image rows, the
detector channels), ``z`` height above the belt. A primitive is a solid of one material; a
negative density removes material, which is how a cavity displaces its host. Everything here
serialises to JSON and back exactly (floats keep their repr), so a scene replays bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace

SHAPES = ("box", "pillow", "ellipsoid", "cylinder", "rod")


@dataclass(frozen=True)
class Primitive:
    """One solid. ``size`` is the full extent along local x, y and z (mm).

    Shapes: ``box``; ``pillow`` (a cushion whose thickness falls to zero at the rim, flatter
    with larger ``roundness``); ``ellipsoid``; ``cylinder`` (standing, elliptic footprint);
    ``rod`` (a cylinder lying along local x, diameters ``size[1]`` across, ``size[2]`` high).
    """

    shape: str
    material: str | dict[str, float]
    density: float  # g/cm3; negative removes that much of the material (a cavity)
    center: tuple[float, float, float]
    size: tuple[float, float, float]
    angle: float = 0.0  # degrees about the vertical axis
    roundness: float = 4.0  # pillow edge exponent
    texture: dict | None = None  # see training.sim.textures
    group: str = ""  # "packet:0", "decoy:1": rendered also on its own for labels
    role: str = ""  # within a group: "content", "wrap" or "void"
    # Height (mm) whose fan-beam shrink this primitive is drawn with; None = its centre's.
    # All parts of one object share one, so a cavity lines up with the material it removes.
    proj_z: float | None = None

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ValueError(f"Primitive.shape: expected one of {SHAPES}, got {self.shape!r}")
        if len(self.size) != 3 or not all(s > 0 for s in self.size):
            raise ValueError(f"Primitive.size: expected three positive mm, got {self.size}")
        if len(self.center) != 3 or not all(math.isfinite(c) for c in self.center):
            raise ValueError(f"Primitive.center: expected three finite mm, got {self.center}")
        if not math.isfinite(self.density) or self.density == 0:
            raise ValueError(f"Primitive.density: expected non-zero g/cm3, got {self.density}")

    def moved(self, dx: float, dy: float, dz: float, angle: float = 0.0,
              pivot: tuple[float, float] = (0.0, 0.0)) -> Primitive:
        """This primitive turned by ``angle`` degrees about ``pivot`` (x, y), then shifted."""
        c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
        x, y = self.center[0] - pivot[0], self.center[1] - pivot[1]
        return replace(self, center=(pivot[0] + c * x - s * y + dx,
                                     pivot[1] + s * x + c * y + dy, self.center[2] + dz),
                       angle=self.angle + angle)

    def to_json(self) -> dict:
        # By hand: dataclasses.asdict deep-copies, which cost ~10 ms per scene.
        out = {f: getattr(self, f) for f in _FIELDS}
        out["center"], out["size"] = list(self.center), list(self.size)
        if isinstance(self.material, dict):
            out["material"] = dict(self.material)
        if self.texture is not None:
            out["texture"] = dict(self.texture)
        return out

    @classmethod
    def from_json(cls, data: dict) -> Primitive:
        data = dict(data)
        data["center"], data["size"] = tuple(data["center"]), tuple(data["size"])
        return cls(**data)


_FIELDS = tuple(f.name for f in fields(Primitive))


@dataclass
class Item:
    """A benign object (or a parcel part) built from primitives in its own frame.

    ``slots`` are places where something could be hidden: dicts with ``name``, ``center``,
    ``size`` (mm, local frame), ``angle`` and ``displaces`` (the material a packet there
    pushes out, or None for an air gap) and ``density`` of that material.
    """

    kind: str
    primitives: list[Primitive]
    slots: list[dict] = field(default_factory=list)
    footprint: tuple[float, float] = (0.0, 0.0)  # (x, y) extent, mm
    height: float = 0.0

    def placed(self, x: float, y: float, z: float, angle: float) -> Item:
        """The item turned about its own origin and moved so that origin lands on (x, y, z).

        Its parts are all drawn with the fan-beam shrink of the item's mid-height.
        """
        proj_z = z + self.height / 2
        prims = [replace(p.moved(x, y, z, angle), proj_z=proj_z) for p in self.primitives]
        slots = []
        for slot in self.slots:
            c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
            sx, sy, sz = slot["center"]
            slots.append({**slot, "center": (c * sx - s * sy + x, s * sx + c * sy + y, sz + z),
                          "angle": slot.get("angle", 0.0) + angle, "proj_z": proj_z})
        return Item(self.kind, prims, slots, self.footprint, self.height)


@dataclass
class Scene:
    """Everything the renderer needs, and the facts the labels report."""

    size_hw: tuple[int, int]  # (height, width) in pixels
    pixel_mm: float
    source_distance_mm: float  # tube focus to belt, for the fan-beam geometry across the belt
    primitives: list[Primitive]
    parcel: dict  # kind and dimensions
    items: list[dict]  # kind and where each benign object went
    packets: list[dict]  # concealed packets: group, substance, mass_g, host, strategy, ...
    decoys: list[dict]  # benign look-alike packets (hard negatives), same fields
    focus_y_mm: float  # where the focus sits across the image (the tunnel's middle)

    def to_json(self) -> dict:
        return {"size_hw": list(self.size_hw), "pixel_mm": self.pixel_mm,
                "source_distance_mm": self.source_distance_mm, "focus_y_mm": self.focus_y_mm,
                "primitives": [p.to_json() for p in self.primitives],
                "parcel": self.parcel, "items": self.items, "packets": self.packets,
                "decoys": self.decoys}

    @classmethod
    def from_json(cls, data: dict) -> Scene:
        return cls(size_hw=tuple(data["size_hw"]), pixel_mm=data["pixel_mm"],
                   source_distance_mm=data["source_distance_mm"],
                   primitives=[Primitive.from_json(p) for p in data["primitives"]],
                   parcel=data["parcel"], items=data["items"], packets=data["packets"],
                   decoys=data["decoys"], focus_y_mm=data["focus_y_mm"])
