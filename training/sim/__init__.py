"""The physics-based parcel scan simulator behind ``concealscan synth`` (issue 3).

Scenes are built from analytic primitives (`scene`, `objects_*`, `parcels`, `concealment`),
rasterised to basis-material mass thickness (`geometry`), rendered through a polychromatic
dual-energy model (`forward`), degraded by a sensor model (`sensor`) and written with COCO
labels (`labels`, `writer`) or streamed for training (`stream`). See docs/simulation.md.
"""
