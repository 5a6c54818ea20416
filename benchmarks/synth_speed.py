"""Median time per simulated 1024x768 dual-energy scan on one core (issue 3 target: < 250 ms).

    python benchmarks/synth_speed.py [--scans 40] [--seed 0] [--json out.json]

A scan here is everything ``concealscan synth`` computes: the random scene, rasterising, the
polychromatic render, the sensor model, the pseudo-colour and gray views and the labels.
Writing the four PNGs and the scene record is timed separately. The first scans of each
tube setting build its lookup table (about 50 ms, once per process); they are warm-up.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one core, before numpy loads

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402

from training.sim.config import SynthConfig  # noqa: E402
from training.sim.generate import draw_record, render_record  # noqa: E402
from training.sim.writer import write_scan  # noqa: E402


def benchmark_config() -> SynthConfig:
    """The default simulator on a fixed 1024 x 768 detector window."""
    base = SynthConfig()
    scanner = dataclasses.replace(base.scanner, channels=768, fit_height=False,
                                  length_px=(1024, 1024))
    return dataclasses.replace(base, scanner=scanner)


def run(scans: int, seed: int) -> dict:
    cv2.setNumThreads(1)
    config = benchmark_config()
    for kvp in config.scanner.kvp:  # warm the per-setting lookup tables
        for filt in config.scanner.filter_al_mm:
            from training.sim.forward import scanner_physics
            from training.sim.spectrum import DetectorModel

            scanner_physics(kvp, filt, DetectorModel())
    draw, render, write = [], [], []
    sizes = set()
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(scans):
            t0 = time.perf_counter()
            record = draw_record(config, seed, i, f"bench_{i:06d}")
            t1 = time.perf_counter()
            result = render_record(record)
            t2 = time.perf_counter()
            write_scan(Path(tmp), result, config.png_compression)
            t3 = time.perf_counter()
            draw.append(t1 - t0)
            render.append(t2 - t1)
            write.append(t3 - t2)
            sizes.add(result.size_hw)
    total = [a + b for a, b in zip(draw, render, strict=True)]
    ms = 1000.0
    return {"scans": scans, "sizes_hw": sorted(sizes),
            "median_ms": round(statistics.median(total) * ms, 1),
            "p90_ms": round(sorted(total)[int(0.9 * (scans - 1))] * ms, 1),
            "median_scene_ms": round(statistics.median(draw) * ms, 1),
            "median_render_sensor_colour_labels_ms": round(statistics.median(render) * ms, 1),
            "median_png_write_ms": round(statistics.median(write) * ms, 1),
            "target_ms": 250.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    numbers = run(args.scans, args.seed)
    for key, value in numbers.items():
        print(f"{key:<40} {value}")
    if args.json:
        args.json.write_text(json.dumps(numbers, indent=1) + "\n")


if __name__ == "__main__":
    main()
