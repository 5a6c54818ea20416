"""Would a second look at each box, from hand-made measurements, alarm better than the CNN alone?

    .venv/bin/python benchmarks/box_rescore.py --model detector/models/dual.onnx \\
        --fit data/sim/calib --test data/sim/test2 --out runs/rescore/dual_3.17.0
    concealscan compare runs/rescore/dual_3.17.0/base runs/rescore/dual_3.17.0/rescored \\
        --bootstrap 1000

A yardstick, not a product feature (needs scikit-learn: ``pip install '.[bench]'``). The
exported model runs on every dual-energy scan of the ``--fit`` and ``--test`` synth sets (sets
it was not trained on), keeping its boxes down to ``--min-score``. Each box is measured as
`sim_separability` measures ground-truth boxes (size, attenuation and dual-energy ratio inside
and against a ring around it, edges, texture: 18 numbers) and, with the CNN's score as a 19th,
labelled 1 when it hits a packet (IoU >= 0.3, evaluate's hit rule). A gradient-boosted
classifier fitted on the ``--fit`` boxes gives every ``--test`` box a new score; the scan's
score is its best box's, as on the workstation. Written: ``OUT/base`` (the CNN's boxes as
they came) and ``OUT/rescored`` (the same boxes, new scores), both `concealscan evaluate
--report` folders (metrics.json with AP50 and the FROC points, per_scan.jsonl, plots), at the
model's own alarm threshold and for ``concealscan compare`` at equal Pfa.

The boxes and measurements of each set are cached in ``OUT/<set>.npz`` (keyed by the model's
SHA-256), so classifier variants re-run in seconds. ``--features`` picks the columns: all
(default), ``cnn`` (the score alone: a check that the classifier adds nothing by itself),
``measured`` (the 18 without the score).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from sim_separability import _measure, scan_maps  # noqa: E402

from detector.postprocess import box_iou  # noqa: E402
from training.metrics import HIT_IOU, ScanRecord  # noqa: E402

N_MEASURED = 18


def collect(model_path: Path, folder: Path, min_score: float, cache: Path, threads: int,
            limit: int | None = None) -> tuple[list[ScanRecord], np.ndarray, np.ndarray]:
    """(records with the CNN's boxes; per box [score, 18 measurements]; per box its scan's
    index), for the dual-energy scans of synth folder ``folder``; boxes a measurement cannot
    be taken on (under 6 pixels) keep the score alone and NaN for the rest."""
    from detector.model import OnnxModel
    from detector.report import Progress
    from training.data import CocoScans
    from training.engine import evaluate

    model = OnnxModel(str(model_path), threads=threads)
    if cache.is_file():
        z = np.load(cache, allow_pickle=False)
        if (str(z["sha256"]) == model.sha256 and float(z["min_score"]) == min_score
                and int(z["limit"]) == (limit or 0)):
            records = [ScanRecord(str(i), tuple(int(v) for v in hw), g,
                                  np.zeros(len(g), np.int64), b, s, np.zeros(len(s), np.int64),
                                  json.loads(str(o)))
                       for i, hw, g, b, s, o in zip(z["ids"], z["size_hw"],
                                                    _split(z["gt"], z["gt_n"]),
                                                    _split(z["boxes"], z["box_n"]),
                                                    _split(z["scores"], z["box_n"]),
                                                    z["objects"], strict=True)]
            return records, z["x"], z["scan_of_box"]
    info = model.info
    if info.input_spec.kind != "dual":
        raise SystemExit(f"{model_path}: a {info.input_spec.kind!r} model; the measurements "
                         "need the dual-energy pair (a 'dual' model)")
    data = CocoScans(folder / "annotations.json", "dual", list(info.classes))
    data.items = data.items[:limit]
    records = evaluate(model.predict, data, info.input_spec, info.stride, min_score,
                       progress=True)
    rows, scan_of_box = [], []
    with Progress(len(records), "measuring", "scan") as bar:
        for k, (record, (entry, _ref, _)) in enumerate(zip(records, data.items, strict=True)):
            high, low = data[k].scan.image
            maps = scan_maps(high)
            for box, score in zip(record.boxes, record.scores, strict=True):
                x1, y1, x2, y2 = (float(v) for v in box)
                m = _measure(high, low, (x1, y1, x2 - x1, y2 - y1), entry["pixel_mm"], maps)
                rows.append([float(score)] + (m if m is not None else [np.nan] * N_MEASURED))
                scan_of_box.append(k)
            bar.update()
    x = np.array(rows, np.float64).reshape(-1, 1 + N_MEASURED)
    scan_of_box = np.array(scan_of_box, np.int64)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, sha256=model.sha256, min_score=min_score, limit=limit or 0, x=x,
             scan_of_box=scan_of_box, ids=np.array([r.scan_id for r in records]),
             objects=np.array([json.dumps(r.objects) for r in records]),
             size_hw=np.array([r.size_hw for r in records]),
             gt=np.concatenate([r.gt_boxes for r in records]).reshape(-1, 4),
             gt_n=np.array([len(r.gt_boxes) for r in records]),
             boxes=np.concatenate([r.boxes for r in records]).reshape(-1, 4),
             box_n=np.array([len(r.boxes) for r in records]),
             scores=np.concatenate([r.scores for r in records]))
    return records, x, scan_of_box


def _split(flat: np.ndarray, counts: np.ndarray) -> list[np.ndarray]:
    return np.split(flat, np.cumsum(counts)[:-1])


def hit_labels(records: list[ScanRecord]) -> np.ndarray:
    """Per box, in record order: 1 when it overlaps a packet with IoU >= HIT_IOU."""
    out = []
    for r in records:
        for box in r.boxes:
            out.append(bool(len(r.gt_boxes)) and float(box_iou(box, r.gt_boxes).max()) >= HIT_IOU)
    return np.array(out, np.int64)


def rescored(records: list[ScanRecord], scan_of_box: np.ndarray,
             scores: np.ndarray) -> list[ScanRecord]:
    """The records with each box's score replaced (boxes re-sorted by the new scores)."""
    out = []
    for k, r in enumerate(records):
        s = scores[scan_of_box == k].astype(np.float32)
        order = np.argsort(-s, kind="stable")
        out.append(ScanRecord(r.scan_id, r.size_hw, r.gt_boxes, r.gt_labels, r.boxes[order],
                              s[order], r.labels[order], r.objects))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=REPO / "detector/models/dual.onnx",
                        help="exported dual model (default: %(default)s)")
    parser.add_argument("--fit", type=Path, default=REPO / "data/sim/calib",
                        help="synth folder the classifier learns from; not one the model "
                             "trained on (default: %(default)s)")
    parser.add_argument("--test", type=Path, default=REPO / "data/sim/test2",
                        help="synth folder to score (default: %(default)s)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the two reports")
    parser.add_argument("--min-score", type=float, default=0.02,
                        help="CNN boxes kept down to this score (default: %(default)s)")
    parser.add_argument("--features", choices=("all", "cnn", "measured"), default="all",
                        help="classifier inputs (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads")
    parser.add_argument("--limit", type=int, help="only the first N scans of each set (a "
                                                  "quick check)")
    args = parser.parse_args(argv)
    try:
        from sklearn.ensemble import HistGradientBoostingClassifier
    except ImportError:
        print("needs scikit-learn: pip install '.[bench]'", file=sys.stderr)
        return 2
    from training.report import summarise, summary_line, write_report

    fit_records, x_fit, _ = collect(args.model, args.fit, args.min_score,
                                    args.out / f"{args.fit.name}.npz", args.threads, args.limit)
    test_records, x_test, test_scan = collect(args.model, args.test, args.min_score,
                                              args.out / f"{args.test.name}.npz", args.threads,
                                              args.limit)
    y_fit = hit_labels(fit_records)
    cols = {"all": slice(None), "cnn": slice(0, 1), "measured": slice(1, None)}[args.features]
    clf = HistGradientBoostingClassifier(max_iter=300, learning_rate=0.05, random_state=0)
    clf.fit(x_fit[:, cols], y_fit)
    new = clf.predict_proba(x_test[:, cols])[:, 1] if len(x_test) else np.zeros(0)
    from detector.model import OnnxModel

    threshold = OnnxModel(str(args.model)).info.alarm_threshold
    print(f"fit: {len(y_fit)} boxes on {len(fit_records)} scans, {int(y_fit.sum())} on a "
          f"packet; test: {len(new)} boxes on {len(test_records)} scans")
    for name, records in (("base", rescored(test_records, test_scan, x_test[:, 0])),
                          ("rescored", rescored(test_records, test_scan, new))):
        summary = summarise(records, ["concealed_organic"], threshold)
        summary["rescore"] = {"model": str(args.model), "fit": str(args.fit),
                              "features": args.features, "min_score": args.min_score}
        write_report(args.out / name, records, summary)
        print(f"{name}: {summary_line(summary)}")
    print(json.dumps({"compare": f"concealscan compare {args.out / 'base'} "
                                 f"{args.out / 'rescored'} --bootstrap 1000"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
