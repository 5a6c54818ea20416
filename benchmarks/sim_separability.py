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

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from detector.readers import ScanRef, read_scan  # noqa: E402

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


def scan_maps(high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(gradient magnitude, Laplacian of the 1-pixel-blurred image) of a high-energy image:
    what `_measure` reads edges and texture from, computed once per scan."""
    grad = np.hypot(cv2.Sobel(high, cv2.CV_32F, 1, 0), cv2.Sobel(high, cv2.CV_32F, 0, 1))
    return grad, cv2.Laplacian(cv2.GaussianBlur(high, (0, 0), 1.0), cv2.CV_32F)


def _measure(high: np.ndarray, low: np.ndarray, bbox, pixel_mm: float,
             maps: tuple[np.ndarray, np.ndarray] | None = None) -> list[float] | None:
    """The 18 measurements of COCO box ``bbox`` (x, y, w, h); ``maps``: `scan_maps(high)`,
    when the caller measures several boxes of one scan. None for a box under 6 pixels."""
    h_img, w_img = high.shape
    x, y, w, h = (int(round(v)) for v in bbox)
    x1, y1, x2, y2 = max(x, 0), max(y, 0), min(x + w, w_img), min(y + h, h_img)
    if x2 - x1 < 6 or y2 - y1 < 6:
        return None
    # inside: the central 60 % of the box; ring: a band a quarter of the short side wide
    cx1, cy1 = x1 + (x2 - x1) // 5, y1 + (y2 - y1) // 5
    cx2, cy2 = x2 - (x2 - x1) // 5, y2 - (y2 - y1) // 5
    pad = max(4, min(w, h) // 4)
    ox1, oy1 = max(x1 - pad, 0), max(y1 - pad, 0)
    ox2, oy2 = min(x2 + pad, w_img), min(y2 + pad, h_img)
    ring = np.ones((oy2 - oy1, ox2 - ox1), bool)
    ring[y1 - oy1:y2 - oy1, x1 - ox1:x2 - ox1] = False
    ring_high, ring_low = high[oy1:oy2, ox1:ox2][ring], low[oy1:oy2, ox1:ox2][ring]
    in_high, in_low = high[cy1:cy2, cx1:cx2], low[cy1:cy2, cx1:cx2]
    grad, lap = maps if maps is not None else scan_maps(high)
    lap = lap[cy1:cy2, cx1:cx2]
    border = np.concatenate([grad[y1:y2, x1:x1 + 2].ravel(), grad[y1:y2, x2 - 2:x2].ravel(),
                             grad[y1:y1 + 2, x1:x2].ravel(), grad[y2 - 2:y2, x1:x2].ravel()])
    d_high = in_high.mean() - (ring_high.mean() if ring_high.size else 0.0)
    d_low = in_low.mean() - (ring_low.mean() if ring_low.size else 0.0)
    return [w * pixel_mm, h * pixel_mm, max(w, h) / max(1, min(w, h)),
            in_high.mean(), in_high.std(), in_low.mean(), in_low.std(),
            (in_low.mean() + 1e-3) / (in_high.mean() + 1e-3), d_high, d_low,
            (d_low + 1e-3) / (d_high + 1e-3) if abs(d_high) > 1e-3 else 0.0,
            border.mean(), np.percentile(border, 90), grad[cy1:cy2, cx1:cx2].mean(),
            np.abs(lap).mean(), lap.std(), np.percentile(in_high, 10), np.percentile(in_high, 90)]


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
            row = _measure(high, low, obj["bbox"], entry["pixel_mm"], maps)
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
