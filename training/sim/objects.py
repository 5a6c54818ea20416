"""The benign object library: one dict from kind to builder (see the ``objects_*`` modules)."""

from __future__ import annotations

import numpy as np

from training.sim import objects_containers, objects_electronics, objects_misc, objects_paper
from training.sim.scene import Item

BUILDERS = {**objects_paper.BUILDERS, **objects_electronics.BUILDERS,
            **objects_containers.BUILDERS, **objects_misc.BUILDERS}

#: Kinds that can host a concealed packet, per strategy (see training.sim.concealment).
HOSTS = {"hollow_book": ("book", "paper_stack"),
         "in_electronics": ("laptop", "phone", "batteries", "circuit_board"),
         "in_can": ("can", "glass_jar"),
         "in_cosmetics": ("cosmetics",),
         "shoe_sole": ("shoes",),
         "among_clothes": ("clothes",)}


def build(kind: str, rng: np.random.Generator, space) -> Item | None:
    """One object of ``kind`` that fits ``space`` (x, y, z mm), or None if it cannot."""
    try:
        builder = BUILDERS[kind]
    except KeyError:
        raise ValueError(f"unknown object kind {kind!r}; valid: {sorted(BUILDERS)}") from None
    # A little slack so that the object still fits when it is turned a few degrees.
    return builder(rng, (space[0] * 0.92, space[1] * 0.92, space[2]))
