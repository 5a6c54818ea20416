"""End-to-end latency of the workstation detector against YOLOv8n, interleaved in one run.

Per 1024x768 dual scan: read both 16-bit files, preprocess, infer, postprocess (decode + NMS
for both models). YOLOv8n is built from its yaml with random weights (nothing downloaded),
exported to ONNX at the same input size and run in onnxruntime with the same threads.
Also reports peak memory of a `concealscan detect` process and cold start (import + load).

    YOLO_OFFLINE=1 .venv/bin/python benchmarks/latency.py [--runs 50] [--threads 2]

Needs the ``bench`` extra (ultralytics) for the YOLOv8n side. The box is shared: compare the
ratio, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

os.environ.setdefault("YOLO_OFFLINE", "1")
SIZE_HW = (768, 1024)


def write_scan(folder: Path) -> Path:
    """A 1024x768 dual pair with a parcel, clutter and one organic packet."""
    rng = np.random.default_rng(0)
    h, w = SIZE_HW
    high = np.zeros((h, w), np.float32)
    high[100:680, 150:900] = 0.3
    for _ in range(12):
        y, x = rng.integers(120, 600), rng.integers(170, 800)
        high[y:y + 60, x:x + 80] += rng.uniform(0.2, 1.2)
    low = high * 2.2
    high[300:380, 400:520] += 0.8
    low[300:380, 400:520] += 1.1
    for part, att in (("high", high), ("low", low)):
        noisy = att + rng.normal(0, 0.01, att.shape)
        counts = np.clip(np.rint(65535 * np.exp(-noisy)), 1, 65535).astype(np.uint16)
        cv2.imwrite(str(folder / f"bench_{part}.png"), counts)
    return folder / "bench_high.png"


def yolo_onnx(folder: Path) -> Path:
    import yaml
    from ultralytics import YOLO
    from ultralytics.utils import ROOT

    cfg = yaml.safe_load((ROOT / "cfg/models/v8/yolov8.yaml").read_text())
    cfg["nc"] = 1
    path = folder / "yolov8n.yaml"  # the file name selects the "n" scale
    path.write_text(yaml.safe_dump(cfg))
    cwd = os.getcwd()
    os.chdir(folder)  # a model built from yaml exports into the working directory
    try:
        out = YOLO(str(path)).export(format="onnx", imgsz=SIZE_HW, opset=17, simplify=False)
    finally:
        os.chdir(cwd)
    return folder / Path(out).name


def yolo_runner(path: Path, threads: int):
    import onnxruntime as ort

    from detector.postprocess import nms
    from detector.preprocess import InputSpec, model_input
    from detector.readers import read_scan

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    # YOLOv8n is built with 3 input channels: the dual-energy ones (ours also draws the
    # pseudo-colour view, which counts in its time, not YOLO's).
    spec = InputSpec.for_kind("dual", ("high", "low", "ratio"))

    def run(scan_path: Path):
        x = model_input(read_scan(scan_path), spec)[None]
        (raw,) = sess.run(None, {sess.get_inputs()[0].name: x})
        pred = raw[0].T  # (anchors, 4 + classes): cx, cy, w, h, scores
        scores = pred[:, 4:].max(axis=1)
        keep = scores >= 0.05
        b, s = pred[keep, :4], scores[keep]
        boxes = np.stack([b[:, 0] - b[:, 2] / 2, b[:, 1] - b[:, 3] / 2,
                          b[:, 0] + b[:, 2] / 2, b[:, 1] + b[:, 3] / 2], axis=1)
        order = np.argsort(-s)[:300]
        return nms(boxes[order], s[order], np.zeros(len(order), np.int64), 0.5)

    return run


def ours_runner(model: Path, threads: int):
    from detector.inference import Detector
    from detector.readers import read_scan

    det = Detector(model, threads=threads)
    return lambda scan_path: det.detect(read_scan(scan_path))


def ours_fullres_runner(model: Path, threads: int):
    """Our network on the full 1024x768 input (the model's downscale skipped): the same input
    size as YOLOv8n gets, for a like-for-like compute comparison."""
    import dataclasses

    from detector.inference import Detector
    from detector.readers import read_scan

    det = Detector(model, threads=threads)
    det.info = dataclasses.replace(
        det.info, input_spec=dataclasses.replace(det.info.input_spec, scale=1.0))
    return lambda scan_path: det.detect(read_scan(scan_path))


def interleaved(runners: dict, scan: Path, runs: int, warmup: int = 5) -> dict[str, list]:
    times: dict[str, list] = {k: [] for k in runners}
    for i in range(warmup + runs):
        for name, run in runners.items():
            t0 = time.perf_counter()
            run(scan)
            if i >= warmup:
                times[name].append((time.perf_counter() - t0) * 1e3)
    return times


def detect_process_stats(model: Path, scan: Path, out: Path) -> tuple[float, float]:
    """(peak RSS MiB of `concealscan detect` on one scan, cold start s: import + model load)."""
    subprocess.run([sys.executable, "-m", "detector.cli", "detect", str(scan), "--out", str(out),
                    "--model", str(model)], check=True, capture_output=True)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    code = ("import time; t0 = time.perf_counter(); from detector.inference import Detector; "
            f"Detector({str(model)!r}); print(time.perf_counter() - t0)")
    cold = [float(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                                 text=True).stdout) for _ in range(3)]
    return peak, statistics.median(cold)


def main() -> int:
    from detector.results import bundled_models

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, default=bundled_models().get("dual"))
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        scan = write_scan(tmp)
        peak, cold = detect_process_stats(args.model, scan, tmp / "out")
        runners = {"concealscan": ours_runner(args.model, args.threads),
                   "ours@full": ours_fullres_runner(args.model, args.threads),
                   "yolov8n": yolo_runner(yolo_onnx(tmp), args.threads)}
        times = interleaved(runners, scan, args.runs)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"end-to-end per {SIZE_HW[1]}x{SIZE_HW[0]} dual scan, {args.threads} thread(s), "
          f"median of {args.runs} interleaved runs (load average {os.getloadavg()[0]:.2f}):")
    for k, v in med.items():
        print(f"  {k:<12} {v:8.1f} ms  (p10 {np.percentile(times[k], 10):.1f}, "
              f"p90 {np.percentile(times[k], 90):.1f})")
    print(f"  ratio yolov8n / concealscan = {med['yolov8n'] / med['concealscan']:.2f}x "
          f"(bundled model, its own input scale); at the same 1024x768 input: "
          f"{med['yolov8n'] / med['ours@full']:.2f}x")
    print(f"  detect process peak RSS {peak:.0f} MiB; cold start (import + load) {cold:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
