"""``concealscan compare``: Pd of several models at equal Pfa, from their evaluate reports.

Each report is a folder written by ``concealscan evaluate --report`` (``per_scan.jsonl``, or
``per_volume.jsonl`` for CT) on the same annotated set. At each false-alarm rate every model
gets its own threshold, the lowest that lets at most floor(Pfa x negatives) scans without
objects alarm, fitted on the set itself (`training.metrics.pd_at_pfa`): the models are compared
at the same Pfa, not at thresholds each picked elsewhere. The difference to the first report
comes with a 95 % interval from a paired bootstrap over the scans, so that a gain smaller than
the set's sampling noise is seen as such. When every report's metrics.json holds the FROC
points (`object_sensitivity_at_false_boxes_per_scan`, 2-D reports), a second table puts them
side by side: the packets each model finds at equal false boxes per scan, above and below its
operating point. Reports whose per_scan.jsonl holds each scan's FROC scores (``object_scores``,
``false_box_scores``; 2-D reports written since 2026-11-30) get those points recomputed from
the scans, with the same paired bootstrap interval on the difference to the first report (and
with ``--min-difficulty``, on the scans kept).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

REQUIRES = ()
RATES = (0.02, 0.035, 0.05, 0.075, 0.10)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("reports", nargs="+", metavar="REPORT",
                        help="folders from 'concealscan evaluate --report' on the same set; "
                             "the first is the baseline")
    parser.add_argument("--pfa", type=float, nargs="+", default=list(RATES), metavar="RATE",
                        help=f"false-alarm rates per scan (default: {' '.join(map(str, RATES))})")
    parser.add_argument("--bootstrap", type=int, default=2000, metavar="N",
                        help="paired bootstrap resamples for the intervals (0: none; "
                             "default 2000)")
    parser.add_argument("--min-difficulty", type=float, metavar="CNR",
                        help="count only scans with objects whose most visible object has at "
                             "least this simulator difficulty (CNR; e.g. 3: what an observer "
                             "could be asked to find); every scan without objects stays")
    parser.add_argument("--json", metavar="FILE", help="also write the table as JSON")


def load_report(folder: str | Path, min_difficulty: float | None = None
                ) -> tuple[dict, list[str], np.ndarray, np.ndarray]:
    """(metrics.json or {}, scan ids, top scores, positive flags) of one evaluate report;
    with ``min_difficulty``, scans with objects whose ``best_difficulty`` is lower (or
    unknown) are left out."""
    from detector.errors import UsageError

    folder = Path(folder)
    found = [folder / n for n in ("per_scan.jsonl", "per_volume.jsonl") if (folder / n).is_file()]
    if not found:
        raise UsageError(f"{folder}: not an evaluate report (no per_scan.jsonl or "
                         f"per_volume.jsonl; write one with 'concealscan evaluate --report')")
    ids, scores, positive = [], [], []
    with found[0].open() as f:
        for n, line in enumerate(f, start=1):
            try:
                row = json.loads(line)
                if min_difficulty is not None and row["positive"]:
                    if "best_difficulty" not in row:
                        raise UsageError(f"{found[0]}: no best_difficulty (a CT report, or "
                                         f"one older than the field: evaluate again) "
                                         f"for --min-difficulty")
                    best = row["best_difficulty"]
                    if best is None or best < min_difficulty:
                        continue
                ids.append(str(row["id"]))
                scores.append(float(row["max_score"]))
                positive.append(bool(row["positive"]))
            except (ValueError, KeyError, TypeError) as exc:
                raise UsageError(f"{found[0]}: line {n}: not a report row ({exc})") from exc
    metrics_path = folder / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    return metrics, ids, np.array(scores), np.array(positive, bool)


def align_reports(reports: list[str], min_difficulty: float | None = None
                  ) -> tuple[list[str], np.ndarray, list[tuple[dict, np.ndarray]]]:
    """(scan ids, positive flags, [(metrics, top scores)] per report), every report's scans in
    the same (sorted) order; UsageError unless all reports are of the same scans and ground
    truth."""
    from detector.errors import UsageError

    loaded = [load_report(r, min_difficulty) for r in reports]
    _, ids0, _, pos0 = loaded[0]
    order0 = np.argsort(ids0)
    aligned = []
    for name, (metrics, ids, scores, positive) in zip(reports, loaded, strict=True):
        if sorted(ids) != sorted(ids0) or len(set(ids)) != len(ids):
            raise UsageError(f"{name}: not the same scans as {reports[0]} ({len(ids)} vs "
                             f"{len(ids0)} ids, {len(set(ids) ^ set(ids0))} differ): compare "
                             f"reports of one set")
        order = np.argsort(ids)
        if not np.array_equal(positive[order], pos0[order0]):
            raise UsageError(f"{name}: the same ids but other ground truth than {reports[0]}")
        aligned.append((metrics, scores[order]))
    return [ids0[k] for k in order0], pos0[order0], aligned


def compare(reports: list[str], rates: list[float], resamples: int, seed: int = 0,
            min_difficulty: float | None = None) -> dict:
    """Pd at each rate per report, and differences to the first with bootstrap intervals."""
    from detector.errors import UsageError
    from training.metrics import pd_at_pfa

    ids, positive, aligned = align_reports(reports, min_difficulty)
    if positive.all() or not positive.any():
        raise UsageError(f"{reports[0]}: Pd at equal Pfa needs scans with and without objects")
    rng = np.random.default_rng(seed)
    draws = [rng.integers(0, len(positive), len(positive)) for _ in range(resamples)]
    draws = [d for d in draws if positive[d].any() and not positive[d].all()]
    def resampled(scores: np.ndarray, rate: float) -> np.ndarray:
        return np.array([pd_at_pfa(scores[d], positive[d], rate)[0] for d in draws])

    base = {rate: resampled(aligned[0][1], rate) for rate in rates} if len(reports) > 1 else {}
    rows = []
    for name, (metrics, scores) in zip(reports, aligned, strict=True):
        row = {"report": str(name), "ap50": metrics.get("ap50", metrics.get("ap3d_25")),
               "pd": {}, "pfa": {}, "difference": {}}
        for rate in rates:
            row["pd"][rate], row["pfa"][rate] = pd_at_pfa(scores, positive, rate)
            if not rows:
                continue
            diff = {"pd": row["pd"][rate] - rows[0]["pd"][rate]}
            if draws:
                lo, hi = np.percentile(resampled(scores, rate) - base[rate], [2.5, 97.5])
                diff["interval_95"] = [float(lo), float(hi)]
            row["difference"][rate] = diff
        rows.append(row)
    froc = _froc_compared(reports, ids, aligned, draws, min_difficulty)
    return {"min_difficulty": min_difficulty,
            "scans": int(len(positive)), "with_objects": int(positive.sum()),
            "without_objects": int((~positive).sum()), "rates": list(rates),
            "bootstrap_resamples": len(draws), "models": rows, "froc": froc}


def load_froc_scores(folder: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]] | None:
    """Per scan id of a 2-D report: (per object its best hitting box's score, -inf where none
    hits; the scores of boxes hitting no object), from per_scan.jsonl; None when the report
    has no such fields (CT, or written before them)."""
    path = Path(folder) / "per_scan.jsonl"
    if not path.is_file():
        return None
    out = {}
    with path.open() as f:
        for line in f:
            row = json.loads(line)
            if "object_scores" not in row or "false_box_scores" not in row:
                return None
            out[str(row["id"])] = (
                np.array([-np.inf if s is None else s for s in row["object_scores"]], float),
                np.array(row["false_box_scores"], float))
    return out


def _froc_compared(reports: list[str], ids: list[str], aligned: list, draws: list,
                   min_difficulty: float | None) -> list[dict] | None:
    """The FROC rows: recomputed from per-scan scores (with intervals on the difference to
    the first report) when every report has them, else metrics.json's points when every
    report has those (not with ``min_difficulty``: they count every scan), else None."""
    from training.metrics import froc_points

    per_scan = [load_froc_scores(r) for r in reports]
    if any(p is None for p in per_scan):
        key = "object_sensitivity_at_false_boxes_per_scan"
        if min_difficulty is None and all(key in m for m, _ in aligned):
            return [{"report": str(name), "points": metrics[key]}
                    for name, (metrics, _) in zip(reports, aligned, strict=True)]
        return None

    def points(scans: list[tuple[np.ndarray, np.ndarray]]) -> dict:
        found = np.concatenate([f for f, _ in scans])
        false = np.concatenate([x for _, x in scans])
        finite = np.concatenate([found[np.isfinite(found)], false])
        return froc_points(found, false, len(scans), float(finite.min(initial=0.0)))

    rows, base = [], None
    for name, table in zip(reports, per_scan, strict=True):
        scans = [table[i] for i in ids]
        row = {"report": str(name), "points": points(scans), "difference": {}}
        sens = [np.array([p["sensitivity"] if p["sensitivity"] is not None else np.nan
                          for p in points([scans[k] for k in d]).values()]) for d in draws]
        if base is None:
            base = sens
        elif draws:
            diffs = np.array(sens) - np.array(base)
            for j, rate in enumerate(row["points"]):
                lo, hi = np.nanpercentile(diffs[:, j], [2.5, 97.5])
                row["difference"][rate] = {
                    "sensitivity": _minus(row["points"][rate], rows[0]["points"][rate]),
                    "interval_95": [float(lo), float(hi)]}
        rows.append(row)
    return rows


def _minus(a: dict, b: dict) -> float | None:
    if a["sensitivity"] is None or b["sensitivity"] is None:
        return None
    return a["sensitivity"] - b["sensitivity"]


def format_table(result: dict) -> str:
    rates = result["rates"]
    width = max(len("report"), *(len(r["report"]) for r in result["models"]))
    only = ("" if result["min_difficulty"] is None else
            f", counting only those whose best object has difficulty >= "
            f"{result['min_difficulty']:g}")
    lines = [f"Pd at equal Pfa on {result['scans']} scans ({result['with_objects']} with objects"
             f"{only}, {result['without_objects']} without; each column lets floor(Pfa x "
             f"{result['without_objects']}) of them alarm)",
             f"{'report':<{width}}  {'AP':>5}  " + "  ".join(f"{r:>6g}" for r in rates)]
    for row in result["models"]:
        ap = "   - " if row["ap50"] is None else f"{row['ap50']:.3f}"
        lines.append(f"{row['report']:<{width}}  {ap}  "
                     + "  ".join(f"{row['pd'][r]:6.3f}" for r in rates))
    for row in result["models"][1:]:
        lines.append(f"{row['report']} minus {result['models'][0]['report']}"
                     + (" (95 % paired bootstrap interval):" if result["bootstrap_resamples"]
                        else ":"))
        for r in rates:
            d = row["difference"][r]
            interval = ("  [{:+.3f}, {:+.3f}]".format(*d["interval_95"])
                        if "interval_95" in d else "")
            lines.append(f"  Pfa {r:g}: {d['pd']:+.3f}{interval}")
    if result.get("froc"):
        lines += _froc_table(result["froc"], width)
    return "\n".join(lines)


def _froc_table(froc: list[dict], width: int) -> list[str]:
    """Object sensitivity at false boxes per scan, from each report's metrics.json: where
    below (or above) the operating point one model finds more packets than another."""
    rates = list(froc[0]["points"])
    if any(list(m["points"]) != rates for m in froc):
        return ["(object sensitivity not compared: the reports read it at different rates)"]
    per_scan = "difference" in froc[0]
    lines = ["Object sensitivity (packets found) at false boxes per scan, every box counted "
             "down to the decoder's lowest score"
             + (" (from the reports' per-scan scores):" if per_scan
                else " (metrics.json; no interval):"),
             f"{'report':<{width}}         " + "  ".join(f"{r:>6}" for r in rates)]
    for m in froc:
        cells = ["     -" if m["points"][r]["sensitivity"] is None
                 else f"{m['points'][r]['sensitivity']:6.3f}" for r in rates]
        lines.append(f"{m['report']:<{width}}         " + "  ".join(cells))
    for m in froc[1:]:
        if not m.get("difference"):
            continue
        lines.append(f"{m['report']} minus {froc[0]['report']} (95 % paired bootstrap "
                     f"interval):")
        for r in rates:
            d = m["difference"][r]
            value = "     -" if d["sensitivity"] is None else f"{d['sensitivity']:+.3f}"
            lines.append(f"  {r} false boxes per scan: {value}  "
                         "[{:+.3f}, {:+.3f}]".format(*d["interval_95"]))
    return lines


def run(args: argparse.Namespace) -> int:
    from detector.errors import UsageError

    if any(not 0 <= r < 1 for r in args.pfa):
        raise UsageError(f"--pfa: rates must be in [0, 1), got {args.pfa}")
    if args.bootstrap < 0:
        raise UsageError(f"--bootstrap: expected a count >= 0, got {args.bootstrap}")
    result = compare(args.reports, args.pfa, args.bootstrap, min_difficulty=args.min_difficulty)
    print(format_table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0
