"""What does a model's second look cost on the workstation? Interleaved, one process.

    .venv/bin/python benchmarks/second_look_cost.py --model detector/models/dual.onnx \\
        --data data/sim/test2/annotations.json --scans 30
    .venv/bin/python benchmarks/second_look_cost.py --model detector/models/ct.onnx \\
        --data data/sim_ct/test2/annotations.json --scans 30

Runs `Detector.detect` (a CT model: `VolumeDetector.detect` on volumes) on each scan twice,
with the model's second look and with it switched off (the same ONNX graph, so the difference
is the second look alone: decoding down to its floor (CT: fusing down to it), the measurements
and the trees), alternating, and prints the median times and the median of the per-scan
ratios. On a shared machine compare the ratio, not the times.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from detector.ct_inference import VolumeDetector  # noqa: E402
from detector.inference import Detector  # noqa: E402
from detector.model import OnnxModel  # noqa: E402
from training.ct_data import CtVolumes  # noqa: E402
from training.data import CocoScans  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=REPO / "detector/models/dual.onnx")
    parser.add_argument("--data", type=Path, default=REPO / "data/sim/test2/annotations.json")
    parser.add_argument("--scans", type=int, default=30, help="first N scans of the set")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    info = OnnxModel(args.model).info
    if info.second_look is None:
        parser.error(f"{args.model}: has no second look")
    if info.kind == "ct":
        with_look = VolumeDetector(OnnxModel(args.model, threads=args.threads))
        without = VolumeDetector(OnnxModel(args.model, threads=args.threads))
        data = CtVolumes(args.data, list(info.classes), info.input_spec.ct_energies)
        scans = [data[i].volume for i in range(min(args.scans, len(data)))]
    else:
        with_look = Detector(args.model, threads=args.threads)
        without = Detector(args.model, threads=args.threads)
        data = CocoScans(args.data, info.kind, list(info.classes))
        scans = [data[i].scan for i in range(min(args.scans, len(data)))]
    without.info = replace(without.info, second_look=None)
    with_look.detect(scans[0]), without.detect(scans[0])  # warm-up
    t_with, t_without = [], []
    for scan in scans:
        for det, out in ((without, t_without), (with_look, t_with)):
            t0 = time.perf_counter()
            det.detect(scan)
            out.append(time.perf_counter() - t0)
    a, b = np.array(t_without), np.array(t_with)
    size = "x".join(str(n) for n in (scans[0].size_dhw if info.kind == "ct"
                                      else scans[0].size_hw))
    print(f"{len(scans)} scans ({size} first), "
          f"{args.threads} thread(s): median {np.median(a) * 1e3:.1f} ms without the second "
          f"look, {np.median(b) * 1e3:.1f} ms with it; median ratio {np.median(b / a):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
