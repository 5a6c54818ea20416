"""Small builders shared by the object library: solids resting on a base, hollow shells,
uniform draws. Everything is in millimetres, in the object's own frame (origin at the centre
of its footprint, on the floor it rests on).
"""

from __future__ import annotations

import numpy as np

from training.sim.scene import Primitive
from training.sim.tables import Composition


def solid(shape: str, material: Composition, density: float, size, at=(0.0, 0.0, 0.0),
          angle: float = 0.0, **extra) -> Primitive:
    """A primitive whose bottom rests at height ``at[2]`` (the centre is half its height up)."""
    sx, sy, sz = (float(s) for s in size)
    return Primitive(shape=shape, material=material, density=float(density),
                     center=(float(at[0]), float(at[1]), float(at[2]) + sz / 2),
                     size=(sx, sy, sz), angle=float(angle), **extra)


def hollow(shape: str, material: Composition, density: float, size, wall: float,
           at=(0.0, 0.0, 0.0), angle: float = 0.0, open_top: bool = False) -> list[Primitive]:
    """A shell of thickness ``wall``: the solid minus a smaller one of the same material."""
    sx, sy, sz = (float(s) for s in size)
    outer = solid(shape, material, density, (sx, sy, sz), at, angle)
    inner_h = sz - wall if open_top else sz - 2 * wall
    inner = solid(shape, material, -density, (sx - 2 * wall, sy - 2 * wall, inner_h),
                  (at[0], at[1], at[2] + wall), angle)
    return [outer, inner]


def inner_size(size, wall: float) -> tuple[float, float, float]:
    return (size[0] - 2 * wall, size[1] - 2 * wall, size[2] - 2 * wall)


def uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def texture(rng: np.random.Generator, kind: str, **params) -> dict:
    """A texture spec with its own seed drawn from ``rng``."""
    return {"kind": kind, "seed": int(rng.integers(0, 2**31 - 1)), **params}


def slot(name: str, center, size, displaces: Composition | None = None, density: float = 0.0,
         replace: list[int] | None = None, angle: float = 0.0) -> dict:
    """A place where a packet can hide (see `training.sim.scene.Item`)."""
    return {"name": name, "center": tuple(float(c) for c in center),
            "size": tuple(float(s) for s in size), "angle": float(angle),
            "displaces": displaces, "density": float(density), "replace": list(replace or [])}


def paper(rng: np.random.Generator, filler_max: float = 0.25) -> dict[str, float]:
    """Paper with a random chalk or kaolin filler share: Zeff 6.9 to about 9.5 (physics.md)."""
    filler = uniform(rng, 0.0, filler_max)
    mineral = "calcium_carbonate" if rng.random() < 0.7 else "kaolin"
    return {"cellulose": 1.0 - filler, mineral: filler}


def choice(rng: np.random.Generator, options):
    """One of ``options`` (a list or a {option: weight} dict)."""
    if isinstance(options, dict):
        keys = list(options)
        weights = np.array([options[k] for k in keys], float)
        return keys[int(rng.choice(len(keys), p=weights / weights.sum()))]
    return options[int(rng.integers(0, len(options)))]
