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

from detector.errors import UsageError  # noqa: E402
from training.commands.compare import align_reports  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reports", nargs="+", metavar="REPORT",
                        help="evaluate report folders of the same scans")
    parser.add_argument("--out", required=True, type=Path, help="report folder to write")
    args = parser.parse_args()
    if len(args.reports) < 2:
        parser.error("give at least two reports")
    try:
        ids, positive, aligned = align_reports(args.reports)
    except UsageError as exc:
        parser.error(str(exc))
    mean = np.mean([scores for _, scores in aligned], axis=0)
    args.out.mkdir(parents=True, exist_ok=True)
    with (args.out / "per_scan.jsonl").open("w") as f:
        for scan_id, pos, score in zip(ids, positive, mean, strict=True):
            f.write(json.dumps({"id": scan_id, "positive": bool(pos),
                                "max_score": float(score)}) + "\n")
    (args.out / "metrics.json").write_text(json.dumps({"ensemble_of": args.reports}) + "\n")
    print(f"wrote {args.out / 'per_scan.jsonl'}: mean top score of {len(args.reports)} reports "
          f"on {len(ids)} scans")
    return 0


if __name__ == "__main__":
    sys.exit(main())
