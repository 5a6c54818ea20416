"""Per-scan Pd/Pfa, operating-point choice, hits and breakdowns on hand-made records."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training.metrics import (
    CAUSES,
    ScanRecord,
    breakdown,
    coco_ap,
    false_alarm_causes,
    froc,
    froc_at_rates,
    object_hits,
    operating_point_on,
    pd_at_pfa,
    pd_by_best_difficulty,
    pd_pfa,
    threshold_for,
)


def rec(gt, preds, objects=None, sid="s"):
    gt = np.asarray(gt, np.float32).reshape(-1, 4)
    boxes = np.asarray([p[:4] for p in preds], np.float32).reshape(-1, 4)
    scores = np.asarray([p[4] for p in preds], np.float32)
    return ScanRecord(sid, (100, 100), gt, np.zeros(len(gt), np.int64), boxes, scores,
                      np.zeros(len(scores), np.int64), objects or [{} for _ in gt])


BOX = [10, 10, 30, 30]
RECORDS = [
    rec([BOX], [[10, 10, 30, 30, 0.9]]),          # positive, found
    rec([BOX], [[60, 60, 80, 80, 0.6]]),          # positive, alarm elsewhere
    rec([BOX], []),                               # positive, missed
    rec([], [[0, 0, 5, 5, 0.7]]),                 # negative, false alarm at <= 0.7
    rec([], [[0, 0, 5, 5, 0.2]]),
    rec([], []),
]


@pytest.mark.parametrize("thresh, pd, pfa", [
    (0.95, 0 / 3, 0 / 3), (0.85, 1 / 3, 0 / 3), (0.65, 1 / 3, 1 / 3), (0.55, 2 / 3, 1 / 3),
    (0.1, 2 / 3, 2 / 3),
])
def test_pd_pfa_table(thresh, pd, pfa):
    assert pd_pfa(RECORDS, thresh) == pytest.approx((pd, pfa))


def test_pd_pfa_without_negatives_is_nan():
    pd, pfa = pd_pfa(RECORDS[:3], 0.5)
    assert pd == pytest.approx(2 / 3) and math.isnan(pfa)


@pytest.mark.parametrize("target_pfa, expected", [(0.0, 0.9), (0.34, 0.6), (1.0, 0.0)])
def test_threshold_for_target_pfa(target_pfa, expected):
    thr = threshold_for(RECORDS, target_pfa=target_pfa)
    assert thr == pytest.approx(expected)
    assert pd_pfa(RECORDS, thr)[1] <= target_pfa


def test_threshold_for_a_saturated_model_is_capped_at_one():
    """Scans without objects at 1.0: no threshold reaches the Pfa; 1.0 (storable), with the
    Pfa there above the target for the caller to report."""
    saturated = [rec([], [[0, 0, 5, 5, 1.0]], sid=f"n{i}") for i in range(3)]
    thr = threshold_for(RECORDS + saturated, target_pfa=0.05)
    assert thr == 1.0 and pd_pfa(RECORDS + saturated, thr)[1] > 0.05


def test_threshold_for_target_pd_and_errors():
    assert threshold_for(RECORDS, target_pd=0.6) == pytest.approx(0.6)
    with pytest.raises(ValueError, match="exactly one"):
        threshold_for(RECORDS)
    with pytest.raises(ValueError, match="without objects"):
        threshold_for(RECORDS[:3], target_pfa=0.1)


LOW = [  # a weak model: every score under the workstation's reporting floor (0.05)
    rec([BOX], [[10, 10, 30, 30, 0.04]], sid="p1"),
    rec([BOX], [[10, 10, 30, 30, 0.02]], sid="p2"),
    rec([], [[0, 0, 5, 5, 0.03]], sid="n1"),
    rec([], [[0, 0, 5, 5, 0.01]], sid="n2"),
]


@pytest.mark.parametrize("records, target, threshold, wanted, pd, pfa, note", [
    (RECORDS, {"target_pfa": 0.34}, 0.6, 0.6, 2 / 3, 1 / 3, None),
    (RECORDS, {"target_pd": 0.6}, 0.6, 0.6, 2 / 3, 1 / 3, None),
    # the target needs 0.02: the workstation never shows a box under 0.05, so 0.05 it is
    (LOW, {"target_pfa": 0.5}, 0.05, 0.02, 0.0, 0.0,
     "the target Pfa 0.5 needs threshold 0.0200, below the 0.05"),
    (LOW, {"target_pd": 0.5}, 0.05, 0.04, 0.0, 0.0, "the target Pd 0.5 is not met"),
    (RECORDS + [rec([], [[0, 0, 5, 5, 1.0]], sid="sat")], {"target_pfa": 0.05}, 1.0, 1.0,
     0.0, 1 / 4, "the target Pfa 0.05 is not met on this set: Pd 0.000, Pfa 0.250"),
    # Pfa 0 wanted, and a packet-free scan outscores every packet: met, but nothing alarms
    (RECORDS[1:] + [rec([], [[0, 0, 5, 5, 0.95]], sid="top")], {"target_pfa": 0.05}, 1.0,
     1.0, 0.0, 0.0, "at threshold 1.0000 no scan with objects of this set alarms (Pd 0)"),
])
def test_alarm_threshold_is_never_below_the_reporting_floor(records, target, threshold, wanted,
                                                            pd, pfa, note):
    from training.metrics import REPORT_FLOOR, alarm_threshold_for

    assert REPORT_FLOOR == 0.05  # detect's default --min-score
    point = alarm_threshold_for(records, **target)
    assert point.threshold == pytest.approx(threshold) and point.wanted == pytest.approx(wanted)
    assert (point.pd, point.pfa) == pytest.approx((pd, pfa))
    assert (point.pd, point.pfa) == pytest.approx(pd_pfa(records, point.threshold))
    assert point.note is None if note is None else note in point.note


def test_hits_froc_breakdown_and_ap():
    assert object_hits(RECORDS[0], 0.5).tolist() == [True]
    assert object_hits(RECORDS[1], 0.5).tolist() == [False]
    assert object_hits(RECORDS[5], 0.5).tolist() == []
    fps, sens = froc(RECORDS, np.array([0.95, 0.5]))
    assert sens.tolist() == pytest.approx([0.0, 1 / 3])
    assert fps.tolist() == pytest.approx([0, 2 / 6])
    recs = [rec([BOX], [[10, 10, 30, 30, 0.9]], [{"difficulty": 2.0, "host": "book"}]),
            rec([BOX], [], [{"difficulty": 50.0, "host": "book"}])]
    got = breakdown(recs, 0.5, "difficulty", (3.0, 10.0, 30.0))
    assert got == {"<3": {"objects": 1, "hit_rate": 1.0}, ">=30": {"objects": 1, "hit_rate": 0.0}}
    assert breakdown(recs, 0.5, "host") == {"book": {"objects": 2, "hit_rate": 0.5}}
    ap50, _ = coco_ap(recs, ["concealed_organic"])
    assert ap50 == pytest.approx(0.5, abs=0.02)
    assert coco_ap([rec([], [])], ["concealed_organic"]) == (-1.0, -1.0)


def test_froc_at_rates_sweeps_every_score_and_agrees_with_froc():
    """Object sensitivity at 0.1 / 0.3 / 1 false boxes per scan: the lowest threshold whose
    false boxes stay within the rate; past the last box, all boxes count. At each threshold
    it returns, `froc` counts the same."""
    records = RECORDS + [rec([BOX], [[10, 10, 30, 30, 0.3]], sid="faint")]  # found at 0.3
    got = froc_at_rates(records, (0.1, 0.3, 1.0))
    assert list(got) == ["0.1", "0.3", "1"]
    assert got["0.1"]["sensitivity"] == pytest.approx(1 / 4)  # above the 0.7 false box
    assert got["0.1"]["false_boxes_per_scan"] == 0
    assert got["0.3"]["sensitivity"] == pytest.approx(2 / 4)  # 0.7 and 0.6 allowed, not 0.2
    assert got["0.3"]["false_boxes_per_scan"] == pytest.approx(2 / 7)
    assert got["1"] == {"sensitivity": pytest.approx(2 / 4), "threshold": pytest.approx(0.2),
                        "false_boxes_per_scan": pytest.approx(3 / 7)}
    for point in got.values():
        fps, sens = froc(records, np.array([point["threshold"]]))
        assert (fps[0], sens[0]) == pytest.approx((point["false_boxes_per_scan"],
                                                   point["sensitivity"]))
    assert froc_at_rates([rec([], [])], (0.5,))["0.5"]["sensitivity"] is None


def test_operating_point_on_the_set_itself():
    got = operating_point_on(RECORDS, 0.34)
    assert got == {"threshold": pytest.approx(0.6), "pd": pytest.approx(2 / 3),
                   "pfa": pytest.approx(1 / 3)}
    assert operating_point_on([rec([BOX], [[10, 10, 30, 30, 0.9]])]) is None


LOOK = [100, 100, 300, 140]   # a long benign look-alike (a chocolate bar)
SOLID = [400, 400, 440, 440]  # another benign solid (a battery)


def causes_rec(gt, preds):
    r = rec(gt, preds)
    r.lookalike_boxes = np.array([LOOK], np.float32)
    r.benign_boxes = np.array([SOLID], np.float32)
    return r


@pytest.mark.parametrize("gt, preds, detections, top", [
    ([], [], (0, 0, 0), None),
    # on one end of the bar: IoU 0.2 with it, but wholly inside it
    ([], [[100, 100, 140, 140, 0.8]], (1, 0, 0), "look_alike"),
    ([], [[405, 405, 445, 445, 0.8]], (0, 1, 0), "benign_object"),
    ([], [[0, 0, 20, 20, 0.8]], (0, 0, 1), "elsewhere"),
    ([], [[90, 90, 95, 95, 0.4]], (0, 0, 0), None),                       # below threshold
    # the scan's top alarm decides its cause; every false detection counts
    ([], [[0, 0, 20, 20, 0.6], [100, 100, 140, 140, 0.9]], (1, 0, 1), "look_alike"),
    # a detection that hits the packet is not false; on a scan with objects, no scan cause
    ([BOX], [[10, 10, 30, 30, 0.9], [400, 400, 440, 440, 0.7]], (0, 1, 0), None),
    # half of the smaller box inside the bar is enough, less is not
    ([], [[80, 100, 120, 140, 0.8]], (1, 0, 0), "look_alike"),
    ([], [[79, 100, 119, 140, 0.8]], (0, 0, 1), "elsewhere"),
])
def test_false_alarm_causes_table(gt, preds, detections, top):
    got = false_alarm_causes([causes_rec(gt, preds)], 0.5)
    assert tuple(got["false_detections"][c] for c in CAUSES) == detections
    assert got["false_detections_per_scan"] == sum(detections)
    assert got["negative_scans"] == (0 if gt else 1)
    assert got["alarming_negative_scans"] == (top is not None)
    assert got["top_alarm_of_negative_scans"] == {c: int(c == top) for c in CAUSES}
    assert got["benign_annotated"]


def test_false_alarm_causes_name_the_items_top_alarms_sit_on():
    """``top_alarm_items``: what each alarming packet-free scan's top alarm sits on, counted
    by item (a mixture named by its largest share first), most frequent first."""
    from training.metrics import material_name

    assert material_name({"copper": 0.38, "pvc": 0.62}) == "pvc+copper"
    assert material_name("abs") == "abs" and material_name(None) == "?"
    records = []
    for pred in ([405, 405, 445, 445, 0.8], [100, 100, 140, 140, 0.9],
                 [405, 405, 445, 445, 0.7], [0, 0, 20, 20, 0.9]):
        r = causes_rec([], [pred])
        r.lookalike_names, r.benign_names = ["coffee brick"], ["pvc+copper"]
        records.append(r)
    got = false_alarm_causes(records, 0.5)
    assert got["top_alarm_items"] == {"benign_object: pvc+copper": 2,
                                      "look_alike: coffee brick": 1}
    assert list(got["top_alarm_items"])[0] == "benign_object: pvc+copper"


def test_false_alarm_causes_without_benign_annotations():
    got = false_alarm_causes(RECORDS, 0.5)
    assert got["false_detections"] == {"look_alike": 0, "benign_object": 0, "elsewhere": 2}
    assert got["top_alarm_of_negative_scans"]["elsewhere"] == 1
    assert got["negative_scans"] == 3 and not got["benign_annotated"]
    assert false_alarm_causes([], 0.5)["false_detections_per_scan"] == 0


def test_false_alarm_causes_in_3d():
    from detector.ct_fuse import iou_3d

    gt = np.array([[0, 0, 0, 10, 10, 10]], np.float32)
    look = np.array([[50, 50, 0, 90, 60, 40]], np.float32)
    r = ScanRecord("v", (64, 64), gt, np.zeros(1, np.int64),
                   np.array([[0, 0, 0, 10, 10, 9], [50, 50, 0, 60, 60, 10],
                             [20, 20, 20, 30, 30, 30]], np.float32),
                   np.array([0.9, 0.8, 0.7], np.float32), np.zeros(3, np.int64),
                   lookalike_boxes=look, benign_boxes=np.zeros((0, 6), np.float32))
    got = false_alarm_causes([r], 0.5, 0.25, iou_3d)
    assert got["false_detections"] == {"look_alike": 1, "benign_object": 0, "elsewhere": 1}
    assert got["negative_scans"] == 0 and got["benign_annotated"]


# negatives 0.9 0.8 0.7 0.6 0.5 0.4 0.3 0.2 0.1 0.0 (10); positives 0.95 0.85 0.75 0.65 0.05
EQ_SCORES = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0, 0.95, 0.85, 0.75, 0.65, 0.05]
EQ_POSITIVE = [False] * 10 + [True] * 5


@pytest.mark.parametrize("pfa, expected", [
    (0.0, (0.2, 0.0)),    # none may alarm: above 0.9, only 0.95
    (0.05, (0.2, 0.0)),   # floor(0.5) = 0
    (0.1, (0.4, 0.1)),    # one may: above 0.8 -> 0.95, 0.85
    (0.25, (0.6, 0.2)),   # floor(2.5) = 2: above 0.7
    (0.3, (0.8, 0.3)),    # floor(3.0000000000000004 or 2.9999999999999996) = 3: above 0.6
    (0.95, (1.0, 0.9)),   # nine may: above 0.0 -> all five
])
def test_pd_at_equal_pfa_table(pfa, expected):
    assert pd_at_pfa(np.array(EQ_SCORES), np.array(EQ_POSITIVE), pfa) == pytest.approx(expected)


def test_pd_at_equal_pfa_matches_the_fitted_operating_point():
    """The array form agrees with `operating_point_on` (records, threshold_for) on random sets."""
    rng = np.random.default_rng(5)
    for _ in range(20):
        n = 60
        positive = rng.random(n) < 0.5
        scores = np.round(rng.random(n) + 0.3 * positive, 3).clip(0, 1)
        records = [rec([[0, 0, 10, 10]] if p else [], [[0, 0, 10, 10, s]], sid=str(i))
                   for i, (p, s) in enumerate(zip(positive, scores, strict=True))]
        for rate in (0.0, 0.05, 0.1, 0.3):
            point = operating_point_on(records, rate)
            assert pd_at_pfa(scores, positive, rate) == pytest.approx(
                (point["pd"], point["pfa"]), abs=1e-6)


def test_pd_by_best_difficulty_groups_scans_by_their_most_visible_object():
    box = [0, 0, 10, 10]
    records = [rec([box, box], [[*box, 0.9]], [{"difficulty": 2.0}, {"difficulty": 40.0}]),
               rec([box], [[*box, 0.2]], [{"difficulty": 1.0}]),
               rec([box], [[*box, 0.6]], [{"difficulty": 2.5}]),
               rec([box], [[*box, 0.9]], [{"difficulty": "hard"}]),  # not a number: left out
               rec([], [[*box, 0.9]])]  # no objects: not a Pd scan
    assert pd_by_best_difficulty(records, 0.5) == {
        "<3": {"scans": 2, "pd": 0.5}, ">=30": {"scans": 1, "pd": 1.0}}


def _report(folder, scores, positive, ids=None, ap50=0.5, difficulty=None, froc=None):
    import json

    folder.mkdir(parents=True)
    ids = ids or [f"s{i}" for i in range(len(scores))]
    extra = [{} if difficulty is None else {"best_difficulty": d if p else None}
             for d, p in zip(difficulty or positive, positive, strict=True)]
    (folder / "per_scan.jsonl").write_text("".join(
        json.dumps({"id": i, "positive": p, "max_score": s, "objects": int(p), **e}) + "\n"
        for i, s, p, e in zip(ids, scores, positive, extra, strict=True)))
    metrics = {"ap50": ap50} | ({} if froc is None else
                                {"object_sensitivity_at_false_boxes_per_scan": froc})
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return folder


def test_compare_shows_object_sensitivity_at_false_boxes_when_every_report_has_it(
        tmp_path, capsys):
    """Where one model finds more packets than another below its operating point: the
    reports' FROC points side by side; left out when a report lacks them or with
    --min-difficulty (the points count every scan)."""
    import json

    from detector.cli import main

    def points(values):
        return {r: {"sensitivity": v, "threshold": 0.5, "false_boxes_per_scan": 0.1}
                for r, v in zip(["0.1", "1"], values, strict=True)}

    seen = [5.0] * len(EQ_SCORES)  # every packet's difficulty (CNR)
    a = _report(tmp_path / "a", EQ_SCORES, EQ_POSITIVE, froc=points([0.25, 0.5]),
                difficulty=seen)
    b = _report(tmp_path / "b", EQ_SCORES, EQ_POSITIVE, froc=points([0.375, None]),
                difficulty=seen)
    assert main(["compare", str(a), str(b), "--bootstrap", "0",
                 "--json", str(tmp_path / "c.json")]) == 0
    out = capsys.readouterr().out
    assert "Object sensitivity (packets found) at false boxes per scan" in out
    assert " 0.250   0.500" in out and " 0.375       -" in out, out
    froc = json.loads((tmp_path / "c.json").read_text())["froc"]
    assert [m["points"]["0.1"]["sensitivity"] for m in froc] == [0.25, 0.375]
    old = _report(tmp_path / "old", EQ_SCORES, EQ_POSITIVE)
    assert main(["compare", str(a), str(old), "--bootstrap", "0"]) == 0
    assert "Object sensitivity" not in capsys.readouterr().out
    assert main(["compare", str(a), str(b), "--bootstrap", "0", "--min-difficulty", "3"]) == 0
    out = capsys.readouterr().out
    assert "Pd at equal Pfa" in out and "Object sensitivity" not in out


def test_compare_cli_reports_pd_at_equal_pfa_with_bootstrap_intervals(tmp_path, capsys):
    import json

    from detector.cli import main

    a = _report(tmp_path / "a", EQ_SCORES, EQ_POSITIVE)
    better = [s + 0.2 * p for s, p in zip(EQ_SCORES, EQ_POSITIVE, strict=True)]
    order = list(range(15))[::-1]  # rows in another order: matched by id
    b = _report(tmp_path / "b", [better[i] for i in order], [EQ_POSITIVE[i] for i in order],
                ids=[f"s{i}" for i in order], ap50=0.7)
    assert main(["compare", str(a), str(b), "--pfa", "0.1", "0.25", "--bootstrap", "300",
                 "--json", str(tmp_path / "c.json")]) == 0
    out = capsys.readouterr().out
    assert "Pd at equal Pfa on 15 scans (5 with objects, 10 without" in out
    result = json.loads((tmp_path / "c.json").read_text())
    pa, pb = (m["pd"] for m in result["models"])
    assert pa == {"0.1": 0.4, "0.25": 0.6}
    assert pb == {"0.1": 0.8, "0.25": 0.8}  # 1.15 1.05 0.95 0.85 0.25 vs negatives
    diff = result["models"][1]["difference"]["0.1"]
    assert diff["pd"] == pytest.approx(0.4)
    lo, hi = diff["interval_95"]
    assert lo <= 0.4 <= hi and lo >= 0  # never worse on any resample: every score rose
    assert "+0.400" in out and "95 % paired bootstrap interval" in out


def test_compare_cli_refuses_reports_of_different_sets(tmp_path, capsys):
    from detector.cli import main

    a = _report(tmp_path / "a", EQ_SCORES, EQ_POSITIVE)
    b = _report(tmp_path / "b", EQ_SCORES, EQ_POSITIVE, ids=[f"t{i}" for i in range(15)])
    assert main(["compare", str(a), str(b)]) == 64
    assert "not the same scans" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["compare", str(a), str(tmp_path / "empty")]) == 64
    assert "empty: not an evaluate report" in capsys.readouterr().err
    bad = _report(tmp_path / "bad", EQ_SCORES, EQ_POSITIVE)
    (bad / "per_scan.jsonl").write_text('{"id": "s0"}\n')
    assert main(["compare", str(a), str(bad)]) == 64
    assert "per_scan.jsonl: line 1: not a report row" in capsys.readouterr().err


def test_compare_min_difficulty_counts_only_visible_objects(tmp_path, capsys):
    """``--min-difficulty 3``: scans whose best object is fainter drop out of Pd; every
    negative stays, so the thresholds do not move."""
    import json

    from detector.cli import main

    # positives 0.95 0.85 0.75 0.65 0.05 with best CNR 50, 2, 40, 1, 30
    difficulty = [None] * 10 + [50.0, 2.0, 40.0, 1.0, 30.0]
    a = _report(tmp_path / "a", EQ_SCORES, EQ_POSITIVE, difficulty=difficulty)
    assert main(["compare", str(a), "--pfa", "0.1", "--min-difficulty", "3", "--bootstrap",
                 "0", "--json", str(tmp_path / "c.json")]) == 0
    result = json.loads((tmp_path / "c.json").read_text())
    assert (result["with_objects"], result["without_objects"]) == (3, 10)
    assert result["models"][0]["pd"]["0.1"] == pytest.approx(1 / 3)  # 0.95 only above 0.8
    assert "3 with objects, counting only those whose best object has difficulty >= 3" in \
        capsys.readouterr().out
    old = _report(tmp_path / "old", EQ_SCORES, EQ_POSITIVE)
    assert main(["compare", str(old), "--min-difficulty", "3"]) == 64
    assert "no best_difficulty" in capsys.readouterr().err


def _random_records(rng, n=60, shift=0.0):
    """Scans with 0-2 packets, each found (or not) by a box of random score, plus false
    boxes; ``shift`` raises the found boxes' scores (a better model)."""
    records = []
    for k in range(n):
        gt = [[20.0 + 60 * j, 20.0, 60.0 + 60 * j, 60.0] for j in range(int(rng.integers(0, 3)))]
        preds = [g + [min(1.0, float(rng.random()) + shift)] for g in gt if rng.random() < 0.7]
        preds += [[300.0, 300.0 + 10 * j, 340.0, 340.0 + 10 * j, float(rng.random()) * 0.8]
                  for j in range(int(rng.integers(0, 4)))]
        objects = [{"difficulty": 2.0 + 4 * j} for j in range(len(gt))]  # CNR 2 or 6
        records.append(rec(gt, preds, objects, sid=f"scan{k:03d}"))
    return records


def test_compare_bootstraps_the_froc_points_from_the_reports_per_scan_scores(tmp_path, capsys):
    """The report writes each scan's FROC scores; compare recomputes the points from them
    (equal to metrics.json's), with a paired interval on the difference to the first report
    (zero width for the same report twice), and on --min-difficulty's scans too."""
    import json

    from detector.cli import main
    from training.report import summarise, write_report

    rng = np.random.default_rng(0)
    base, better = _random_records(rng), _random_records(np.random.default_rng(0), shift=0.3)
    for name, records in (("a", base), ("b", better), ("a2", base)):
        write_report(tmp_path / name, records, summarise(records, ["concealed_organic"], 0.5))
    row = json.loads((tmp_path / "a" / "per_scan.jsonl").read_text().splitlines()[0])
    assert {"object_scores", "false_box_scores"} <= set(row)
    assert main(["compare", *(str(tmp_path / n) for n in ("a", "b", "a2")), "--bootstrap",
                 "300", "--json", str(tmp_path / "c.json")]) == 0
    out = capsys.readouterr().out
    assert "(from the reports' per-scan scores)" in out
    assert "0.1 false boxes per scan:" in out, out
    froc = json.loads((tmp_path / "c.json").read_text())["froc"]
    for m, name in zip(froc, ("a", "b", "a2"), strict=True):
        own = json.loads((tmp_path / name / "metrics.json").read_text())
        for rate, point in own["object_sensitivity_at_false_boxes_per_scan"].items():
            assert m["points"][rate]["sensitivity"] == pytest.approx(point["sensitivity"])
    assert froc[2]["difference"]["0.5"] == {"sensitivity": 0.0, "interval_95": [0.0, 0.0]}
    gain = froc[1]["difference"]["0.5"]
    assert gain["sensitivity"] > 0 and gain["interval_95"][0] <= gain["sensitivity"] \
        <= gain["interval_95"][1]
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--bootstrap", "50",
                 "--min-difficulty", "3", "--json", str(tmp_path / "d.json")]) == 0
    kept = json.loads((tmp_path / "d.json").read_text())
    assert kept["with_objects"] < sum(r.positive for r in base)
    assert "interval_95" in kept["froc"][1]["difference"]["0.5"]
    capsys.readouterr()
    # an older report (no per-scan scores) falls back to metrics.json's points, no interval
    old = tmp_path / "old"
    old.mkdir()
    (old / "metrics.json").write_text((tmp_path / "a" / "metrics.json").read_text())
    with (old / "per_scan.jsonl").open("w") as f:
        for line in (tmp_path / "a" / "per_scan.jsonl").read_text().splitlines():
            r = json.loads(line)
            f.write(json.dumps({k: r[k] for k in ("id", "positive", "max_score")}) + "\n")
    assert main(["compare", str(tmp_path / "b"), str(old), "--bootstrap", "50"]) == 0
    out = capsys.readouterr().out
    assert "(metrics.json; no interval)" in out and "false boxes per scan:" not in out
