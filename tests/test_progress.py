"""Progress on stderr: a bar on a terminal, plain lines in a log file (detector.report)."""

import sys

from detector.report import Progress, progress


def test_lines_where_stderr_is_not_a_terminal(capsys):
    assert not sys.stderr.isatty()
    with Progress(4, "simulating scans", "scan", every=0) as bar:
        for _ in range(4):
            bar.update()
    lines = capsys.readouterr().err.splitlines()
    # one line per step but the last (the work is done then), no carriage returns
    assert [line.split(",")[0] for line in lines] == [
        "simulating scans: 1/4", "simulating scans: 2/4", "simulating scans: 3/4"]
    assert all(" scan/s, about " in line and line.endswith(" min left") for line in lines)


def test_no_line_before_the_interval_and_none_when_disabled(capsys):
    with Progress(3, "evaluating", "scan") as bar:  # the default: a line a minute
        bar.update(2)
    with Progress(3, "evaluating", "scan", enabled=False, every=0) as bar:
        bar.update()
    assert capsys.readouterr().err == ""


def test_progress_over_items_counts_finished_items(capsys, monkeypatch):
    monkeypatch.setattr("detector.report.LINE_EVERY", 0.0)
    assert list(progress(["a", "b", "c"], "detecting", "scan")) == ["a", "b", "c"]
    assert capsys.readouterr().err.splitlines()[0].startswith("detecting: 1/3, ")
    assert list(progress(["a"], "detecting", "scan")) == ["a"]  # one item: nothing shown
    assert capsys.readouterr().err == ""
