"""The ``concealscan`` command line: help, exit statuses, the ``check`` command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import colour_image, write_pair, write_png

from detector.cli import COMMANDS, main


def concealscan(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "detector.cli", *args],
                          capture_output=True, text=True, timeout=300)


def test_help_lists_every_subcommand():
    proc = concealscan("--help")
    assert proc.returncode == 0
    for name in COMMANDS:
        assert name in proc.stdout


@pytest.mark.parametrize("args", [[], ["no-such-command"], ["check"], ["check", "--bogus", "x"],
                                  ["check", ".", "--max-pixels", "0"]])
def test_usage_errors_exit_64(args, capsys):
    with pytest.raises(SystemExit) as stop:
        code = main(args)
        raise SystemExit(code)
    assert stop.value.code == 64


def test_each_command_has_help():
    for name in COMMANDS:
        proc = concealscan(name, "--help")
        assert proc.returncode == 0, f"{name}: {proc.stderr}"
        assert "usage: concealscan " + name in proc.stdout


def test_check_reports_kinds_and_exit_zero(tmp_path):
    write_pair(tmp_path, "bag1")
    write_png(tmp_path / "bag2.png", colour_image())
    proc = concealscan("check", str(tmp_path), "--json")
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert {r["id"]: r["kind"] for r in rows} == {"bag1": "dual", "bag2": "color"}
    assert rows[0]["size_hw"] == [60, 80]


def test_check_reads_what_detect_reads_ct_volumes_included(tmp_path):
    """`check` finds inputs as `detect` does: a CT volume (.npy with its sidecar) is checked
    as a volume, and a truncated one is an error (exit 2), not "0 scan(s)" or "not an image"."""
    import numpy as np

    hu = np.full((6, 16, 20), -1000.0, np.float32)
    hu[2:4, 4:12, 5:15] = 300.0  # a packet in air
    np.save(tmp_path / "vol.npy", hu)
    (tmp_path / "vol.json").write_text('{"voxel_mm": [2, 1, 1]}')
    proc = concealscan("check", str(tmp_path), "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (row,) = [json.loads(line) for line in proc.stdout.splitlines()]
    assert row["kind"] == "ct" and row["size_dhw"] == [6, 16, 20] and row["energies"] == 1
    data = (tmp_path / "vol.npy").read_bytes()
    (tmp_path / "vol.npy").write_bytes(data[: len(data) // 2])
    proc = concealscan("check", str(tmp_path))
    assert proc.returncode == 2 and "vol" in proc.stdout and "ERROR" in proc.stdout


def test_check_missing_file_is_reported_not_skipped(tmp_path):
    proc = concealscan("check", str(tmp_path / "gone.png"))
    assert proc.returncode == 2
    assert "gone" in proc.stdout and "file not found" in proc.stdout


def test_check_real_scans(real_scans):
    proc = concealscan("check", str(real_scans / "images"))
    assert proc.returncode == 0, proc.stdout
    assert "28 scan(s), 0 unreadable" in proc.stderr


def test_a_reader_that_goes_away_does_not_stop_the_command(tmp_path, monkeypatch):
    """``concealscan detect DIR | head``: once stdout's pipe is closed the command still does
    its work, writes every result and exits normally, without a traceback."""
    from model_fixtures import tiny_models

    class ClosedPipe:
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            raise BrokenPipeError(32, "Broken pipe")

    folder = tmp_path / "scans"
    folder.mkdir()
    for i in range(3):
        write_png(folder / f"s{i}_color.png", colour_image((60 + 8 * i, 80)))
    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    out = tmp_path / "out"
    code = main(["detect", str(folder), "--out", str(out), "--model",
                 str(tiny_models()["color"])])
    assert code == 0 and isinstance(sys.stdout, ClosedPipe)  # restored afterwards
    assert len((out / "results.jsonl").read_text().splitlines()) == 3
    assert main(["info", str(tiny_models()["color"])]) == 0


def test_the_version_is_written_in_one_place():
    """pip's version and `concealscan --version` are both detector.__version__ (pyproject.toml
    reads it): a bump in one place cannot leave them disagreeing."""
    import importlib.metadata

    from detector import __version__

    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "detector.__version__"}
    assert importlib.metadata.version("concealscan") == __version__
