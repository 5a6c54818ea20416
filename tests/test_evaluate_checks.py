"""``concealscan evaluate`` picks operating points the workstation can run: targets strictly
between 0 and 1, thresholds never below the score the workstation reports boxes from; and
says so plainly where a set has no packets."""

from __future__ import annotations

import json

import pytest
import torch
from model_fixtures import tiny_checkpoint
from toy_data import write_mixed_kind_set, write_toy_set

from detector.cli import EXIT_USAGE, main


@pytest.mark.parametrize("option, value", [
    ("--target-pfa", "1.5"), ("--target-pfa", "-0.1"), ("--target-pfa", "nan"),
    ("--target-pfa", "0"), ("--target-pd", "1"), ("--target-pd", "high"),
])
def test_targets_outside_zero_to_one_are_usage_errors(tmp_path, capsys, option, value):
    ckpt = tiny_checkpoint(tmp_path, "dual")
    before = ckpt.read_bytes()
    with pytest.raises(SystemExit) as stop:  # argparse's usage error
        main(["evaluate", "--model", str(ckpt), "--data", str(tmp_path / "a.json"), option,
              value])
    assert stop.value.code == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"argument {option}: expected a rate between 0 and 1 (not 0 or 1), got " \
           f"'{value}'" in err and "Traceback" not in err
    assert ckpt.read_bytes() == before


def test_a_threshold_below_the_reporting_floor_is_raised_to_it(tmp_path, capsys):
    """An untrained model scores everything near its prior (0.01): the threshold for the
    target would be below the 0.05 the workstation reports boxes from; 0.05 is stored, with
    the Pd and Pfa there, and a warning says why. No packet alarms there (Pd 0), so it is
    stored only with --allow-zero-pd: a model that never alarms is refused by default."""
    data = write_toy_set(tmp_path / "set", 6, 3)
    ckpt = tiny_checkpoint(tmp_path, "dual")
    before = ckpt.read_bytes()
    assert main(["evaluate", "--model", str(ckpt), "--data", str(data), "--target-pfa",
                 "0.5"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "alarm threshold 0.0500" in err and "not stored in" in err
    assert "no scan with objects of this set alarms (Pd 0)" in err and "--allow-zero-pd" in err
    assert ckpt.read_bytes() == before
    assert main(["evaluate", "--model", str(ckpt), "--data", str(data), "--target-pfa",
                 "0.5", "--allow-zero-pd", "--report", str(tmp_path / "rep")]) == 0
    out, err = capsys.readouterr()
    stored = torch.load(ckpt, weights_only=True)
    assert stored["alarm_threshold"] == pytest.approx(0.05)
    assert "raised to the workstation's reporting floor 0.05" in \
        stored["metrics"]["operating_point"]
    assert "alarm threshold 0.0500" in out and "Pd 0.000, Pfa 0.000 there" in out
    assert "below the 0.05 the workstation reports boxes from" in err
    assert "warning: " in err and "a model carrying it would never alarm on them" in err
    report = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert report["threshold"] == pytest.approx(0.05) and report["pfa"] == 0.0


def test_a_set_without_packets_says_so_instead_of_printing_minus_one_and_nan(tmp_path, capsys):
    data = write_toy_set(tmp_path / "set", 6, 3)
    coco = json.loads(data.read_text())
    (tmp_path / "set" / "neg.json").write_text(json.dumps({**coco, "annotations": []}))
    ckpt = tiny_checkpoint(tmp_path, "dual")
    assert main(["evaluate", "--model", str(ckpt), "--data", str(tmp_path / "set" / "neg.json"),
                 "--report", str(tmp_path / "rep")]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    assert line.startswith("AP50=n/a AP50:95=n/a Pd=n/a Pfa=0.000 @threshold=0.500")
    assert line.endswith("(scans=6, positive=0, objects=0; n/a: no packets in this set)")
    report = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert report["ap50"] == -1 and report["pd"] is None  # as documented: -1, null (no NaN)
    json.loads((tmp_path / "rep" / "metrics.json").read_text(), parse_constant=pytest.fail)


@pytest.mark.parametrize("positive, total, ap, pd, pfa, shown", [
    (0, 5, -1.0, float("nan"), 0.2, "AP3D@0.25=n/a Pd=n/a Pfa=0.200 @threshold=0.500 (volumes=5, "
                                    "positive=0, objects=0; n/a: no packets in this set)"),
    (5, 5, 0.5, 0.4, float("nan"), "AP3D@0.25=0.500 Pd=0.400 Pfa=n/a @threshold=0.500 (volumes=5, "
                                   "positive=5, objects=0; Pfa n/a: no volumes without packets "
                                   "in this set)"),
    (2, 5, 0.5, 0.5, 0.0, "AP3D@0.25=0.500 Pd=0.500 Pfa=0.000 @threshold=0.500 (volumes=5, "
                          "positive=2, objects=0)"),
])
def test_ct_summary_line_says_what_the_set_cannot_measure(positive, total, ap, pd, pfa, shown):
    from training.ct_eval import summary_line_ct

    assert summary_line_ct({"ap3d_25": ap, "pd": pd, "pfa": pfa, "threshold": 0.5,
                            "volumes": total, "positive_volumes": positive,
                            "objects": 0}) == shown


def test_scans_of_another_kind_left_out_are_named_on_stderr_and_in_the_report(tmp_path,
                                                                                 capsys):
    data = write_mixed_kind_set(tmp_path / "set")
    ckpt = tiny_checkpoint(tmp_path, "color")
    assert main(["evaluate", "--model", str(ckpt), "--data", str(data), "--report",
                 str(tmp_path / "rep")]) == 0
    out, err = capsys.readouterr()
    line = f"{data}: 2 of 6 scans left out (gray: 2): a 'color' model reads color scans only"
    assert f"note: {line}" in err and "scans=4," in out
    report = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert report["left_out"] == [line] and report["scans"] == 4


@pytest.mark.parametrize("fmt", ["pt", "onnx"])
def test_a_model_without_a_threshold_is_judged_at_a_default_that_says_so(tmp_path, capsys, fmt):
    data = write_toy_set(tmp_path / "set", 4, 3)
    model = tiny_checkpoint(tmp_path, "dual", threshold=None)
    if fmt == "onnx":
        assert main(["export", str(model), "--out", str(tmp_path / "m.onnx")]) == 0
        model = tmp_path / "m.onnx"
    capsys.readouterr()
    assert main(["evaluate", "--model", str(model), "--data", str(data), "--report",
                 str(tmp_path / "rep")]) == 0
    out = capsys.readouterr().out
    assert "@threshold=0.500 (default: none stored; pick one with --target-pfa) (scans=4," in out
    assert out.count("default") == 1
    report = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert report["threshold"] == 0.5 and report["threshold_source"].startswith("default")
