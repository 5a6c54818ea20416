"""Geometry of the one decode (heat map + box distances -> boxes) and of preprocessing."""

from __future__ import annotations

import numpy as np
import pytest

from detector.inference import tile_spans
from detector.postprocess import DecodeParams, box_iou, decode, nms
from detector.preprocess import InputSpec, image_to_input, scaled_size
from detector.scan import Scan


def _maps(peaks, size=(8, 10), k=1, ltrb=(4.0, 4.0, 4.0, 4.0)):
    heat = np.zeros((k, *size), np.float32)
    box = np.zeros((4, *size), np.float32) + np.array(ltrb, np.float32)[:, None, None]
    for cls, y, x, s in peaks:
        heat[cls, y, x] = s
    return heat, box


@pytest.mark.parametrize("peaks, expected_n", [
    ([], 0),                                   # empty: nothing anywhere
    ([(0, 3, 3, 0.01)], 0),                    # below threshold
    ([(0, 3, 3, 0.9)], 1),
    ([(0, 3, 3, 0.9), (0, 3, 4, 0.5)], 1),     # neighbour is not a local maximum
    ([(0, 1, 1, 0.9), (0, 6, 8, 0.8)], 2),     # far apart
    ([(0, 0, 0, 0.7)], 1),                     # corner cell, box clipped to the image
])
def test_decode_table(peaks, expected_n):
    heat, box = _maps(peaks)
    boxes, scores, labels = decode(heat, box, DecodeParams(stride=4, score_thresh=0.05),
                                   size_hw=(32, 40))
    assert boxes.shape == (expected_n, 4) and boxes.dtype == np.float32
    assert scores.shape == labels.shape == (expected_n,)
    assert (np.diff(scores) <= 0).all()
    assert (boxes[:, 0::2] >= 0).all() and (boxes[:, 2] <= 40).all() and (boxes[:, 3] <= 32).all()


def test_decode_box_geometry_and_stride():
    heat, box = _maps([(0, 2, 3, 0.9)], ltrb=(5.0, 6.0, 7.0, 8.0))
    boxes, _, _ = decode(heat, box, DecodeParams(stride=4))
    cx, cy = 3.5 * 4, 2.5 * 4
    np.testing.assert_allclose(boxes[0], [cx - 5, cy - 6, cx + 7, cy + 8])


@pytest.mark.parametrize("bad", [
    (np.zeros((1, 4, 4), np.float32), np.zeros((3, 4, 4), np.float32)),
    (np.zeros((1, 4, 4), np.float32), np.zeros((4, 4, 5), np.float32)),
    (np.full((1, 4, 4), np.nan, np.float32), np.zeros((4, 4, 4), np.float32)),
])
def test_decode_rejects_bad_outputs(bad):
    with pytest.raises(ValueError):
        decode(*bad, DecodeParams(stride=4))


@pytest.mark.parametrize("boxes, scores, labels, keep", [
    (np.zeros((0, 4)), np.zeros(0), np.zeros(0, int), []),
    ([[0, 0, 10, 10], [1, 1, 10, 10]], [0.9, 0.8], [0, 0], [0]),
    ([[0, 0, 10, 10], [1, 1, 10, 10]], [0.8, 0.9], [0, 0], [1]),
    ([[0, 0, 10, 10], [1, 1, 10, 10]], [0.9, 0.8], [0, 1], [0, 1]),  # other class survives
    ([[0, 0, 10, 10], [20, 20, 30, 30]], [0.9, 0.8], [0, 0], [0, 1]),
])
def test_nms_table(boxes, scores, labels, keep):
    got = nms(np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(scores, np.float32),
              np.asarray(labels), 0.5)
    assert got.tolist() == keep


def test_box_iou_edges():
    assert box_iou(np.array([0, 0, 10, 10.]), np.zeros((0, 4))).shape == (0,)
    np.testing.assert_allclose(box_iou(np.array([0, 0, 10, 10.]),
                                       np.array([[0, 0, 10, 10.], [10, 10, 20, 20.],
                                                 [5, 0, 15, 10.], [0, 0, 0, 0.]])),
                               [1.0, 0.0, 1 / 3, 0.0])


@pytest.mark.parametrize("length, tile", [(10, 1536), (1536, 1536), (1537, 1536), (4000, 1536),
                                          (3001, 1000)])
def test_tiles_cover_everything(length, tile):
    spans = tile_spans(length, tile)
    covered = np.zeros(length, bool)
    for a, b in spans:
        assert a % 32 == 0 and b - a <= tile + 31
        covered[a:b] = True
    assert covered.all()


def test_preprocess_constants_are_physics_not_statistics():
    spec = InputSpec.for_kind("dual")
    att = np.zeros((2, 4, 4), np.float32)
    att[:, 1:3, 1:3] = [[[1.0]], [[1.3]]]
    x = image_to_input(att, spec, 16)
    assert x.shape == (6, 4, 4)
    assert x[0, 0, 0] == 0 and x[2, 0, 0] == 0  # air: zero attenuation, ratio 1 -> 0
    np.testing.assert_allclose(x[:3, 1, 1], [0.25, 0.325, (1.4 / 1.1) - 1], rtol=1e-5)
    # A scan's content never changes the scale: a far pixel does not change this one.
    att2 = np.zeros((2, 8, 8), np.float32)
    att2[:, :4, :4] = att
    x2 = image_to_input(att2, spec, 16)
    att2[:, 7, 7] = 5.0
    np.testing.assert_allclose(image_to_input(att2, spec, 16)[:, 1, 1], x2[:, 1, 1])
    np.testing.assert_allclose(x2[:, 1, 1], x[:, 1, 1])
    colour = image_to_input(np.full((3, 2, 2), 255, np.uint8), InputSpec.for_kind("color"), 8)
    assert colour.max() == 1.0


def test_dual_input_carries_the_pseudo_colour_view_a_colour_model_reads():
    """Channels 3-5 of a dual input are the classic pseudo-colour view, scaled like an 8-bit
    colour file; models up to 2.2.0 (three channels, no palette) still read as before."""
    from detector.render import PRESETS, pseudo_colour

    rng = np.random.default_rng(4)
    high = rng.uniform(0.0, 3.0, (24, 40)).astype(np.float32)
    low = (high * rng.uniform(1.1, 2.5, high.shape)).astype(np.float32)
    att = np.stack([high, low])
    spec = InputSpec.for_kind("dual")
    assert spec.channels[3:] == ("r", "g", "b") and spec.palette == "classic"
    x = image_to_input(att, spec, 16)
    rgb = pseudo_colour(high, low, PRESETS["classic"])
    np.testing.assert_allclose(x[3:], rgb.transpose(2, 0, 1) / 255.0, rtol=0, atol=1e-7)
    colour = image_to_input(rgb.transpose(2, 0, 1).copy(), InputSpec.for_kind("color"), 8)
    np.testing.assert_allclose(x[3:], colour, rtol=0, atol=1e-7)

    legacy = InputSpec.for_kind("dual", ("high", "low", "ratio"))
    assert legacy.palette is None and "palette" not in legacy.to_dict()
    np.testing.assert_array_equal(image_to_input(att, legacy, 16), x[:3])
    for s in (spec, legacy):
        assert InputSpec.from_dict(s.to_dict()) == s
    with pytest.raises(ValueError, match="palette: required"):
        InputSpec(kind="dual", channels=spec.channels)
    with pytest.raises(ValueError, match="only there"):
        InputSpec(kind="dual", channels=legacy.channels, palette="classic")
    with pytest.raises(ValueError, match="palette: expected one of"):
        InputSpec(kind="dual", channels=spec.channels, palette="sepia")
    with pytest.raises(ValueError, match="only there"):
        InputSpec(kind="color", channels=("r", "g", "b"), palette="classic")


def test_input_spec_rejects_mismatch():
    with pytest.raises(ValueError, match="expected"):
        InputSpec(kind="dual", channels=("att",))
    with pytest.raises(ValueError, match="unknown"):
        InputSpec.from_dict({"kind": "gray", "channels": ["att"], "mean": 0.5})
    spec = InputSpec.for_kind("gray")
    scan = Scan(id="c", kind="color", image=np.zeros((3, 4, 4), np.uint8) + 3,
                sources=("x",), bit_depth=8)
    from detector.preprocess import model_input

    with pytest.raises(ValueError, match="expects 'gray'"):
        model_input(scan, spec)
    assert scaled_size((100, 51), 0.5) == (50, 26)
