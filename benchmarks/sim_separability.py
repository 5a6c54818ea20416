"""Can drug packets be told from the shop-good look-alikes in simulated scans, and by what?

    .venv/bin/python benchmarks/sim_separability.py --train data/sim/train --test data/sim/test

A yardstick for the detector (needs scikit-learn: ``pip install '.[bench]'``). For every
packet lying loose in a parcel and every loose look-alike (COCO image field
``benign_packet``), 18 hand-made measurements are taken from the dual-energy scan inside its
ground-truth box and in a ring around it: physical size, attenuation and dual-energy ratio
(inside, and against the ring), edge strength at the box border, texture inside. A gradient
boosted classifier learns packet vs look-alike on the training scans and is scored (ROC AUC) on
the test scans, with all measurements and with each group alone.

A high AUC says the simulated classes are separable from what the image shows, so a detector
that scores packets no higher than look-alikes has not learnt it yet (rather than the task
being impossible); an AUC from size alone shows how far size gives the answer away.

``--negatives benign-objects`` puts the scene's other block-like benign solids (image field
``benign_object``: tubs, paper, cable, cells, ...) in the look-alikes' place: where the
bundled models' false alarms mostly fall (`concealscan evaluate`, ``false_alarms``).
``--packets all`` takes every visible packet, not only the loose ones.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from detector.readers import ScanRef, read_scan  # noqa: E402
from detector.second_look import measure_box, scan_maps  # noqa: E402

GROUPS = {"size": [0, 1, 2], "attenuation and ratio": [3, 4, 5, 6, 7, 8, 9, 10, 16, 17],
          "edges and texture": [11, 12, 13, 14, 15]}


def loose_objects(entry: dict, annotations: list[dict], negatives: str = "look-alikes",
                  packets: str = "loose") -> list[tuple[dict, int]]:
    """The packets (1) and shop-good look-alikes (0) lying loose in one synth scan; or, with
    ``negatives="benign-objects"``, the scene's other benign solids as the 0s; with
    ``packets="all"`` every packet, in any host."""
    ones = [(a, 1) for a in annotations if packets == "all" or a.get("host") == "loose"]
    if negatives == "benign-objects":
        return ones + [(d, 0) for d in entry.get("benign_object", [])]
    decoys = [(d, 0) for d in entry.get("benign_packet", []) if d.get("host", "loose") == "loose"]
    return ones + decoys


def measure_set(folder: Path, count: int | None, negatives: str = "look-alikes",
                packets: str = "loose") -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)``: measurements of the packets (1) and negatives (0) of a synth set."""
    coco = json.loads((folder / "annotations.json").read_text())
    by_image: dict[int, list[dict]] = {}
    for a in coco["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    rows, labels = [], []
    for entry in coco["images"][:count]:
        objects = loose_objects(entry, by_image.get(entry["id"], []), negatives, packets)
        if not objects:
            continue
        files = tuple(folder / f for f in entry["files"]["dual"])
        high, low = read_scan(ScanRef(id=entry["scan_id"], files=files)).image
        maps = scan_maps(high)
        for obj, label in objects:
            row = measure_box(high, low, obj["bbox"], entry["pixel_mm"], maps)
            if row is not None:
                rows.append(row)
                labels.append(label)
    return np.array(rows, np.float64), np.array(labels)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=Path, default=REPO / "data/sim/train",
                        help="synth folder to learn from (default: %(default)s)")
    parser.add_argument("--test", type=Path, default=REPO / "data/sim/test",
                        help="synth folder to score on (default: %(default)s)")
    parser.add_argument("--count", type=int, default=1200,
                        help="training scans read (default: %(default)s)")
    parser.add_argument("--negatives", choices=("look-alikes", "benign-objects"),
                        default="look-alikes", help="what packets are told from "
                                                    "(default: %(default)s)")
    parser.add_argument("--packets", choices=("loose", "all"), default="loose",
                        help="which packets (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        from sklearn.ensemble import HistGradientBoostingClassifier
        from sklearn.metrics import roc_auc_score
    except ImportError:
        print("needs scikit-learn: pip install '.[bench]'", file=sys.stderr)
        return 2
    x_train, y_train = measure_set(args.train, args.count, args.negatives, args.packets)
    x_test, y_test = measure_set(args.test, None, args.negatives, args.packets)
    report = {"train_objects": len(y_train), "train_packet_share": round(float(y_train.mean()), 3),
              "test_objects": len(y_test), "test_packet_share": round(float(y_test.mean()), 3)}
    for name, cols in {"all": list(range(x_train.shape[1])), **GROUPS}.items():
        clf = HistGradientBoostingClassifier(max_iter=300, random_state=0)
        clf.fit(x_train[:, cols], y_train)
        auc = roc_auc_score(y_test, clf.predict_proba(x_test[:, cols])[:, 1])
        report[f"auc_{name.replace(' ', '_')}"] = round(float(auc), 3)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
