"""``concealscan dataset from-reviews``: the station's reviewed scans as a COCO data set."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(sub) -> None:
    rev = sub.add_parser("from-reviews",
                         help="reviewed station scans to COCO: confirmed alarms and drawn boxes "
                              "are positives, cleared alarms hard negatives")
    rev.add_argument("--data", required=True, type=Path,
                     help="the station's data folder (as given to 'concealscan serve')")
    rev.add_argument("--out", required=True, type=Path, metavar="DATASET",
                     help="new folder: annotations.json plus copies of the scans")
    rev.add_argument("--class-name", default="concealed_organic",
                     help="category of every box (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    from detector.errors import UsageError
    from training.reviews import export_reviews

    try:
        counts = export_reviews(args.data, args.out, args.class_name)
    except (FileNotFoundError, FileExistsError) as exc:
        raise UsageError(str(exc)) from exc
    print(f"wrote {args.out}/annotations.json: {counts['scans']} reviewed scans "
          f"({counts['positives']} with objects, {counts['hard_negatives']} cleared alarms), "
          f"{counts['boxes']} boxes; {counts['skipped']} skipped (listed in its info)")
    return 0
