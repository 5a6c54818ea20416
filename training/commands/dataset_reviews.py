"""``concealscan dataset from-reviews``: the station's reviewed scans as a COCO data set."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(sub) -> None:
    rev = sub.add_parser("from-reviews",
                         help="reviewed station scans to COCO: confirmed alarms and drawn boxes "
                              "are positives, cleared scans hard negatives; CT volumes go to "
                              "OUT/ct/annotations.json (bbox3d)")
    rev.add_argument("--data", required=True, type=Path,
                     help="the station's data folder (as given to 'concealscan serve')")
    rev.add_argument("--out", required=True, type=Path, metavar="DATASET",
                     help="new folder: annotations.json plus copies of the scans (and ct/, "
                          "the same for reviewed CT volumes)")
    rev.add_argument("--class-name", default="concealed_organic",
                     help="category of every box (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    from detector.errors import UsageError
    from training.reviews import export_reviews

    try:
        counts = export_reviews(args.data, args.out, args.class_name)
    except (FileNotFoundError, FileExistsError) as exc:
        raise UsageError(str(exc)) from exc
    print(f"wrote {args.out}/annotations.json: {_counted(counts, 'scans')}; "
          f"{counts['skipped']} skipped (listed in its info)")
    if counts["ct"]:
        print(f"wrote {args.out}/ct/annotations.json: {_counted(counts['ct'], 'CT volumes')} "
              f"(bbox3d; a data set for a CT recipe's data.train)")
    return 0


def _counted(counts: dict, what: str) -> str:
    return (f"{counts['scans']} reviewed {what} ({counts['positives']} with objects, "
            f"{counts['hard_negatives']} cleared by an operator), {counts['boxes']} boxes")
