"""INT8 (static QDQ) against FP32 on the same test set: accuracy change and speed, one run.

    .venv/bin/python benchmarks/int8.py --fp32 M.onnx --int8 M_int8.onnx --data TEST.json

Both models run through the workstation path (`detector.inference.infer`); Pd/Pfa use the
FP32 model's alarm threshold for both, so the change is the quantization's alone. Latency is
the median of interleaved single-scan inferences (read once, infer + decode timed).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from detector.inference import Detector


def main() -> int:
    from training.data import CocoScans
    from training.engine import evaluate
    from training.report import summarise

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fp32", required=True)
    ap.add_argument("--int8", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    dets = {"fp32": Detector(args.fp32, threads=args.threads, min_score=0.01),
            "int8": Detector(args.int8, threads=args.threads, min_score=0.01)}
    info = dets["fp32"].info
    data = CocoScans(args.data, info.kind, list(info.classes))
    for name, det in dets.items():
        records = evaluate(det.model.predict, data, info.input_spec, info.stride)
        s = summarise(records, list(info.classes), info.alarm_threshold)
        print(f"{name}: AP50={s['ap50']:.3f} AP50:95={s['ap50_95']:.3f} Pd={s['pd']:.3f} "
              f"Pfa={s['pfa']:.3f} @fp32 threshold {info.alarm_threshold:.3f}")
    scans = [data[i].scan for i in range(min(len(data), 10))]
    times: dict[str, list[float]] = {k: [] for k in dets}
    for i in range(args.runs + 3):
        for name, det in dets.items():
            t0 = time.perf_counter()
            det.detect(scans[i % len(scans)])
            if i >= 3:
                times[name].append((time.perf_counter() - t0) * 1e3)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"latency (median of {args.runs}, {args.threads} thread(s)): fp32 {med['fp32']:.1f} "
          f"ms, int8 {med['int8']:.1f} ms, speed-up {med['fp32'] / med['int8']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
