"""``concealscan check``: read every scan and report what it is, or why it cannot be used."""

from __future__ import annotations

import argparse
import json
import sys

from detector.errors import ScanError
from detector.readers import DEFAULT_MAX_PIXELS
from detector.report import progress
from detector.volume import Volume


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="scan files, CT volumes or folders, found as `detect` finds them "
                             "(NAME_high/NAME_low pairs are joined)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object per scan instead of a table")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                        help="refuse images larger than this many pixels (default: %(default)s)")
    parser.add_argument("--voxel-mm", type=float, nargs=3, metavar=("Z", "Y", "X"),
                        help="voxel size of .npy/TIFF volumes that have no NAME.json sidecar")


def run(args: argparse.Namespace) -> int:
    from detector.errors import UsageError
    from detector.volume_inputs import discover_inputs, read_input, unique_ids

    if args.max_pixels < 1:
        raise UsageError(f"--max-pixels: expected >= 1, got {args.max_pixels}")
    refs = unique_ids(discover_inputs(args.paths))  # what `detect` reads, named as it names
    failed = 0
    rows = []
    for ref in progress(refs, desc="checking scans", unit="scan"):
        try:
            scan = read_input(ref, max_pixels=args.max_pixels, voxel_mm=args.voxel_mm)
        except (ScanError, ValueError) as exc:
            failed += 1
            reason = exc.reason if isinstance(exc, ScanError) else str(exc)
            rows.append({"id": ref.id, "scan": ref.path, "status": "error", "error": reason})
            continue
        if isinstance(scan, Volume):
            rows.append({"id": scan.id, "scan": ref.path, "status": "ok", "kind": "ct",
                         "size_dhw": list(scan.size_dhw), "voxel_mm": list(scan.voxel_mm),
                         "energies": 1 if scan.low is None else 2})
            continue
        h, w = scan.size_hw
        rows.append({"id": scan.id, "scan": ref.path, "status": "ok", "kind": scan.kind,
                     "size_hw": [h, w], "bit_depth": scan.bit_depth})
    if args.json:
        for row in rows:
            print(json.dumps(row))
    else:
        print(f"{'id':<28} {'kind':<6} {'size':<12} {'bits':>4}  status")
        for row in rows:
            if row["status"] == "ok":
                size = "x".join(map(str, row.get("size_hw") or row["size_dhw"]))
                bits = row.get("bit_depth", "-")
                print(f"{row['id']:<28} {row['kind']:<6} {size:<12} {bits:>4}  ok")
            else:
                print(f"{row['id']:<28} {'-':<6} {'-':<12} {'-':>4}  ERROR: {row['error']}")
        print(f"{len(rows)} scan(s), {failed} unreadable", file=sys.stderr)
    return 2 if failed else 0
