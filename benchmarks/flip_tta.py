"""Does averaging a 2-D model's outputs over a left-right flip (test-time augmentation) help?

    .venv/bin/python benchmarks/flip_tta.py --model detector/models/dual.onnx \\
        --data data/sim/val/annotations.json

Evaluates the model on the set twice through the workstation's `detector.inference.infer`:
as it is, and with each tile also run mirrored (padded on the right to a multiple of 32 model
pixels, so that heat-map cells line up), the mirrored heat map and box distances flipped back
(left and right swapped) and averaged with the plain ones. Prints AP50, AP50:95 and, at the
threshold reaching ``--target-pfa`` on this set, Pd and Pfa, for both, and the time per scan.
The flip costs a second network run per tile.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from detector.model import OnnxModel  # noqa: E402
from training.data import CocoScans  # noqa: E402
from training.engine import evaluate  # noqa: E402
from training.metrics import threshold_for  # noqa: E402
from training.report import summarise  # noqa: E402

ALIGN = 32  # the backbone's coarsest stride: padding to it keeps mirrored cells aligned


def flip_averaged(predict):
    """``predict`` averaged with its left-right mirror, cell for cell."""

    def run(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        heat, ltrb = predict(x)
        w = x.shape[3]
        padded = np.pad(x, ((0, 0), (0, 0), (0, 0), (0, -w % ALIGN)), mode="edge")
        heat_m, ltrb_m = predict(np.ascontiguousarray(padded[..., ::-1]))
        cells = heat.shape[3]
        heat_m = heat_m[..., ::-1][..., :cells]
        ltrb_m = ltrb_m[..., ::-1][:, [2, 1, 0, 3]][..., :cells]  # left <-> right
        return (heat + heat_m) / 2, (ltrb + ltrb_m) / 2

    return run


def score(predict, data, info, target_pfa: float) -> dict:
    t0 = time.perf_counter()
    records = evaluate(predict, data, info.input_spec, info.stride)
    seconds = (time.perf_counter() - t0) / len(data)
    threshold = threshold_for(records, target_pfa, None)
    summary = summarise(records, list(info.classes), threshold)
    return {k: summary[k] for k in ("ap50", "ap50_95", "pd", "pfa")} | {
        "threshold": threshold, "s_per_scan": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="exported 2-D model (.onnx)")
    parser.add_argument("--data", required=True, metavar="ANNOTATIONS.json")
    parser.add_argument("--target-pfa", type=float, default=0.05)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    model = OnnxModel(args.model, threads=args.threads)
    data = CocoScans(args.data, model.info.input_spec.kind, list(model.info.classes))
    for name, predict in (("plain", model.predict), ("flip", flip_averaged(model.predict))):
        row = score(predict, data, model.info, args.target_pfa)
        print(name, " ".join(f"{k}={v:.4f}" for k, v in row.items()), flush=True)


if __name__ == "__main__":
    main()
