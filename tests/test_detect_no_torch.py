"""The workstation boundary with a real detection: torch blocked, a real scan, a bundled model."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from model_fixtures import tiny_models

from detector.results import bundled_models

BLOCK = "import sys; sys.modules['torch'] = None; sys.modules['torchvision'] = None\n"


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK + textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=120)


def test_bundled_models_are_present_and_verified():
    models = bundled_models()
    assert {"dual", "color"} <= set(models), models
    from detector.model import OnnxModel

    for kind, path in models.items():
        assert OnnxModel(path).info.kind == kind


@pytest.mark.parametrize("name", ["sixray_P00117.png", "gdxray_B0046_0004.png"])
def test_detect_a_real_scan_without_torch(real_scans, tmp_path, name):
    scan = real_scans / "images" / name
    if not scan.is_file():
        pytest.skip(f"{name} not in ../shared/real_scans")
    # The gray GDXray scan needs a gray model; none is bundled, so use a tiny export.
    model = tiny_models()["gray"] if name.startswith("gdxray") else bundled_models()["color"]
    proc = _run(f"""
        import detector
        from detector.inference import Detector
        from detector.overlay import render_overlay
        scan = detector.read_scan({str(scan)!r})
        det = Detector({str(model)!r}).detect(scan)
        render_overlay(scan, det)
        assert not any(m == "training" or m.startswith("training.") for m in sys.modules)
        assert sys.modules["torch"] is None
        print(scan.kind, det.size_hw, len(det.scores), det.alarm)
    """)
    assert proc.returncode == 0, proc.stderr
    kind, *_ = proc.stdout.split()
    assert kind in ("color", "gray")
