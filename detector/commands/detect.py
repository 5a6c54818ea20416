"""``concealscan detect``: run the detector on scans; write results.jsonl and overlays.

A scan that cannot be read or processed is reported with ``status: "error"`` and alarms:
it goes to manual check, never silently clear. If OUT cannot be written (full disk, read-only
folder) the command stops with exit status 74 and a clear message; results.jsonl then holds
only whole lines and no overlay is half-written.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from detector.outputs import OutputError, append_line, write_png_atomic
from detector.readers import DEFAULT_MAX_PIXELS
from detector.report import progress


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="scan files or folders (NAME_high/NAME_low pairs are joined)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--model", action="append", metavar="M",
                        help="exported .onnx model (repeat for several kinds); default: the "
                             "bundled models, chosen by each scan's kind")
    parser.add_argument("--min-score", type=float, default=0.05,
                        help="report candidates at or above this score (default %(default)s)")
    parser.add_argument("--threads", type=int, default=1,
                        help="onnxruntime threads (default 1: on a shared 2-core workstation "
                             "1 thread measured ~2x faster than 2 when another process is busy)")
    parser.add_argument("--no-overlays", action="store_true", help="skip overlay images")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                        help="refuse images larger than this many pixels (default: "
                             "%(default)s)")
    # CT volumes and DICOS (issue 7): volumes are found by detector.volume_inputs.
    parser.add_argument("--dicos-out", metavar="DIR",
                        help="also write each result as a DICOS Threat Detection Report "
                             "(DIR/ID.dcs), including scans that could not be assessed")
    parser.add_argument("--voxel-mm", type=float, nargs=3, metavar=("Z", "Y", "X"),
                        help="voxel size of .npy/TIFF volumes that have no NAME.json sidecar; "
                             "a volume's own (sidecar, DICOM header) always wins, and a "
                             "different --voxel-mm is reported on stderr")


def _process(ref, chooser, args, overlays: Path | None) -> dict:
    from detector.volume_inputs import VolumeRef

    if isinstance(ref, VolumeRef):  # CT volumes (issue 7) have their own path
        from detector.ct_detect import process_volume

        return process_volume(ref, chooser, args, overlays)
    from detector.errors import ScanError
    from detector.results import error_line, ok_line
    from detector.volume_inputs import read_input

    t0 = time.perf_counter()
    scan = None
    try:
        scan = read_input(ref, max_pixels=args.max_pixels, voxel_mm=args.voxel_mm)
        det = chooser.for_scan(scan).detect(scan)
        if overlays is not None:
            from detector.overlay import render_overlay

            write_png_atomic(overlays / f"{ref.id}.png", render_overlay(scan, det))
    except OutputError:
        raise  # the disk, not the scan: stop (run says why)
    except ScanError as exc:
        return error_line(ref, exc.reason, scan, time_ms=(time.perf_counter() - t0) * 1e3)
    except Exception as exc:  # noqa: BLE001 -- any failure sends the scan to manual check
        return error_line(ref, f"detection failed: {type(exc).__name__}: {exc}", scan,
                          time_ms=(time.perf_counter() - t0) * 1e3)
    return ok_line(ref, det, args.min_score)


def run(args: argparse.Namespace) -> int:
    from detector.errors import UsageError
    from detector.outputs import EXIT_OUTPUT
    from detector.results import ModelChooser
    from detector.volume_inputs import discover_inputs, unique_ids

    if not 0.0 <= args.min_score <= 1.0:
        raise UsageError(f"--min-score: expected 0..1, got {args.min_score}")
    if args.threads < 1:
        raise UsageError(f"--threads: expected >= 1, got {args.threads}")
    if args.max_pixels < 1:
        raise UsageError(f"--max-pixels: expected >= 1, got {args.max_pixels}")
    refs = unique_ids(discover_inputs(args.paths))
    if not refs:
        raise UsageError(f"no scans found in {' '.join(args.paths)}")
    chooser = ModelChooser(args.model, threads=args.threads, min_score=args.min_score)
    lines: list[dict] = []
    try:
        _detect_all(refs, chooser, args, lines)
    except OutputError as exc:
        print(f"concealscan detect: error: {exc}; results.jsonl holds the {len(lines)} "
              "complete line(s) written before, and no partial one", file=sys.stderr)
        return EXIT_OUTPUT
    _summary(lines)
    return 2 if any(line["status"] == "error" for line in lines) else 0


def _detect_all(refs, chooser, args, lines: list[dict]) -> None:
    """Process ``refs`` in order, appending each line whole; `OutputError` if OUT fails."""
    out = Path(args.out)
    overlays = None if args.no_overlays else out / "overlays"
    try:
        out.mkdir(parents=True, exist_ok=True)
        if overlays is not None:
            overlays.mkdir(exist_ok=True)
        results = (out / "results.jsonl").open("wb", buffering=0)
    except OSError as exc:
        raise OutputError(exc.filename or out, exc) from exc
    with results:
        for ref in progress(refs, desc="detecting", unit="scan"):
            line = _process(ref, chooser, args, overlays)
            append_line(results, (json.dumps(line) + "\n").encode())
            lines.append(line)
            if args.dicos_out:
                from detector.dicos import write_result_tdr

                try:
                    write_result_tdr(line, ref, args.dicos_out)
                except OSError as exc:
                    raise OutputError(args.dicos_out, exc) from exc


def _summary(lines: list[dict]) -> None:
    ok = [ln for ln in lines if ln["status"] == "ok"]
    errors = [ln for ln in lines if ln["status"] == "error"]
    times = sorted(ln["time_ms"] for ln in ok)
    median = f"{times[len(times) // 2]:.1f} ms/scan" if times else "- ms/scan (none assessed)"
    print(f"{'id':<32} {'kind':<6} {'status':<6} {'alarm':<6} {'top score':>9}")
    for ln in lines:
        top = f"{ln['detections'][0]['score']:.2f}" if ln["detections"] else "-"
        print(f"{ln['id']:<32} {ln['kind'] or '-':<6} {ln['status']:<6} "
              f"{'YES' if ln['alarm'] else 'no':<6} {top:>9}")
    print(f"scans {len(lines)} | alarms {sum(ln['alarm'] for ln in lines)} | errors "
          f"{len(errors)} | median {median}", file=sys.stderr)
    for ln in errors:
        print(f"ERROR {ln['scan']}: {ln['error']}", file=sys.stderr)
