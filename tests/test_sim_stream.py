"""The on-the-fly simulation stream for training."""

from __future__ import annotations

import itertools
import subprocess
import sys

import numpy as np
import pytest

from training.sim.stream import SimSample, SimStream

CONFIG = "configs/synth/small.yaml"


@pytest.fixture(scope="module")
def stream():
    return SimStream(CONFIG, seed=4)


def test_sample_layout(stream):
    s = stream[0]
    assert isinstance(s, SimSample)
    h, w = s.att_high.shape
    assert s.att_high.dtype == s.att_low.dtype == s.gray_att.dtype == np.float32
    assert s.color.shape == (h, w, 3) and s.color.dtype == np.uint8
    assert s.boxes_xyxy.shape == (len(s.annotations), 4)
    assert s.image["scan_id"] == "synth_000000" and s.image["height"] == h


def test_deterministic_per_seed_and_index(stream):
    a, b, other = stream[3], SimStream(CONFIG, seed=4)[3], stream[2]
    assert np.array_equal(a.att_high, b.att_high) and np.array_equal(a.color, b.color)
    assert not np.array_equal(a.att_high, other.att_high)  # (False for other shapes too)


def test_boxes_match_annotations_and_stay_inside():
    stream = SimStream(CONFIG, seed=1)
    found = 0
    for s in itertools.islice(stream, 6):
        h, w = s.att_high.shape
        for box, ann in zip(s.boxes_xyxy, s.annotations, strict=True):
            x, y, bw, bh = ann["bbox"]
            assert list(box) == [x, y, x + bw, y + bh]
            assert 0 <= box[0] < box[2] <= w and 0 <= box[1] < box[3] <= h
            found += 1
    assert found >= 1


def test_attenuation_is_what_the_files_would_give(stream):
    s = stream[1]
    counts = np.rint(np.exp(-s.att_high.astype(np.float64)) * 65535)
    assert np.all((counts >= 1) & (counts <= 65535))
    assert s.att_high.max() <= np.log(65535.0) + 1e-5


def test_at_resolution_renders_smaller_scans():
    small = SimStream(None, seed=2).at_resolution((2.5, 3.0), 160, (96, 200))
    s = small[0]
    assert s.att_high.shape[0] <= 160 and s.att_high.shape[1] <= 200


def test_negative_index_is_refused(stream):
    with pytest.raises(IndexError):
        stream[-1]


def test_stream_module_does_not_import_torch():
    code = ("import sys; sys.modules['torch'] = None\n"
            "from training.sim.stream import SimStream\n"
            "s = SimStream('configs/synth/small.yaml', seed=0)[0]\n"
            "print(s.att_high.dtype)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "float32" in out.stdout
