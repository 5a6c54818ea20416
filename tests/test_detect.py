"""``concealscan detect`` end to end: results.jsonl shape, ids, errors alarm, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
from model_fixtures import tiny_models
from toy_data import write_toy_set

KEYS = ["id", "scan", "kind", "status", "error", "alarm", "size_hw", "detections", "model",
        "time_ms"]


def detect(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "detector.cli", "detect", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def read_lines(out):
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("scans")
    write_toy_set(root, 2, 9)  # toy9_0000_{high,low,color}.png, toy9_0001_...
    (root / "annotations.json").unlink()
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    cv2.imwrite(str(root / "plain_gray.png"), np.tile(np.arange(64, dtype=np.uint8), (48, 1)))
    return root


def test_detect_writes_one_line_per_scan_in_the_documented_shape(tmp_path, folder):
    models = tiny_models()
    proc = detect(folder, "--out", tmp_path, "--model", models["dual"], "--model",
                  models["color"], "--min-score", "0.0")
    assert proc.returncode == 2, proc.stderr  # the broken file and the gray scan fail
    lines = {ln["id"]: ln for ln in read_lines(tmp_path)}
    assert set(lines) == {"toy9_0000", "toy9_0000_color", "toy9_0001", "toy9_0001_color",
                          "broken", "plain_gray"}
    for ln in lines.values():
        assert list(ln) == KEYS
    dual = lines["toy9_0000"]
    assert dual["kind"] == "dual" and dual["status"] == "ok" and dual["error"] is None
    assert dual["scan"].endswith("toy9_0000_high.png") and dual["size_hw"] == [160, 224]
    assert set(dual["model"]) == {"name", "version", "sha256"}
    scores = [d["score"] for d in dual["detections"]]
    assert scores == sorted(scores, reverse=True) and len(scores) > 0
    for d in dual["detections"]:
        assert list(d) == ["label", "score", "box", "alarm"] and d["alarm"] == (d["score"] >= 0.5)
        x1, y1, x2, y2 = d["box"]
        assert 0 <= x1 <= x2 <= 224 and 0 <= y1 <= y2 <= 160
    assert dual["alarm"] == any(d["alarm"] for d in dual["detections"])
    assert lines["toy9_0000_color"]["kind"] == "color"
    for bad in ("broken", "plain_gray"):  # unreadable, and a kind with no model: manual check
        assert lines[bad]["status"] == "error" and lines[bad]["alarm"] is True
        assert lines[bad]["error"]
    assert "no model for 'gray'" in lines["plain_gray"]["error"]
    assert (tmp_path / "overlays" / "toy9_0000.png").is_file()
    assert (tmp_path / "overlays" / "toy9_0001_color.png").is_file()
    assert "scans 6" in proc.stderr and "errors 2" in proc.stderr


def test_detect_exit_zero_when_all_processed_and_min_score_filters(tmp_path, folder):
    proc = detect(folder / "toy9_0001_color.png", "--out", tmp_path, "--model",
                  tiny_models()["color"], "--min-score", "1.0", "--threads", "1")
    assert proc.returncode == 0, proc.stderr
    (line,) = read_lines(tmp_path)
    assert line["detections"] == [] and line["alarm"] is False


@pytest.mark.parametrize("args", [["--min-score", "2"], ["--threads", "0"],
                                  ["--model", "model.pt"], ["--max-pixels", "-1"]])
def test_detect_usage_errors_exit_64(tmp_path, folder, args):
    proc = detect(folder, "--out", tmp_path, *args)
    assert proc.returncode == 64, proc.stderr


def test_inputs_called_alike_keep_their_own_overlays_and_reports(tmp_path):
    """``a/bag1.png``, ``b/bag1.png`` and ``a/BAG1.png`` are three scans: each gets its own id
    (``bag1``, ``bag1~2``, ...), overlay and DICOS report, none overwrites another's."""
    from conftest import colour_image, write_png

    for folder, name in (("a", "bag1"), ("b", "bag1"), ("a", "BAG1")):
        (tmp_path / folder).mkdir(exist_ok=True)
        write_png(tmp_path / folder / f"{name}.png", colour_image())
    out = tmp_path / "out"
    proc = detect(tmp_path / "a", tmp_path / "b", "--out", out, "--dicos-out", out / "tdr",
                  "--model", tiny_models()["color"])
    assert proc.returncode == 0, proc.stderr
    lines = read_lines(out)
    assert len({ln["id"] for ln in lines}) == 3 and len({ln["scan"] for ln in lines}) == 3
    assert len(list((out / "overlays").glob("*.png"))) == 3
    assert len(list((out / "tdr").glob("*.dcs"))) == 3
