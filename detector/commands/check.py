"""``concealscan check``: read every scan and report what it is, or why it cannot be used."""

from __future__ import annotations

import argparse
import json
import sys

from detector.errors import ScanError
from detector.readers import DEFAULT_MAX_PIXELS, discover_scans, read_scan
from detector.report import progress


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="scan files or folders (NAME_high/NAME_low pairs are joined)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object per scan instead of a table")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                        help="refuse images larger than this many pixels (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    refs = discover_scans(args.paths)
    failed = 0
    rows = []
    for ref in progress(refs, desc="checking scans", unit="scan"):
        try:
            scan = read_scan(ref, max_pixels=args.max_pixels)
        except ScanError as exc:
            failed += 1
            rows.append({"id": ref.id, "scan": ref.path, "status": "error", "error": exc.reason})
            continue
        h, w = scan.size_hw
        rows.append({"id": scan.id, "scan": ref.path, "status": "ok", "kind": scan.kind,
                     "size_hw": [h, w], "bit_depth": scan.bit_depth})
    if args.json:
        for row in rows:
            print(json.dumps(row))
    else:
        print(f"{'id':<28} {'kind':<6} {'size (HxW)':<12} {'bits':>4}  status")
        for row in rows:
            if row["status"] == "ok":
                size = "x".join(map(str, row["size_hw"]))
                print(f"{row['id']:<28} {row['kind']:<6} {size:<12} {row['bit_depth']:>4}  ok")
            else:
                print(f"{row['id']:<28} {'-':<6} {'-':<12} {'-':>4}  ERROR: {row['error']}")
        print(f"{len(rows)} scan(s), {failed} unreadable", file=sys.stderr)
    return 2 if failed else 0
