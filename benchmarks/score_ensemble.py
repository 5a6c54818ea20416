"""Would running two models on one scan and averaging their scan scores alarm better?

    .venv/bin/python benchmarks/score_ensemble.py runs/dual_3.12.0/test2 \\
        runs/gray_2.11.0/test2 --out runs/ens_dual_gray/test2
    concealscan compare runs/gray_2.11.0/test2 runs/ens_dual_gray/test2 --bootstrap 1000

Reads `concealscan evaluate --report` folders of one set (the gray and colour views the
simulator writes are made from the same parcel as the dual pair, so reports of different
kinds line up by scan id) and writes a report folder whose per-scan top score is the mean
of theirs: a scan-level fusion (no boxes, no AP), for `concealscan compare` to set beside
the single models at equal Pfa.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from training.commands.compare import load_report  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reports", nargs="+", metavar="REPORT",
                        help="evaluate report folders of the same scans")
    parser.add_argument("--out", required=True, type=Path, help="report folder to write")
    args = parser.parse_args()
    if len(args.reports) < 2:
        parser.error("give at least two reports")
    loaded = [load_report(r) for r in args.reports]
    ids0, pos0 = loaded[0][1], loaded[0][3]
    order0 = np.argsort(ids0)
    scores = []
    for name, (_, ids, s, pos) in zip(args.reports, loaded, strict=True):
        order = np.argsort(ids)
        if sorted(ids) != sorted(ids0) or not np.array_equal(pos[order], pos0[order0]):
            parser.error(f"{name}: not the same scans and ground truth as {args.reports[0]}")
        scores.append(s[order])
    mean = np.mean(scores, axis=0)
    args.out.mkdir(parents=True, exist_ok=True)
    with (args.out / "per_scan.jsonl").open("w") as f:
        for i, k in enumerate(order0):
            f.write(json.dumps({"id": ids0[k], "positive": bool(pos0[k]),
                                "max_score": float(mean[i])}) + "\n")
    (args.out / "metrics.json").write_text(json.dumps({"ensemble_of": args.reports}) + "\n")
    print(f"wrote {args.out / 'per_scan.jsonl'}: mean top score of {len(args.reports)} reports "
          f"on {len(ids0)} scans")
    return 0


if __name__ == "__main__":
    sys.exit(main())
