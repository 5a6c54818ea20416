"""``concealscan evaluate`` picks operating points the workstation can run: targets strictly
between 0 and 1, thresholds never below the score the workstation reports boxes from; and
says so plainly where a set has no packets."""

from __future__ import annotations

import json

import pytest
import torch
from model_fixtures import tiny_checkpoint
from toy_data import write_toy_set

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
    the Pd and Pfa there, and a warning says why."""
    data = write_toy_set(tmp_path / "set", 6, 3)
    ckpt = tiny_checkpoint(tmp_path, "dual")
    assert main(["evaluate", "--model", str(ckpt), "--data", str(data), "--target-pfa",
                 "0.5", "--report", str(tmp_path / "rep")]) == 0
    out, err = capsys.readouterr()
    stored = torch.load(ckpt, weights_only=True)
    assert stored["alarm_threshold"] == pytest.approx(0.05)
    assert "raised to the workstation's reporting floor 0.05" in \
        stored["metrics"]["operating_point"]
    assert "alarm threshold 0.0500" in out and "Pd 0.000, Pfa 0.000 there" in out
    assert "below the 0.05 the workstation reports boxes from" in err
    report = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert report["threshold"] == pytest.approx(0.05) and report["pfa"] == 0.0
