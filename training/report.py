"""Evaluation report: the summary numbers, ROC and FROC plots, breakdowns, as files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from training.metrics import (
    DIFFICULTY_BINS,
    ScanRecord,
    best_difficulty,
    breakdown,
    coco_ap,
    false_alarm_causes,
    froc_at_rates,
    froc_curve,
    object_hits,
    operating_point_on,
    pd_by_best_difficulty,
    pd_pfa,
    roc,
    scan_froc_scores,
)


def summarise(records: list[ScanRecord], classes: list[str], threshold: float) -> dict:
    ap50, ap = coco_ap(records, classes)
    pd, pfa = pd_pfa(records, threshold)
    hits = np.concatenate([object_hits(r, threshold) for r in records] or [np.zeros(0, bool)])
    return {"scans": len(records), "positive_scans": sum(r.positive for r in records),
            "objects": int(len(hits)), "ap50": ap50, "ap50_95": ap, "threshold": threshold,
            "pd": pd, "pfa": pfa, "object_hit_rate": float(hits.mean()) if len(hits) else None,
            "by_difficulty_cnr": breakdown(records, threshold, "difficulty", DIFFICULTY_BINS),
            "pd_by_best_difficulty_cnr": pd_by_best_difficulty(records, threshold),
            "by_host": breakdown(records, threshold, "host"),
            "by_strategy": breakdown(records, threshold, "strategy"),
            "by_material": breakdown(records, threshold, "material"),
            "at_pfa_0.05_on_this_set": operating_point_on(records, 0.05),
            "object_sensitivity_at_false_boxes_per_scan": froc_at_rates(records),
            "false_alarms": false_alarm_causes(records, threshold)}


def json_text(summary: dict) -> str:
    """``summary`` as strict JSON: a value the set cannot give (Pd or Pfa without scans with /
    without packets, NaN in memory) is null, since NaN is no JSON and strict readers (jq,
    browsers) refuse the file."""
    def clean(value):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value

    return json.dumps(clean(summary), indent=2, allow_nan=False) + "\n"


def shown(value: float) -> str:
    """A summary number, or "n/a" where the set cannot give it: AP is -1 without ground truth,
    Pd and Pfa are NaN without scans with / without packets (metrics.json: -1 and null)."""
    return "n/a" if value is None or not value >= 0 else f"{value:.3f}"


def missing_note(positive: int, total: int, what: str = "scans") -> str:
    """What a set without packets, or without scans free of them, cannot measure."""
    if total and not positive:
        return "; n/a: no packets in this set"
    if positive == total and total:
        return f"; Pfa n/a: no {what} without packets in this set"
    return ""


def threshold_shown(s: dict) -> str:
    """``@threshold=`` and, where the model carried none, what it is instead (evaluate puts
    that in ``threshold_source``)."""
    source = f" ({s['threshold_source']})" if s.get("threshold_source") else ""
    return f"@threshold={s['threshold']:.3f}{source}"


def summary_line(s: dict) -> str:
    return (f"AP50={shown(s['ap50'])} AP50:95={shown(s['ap50_95'])} Pd={shown(s['pd'])} "
            f"Pfa={shown(s['pfa'])} {threshold_shown(s)} "
            f"(scans={s['scans']}, positive={s['positive_scans']}, objects={s['objects']}"
            f"{missing_note(s['positive_scans'], s['scans'])})")


def false_alarm_line(s: dict) -> str | None:
    """Where the alarms on scans without objects came from, when the set says (sim data)."""
    fa = s["false_alarms"]
    if not fa["benign_annotated"] or not fa["negative_scans"]:
        return None
    top = fa["top_alarm_of_negative_scans"]
    items = list(fa.get("top_alarm_items", {}).items())[:3]
    most = ("; most often on " + ", ".join(f"{k.split(': ', 1)[1]} {n}" for k, n in items)
            if items else "")
    return (f"false alarms: {fa['alarming_negative_scans']} of {fa['negative_scans']} "
            f"without objects alarm; top alarm on a benign look-alike {top['look_alike']}, "
            f"on another benign solid {top['benign_object']}, elsewhere {top['elsewhere']}"
            f"{most}")


def write_report(out: Path, records: list[ScanRecord], summary: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json_text(summary))
    _, pd, pfa = roc(records)
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.step(pfa, pd, where="post")
    ax.plot([summary["pfa"]], [summary["pd"]], "ro", label="operating point")
    ax.set(xlabel="Pfa (per scan)", ylabel="Pd (per scan)", title="ROC", xlim=(0, 1),
           ylim=(0, 1.02))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out / "roc.png", dpi=120)
    plt.close(fig)
    per_scan = [scan_froc_scores(r) for r in records]  # for the plot and per_scan.jsonl
    fps, sens = froc_curve(np.array([s for f, _ in per_scan for s in f], float),
                           np.array([s for _, x in per_scan for s in x], float),
                           len(records), np.linspace(0.99, 0.01, 50))
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(fps, sens, marker=".")
    ax.set(xlabel="false positives per scan", ylabel="object sensitivity", title="FROC",
           ylim=(0, 1.02))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "froc.png", dpi=120)
    plt.close(fig)
    with (out / "per_scan.jsonl").open("w") as f:
        for r, (found, false) in zip(records, per_scan, strict=True):
            f.write(json.dumps({"id": r.scan_id, "positive": r.positive,
                                "max_score": r.max_score, "objects": len(r.gt_boxes),
                                "best_difficulty": best_difficulty(r),
                                # what `concealscan compare` bootstraps the FROC points from:
                                # per object its best hitting box's score (null: none hits),
                                # and the scores of the boxes that hit no object
                                "object_scores": [s if np.isfinite(s) else None
                                                  for s in found],
                                "false_box_scores": sorted(false, reverse=True)}) + "\n")
